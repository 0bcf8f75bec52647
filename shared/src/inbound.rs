//! Big deliveries: storage first. Meta batches up to 1000 messages (several MB) into one webhook
//! call; handling them inline would take far longer than the function's 10 s and Meta's patience.
//! The webhook verifies and parses, hands the events to the inbound FIFO queue (one SQS message
//! per event, grouped by contact, in timestamp order) and answers 200 once SQS has them all. The
//! `inbound-worker` function then runs the same [`crate::api::meta_webhook::process`] on each
//! contact's events, a batch of at most ten at a time.
//!
//! Rules:
//! 1. 200 only after SQS accepted every event ([`hand_off`] fails the delivery otherwise, and
//!    Meta retries it; re-sent events are deduplicated by content in SQS and by the claims).
//! 2. A contact's events are handled in the order they were written: sorted by timestamp before
//!    they are queued, one FIFO group per contact.
//! 3. A contact whose events fail is retried on its own: the other contacts of the batch are done
//!    ([`handle`] reports only the failed group's records; FIFO holds the group's later messages).
//! 4. An envelope no worker can read goes to the DLQ at once instead of blocking its contact.
//! 5. Failed events come back after a short backoff ([`backoff`]), not the whole visibility
//!    timeout; after `MaxReceiveCount` receives SQS moves them to the DLQ.
use crate::api::{meta_webhook, App};
use crate::queue::{FifoMessage, InboundEnvelope, Producer, QueueError};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;

/// Queues a delivery's events (rules 1 and 2); returns how many were queued.
pub async fn hand_off(queue: &Producer, events: Vec<crate::domain::InboundEvent>) -> Result<usize, QueueError> {
    let mut envelopes: Vec<InboundEnvelope> = events.into_iter().map(InboundEnvelope::new).collect();
    // Stable: events written in the same second keep the delivery's order.
    envelopes.sort_by_key(InboundEnvelope::timestamp);
    let messages: Vec<FifoMessage> = envelopes.iter().map(InboundEnvelope::to_message).collect();
    queue.send_messages(&messages).await?;
    crate::observability::count("InboundHandedOff", messages.len() as u64);
    Ok(messages.len())
}

/// The inbound worker: handles one SQS batch (rules 3 and 4).
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let mut groups: Vec<Vec<(&SqsMessage, InboundEnvelope)>> = Vec::new();
    let mut unreadable = Vec::new();
    for records in crate::queue::by_group(&event.records) {
        let mut readable = Vec::new();
        for rec in records {
            match InboundEnvelope::parse(rec.body.as_deref().unwrap_or_default()) {
                Ok(env) => readable.push((rec, env)),
                Err(e) => unreadable.push((rec, e.to_string())),
            }
        }
        if !readable.is_empty() {
            groups.push(readable);
        }
    }
    let mut response = SqsBatchResponse::default();
    let mut delays = Vec::new();
    for (rec, reason) in unreadable {
        if !reject(app, rec, &reason).await {
            if let Some(id) = &rec.message_id {
                response.add_failure(id.clone());
            }
        }
    }
    // One bound on DynamoDB requests for the whole invocation, whatever the number of contacts.
    let limit = tokio::sync::Semaphore::new(app.settings.max_concurrency);
    let limit = &limit;
    let results = join_all(groups.into_iter().map(|recs| async move {
        let events = recs.iter().map(|(_, env)| env.event.clone()).collect();
        let result = meta_webhook::process_within(app, events, 0, limit).await;
        (recs, result)
    }))
    .await;
    for (recs, result) in results {
        match result {
            Ok(summary) => tracing::info!(summary = ?summary, "inbound batch handled"),
            Err(e) => {
                // Everything the group's events did was given back; all of them are retried.
                tracing::warn!(error = %e, records = recs.len(), "inbound events failed; SQS retries them");
                crate::observability::count("InboundRetried", recs.len() as u64);
                for (rec, _) in recs {
                    if let Some(id) = &rec.message_id {
                        response.add_failure(id.clone());
                        if let Some(handle) = &rec.receipt_handle {
                            delays.push((id.clone(), handle.clone(), backoff(rec)));
                        }
                    }
                }
            }
        }
    }
    if let Some(queue) = &app.inbound {
        crate::queue::set_retry_delays(queue.client(), queue.queue_url(), delays).await;
    }
    crate::observability::flush();
    response
}

/// A contact's failed events come back after 2, 4, 8 … seconds (at most a minute) rather than
/// the queue's whole visibility timeout: most failures are a moment's throttling or a claim
/// another invocation still holds.
fn backoff(rec: &SqsMessage) -> u64 {
    let n: u32 = rec.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
    2u64.saturating_pow(n.min(6)).min(MAX_BACKOFF_SECS)
}

const MAX_BACKOFF_SECS: u64 = 60;

/// Moves an unreadable record to the DLQ; `false` if that failed (the record is retried, and
/// SQS's redrive policy moves it after `maxReceiveCount`).
async fn reject(app: &App, rec: &SqsMessage, reason: &str) -> bool {
    tracing::error!(message_id = ?rec.message_id, reason, "unreadable inbound envelope");
    crate::observability::count("InboundEnvelopeRejected", 1);
    let Some(dlq) = app.inbound_dlq_url.as_deref() else { return false };
    let group = rec.attributes.get("MessageGroupId").cloned().unwrap_or_else(|| "unreadable".into());
    let dedupe = rec.message_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let sent = app
        .producer
        .client()
        .send_message()
        .queue_url(dlq)
        .message_body(rec.body.clone().unwrap_or_default())
        .message_group_id(group)
        .message_deduplication_id(dedupe)
        .send()
        .await;
    match sent {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "moving to the DLQ failed");
            false
        }
    }
}
