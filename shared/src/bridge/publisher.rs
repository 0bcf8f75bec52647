//! The producers' narrow port: queue conversation events for the event-bridge function.
//!
//! The bridge queue is a standard queue (events need no order: each carries its own time, and a
//! receiver orders by it), so a batch is any ten events. A call either queued every event or
//! fails as a whole; the caller then fails its own work so that it is retried (the inbound
//! claim is given back and Meta re-delivers; the sender's record comes back from SQS), and the
//! retry produces the same events under the same ids.
use super::BridgeEvent;
use crate::queue::producer::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::queue::QueueError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// Sends bridge events to the bridge queue.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Publisher {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
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
        &self.queue_url
    }

    /// Queues `events`: all of them, or an error.
    pub async fn publish(&self, events: &[BridgeEvent]) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        let bodies: Vec<String> = events.iter().map(BridgeEvent::to_json).collect();
        if let Some(b) = bodies.iter().find(|b| b.len() > MAX_BATCH_BYTES) {
            return Err(QueueError::TooLarge { size: b.len(), limit: MAX_BATCH_BYTES });
        }
        let mut batches: Vec<Vec<&str>> = vec![Vec::new()];
        for body in &bodies {
            let open = batches.last_mut().expect("non-empty");
            let bytes: usize = open.iter().map(|b| b.len()).sum();
            if open.len() == MAX_BATCH_ENTRIES || bytes + body.len() > MAX_BATCH_BYTES {
                batches.push(vec![body.as_str()]);
            } else {
                open.push(body.as_str());
            }
        }
        let sent = futures::future::try_join_all(batches.iter().map(|b| self.send_batch(b))).await;
        sent?;
        crate::observability::count("BridgeEventsPublished", events.len() as u64);
        Ok(())
    }

    async fn send_batch(&self, bodies: &[&str]) -> Result<(), QueueError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("e{i}"))
                    .message_body(*body)
                    .build()
                    .map_err(|e| QueueError::Unavailable(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        if !out.failed().is_empty() {
            // Codes only: SQS's messages may quote the body.
            let detail = out.failed().iter().map(|f| f.code().to_string()).collect::<Vec<_>>().join(", ");
            return Err(QueueError::Rejected { failed: out.failed().len(), total: bodies.len(), detail });
        }
        Ok(())
    }
}
