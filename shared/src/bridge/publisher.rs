//! The producers' narrow port: queue conversation events for the event-bridge function.
//!
//! The bridge queue is a standard queue (events need no order: each carries its own time, and a
//! receiver orders by it), so a batch is any ten events. A call either queued every event or
//! fails as a whole; the caller then fails its own work so that it is retried (the inbound
//! claim is given back and Meta re-delivers; the sender's record comes back from SQS), and the
//! retry produces the same events under the same ids.
use super::BridgeEvent;
use crate::queue::{QueueError, StandardQueue};

/// Sends bridge events to the bridge queue.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: StandardQueue,
}

impl Publisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { queue: StandardQueue::new(client, queue_url) }
    }

    /// The producers' publisher when the bridge is on: `BRIDGE_WEBHOOK_URL` set (the producers
    /// need only to know that) and `PARLEY_BRIDGE_QUEUE_URL` naming the queue. Off: `None`, and
    /// no request is ever made for the bridge.
    pub fn from_env(client: &aws_sdk_sqs::Client) -> Result<Option<Self>, crate::config::ConfigError> {
        if crate::config::env_opt("BRIDGE_WEBHOOK_URL").is_none() {
            return Ok(None);
        }
        let url = crate::config::env_required("PARLEY_BRIDGE_QUEUE_URL")?;
        Ok(Some(Self::new(client.clone(), url)))
    }

    pub fn queue_url(&self) -> &str {
        self.queue.url()
    }

    /// Queues `events`: all of them, or an error.
    pub async fn publish(&self, events: &[BridgeEvent]) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let bodies: Vec<String> = events.iter().map(BridgeEvent::to_json).collect();
        self.queue.send_all(&bodies).await?;
        crate::observability::count("BridgeEventsPublished", events.len() as u64);
        Ok(())
    }
}
