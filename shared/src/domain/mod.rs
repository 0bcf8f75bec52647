//! The pure domain: no AWS, no Lambda, no HTTP. State and an event in, a decision out.
pub mod campaign;
pub mod cart;
pub mod consent;
pub mod content;
pub mod conversation;
pub mod failure;
pub mod flows;
pub mod history;
pub mod ids;
pub mod inbound;
pub mod inbox;
pub mod links;
pub mod message;
pub mod money;
pub mod orders;
pub mod phone;
pub mod segment;
pub mod templates;
mod texts;

pub use ids::*;
pub use inbound::*;
pub use message::*;
pub use money::*;
