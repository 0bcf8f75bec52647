//! Queue depths, DLQ listing and DLQ redrive.
//!
//! Listing receives a DLQ's messages with a short visibility timeout and makes them visible again
//! at once when done (nothing is deleted, nothing stays hidden for long). Redrive sends each
//! message back to its source queue with its FIFO group and a deduplication id derived from the
//! DLQ message's id (stable if a redrive is repeated after a crash, fresh against the original
//! send's five-minute dedupe window), and deletes it from the DLQ only once the send succeeded.
//! A message that was in fact sent before is not sent twice: the sender's claim on its id holds.
use super::OpsError;
use crate::bridge::BridgeEvent;
use crate::domain::{ContactId, InboundEvent, OutboundId};
use crate::queue::{Envelope, InboundEnvelope};
use crate::store::Store;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use serde::Serialize;

/// Parley's queues, each with its dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    Outbound,
    Inbound,
    Campaign,
    Bridge,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [QueueName::Outbound, QueueName::Inbound, QueueName::Campaign, QueueName::Bridge];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Outbound => "outbound",
            QueueName::Inbound => "inbound",
            QueueName::Campaign => "campaign",
            QueueName::Bridge => "bridge",
        }
    }

    pub fn parse(s: &str) -> Result<Self, OpsError> {
        Self::ALL.into_iter().find(|q| q.as_str() == s.trim().to_ascii_lowercase()).ok_or_else(|| {
            OpsError::Invalid(format!("unknown queue {s:?}: one of outbound, inbound, campaign, bridge"))
        })
    }

    /// The env var holding the queue's URL (the functions read the same names).
    pub fn url_var(self) -> &'static str {
        match self {
            QueueName::Outbound => "PARLEY_OUTBOUND_QUEUE_URL",
            QueueName::Inbound => "PARLEY_INBOUND_QUEUE_URL",
            QueueName::Campaign => "PARLEY_CAMPAIGN_QUEUE_URL",
            QueueName::Bridge => "PARLEY_BRIDGE_QUEUE_URL",
        }
    }

    pub fn dlq_var(self) -> &'static str {
        match self {
            QueueName::Outbound => "PARLEY_OUTBOUND_DLQ_URL",
            QueueName::Inbound => "PARLEY_INBOUND_DLQ_URL",
            QueueName::Campaign => "PARLEY_CAMPAIGN_DLQ_URL",
            QueueName::Bridge => "PARLEY_BRIDGE_DLQ_URL",
        }
    }

    /// template.yaml's logical ids (the stack outputs and the local runtime use them).
    pub fn logical_ids(self) -> (&'static str, &'static str) {
        match self {
            QueueName::Outbound => ("OutboundQueue", "OutboundDLQ"),
            QueueName::Inbound => ("InboundQueue", "InboundDLQ"),
            QueueName::Campaign => ("CampaignQueue", "CampaignDLQ"),
            QueueName::Bridge => ("BridgeQueue", "BridgeDLQ"),
        }
    }
}

/// The URLs of the queues and DLQs that are configured.
#[derive(Debug, Clone, Default)]
pub struct QueueUrls {
    urls: Vec<(QueueName, Option<String>, Option<String>)>,
}

impl QueueUrls {
    /// From a lookup by env var name (`std::env::var` in the CLI).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let nonempty = |v: &str| get(v).filter(|s| !s.trim().is_empty());
        Self { urls: QueueName::ALL.iter().map(|q| (*q, nonempty(q.url_var()), nonempty(q.dlq_var()))).collect() }
    }

    pub fn queue(&self, q: QueueName) -> Option<&str> {
        self.urls.iter().find(|(n, _, _)| *n == q).and_then(|(_, u, _)| u.as_deref())
    }

    pub fn dlq(&self, q: QueueName) -> Option<&str> {
        self.urls.iter().find(|(n, _, _)| *n == q).and_then(|(_, _, d)| d.as_deref())
    }

    fn require_queue(&self, q: QueueName) -> Result<&str, OpsError> {
        self.queue(q).ok_or_else(|| OpsError::NotConfigured(q.url_var().into()))
    }

    fn require_dlq(&self, q: QueueName) -> Result<&str, OpsError> {
        self.dlq(q).ok_or_else(|| OpsError::NotConfigured(q.dlq_var().into()))
    }
}

