//! Meta's channels: WhatsApp Cloud API, Messenger and Instagram share one webhook and one Graph API.
pub mod inbound;
pub mod outbound;
