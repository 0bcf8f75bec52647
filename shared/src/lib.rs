//! Parley's shared core: the pure domain and the adapters around it.
//!
//! - [`domain`]: contacts, conversation engine, messages, money — pure, no AWS/Lambda types.
//! - [`channels`]: per channel webhook signature, inbound parsing, outbound send client.
//! - [`store`]: DynamoDB repositories (one table).
//! - [`queue`]: the versioned SQS envelope, producer and batch consumer.
//! - [`api`]: the HTTP handlers the Lambda functions and the local runtime both serve.
//! - [`bridge`]: conversation events for a brand's own inbox (Standard Webhooks, via SQS).
pub mod api;
pub mod bridge;
pub mod budget;
pub mod campaigns;
pub mod carts;
pub mod channels;
pub mod config;
pub mod consent;
pub mod content;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbound;
pub mod inbox;
pub mod lambda_init;
pub mod links;
pub mod observability;
pub mod ops;
pub mod orders;
pub mod privacy;
pub mod queue;
pub mod reconciler;
pub mod sender;
pub mod shops;
pub mod store;
pub mod time_util;
