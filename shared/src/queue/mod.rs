//! The outbound queue: a versioned JSON envelope on an SQS FIFO queue, grouped by contact so a
//! contact's messages stay in order, deduplicated by our message id.
pub mod envelope;
pub mod producer;

pub use envelope::{Envelope, EnvelopeError, ENVELOPE_VERSION};
pub use producer::{Producer, QueueError};
