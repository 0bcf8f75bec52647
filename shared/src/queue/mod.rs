//! The queues: versioned JSON envelopes on SQS FIFO queues, grouped by contact so a contact's
//! messages stay in order. Outbound: replies and notifications for the sender, deduplicated by our
//! message id. Inbound: the events of big deliveries, handed over so the webhook answers at once.
pub mod envelope;
pub mod inbound;
pub mod producer;

pub use envelope::{Envelope, EnvelopeError, ENVELOPE_VERSION};
pub use inbound::InboundEnvelope;
pub use producer::{FifoMessage, Producer, QueueError};
