//! The queues: versioned JSON envelopes on SQS FIFO queues, grouped by contact so a contact's
//! messages stay in order. Outbound: replies and notifications for the sender, deduplicated by our
//! message id. Inbound: the events of big deliveries, handed over so the webhook answers at once.
pub mod envelope;
pub mod inbound;
pub mod producer;
pub mod standard;

pub use envelope::{Envelope, EnvelopeError, ENVELOPE_VERSION};
pub use inbound::InboundEnvelope;
pub use producer::{FifoMessage, Producer, QueueError};
pub use standard::StandardQueue;

/// Brings failed records back after their own delay (`(message id, receipt handle, seconds)`)
/// instead of the queue's whole visibility timeout.
pub async fn set_retry_delays(sqs: &aws_sdk_sqs::Client, queue_url: &str, delays: Vec<(String, String, u64)>) {
    use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
    for chunk in delays.chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (_, handle, delay))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(handle)
                    .visibility_timeout(*delay as i32)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) =
            sqs.change_message_visibility_batch().queue_url(queue_url).set_entries(Some(entries)).send().await
        {
            // The queue's own visibility timeout still brings the messages back.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not set retry delays");
        }
    }
}

/// A FIFO batch's records by message group, each group's in the order SQS delivered them (the
/// order a group's records must be handled in; different groups are independent).
pub fn by_group(
    records: &[aws_lambda_events::event::sqs::SqsMessage],
) -> Vec<Vec<&aws_lambda_events::event::sqs::SqsMessage>> {
    let mut groups: Vec<(&str, Vec<&aws_lambda_events::event::sqs::SqsMessage>)> = Vec::new();
    for rec in records {
        let group = rec.attributes.get("MessageGroupId").map(String::as_str).unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, list)) => list.push(rec),
            None => groups.push((group, vec![rec])),
        }
    }
    groups.into_iter().map(|(_, recs)| recs).collect()
}
