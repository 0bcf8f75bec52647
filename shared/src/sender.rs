//! The outbound sender: consumes SQS batches, sends through the Graph API, and reports partial
//! batch failures. FIFO order holds per contact: once a message of a group fails, the later
//! messages of that group in the batch are reported failed too, untried.
use crate::channels::meta::outbound::{GraphClient, SendError, SendRequest};
use crate::config::{AwsSettings, ConfigError, LoopSettings, MetaSettings};
use crate::domain::consent::{ConsentPolicy, ConsentPurpose, ConsentState};
use crate::domain::history::Entry;
use crate::domain::templates::Templates;
use crate::domain::{Channel, OutboundBody, Purpose};
use crate::observability::count;
use crate::queue::Envelope;
use crate::store::contacts::ContactRecord;
use crate::store::outbound::SendClaim;
use crate::store::Store;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::time::Duration;

const MAX_DELAY_SECS: u64 = 900;

#[derive(Clone)]
pub struct Sender {
    store: Store,
    graph: GraphClient,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: Option<String>,
    settings: LoopSettings,
    consent: ConsentPolicy,
    /// Renders sent templates into the conversation history.
    templates: Templates,
    /// Failures for good become the bridge's `message.failed` (`None`: the bridge is off).
    bridge: Option<crate::bridge::Publisher>,
}

impl crate::content::WithContent for Sender {
    fn with_content(&self, set: &crate::domain::content::ContentSet) -> Self {
        self.clone().with_templates(set.templates.clone())
    }
}

/// Whether the contact's consent allows a message sent for `purpose`. Checked when sending, not
/// only when enqueuing: a STOP that arrives while a notification waits in the queue wins.
pub fn consent_allows(purpose: Purpose, contact: Option<&ContactRecord>) -> bool {
    let consent = contact.map(|c| &c.consent);
    match purpose {
        // Answers inside a conversation the customer started need no opt-in.
        Purpose::Reply => true,
        Purpose::ConsentRequest => {
            consent.is_some_and(|c| ConsentPurpose::ALL.iter().any(|p| c.get(*p).state == ConsentState::Pending))
        }
        Purpose::OrderUpdate => consent.is_some_and(|c| c.allows(ConsentPurpose::OrderUpdates)),
        Purpose::Marketing => consent.is_some_and(|c| c.allows(ConsentPurpose::Marketing)),
    }
}

/// What happened to one SQS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (sent, or finished on purpose): delete from the queue.
    Done,
    /// Try again after `delay` seconds.
    Retry { delay: u64 },
    /// Stop sending for a while (credentials or number restriction): alarm.
    Pause,
}

impl Sender {
    pub fn new(
        store: Store,
        graph: GraphClient,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        dlq_url: Option<String>,
        settings: LoopSettings,
        consent: ConsentPolicy,
    ) -> Self {
        let store = store.with_settings(&settings);
        let templates = Templates::embedded().unwrap_or_else(|e| {
            // The compiled-in set is checked by the tests; an empty set only loses rendering.
            tracing::error!(error = %e, "embedded templates unreadable; history shows template names only");
            Templates::default()
        });
        Self { store, graph, sqs, queue_url, dlq_url, settings, consent, templates, bridge: None }
    }

    /// Another template catalog than the compiled-in one (the local runtime's tests).
    pub fn with_templates(mut self, templates: Templates) -> Self {
        self.templates = templates;
        self
    }

    /// [`Sender::from_env`] with the template catalog of `CONTENT_BUCKET` (see [`crate::content`]).
    pub async fn live_from_env() -> Result<crate::content::Live<Sender>, ConfigError> {
        crate::content::Live::from_env(Self::from_env().await?).await
    }

    /// Publishes failures for good to the bridge queue.
    pub fn with_bridge(mut self, bridge: Option<crate::bridge::Publisher>) -> Self {
        self.bridge = bridge;
        self
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let budget = crate::budget::Budget::from_env()?;
        let (ddb, sqs) = crate::budget::aws_clients_with(&budget, &crate::budget::Endpoints::default()).await;
        let mut meta = MetaSettings::from_env()?;
        // A Graph call may use at most a quarter of the sender's time (it works through a batch).
        meta.graph_timeout = budget.graph_call(meta.graph_timeout);
        let bridge = crate::bridge::Publisher::from_env(&sqs)?;
        Ok(Self::from_settings(ddb, sqs, AwsSettings::from_env()?, &meta)?.with_bridge(bridge))
    }