/// Depth of one queue or DLQ.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueStats {
    pub queue: QueueName,
    pub dlq: bool,
    /// Messages waiting (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Delayed (`ApproximateNumberOfMessagesDelayed`; campaign jobs wait their pace here).
    pub delayed: u64,
    /// Seconds since the oldest sampled message was first sent; `None` where it is not known.
    pub oldest_age_secs: Option<u64>,
    /// How the age was found: `peek` (DLQs: a sample received with visibility 0; a DLQ has no
    /// redrive policy, so a receive there moves nothing), or `n/a` for a source queue: a peek
    /// would count as a receive toward its `maxReceiveCount` and could push a message to the
    /// DLQ, so its age is the CloudWatch metric `ApproximateAgeOfOldestMessage` (the alarms and
    /// the dashboard use it).
    pub oldest_age_source: &'static str,
}

/// One message waiting in a DLQ, described without its content.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DlqMessage {
    /// The SQS message id (in the DLQ).
    pub message_id: String,
    /// `outbound:<purpose>`, `inbound:<event>`, `campaign-job`, `bridge:<event type>` or
    /// `unreadable` (an envelope no function could read).
    pub kind: String,
    /// Our id of the message, when the body has one (outbound id, bridge event id, campaign id).
    pub id: Option<String>,
    /// A keyed pseudonym of the contact (`PARLEY_PSEUDONYM_KEY`; the same value erased consent
    /// proof keeps), or the redacted form `whatsapp:***6789` without a key. Never the address.
    pub contact: Option<String>,
    /// The last error recorded for it (outbound: the send record's status, code and detail;
    /// campaign job: why the dispatcher moved it there; unreadable: why it could not be read).
    pub last_error: Option<String>,
    /// `ApproximateReceiveCount` (receives before it was moved, plus listings).
    pub receive_count: u32,
    /// Unix milliseconds it was first sent (`SentTimestamp`).
    pub sent_at_ms: Option<i64>,
}

/// What a redrive did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct RedriveReport {
    pub queue: Option<QueueName>,
    pub dry_run: bool,
    /// Moved back to the source queue (dry run: would be moved).
    pub moved: u64,
    /// Sends the source queue refused; these stay in the DLQ (visible again).
    pub failed: u64,
    pub messages: Vec<DlqMessage>,
}

/// The queue tasks' ports: SQS, and the store for the outbound messages' last errors.
pub struct Queues {
    sqs: aws_sdk_sqs::Client,
    urls: QueueUrls,
    store: Option<Store>,
    pseudonym_key: Option<String>,
}

/// How long a listed message stays hidden at most if the listing dies before releasing it.
const LIST_VISIBILITY_SECS: i32 = 30;
/// How long a message being redriven stays hidden while it is sent to the source queue.
const REDRIVE_VISIBILITY_SECS: i32 = 60;

