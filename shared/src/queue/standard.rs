//! Sends to an SQS standard queue (no message groups, no order): one message with a delay, or
//! many in as few `SendMessageBatch` calls as the limits allow, sent concurrently. The campaign
//! queue's page jobs and the bridge's events use it.
use super::producer::{send_entries, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use super::QueueError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

/// The longest delay SQS allows on a message (15 minutes).
pub const MAX_DELAY_SECS: i64 = 900;

/// One SQS standard queue.
#[derive(Debug, Clone)]
pub struct StandardQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl StandardQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one message, delivered after `delay_secs` (clamped to 0 ..= 15 minutes).
    pub async fn send_delayed(&self, body: &str, delay_secs: i64) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_secs.clamp(0, MAX_DELAY_SECS) as i32)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    /// Sends every body: all of them were accepted, or an error.
    pub async fn send_all(&self, bodies: &[String]) -> Result<(), QueueError> {
        let batches = batches(bodies)?;
        futures::future::try_join_all(batches.iter().map(|b| self.send_batch(b))).await?;
        Ok(())
    }

    async fn send_batch(&self, bodies: &[&str]) -> Result<(), QueueError> {
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(*body).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        send_entries(&self.client, &self.url, entries).await
    }
}

/// Bodies in batches within SQS's limits (entries and bytes), in order.
fn batches(bodies: &[String]) -> Result<Vec<Vec<&str>>, QueueError> {
    if let Some(b) = bodies.iter().find(|b| b.len() > MAX_BATCH_BYTES) {
        return Err(QueueError::TooLarge { size: b.len(), limit: MAX_BATCH_BYTES });
    }
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut bytes = 0;
    for body in bodies {
        match out.last_mut() {
            Some(open) if open.len() < MAX_BATCH_ENTRIES && bytes + body.len() <= MAX_BATCH_BYTES => {
                open.push(body.as_str());
                bytes += body.len();
            }
            _ => {
                out.push(vec![body.as_str()]);
                bytes = body.len();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_the_limits_and_the_order() {
        let small: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
        let b = batches(&small).unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        assert_eq!(b.concat(), small.iter().map(String::as_str).collect::<Vec<_>>());
        let big: Vec<String> = (0..5).map(|_| "x".repeat(100 * 1024)).collect();
        assert_eq!(batches(&big).unwrap().iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(batches(&[]).unwrap().is_empty());
        assert!(matches!(batches(&["x".repeat(MAX_BATCH_BYTES + 1)]), Err(QueueError::TooLarge { .. })));
    }
}