    pub fn from_settings(
        ddb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        aws: AwsSettings,
        meta: &MetaSettings,
    ) -> Result<Self, ConfigError> {
        let graph = GraphClient::new(meta)
            .map_err(|e| ConfigError::Invalid { name: "GRAPH_API_BASE", reason: e.to_string() })?;
        Ok(Self::new(
            Store::new(ddb, aws.table),
            graph,
            sqs,
            aws.outbound_queue_url,
            aws.outbound_dlq_url,
            LoopSettings::from_env()?,
            crate::config::ConsentSettings::from_env()?.policy(),
        ))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The loop settings (the local runtime shortens leases per test system).
    pub fn settings_mut(&mut self) -> &mut LoopSettings {
        &mut self.settings
    }

    /// Handles one SQS batch. Groups are worked on concurrently, each in order.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let groups = crate::queue::by_group(&event.records);
        let results = futures::future::join_all(groups.iter().map(|recs| self.handle_group(recs))).await;
        let paused = results.iter().flatten().any(|(_, o)| *o == Outcome::Pause);
        let mut response = SqsBatchResponse::default();
        let mut delays = Vec::new();
        for (rec, outcome) in results.into_iter().flatten() {
            let delay = match outcome {
                Outcome::Done => continue,
                // A pause holds back the whole batch: the next call would fail the same way.
                Outcome::Retry { delay } if paused => delay.max(self.settings.pause_seconds),
                Outcome::Retry { delay } => delay,
                Outcome::Pause => self.settings.pause_seconds,
            };
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

    async fn handle_group<'a>(&self, recs: &[&'a SqsMessage]) -> Vec<(&'a SqsMessage, Outcome)> {
        let mut out = Vec::with_capacity(recs.len());
        let mut blocked: Option<Outcome> = None;
        for rec in recs {
            if let Some(b) = blocked {
                // FIFO: a later message must not overtake the failed one.
                out.push((*rec, b));
                continue;
            }
            let outcome = self.handle_record(rec).await;
            if outcome != Outcome::Done {
                blocked = Some(outcome);
            }
            out.push((*rec, outcome));
        }
        out
    }

    /// Backoff via SQS visibility: `base^(n-1)` seconds for the n-th receive, capped.
    fn backoff(&self, rec: &SqsMessage) -> u64 {
        let n: u32 = rec.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        self.settings.retry_base_seconds.max(1).saturating_pow(n.saturating_sub(1)).min(MAX_DELAY_SECS)
    }

