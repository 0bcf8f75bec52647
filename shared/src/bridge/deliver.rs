//! The event-bridge function: delivers a batch of queued events to the brand's receiver.
//!
//! Each record is one POST of the event's payload with the three Standard Webhooks headers,
//! signed for this attempt. What the answer means ([`verdict`]):
//! - 2xx: delivered, deleted from the queue.
//! - 408, 429, 5xx, a timeout or a connection error: the receiver may take it later. Reported as
//!   a batch item failure with its own delay ([`backoff`], or the receiver's `Retry-After` when
//!   longer), so SQS brings it back then; after the queue's `maxReceiveCount` SQS moves it to
//!   the DLQ.
//! - any other status (3xx, 4xx): retrying cannot help until someone fixes the receiver or the
//!   URL: moved to the DLQ at once (to redrive after the fix), counted, alarmed on.
//!
//! Records are independent (a standard queue has no order), so a batch is delivered concurrently.
use super::{BridgeEvent, BridgeSettings, Signer};
use crate::config::{env_opt, env_required, ConfigError};
use crate::observability::count;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// SQS's longest visibility timeout: 12 hours.
const MAX_DELAY_SECS: u64 = 43_200;
/// Each retry waits this many times longer than the one before.
const BACKOFF_FACTOR: u64 = 4;

/// What one answer of the receiver means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again later (at least `after` seconds, when the receiver said so).
    Retry {
        after: Option<u64>,
    },
    /// Will not succeed as it is.
    Permanent,
}

/// The verdict on an HTTP status (Standard Webhooks' "delivery success and failure", with 408
/// and 429 as the temporary client errors they are).
pub fn verdict(status: u16, retry_after: Option<u64>) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry { after: retry_after },
        _ => Verdict::Permanent,
    }
}

/// The delay before attempt `receive_count + 1`: `base`, then 4 times longer each time, at most
/// 12 hours, plus up to a fifth more at random so that failed events do not all come back
/// together (the spec recommends jitter).
pub fn backoff(base: u64, receive_count: u32, jitter: u64) -> u64 {
    let exp = receive_count.saturating_sub(1).min(16);
    let delay = base.max(1).saturating_mul(BACKOFF_FACTOR.saturating_pow(exp)).min(MAX_DELAY_SECS);
    delay.saturating_add(jitter % (delay / 5 + 1)).min(MAX_DELAY_SECS)
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Retry { delay: u64 },
}

/// The handler of the bridge queue.
pub struct Deliverer {
    http: reqwest::Client,
    /// `None`: the bridge is off; queued events are dropped.
    target: Option<(String, Signer)>,
    retry_base: u64,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: Option<String>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the receiver's key.
        f.debug_struct("Deliverer").field("on", &self.target.is_some()).finish_non_exhaustive()
    }
}

impl Deliverer {
    /// `settings: None` means the bridge is off.
    pub fn new(
        settings: Option<BridgeSettings>,
        http: reqwest::Client,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        dlq_url: Option<String>,
    ) -> Self {
        let retry_base = settings.as_ref().map_or(super::DEFAULT_RETRY_BASE_SECONDS, |s| s.retry_base_seconds);
        let target = settings.map(|s| {
            let signer = Signer::new(&s.secret);
            (s.url, signer)
        });
        Self { http, target, retry_base, sqs, queue_url, dlq_url }
    }

