use super::Envelope;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQS could not be reached or refused the call; the caller answers 5xx so the source retries.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue rejected {failed} of {total} messages: {detail}")]
    Rejected { failed: usize, total: usize, detail: String },
}

/// Sends envelopes to the outbound FIFO queue in batches of up to 10 (one call per 10).
#[derive(Clone, Debug)]
pub struct Producer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Producer {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Enqueues in order. MessageDeduplicationId = our message id, so a re-run within SQS's
    /// 5-minute window is dropped by SQS and later ones by the sender's record.
    pub async fn send(&self, envelopes: &[Envelope]) -> Result<(), QueueError> {
        // Chunks are sent one after another: entries of one contact must keep their order.
        for chunk in envelopes.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(e.to_json())
                        .message_group_id(e.group_id())
                        .message_deduplication_id(e.id.as_str())
                        .build()
                        .map_err(|err| QueueError::Unavailable(err.to_string()))
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
                let detail = out
                    .failed()
                    .iter()
                    .map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(QueueError::Rejected { failed: out.failed().len(), total: chunk.len(), detail });
            }
        }
        Ok(())
    }
}
