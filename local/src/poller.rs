//! Drives an SQS-triggered function (the outbound sender, the inbound worker) from the local SQS
//! endpoint the way Lambda's event source mapping does: receive a batch, invoke the handler,
//! delete what it did not report as failed.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// An SQS-triggered function's handler, as the event source mapping invokes it.
pub type SqsHandler = Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, SqsBatchResponse> + Send + Sync>;

pub async fn run(
    handler: SqsHandler,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut stop: watch::Receiver<bool>,
    alive: Arc<AtomicBool>,
) {
    alive.store(true, Ordering::Relaxed);
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = poll_once(&handler, &sqs, &queue_url, 1) => {},
            _ = stop.changed() => break,
        }
    }
    alive.store(false, Ordering::Relaxed);
}

/// One receive → handle → delete cycle; returns how many records were handled.
pub async fn poll_once(handler: &SqsHandler, sqs: &aws_sdk_sqs::Client, queue_url: &str, wait_secs: i32) -> usize {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        // Stands in for Lambda's event source mapping, which is not bound by the function's
        // budget: a receive cut off after the endpoint handed out messages would hide them for
        // the queue's whole visibility timeout.
        .customize()
        .config_override(
            aws_sdk_sqs::config::Builder::default().timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(wait_secs.max(0) as u64 + 5))
                    .operation_timeout(Duration::from_secs(wait_secs.max(0) as u64 + 5))
                    .build(),
            ),
        )
        .send()
        .await;
    let messages = match received {
        Ok(r) => r.messages.unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            return 0;
        }
    };
    if messages.is_empty() {
        if wait_secs > 0 {
            // Some endpoints answer an empty long poll at once; don't spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return 0;
    }
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut rec = SqsMessage::default();
            rec.message_id = m.message_id.clone();
            rec.receipt_handle = m.receipt_handle.clone();
            rec.body = m.body.clone();
            rec.event_source = Some("aws:sqs".into());
            rec.attributes = m
                .attributes
                .as_ref()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect())
                .unwrap_or_default();
            rec
        })
        .collect();
    let response = tracing::Instrument::instrument(handler(event), invoke_span()).await;
    let failed: std::collections::HashSet<&str> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    let entries: Vec<_> = messages
        .iter()
        .filter(|m| m.message_id.as_deref().is_some_and(|id| !failed.contains(id)))
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    if !entries.is_empty() {
        if let Err(e) = sqs.delete_message_batch().queue_url(queue_url).set_entries(Some(entries)).send().await {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed; messages will be redelivered");
        }
    }
    messages.len()
}

/// The span Lambda's runtime opens around each invocation (`lambda_runtime`'s `request_span`:
/// request id and X-Ray trace id), so local log lines carry the same fields as in AWS.
pub fn invoke_span() -> tracing::Span {
    let id = uuid::Uuid::new_v4();
    let hex = id.simple().to_string();
    let trace = format!("Root=1-{:08x}-{};Parent={};Sampled=0", parley::time_util::now_unix(), &hex[..24], &hex[16..]);
    // The target lambda_runtime gives it, so log filters treat it alike.
    tracing::info_span!(target: "lambda_runtime::layers::trace", "Lambda runtime invoke", requestId = %id, xrayTraceId = %trace)
}