    /// From the function's environment: `BRIDGE_WEBHOOK_URL`, `BRIDGE_WEBHOOK_SECRET`,
    /// `PARLEY_BRIDGE_QUEUE_URL`, `PARLEY_BRIDGE_DLQ_URL`, the time budget.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let budget = crate::budget::Budget::from_env()?;
        let (_, sqs) = crate::budget::aws_clients_with(&budget, &crate::budget::Endpoints::default()).await;
        let http = budget
            .webhook_http()
            .map_err(|e| ConfigError::Invalid { name: "PARLEY_FUNCTION_TIMEOUT_SECONDS", reason: e.to_string() })?;
        Ok(Self::new(
            BridgeSettings::from_env()?,
            http,
            sqs,
            env_required("PARLEY_BRIDGE_QUEUE_URL")?,
            env_opt("PARLEY_BRIDGE_DLQ_URL"),
        ))
    }

    /// Handles one SQS batch: every record at once; failures come back after their own delay.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes = futures::future::join_all(event.records.iter().map(|r| self.handle_record(r))).await;
        let mut response = SqsBatchResponse::default();
        let mut delays = Vec::new();
        for (rec, outcome) in event.records.iter().zip(outcomes) {
            let Outcome::Retry { delay } = outcome else { continue };
            if let Some(id) = &rec.message_id {
                response.add_failure(id.clone());
                if let Some(handle) = &rec.receipt_handle {
                    delays.push((id.clone(), handle.clone(), delay));
                }
            }
        }
        crate::queue::set_retry_delays(&self.sqs, &self.queue_url, delays).await;
        crate::observability::flush();
        response
    }

    async fn handle_record(&self, rec: &SqsMessage) -> Outcome {
        let event = match BridgeEvent::parse(rec.body.as_deref().unwrap_or_default()) {
            Ok(e) => e,
            Err(e) => {
                count("BridgeEventRejected", 1);
                tracing::error!(message_id = ?rec.message_id, reason = %e, "unreadable bridge event");
                return self.to_dlq(rec).await;
            }
        };
        let Some((url, signer)) = &self.target else {
            count("BridgeDropped", 1);
            tracing::info!(event = %event.id, kind = event.kind.as_str(), "bridge is off: event dropped");
            return Outcome::Done;
        };
        let attempt = receive_count(rec);
        let now = crate::time_util::now_unix();
        let mut req = self.http.post(url).header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in signer.headers(&event.id, now, &event.payload) {
            req = req.header(name, value);
        }
        let (verdict, status) = match req.body(event.payload.clone()).send().await {
            Ok(r) => {
                let retry_after = r
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let status = r.status().as_u16();
                (verdict(status, retry_after), Some(status))
            }
            Err(e) => {
                // The error's text would name the URL: only its kind is logged.
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                tracing::warn!(event = %event.id, kind = event.kind.as_str(), attempt, error = kind, "bridge delivery failed");
                (Verdict::Retry { after: None }, None)
            }
        };
        match verdict {
            Verdict::Delivered => {
                count("BridgeDelivered", 1);
                tracing::info!(event = %event.id, kind = event.kind.as_str(), attempt, status, "bridge event delivered");
                Outcome::Done
            }
            Verdict::Retry { after } => {
                count("BridgeRetried", 1);
                let jitter = uuid::Uuid::new_v4().as_u128() as u64;
                let delay = backoff(self.retry_base, attempt, jitter).max(after.unwrap_or(0).min(MAX_DELAY_SECS));
                tracing::warn!(event = %event.id, kind = event.kind.as_str(), attempt, status, delay, "bridge delivery will be retried");
                Outcome::Retry { delay }
            }
            Verdict::Permanent => {
                count("BridgeDeliveryRejected", 1);
                tracing::warn!(event = %event.id, kind = event.kind.as_str(), attempt, status, "receiver refused the bridge event; moved to the DLQ");
                self.to_dlq(rec).await
            }
        }
    }

    /// Moves a record to the DLQ for ops to redrive after the fix; if that fails it is retried
    /// (and SQS's redrive policy moves it after `maxReceiveCount`).
    async fn to_dlq(&self, rec: &SqsMessage) -> Outcome {
        let Some(dlq) = &self.dlq_url else {
            return Outcome::Retry { delay: backoff(self.retry_base, receive_count(rec), 0) };
        };
        let sent =
            self.sqs.send_message().queue_url(dlq).message_body(rec.body.clone().unwrap_or_default()).send().await;
        match sent {
            Ok(_) => Outcome::Done,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not move to the DLQ");
                Outcome::Retry { delay: backoff(self.retry_base, receive_count(rec), 0) }
            }
        }
    }
}

fn receive_count(rec: &SqsMessage) -> u32 {
    rec.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_the_spec_says() {
        assert_eq!(verdict(200, None), Verdict::Delivered);
        assert_eq!(verdict(204, None), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(s, None), Verdict::Retry { after: None }, "{s}");
        }
        assert_eq!(verdict(429, Some(30)), Verdict::Retry { after: Some(30) });
        for s in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(verdict(s, None), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn backoff_grows_fourfold_to_twelve_hours_with_a_little_jitter() {
        let no_jitter: Vec<u64> = (1..=9).map(|n| backoff(5, n, 0)).collect();
        assert_eq!(no_jitter, vec![5, 20, 80, 320, 1280, 5120, 20480, 43_200, 43_200]);
        assert_eq!(backoff(1, 1, 0), 1);
        assert_eq!(backoff(1, 2, 0), 4);
        // Jitter adds at most a fifth and never passes the cap.
        for j in [0, 1, 7, u64::MAX] {
            let d = backoff(5, 4, j);
            assert!((320..=384).contains(&d), "{d}");
            assert!(backoff(5, 12, j) <= 43_200);
        }
        assert_eq!(backoff(0, 0, 0), 1, "a zero base or count still waits");
    }
}
