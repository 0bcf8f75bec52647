//! Messaging channels: signature verification, inbound parsing, outbound sending.
pub mod meta;
pub mod signature;