fn attr_u64(attrs: &std::collections::HashMap<QueueAttributeName, String>, a: QueueAttributeName) -> u64 {
    attrs.get(&a).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn sys_attr(m: &Message, a: MessageSystemAttributeName) -> Option<&str> {
    m.attributes().and_then(|x| x.get(&a)).map(String::as_str)
}

fn now_ms() -> i64 {
    crate::time_util::now_millis()
}

impl Queues {
    pub fn new(sqs: aws_sdk_sqs::Client, urls: QueueUrls) -> Self {
        Self { sqs, urls, store: None, pseudonym_key: None }
    }

    /// With the table: DLQ listings show an outbound message's last send error.
    pub fn with_store(mut self, store: Option<Store>) -> Self {
        self.store = store;
        self
    }

    pub fn with_pseudonym_key(mut self, key: Option<String>) -> Self {
        self.pseudonym_key = key.filter(|k| !k.is_empty());
        self
    }

    /// Depth of every configured queue and DLQ (an unconfigured one is left out).
    pub async fn stats(&self) -> Result<Vec<QueueStats>, OpsError> {
        let mut out = Vec::new();
        for q in QueueName::ALL {
            if let Some(url) = self.urls.queue(q) {
                out.push(self.stats_of(q, url, false).await?);
            }
            if let Some(url) = self.urls.dlq(q) {
                out.push(self.stats_of(q, url, true).await?);
            }
        }
        if out.is_empty() {
            return Err(OpsError::NotConfigured(
                "no queue URL (PARLEY_OUTBOUND_QUEUE_URL, PARLEY_OUTBOUND_DLQ_URL, …; or --local)".into(),
            ));
        }
        Ok(out)
    }

    async fn stats_of(&self, queue: QueueName, url: &str, dlq: bool) -> Result<QueueStats, OpsError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| OpsError::aws("GetQueueAttributes", e))?;
        let attrs = out.attributes.unwrap_or_default();
        let visible = attr_u64(&attrs, QueueAttributeName::ApproximateNumberOfMessages);
        let (oldest_age_secs, oldest_age_source) = if !dlq {
            (None, "n/a")
        } else if visible == 0 {
            (None, "peek")
        } else {
            (self.peek_oldest_ms(url).await?.map(|ms| ((now_ms() - ms).max(0) / 1000) as u64), "peek")
        };
        Ok(QueueStats {
            queue,
            dlq,
            visible,
            in_flight: attr_u64(&attrs, QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: attr_u64(&attrs, QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            oldest_age_secs,
            oldest_age_source,
        })
    }

    /// The oldest `SentTimestamp` among a sample of up to 10 messages, received with visibility
    /// timeout 0 so they stay visible.
    async fn peek_oldest_ms(&self, url: &str) -> Result<Option<i64>, OpsError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| OpsError::aws("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| sys_attr(m, MessageSystemAttributeName::SentTimestamp)?.parse().ok())
            .min())
    }

    async fn receive(&self, url: &str, max: i32, visibility: i32) -> Result<Vec<Message>, OpsError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(visibility)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            // Why the campaign dispatcher dead-lettered a page job.
            .message_attribute_names(crate::campaigns::DLQ_REASON_ATTRIBUTE)
            .send()
            .await
            .map_err(|e| OpsError::aws("ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Makes received messages visible again at once.
    async fn release(&self, url: &str, messages: &[Message]) -> Result<(), OpsError> {
        for chunk in messages.chunks(10) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            self.sqs
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| OpsError::aws("ChangeMessageVisibilityBatch", e))?;
        }
        Ok(())
    }

    /// Up to `max` messages of a queue's DLQ, oldest first. They are hidden for the listing only
    /// (released at once; at most 30 s if the listing dies). On a FIFO DLQ a group's messages
    /// beyond the first batch of 10 show only once the earlier ones are redriven.
    pub async fn dlq_list(&self, queue: QueueName, max: usize) -> Result<Vec<DlqMessage>, OpsError> {
        let url = self.urls.require_dlq(queue)?;
        let mut held: Vec<Message> = Vec::new();
        let result = async {
            while held.len() < max {
                let batch = self.receive(url, (max - held.len()).min(10) as i32, LIST_VISIBILITY_SECS).await?;
                if batch.is_empty() {
                    break;
                }
                held.extend(batch);
            }
            let mut out = Vec::with_capacity(held.len());
            for m in &held {
                out.push(self.describe(queue, m).await);
            }
            out.sort_by_key(|d| d.sent_at_ms.unwrap_or(i64::MAX));
            Ok::<_, OpsError>(out)
        }
        .await;
        // Released whatever happened above, so a failed listing hides nothing for long.
        self.release(url, &held).await?;
        result
    }

    fn contact_ref(&self, contact: &ContactId) -> String {
        match &self.pseudonym_key {
            Some(key) => {
                let p = crate::privacy::contact_pseudonym(key, contact);
                format!("{}:{}", contact.channel, &p[..p.len().min(16)])
            }
            None => contact.redacted(),
        }
    }

    async fn describe(&self, queue: QueueName, m: &Message) -> DlqMessage {
        let body = m.body().unwrap_or_default();
        let mut d = DlqMessage {
            message_id: m.message_id().unwrap_or_default().to_string(),
            kind: "unreadable".into(),
            id: None,
            contact: None,
            last_error: None,
            receive_count: sys_attr(m, MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            sent_at_ms: sys_attr(m, MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse().ok()),
        };
        match queue {
            QueueName::Outbound => match Envelope::parse(body) {
                Ok(env) => {
                    d.kind = format!(
                        "outbound:{}",
                        serde_json::to_value(env.purpose)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    );
                    d.contact = Some(self.contact_ref(&env.contact));
                    d.last_error = self.last_send_error(&env.id).await;
                    d.id = Some(env.id.to_string());
                }
                Err(e) => d.last_error = Some(envelope_error(&e)),
            },
            QueueName::Inbound => match InboundEnvelope::parse(body) {
                Ok(env) => {
                    let (kind, contact) = match &env.event {
                        InboundEvent::Message(msg) => ("message", Some(&msg.contact)),
                        InboundEvent::Status(_) => ("status", None),
                        InboundEvent::Preference(p) => ("preference", Some(&p.contact)),
                        InboundEvent::AgentRelease { contact, .. } => ("agent_release", Some(contact)),
                    };
                    d.kind = format!("inbound:{kind}");
                    d.contact = contact.map(|c| self.contact_ref(c));
                }
                Err(e) => d.last_error = Some(envelope_error(&e)),
            },
            QueueName::Campaign => match serde_json::from_str::<crate::campaigns::Job>(body) {
                Ok(job) => {
                    d.kind = "campaign-job".into();
                    d.id = Some(job.campaign);
                    d.last_error = m
                        .message_attributes()
                        .and_then(|a| a.get(crate::campaigns::DLQ_REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .map(str::to_string);
                }
                Err(e) => d.last_error = Some(unreadable(&crate::privacy::describe_json_error(&e))),
            },
            QueueName::Bridge => match BridgeEvent::parse(body) {
                Ok(ev) => {
                    d.kind = format!("bridge:{}", ev.kind.as_str());
                    d.id = Some(ev.id);
                }
                Err(e) => d.last_error = Some(unreadable(&e.to_string())),
            },
        }
        d
    }

    async fn last_send_error(&self, id: &OutboundId) -> Option<String> {
        let store = self.store.as_ref()?;
        match store.get_outbound(id).await {
            Ok(Some(rec)) => Some(match (rec.error_code, rec.detail) {
                (Some(code), Some(detail)) => format!("{}: {code} {detail}", rec.status),
                (None, Some(detail)) => format!("{}: {detail}", rec.status),
                (Some(code), None) => format!("{}: {code}", rec.status),
                (None, None) => format!("{} (attempts: {})", rec.status, rec.attempts),
            }),
            Ok(None) => Some("never attempted (no send record)".into()),
            Err(_) => None,
        }
    }

    /// Moves up to `max` messages from a queue's DLQ back to the queue; `progress` is called
    /// after each batch with the number handled so far. With `dry_run`, lists what would move.
    pub async fn redrive(
        &self,
        queue: QueueName,
        max: usize,
        dry_run: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<RedriveReport, OpsError> {
        let dlq = self.urls.require_dlq(queue)?;
        let target = self.urls.require_queue(queue)?;
        let mut report = RedriveReport { queue: Some(queue), dry_run, ..Default::default() };
        if dry_run {
            report.messages = self.dlq_list(queue, max).await?;
            report.moved = report.messages.len() as u64;
            return Ok(report);
        }
        let fifo = target.ends_with(".fifo");
        while (report.moved as usize) < max {
            let batch =
                self.receive(dlq, (max - report.moved as usize).min(10) as i32, REDRIVE_VISIBILITY_SECS).await?;
            if batch.is_empty() {
                break;
            }
            let (sent, refused) = self.send_back(target, fifo, &batch).await?;
            let delete: Vec<_> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| sent.contains(&i.to_string()))
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            let kept: Vec<Message> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| !sent.contains(&i.to_string()))
                .map(|(_, m)| m.clone())
                .collect();
            if !delete.is_empty() {
                self.sqs
                    .delete_message_batch()
                    .queue_url(dlq)
                    .set_entries(Some(delete))
                    .send()
                    .await
                    .map_err(|e| OpsError::aws("DeleteMessageBatch", e))?;
            }
            for (i, m) in batch.iter().enumerate() {
                if sent.contains(&i.to_string()) {
                    report.messages.push(self.describe(queue, m).await);
                }
            }
            report.moved += sent.len() as u64;
            report.failed += refused as u64;
            progress(report.moved);
            if !kept.is_empty() {
                // A refused send stops the run: the same cause would refuse the rest.
                self.release(dlq, &kept).await?;
                break;
            }
        }
        Ok(report)
    }

    /// Sends a batch to the source queue; returns the entry ids sent and how many were refused.
    async fn send_back(&self, target: &str, fifo: bool, batch: &[Message]) -> Result<(Vec<String>, usize), OpsError> {
        let entries: Vec<_> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let mut e = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default());
                if fifo {
                    // Its group keeps the contact's order; the dedupe id is the DLQ message's own.
                    let group = sys_attr(m, MessageSystemAttributeName::MessageGroupId).unwrap_or("redriven");
                    e = e
                        .message_group_id(group)
                        .message_deduplication_id(format!("redrive-{}", m.message_id().unwrap_or_default()));
                }
                e.build().ok()
            })
            .collect();
        let out = self
            .sqs
            .send_message_batch()
            .queue_url(target)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| OpsError::aws("SendMessageBatch", e))?;
        Ok((out.successful().iter().map(|s| s.id().to_string()).collect(), out.failed().len()))
    }
}

fn unreadable(reason: &str) -> String {
    format!("unreadable envelope: {reason}")
}

/// Why an envelope is unreadable, without the serde message (it can quote the body's text).
fn envelope_error(e: &crate::queue::EnvelopeError) -> String {
    match e {
        crate::queue::EnvelopeError::Invalid(_) => unreadable("not valid JSON for its version"),
        crate::queue::EnvelopeError::UnsupportedVersion(v) => unreadable(&format!("version {v} is not supported")),
    }
}
