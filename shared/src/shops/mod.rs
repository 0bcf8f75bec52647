//! Shop platforms (Shopify, WooCommerce): webhook payloads and REST responses mapped to one
//! [`ShopEvent`] type, and the REST clients the reconciler polls with.
pub mod client;
pub mod event;
mod json;
pub mod shopify;
pub mod woocommerce;

pub use event::*;