    pub async fn handle_record(&self, rec: &SqsMessage) -> Outcome {
        let body = rec.body.as_deref().unwrap_or_default();
        let env = match Envelope::parse(body) {
            Ok(e) => e,
            Err(e) => return self.reject(rec, &e.to_string()).await,
        };
        let now = crate::time_util::now_unix();
        let hist = Entry::outbound(&env.body, &self.templates, env.author.as_deref()).to_json();
        let claim = self.store.claim_send(&env, &hist, now, self.settings.send_lease, rec.message_id.as_deref());
        let contact = self.store.get_contact(&env.contact);
        let finish_inbound = async {
            match &env.in_reply_to {
                Some(id) => self.store.finish_inbound(env.contact.channel, id).await,
                None => Ok(()),
            }
        };
        let (claim, contact, finished) = futures::join!(claim, contact, finish_inbound);
        if let Err(e) = finished {
            tracing::warn!(error = %e, "could not mark the inbound message done");
        }
        let claim = match claim {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, id = %env.id, "store unavailable, will retry");
                return Outcome::Retry { delay: self.backoff(rec) };
            }
        };
        let attempt = match claim {
            SendClaim::Go { attempt } => attempt,
            SendClaim::Finished { status } => {
                tracing::info!(id = %env.id, status, "already handled, not sent again");
                count("SendDuplicateSkipped", 1);
                return Outcome::Done;
            }
            SendClaim::InFlight { lease_until } => {
                // Held by a live claim — maybe of an invocation that died mid-send. Not done:
                // reported failed, so SQS brings it back once the lease has run out.
                count("SendInFlight", 1);
                tracing::info!(id = %env.id, "send claimed elsewhere, will retry after its lease");
                return Outcome::Retry { delay: (lease_until - now + 1).clamp(1, MAX_DELAY_SECS as i64) as u64 };
            }
        };
        let contact = match contact {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable, will retry");
                self.record(self.store.mark_retry(&env.id, None, "store unavailable")).await;
                return Outcome::Retry { delay: self.backoff(rec) };
            }
        };
        if !consent_allows(env.purpose, contact.as_ref()) {
            tracing::info!(id = %env.id, contact = %env.contact.redacted(), purpose = ?env.purpose, "no consent: not sent");
            count("SendSkippedNoConsent", 1);
            self.record(self.store.mark_dropped(&env.id, "no consent for this purpose")).await;
            // STOP during a campaign: the recipient is skipped before their message went out.
            self.record(crate::campaigns::record_skip(&self.store, &env, crate::domain::segment::Skip::NoConsent))
                .await;
            return Outcome::Done;
        }
        let Some((body, via_template)) = self.choose_body(&env, contact.as_ref(), now) else {
            tracing::info!(id = %env.id, contact = %env.contact.redacted(), "window closed and no template: not sent");
            count("SendSkippedWindowClosed", 1);
            self.record(self.store.mark_dropped(&env.id, "customer-service window closed, no template")).await;
            return Outcome::Done;
        };
        tracing::debug!(id = %env.id, attempt, "sending");
        self.send(rec, &env, &body, via_template).await
    }

    /// What may be sent now: the message itself inside the customer-service window, else its
    /// approved template (WhatsApp), else nothing.
    fn choose_body(&self, env: &Envelope, contact: Option<&ContactRecord>, now: i64) -> Option<(OutboundBody, bool)> {
        if env.body.is_template() {
            return (env.contact.channel == Channel::WhatsApp).then(|| (env.body.clone(), true));
        }
        let window = self.settings.service_window.as_secs() as i64;
        if contact.is_some_and(|c| c.window_open(now, window)) {
            return Some((env.body.clone(), false));
        }
        let template = env.fallback.clone().filter(|_| env.contact.channel == Channel::WhatsApp)?;
        Some((OutboundBody::Template { template }, true))
    }

    async fn send(&self, rec: &SqsMessage, env: &Envelope, body: &OutboundBody, via_template: bool) -> Outcome {
        // The catalog splits a template's positional parameters and names its category, which
        // picks the endpoint (MARKETING: the Marketing Messages API when it is on).
        let template = match body {
            OutboundBody::Template { template } => self.templates.get(&template.name, &template.language),
            _ => None,
        };
        let req = SendRequest {
            account: &env.account,
            contact: &env.contact,
            body,
            purpose: env.purpose,
            reference: Some(env.id.as_str()),
            template,
        };
        match self.graph.send(&req).await {
            Ok(provider_id) => {
                count("Sent", 1);
                // A template that stands in for a reply: keep the reply for the customer's answer.
                let withheld =
                    if via_template && !env.body.is_template() { Some(&env.body) } else { env.withheld.as_ref() };
                if let Some(reply) = withheld {
                    if let Err(e) = self.store.add_pending_reply(&env.contact, reply).await {
                        tracing::warn!(error = %e, id = %env.id, "could not keep the held-back reply");
                    }
                }
                if via_template {
                    count("SentAsTemplate", 1);
                }
                let endpoint = self.graph.endpoint_for(&req).as_str();
                tracing::info!(id = %env.id, provider_id = %provider_id, contact = %env.contact.redacted(), via_template, endpoint, "sent");
                // The message is out: a failed record must not make it go out again.
                for attempt in 0..3 {
                    // The window closed in the meantime and the template went out instead.
                    let sent_hist = (via_template && !env.body.is_template())
                        .then(|| Entry::outbound(body, &self.templates, env.author.as_deref()).to_json());
                    match self.store.mark_sent(env, &provider_id, via_template, sent_hist.as_deref()).await {
                        Ok(()) => {
                            // A campaign message counts in its campaign's report.
                            self.record(crate::campaigns::record_delivery(&self.store, env, "sent", None)).await;
                            break;
                        }
                        Err(e) if attempt == 2 => {
                            tracing::error!(error = %e, id = %env.id, "sent, but the record could not be written");
                            count("RecordFailed", 1);
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
                    }
                }
                Outcome::Done
            }
            Err(SendError::WindowClosed { code, detail }) if !via_template && env.fallback.is_some() => {
                tracing::info!(id = %env.id, code, detail, "window closed at Meta: sending the template instead");
                let template = OutboundBody::Template { template: env.fallback.clone().expect("checked") };
                Box::pin(self.send(rec, env, &template, true)).await
            }
            Err(e) => self.failed(rec, env, e).await,
        }
    }

    async fn failed(&self, rec: &SqsMessage, env: &Envelope, e: SendError) -> Outcome {
        let code = e.code();
        let detail = e.to_string();
        match e {
            SendError::Retryable { .. } => {
                count("SendRetried", 1);
                let delay = self.backoff(rec);
                tracing::warn!(id = %env.id, code, delay, "send failed, will retry");
                self.record(self.store.mark_retry(&env.id, code, &detail)).await;
                Outcome::Retry { delay }
            }
            SendError::Pause { .. } => {
                count("SendPaused", 1);
                tracing::error!(id = %env.id, code, "sending paused: check the access token and the number's status");
                self.record(self.store.mark_retry(&env.id, code, &detail)).await;
                Outcome::Pause
            }
            SendError::WindowClosed { .. } | SendError::Permanent { .. } | SendError::Config(_) => {
                count("SendFailedPermanent", 1);
                if code == Some(131050) {
                    // The person stopped marketing messages in WhatsApp: that is a revocation.
                    let revoked = crate::consent::marketing_rejected(&self.store, &env.contact, &self.consent);
                    self.record(revoked).await;
                }
                // The bridge learns of it before the failure is recorded: if the event cannot be
                // queued, the message comes back (the next attempt fails the same way and
                // queues the same event) instead of being finished without it.
                if let Some(bridge) = &self.bridge {
                    let failed = crate::bridge::FailedMessage {
                        contact: &env.contact,
                        id: Some(&env.id),
                        provider_id: None,
                        code,
                        at: crate::time_util::now_unix(),
                    };
                    if let Err(e) = bridge.publish(&[crate::bridge::BridgeEvent::message_failed(&failed)]).await {
                        let delay = self.backoff(rec);
                        tracing::warn!(id = %env.id, error = %e, delay, "failure event not queued; will retry");
                        self.record(self.store.mark_retry(&env.id, code, &detail)).await;
                        return Outcome::Retry { delay };
                    }
                }
                tracing::warn!(id = %env.id, code, detail, contact = %env.contact.redacted(), "send failed for good");
                self.record(self.store.mark_failed(&env.id, code, &detail)).await;
                self.record(crate::campaigns::record_delivery(&self.store, env, "failed", code)).await;
                Outcome::Done
            }
        }
    }

    async fn record(&self, write: impl std::future::Future<Output = Result<(), crate::store::StoreError>>) {
        if let Err(e) = write.await {
            tracing::warn!(error = %e, "could not record the send outcome");
        }
    }

    /// An envelope nobody can read goes straight to the DLQ for ops to inspect, instead of
    /// blocking its group through every retry.
    async fn reject(&self, rec: &SqsMessage, reason: &str) -> Outcome {
        count("EnvelopeRejected", 1);
        tracing::error!(message_id = ?rec.message_id, reason, "unreadable envelope");
        let Some(dlq) = &self.dlq_url else {
            return Outcome::Retry { delay: 0 };
        };
        let group = rec.attributes.get("MessageGroupId").cloned().unwrap_or_else(|| "rejected".into());
        let sent = self
            .sqs
            .send_message()
            .queue_url(dlq)
            .message_body(rec.body.clone().unwrap_or_default())
            .message_group_id(group)
            .message_deduplication_id(rec.message_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
            .send()
            .await;
        match sent {
            Ok(_) => Outcome::Done,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not move to the DLQ");
                Outcome::Retry { delay: 0 }
            }
        }
    }
}
