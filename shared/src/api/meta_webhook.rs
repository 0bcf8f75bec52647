//! `GET/POST /webhooks/meta`: verify, dedupe, persist, enqueue — and answer fast.
//!
//! Per inbound message the hot path makes two sequential AWS round trips: (1) the dedupe claim
//! and the contact touch, concurrently; (2) one batched SQS send for the whole delivery,
//! concurrently with any state write the conversation decided on. A delivery with more events
//! than `INBOUND_INLINE_MAX_EVENTS` is handed to the inbound queue instead (`crate::inbound`),
//! whose worker runs the same [`process`] on batches of at most ten events.
use super::{query_param, text_response, ApiError, App};
use crate::bridge::BridgeEvent;
use crate::channels::meta::inbound::{parse_delivery, InboundParseError};
use crate::config::Account;
use crate::consent::{audit_events, AuditContext};
use crate::domain::consent::{
    self as dconsent, Consent, ConsentCommand, ConsentEvent, ConsentPurpose, ConsentReply, ConsentState, Via,
};
use crate::domain::conversation::{self, ContactView};
use crate::domain::flows::FlowSet;
use crate::domain::{
    Channel, ContactId, DeliveryState, InboundContent, InboundEvent, InboundMessage, OutboundBody, OutboundId, Purpose,
    StatusUpdate, TemplateRef,
};
use crate::observability::count;
use crate::queue::Envelope;
use crate::store::consent::{ConsentAuditEvent, ProfileSeed};
use crate::store::contacts::{ConsentStepMark, ContactRecord};
use crate::store::inbound::Claim;
use crate::store::outbound::StatusOutcome;
use bytes::Bytes;
use futures::future::join_all;
use http::{Request, Response, StatusCode};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// Meta's subscription handshake: echo `hub.challenge` when the token matches.
pub fn verify(app: &App, req: &Request<Bytes>) -> Result<Response<String>, ApiError> {
    let mode = query_param(req, "hub.mode");
    let token = query_param(req, "hub.verify_token").unwrap_or_default();
    let challenge = query_param(req, "hub.challenge").unwrap_or_default();
    if mode.as_deref() != Some("subscribe") {
        return Err(ApiError::BadRequest("hub.mode must be 'subscribe'".into()));
    }
    if !super::constant_time_eq(token.as_bytes(), app.meta.verify_token.expose_secret().as_bytes()) {
        return Err(ApiError::Forbidden);
    }
    Ok(text_response(StatusCode::OK, challenge))
}

/// What one delivery amounted to (logged once per delivery).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Summary {
    pub messages: usize,
    pub duplicates: usize,
    pub statuses: usize,
    pub unknown_account: usize,
    pub skipped: usize,
    pub enqueued: usize,
}

pub async fn receive(app: &App, req: Request<Bytes>) -> Result<Response<String>, ApiError> {
    let body = req.body();
    if body.len() > app.meta.max_body_bytes {
        return Err(ApiError::TooLarge { size: body.len(), limit: app.meta.max_body_bytes });
    }
    let signature = req.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    app.meta_verifier.verify(body, signature)?;
    let parsed = parse_delivery(body).map_err(|e| match e {
        InboundParseError::NotJson(_) => ApiError::BadRequest("body is not valid JSON".into()),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    for s in &parsed.skipped {
        tracing::info!(what = %s.what, reason = %s.reason, "skipped part of a delivery");
    }
    // A big delivery would not fit the function's time budget: hand it over and answer now.
    if let Some(queue) = app.inbound.as_ref().filter(|_| parsed.events.len() > app.settings.inline_max_events) {
        let queued = crate::inbound::hand_off(queue, parsed.events).await?;
        count("InboundSkipped", parsed.skipped.len() as u64);
        tracing::info!(queued, skipped = parsed.skipped.len(), "meta delivery handed to the inbound queue");
        return Ok(super::json_response(StatusCode::OK, &serde_json::json!({ "status": "accepted" })));
    }
    let summary = process(app, parsed.events, parsed.skipped.len()).await?;
    // Numbers as fields, not the struct's Debug text: shorter lines, and queryable.
    tracing::info!(
        messages = summary.messages,
        duplicates = summary.duplicates,
        statuses = summary.statuses,
        unknown_account = summary.unknown_account,
        skipped = summary.skipped,
        enqueued = summary.enqueued,
        "meta delivery accepted"
    );
    Ok(super::json_response(StatusCode::OK, &serde_json::json!({ "status": "accepted" })))
}

/// A claimed inbound message and what the conversation engine decided for it.
struct Handled {
    msg: InboundMessage,
    replies: Vec<OutboundBody>,
    set_handover: Option<bool>,
    /// Held-back replies delivered with this answer (cleared once queued).
    delivered_pending: usize,
    /// How many held-back replies the contact had (cleared only if still that many).
    pending_seen: usize,
    /// A consent change to write: (version it was computed from, new state, audit events, the
    /// mark a retry of this message is answered from).
    consent_write: Option<(u64, Consent, Vec<ConsentAuditEvent>, ConsentStepMark)>,
    envelopes: Vec<Envelope>,
}

pub async fn process(app: &App, events: Vec<InboundEvent>, skipped: usize) -> Result<Summary, ApiError> {
    process_within(app, events, skipped, &Semaphore::new(app.settings.max_concurrency)).await
}

/// [`process`] sharing the invocation's DynamoDB concurrency (`INBOUND_MAX_CONCURRENCY`) with
/// others running at the same time (the inbound worker handles a batch's contacts concurrently).
pub async fn process_within(
    app: &App,
    events: Vec<InboundEvent>,
    skipped: usize,
    limit: &Semaphore,
) -> Result<Summary, ApiError> {
    let mut summary = Summary { skipped, ..Default::default() };
    let mut messages = Vec::new();
    let mut statuses = Vec::new();
    let mut releases = Vec::new();
    let mut preferences = Vec::new();
    for event in events {
        match event {
            InboundEvent::Message(m) => match app.accounts.get(m.contact.channel, m.account.as_str()) {
                Some(acc) => messages.push((m, acc)),
                None => {
                    summary.unknown_account += 1;
                    tracing::warn!(channel = %m.contact.channel, account = %m.account, "message for an unknown account ignored");
                }
            },
            // Statuses are WhatsApp's (Messenger/Instagram delivery receipts are skipped by the parser).
            InboundEvent::Status(s) => match app.accounts.get(Channel::WhatsApp, s.account.as_str()) {
                Some(_) => statuses.push(s),
                None => summary.unknown_account += 1,
            },
            InboundEvent::AgentRelease { account, contact } => {
                match app.accounts.get(contact.channel, account.as_str()) {
                    Some(acc) => releases.push((contact, acc)),
                    None => summary.unknown_account += 1,
                }
            }
            InboundEvent::Preference(p) => match app.accounts.get(p.contact.channel, p.account.as_str()) {
                Some(_) => preferences.push(p),
                None => summary.unknown_account += 1,
            },
        }
    }
    // Meta batches in no guaranteed order: handle a contact's messages in the order they were written.
    messages.sort_by_key(|(m, _)| m.timestamp);
    summary.messages = messages.len();
    summary.statuses = statuses.len();
    count("InboundMessages", messages.len() as u64);
    count("InboundUnknownAccount", summary.unknown_account as u64);
    count("InboundSkipped", summary.skipped as u64);

    // Round trip 1: claims + contact touches (all messages concurrently) and statuses, never
    // more than `max_concurrency` DynamoDB requests at once (a message takes two).
    let mut first_error_preference: Option<ApiError> = None;
    let now = crate::time_util::now_unix();
    let handled = join_all(messages.iter().map(|(m, acc)| limited(limit, 2, handle_message(app, m, acc, now))));
    let status_results = join_all(statuses.iter().map(|s| limited(limit, 1, handle_status(app, s))));
    let preference_results = join_all(preferences.iter().map(|p| limited(limit, 1, handle_preference(app, p))));
    let (handled, status_results, preference_results) = futures::join!(handled, status_results, preference_results);
    if let Some(e) = preference_results.into_iter().find_map(Result::err) {
        first_error_preference = Some(e);
    }

    let mut envelopes = Vec::new();
    let mut claimed = Vec::new();
    let mut first_error = first_error_preference;
    for h in handled {
        match h {
            Ok(Some(h)) => {
                envelopes.extend(h.envelopes.iter().cloned());
                claimed.push(h);
            }
            Ok(None) => summary.duplicates += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let mut bridge_events = Vec::new();
    for r in status_results {
        match r {
            Ok((fallback, failed)) => {
                envelopes.extend(fallback);
                bridge_events.extend(failed);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    count("InboundDuplicates", summary.duplicates as u64);
    for (contact, acc) in &releases {
        let flows = app.flows.for_locale(&acc.flows, &acc.locale);
        let decision = conversation::release(flows);
        envelopes.extend(build_envelopes(app, acc, contact, None, &decision.replies, &acc.locale, now));
    }

    // Something failed: nothing of this delivery goes out. Its retry handles all of it again, and
    // a reply queued now could overtake the failed message's reply (FIFO order per contact).
    if let Some(err) = first_error {
        give_back(app, limit, &claimed).await;
        return Err(err);
    }

    // The bridge's events (only when it is on): every new message, and each request for a human.
    if app.bridge.is_some() {
        for h in &claimed {
            bridge_events.push(crate::bridge::BridgeEvent::message_received(&h.msg));
            if h.set_handover == Some(true) {
                bridge_events.push(crate::bridge::BridgeEvent::handover_requested(&h.msg));
            }
        }
    }

    // Round trip 2: one batched enqueue, with the writes that may land before it: the bridge's
    // events, claims without replies finished, and consent — at once, so a STOP holds even while
    // the queue is down (a retry of a consent word is answered from its step mark).
    let bridged = async {
        match &app.bridge {
            Some(bridge) => bridge.publish(&bridge_events).await,
            None => Ok(()),
        }
    };
    let enqueue = async {
        if envelopes.is_empty() {
            Ok(())
        } else {
            app.producer.send(&envelopes).await
        }
    };
    // Claims without replies are finished now; those with replies are finished by the sender.
    let finished = join_all(
        claimed
            .iter()
            .filter(|h| h.envelopes.is_empty())
            .map(|h| limited(limit, 1, app.store.finish_inbound(h.msg.contact.channel, &h.msg.id))),
    );
    let consent_written = join_all(claimed.iter().filter_map(|h| {
        let (version, consent, events, mark) = h.consent_write.as_ref()?;
        let seed = ProfileSeed::default();
        Some(limited(limit, 1, async move {
            match app.store.write_consent(&h.msg.contact, *version, consent, events, &seed, Some(mark)).await {
                Ok(true) => {
                    crate::consent::opted_out(&app.store, &h.msg.contact, events, h.msg.timestamp).await;
                    Ok(())
                }
                // Changed concurrently: fail the delivery so Meta's retry decides on fresh state.
                Ok(false) => Err(ApiError::Unavailable("consent changed concurrently".into())),
                Err(e) => Err(ApiError::from(e)),
            }
        }))
    }));
    let (enqueued, finished, consent_written, bridged) = futures::join!(enqueue, finished, consent_written, bridged);
    // A bridge event that was not queued fails the delivery like a reply that was not: Meta's
    // retry produces it again, under the same id.
    let failure = enqueued
        .err()
        .or(bridged.err())
        .map(ApiError::from)
        .or(finished.into_iter().find_map(Result::err).map(ApiError::from))
        .or(consent_written.into_iter().find_map(Result::err));
    if let Some(err) = failure {
        give_back(app, limit, &claimed).await;
        return Err(err);
    }

    // Round trip 3, only for messages that change how their own retry would be decided: the
    // handover flag (the bot falls silent during a handover) and the held-back replies they
    // delivered. Written beside a failed enqueue, Meta's retry would find the handover's reply
    // or the held-back replies gone; so they are written once the replies are queued, and if
    // they fail the retry queues the same reply ids again (the sender sends each once).
    let handovers = join_all(
        claimed
            .iter()
            .filter_map(|h| h.set_handover.map(|on| limited(limit, 1, app.store.set_handover(&h.msg.contact, on)))),
    );
    let releases_done = join_all(releases.iter().map(|(c, _)| limited(limit, 1, app.store.set_handover(c, false))));
    let pending_cleared = join_all(
        claimed
            .iter()
            .filter(|h| h.delivered_pending > 0)
            .map(|h| limited(limit, 1, app.store.clear_pending_replies(&h.msg.contact, h.pending_seen))),
    );
    let (handovers, releases_done, pending_cleared) = futures::join!(handovers, releases_done, pending_cleared);
    let state_error = handovers.into_iter().chain(releases_done).find_map(Result::err);
    if let Some(err) = state_error.or(pending_cleared.into_iter().find_map(Result::err)) {
        give_back(app, limit, &claimed).await;
        return Err(ApiError::from(err));
    }
    summary.enqueued = envelopes.len();
    Ok(summary)
}

/// Gives the claims of a failed delivery back, so its retry (Meta's, or SQS's for the inbound
/// worker) is processed again rather than taken for a duplicate.
async fn give_back(app: &App, limit: &Semaphore, claimed: &[Handled]) {
    let released = join_all(
        claimed.iter().map(|h| limited(limit, 1, app.store.release_inbound(h.msg.contact.channel, &h.msg.id))),
    )
    .await;
    let kept = released.iter().filter(|r| r.is_err()).count();
    if kept > 0 {
        // Those claims stay until their lease runs out; the retry is answered 503 till then.
        tracing::warn!(claims = kept, "could not give claims back after a failed delivery");
    }
}

/// Runs `work` once `permits` of the invocation's DynamoDB concurrency are free (FIFO-fair, so
/// work starts in the order it was listed).
async fn limited<T>(limit: &Semaphore, permits: u32, work: impl std::future::Future<Output = T>) -> T {
    let _permit = limit.acquire_many(permits).await.expect("the semaphore is never closed");
    work.await
}

async fn handle_message(
    app: &App,
    msg: &InboundMessage,
    account: &Account,
    now: i64,
) -> Result<Option<Handled>, ApiError> {
    // The claim is also the message's history entry: no extra write.
    let claim = app.store.claim_message(msg, now, app.settings.claim_lease, app.settings.dedupe_ttl);
    let touch = app.store.touch_contact(msg, &account.locale);
    let (claim, contact) = futures::join!(claim, touch);
    match claim? {
        Claim::Claimed => {}
        Claim::Done => {
            tracing::info!(contact = %msg.contact.redacted(), id = %msg.id, "duplicate inbound message ignored");
            return Ok(None);
        }
        held @ Claim::Held { .. } => {
            // Still in flight elsewhere (or its invocation died and the lease has not run out):
            // a 200 would be final for Meta, so the delivery fails and Meta retries it.
            count("InboundInFlight", 1);
            tracing::info!(contact = %msg.contact.redacted(), id = %msg.id, "inbound message still in flight");
            return Err(ApiError::InFlight { retry_after: held.retry_after(now).unwrap_or(1) });
        }
    }
    let contact = contact?;
    let locale = contact.locale.clone().unwrap_or_else(|| account.locale.clone());
    let flows = app.flows.for_locale(&account.flows, &locale);
    // Consent words (STOP above all) are answered before anything else, even during a handover.
    let step = consent_step(app, flows, &contact, msg);
    // A reply to a campaign: only contacts whose profile names one pay anything for this (the
    // profile came back with the touch above); a consent word is counted as what it is instead.
    if step.is_none() && contact.last_campaign.is_some() {
        if let Err(e) = crate::campaigns::record_reply(&app.store, &contact, msg.timestamp.max(now)).await {
            tracing::warn!(error = %e, "campaign reply not counted");
        }
    }
    let handled = match step {
        Some(step) => {
            tracing::info!(contact = %msg.contact.redacted(), outcome = step.outcome, "consent message handled");
            Handled {
                msg: msg.clone(),
                replies: step.replies,
                set_handover: None,
                delivered_pending: 0,
                pending_seen: 0,
                consent_write: step
                    .write
                    .map(|(consent, events, mark)| (contact.consent_version, consent, events, mark)),
                envelopes: Vec::new(),
            }
        }
        // Cart commands (typed, buttons, catalog orders) come before the flows; a human who has
        // the chat keeps it: the bot stays silent then.
        None => match crate::carts::command_of(&msg.content).filter(|_| !contact.handover) {
            Some(cmd) => {
                match crate::carts::handle_command(
                    app,
                    &msg.contact,
                    &cmd,
                    msg.id.as_str(),
                    &locale,
                    msg.timestamp.max(now),
                )
                .await?
                {
                    Some(replies) => Handled {
                        msg: msg.clone(),
                        replies,
                        set_handover: None,
                        delivered_pending: 0,
                        pending_seen: 0,
                        consent_write: None,
                        envelopes: Vec::new(),
                    },
                    None => engine_answer(flows, &contact, &locale, msg),
                }
            }
            None => engine_answer(flows, &contact, &locale, msg),
        },
    };
    let envelopes = build_envelopes(app, account, &msg.contact, Some(msg), &handled.replies, &locale, now);
    Ok(Some(Handled { envelopes, ..handled }))
}

/// The conversation engine's answer: flows, handover, held-back replies.
fn engine_answer(flows: &FlowSet, contact: &ContactRecord, locale: &str, msg: &InboundMessage) -> Handled {
    let view =
        ContactView { locale: locale.to_string(), handover: contact.handover, pending: contact.pending_bodies() };
    let decision = conversation::decide(flows, &view, &msg.content);
    tracing::info!(
        contact = %msg.contact.redacted(),
        kind = msg.content.kind_name(),
        outcome = decision.outcome.as_str(),
        replies = decision.replies.len(),
        "inbound message handled"
    );
    Handled {
        msg: msg.clone(),
        replies: decision.replies,
        set_handover: decision.set_handover,
        delivered_pending: decision.delivered_pending,
        pending_seen: contact.pending_replies.len(),
        consent_write: None,
        envelopes: Vec::new(),
    }
}

/// The consent part of a message: its replies and the state change to write, if it was a
/// consent word or button; `None` lets the conversation engine answer it.
struct ConsentStep {
    replies: Vec<OutboundBody>,
    write: Option<(Consent, Vec<ConsentAuditEvent>, ConsentStepMark)>,
    outcome: &'static str,
}

fn consent_step(app: &App, flows: &FlowSet, contact: &ContactRecord, msg: &InboundMessage) -> Option<ConsentStep> {
    let texts = flows.consent();
    let (command, words) = match &msg.content {
        InboundContent::Text { body } => (dconsent::classify(body, texts.start_keywords())?, body.clone()),
        InboundContent::Button { payload, title } => (
            dconsent::classify_payload(payload).or_else(|| dconsent::classify(title, texts.start_keywords()))?,
            payload.clone(),
        ),
        _ => return None,
    };
    let outcome = match command {
        ConsentCommand::Start => "start",
        ConsentCommand::Yes => "yes",
        ConsentCommand::No => "no",
        ConsentCommand::Stop => "stop",
    };
    // Meta's retry of a message whose change is already written (its delivery failed after the
    // write): the answer it got the first time — the same reply ids, so the sender sends it once
    // — where deciding again on the changed state would take a YES for an ordinary word.
    if let Some(mark) = contact.consent_step.as_ref().filter(|m| m.message == msg.id.as_str()) {
        return Some(ConsentStep {
            replies: mark.reply.map(|r| vec![texts.reply(r).clone()]).unwrap_or_default(),
            write: None,
            outcome,
        });
    }
    let event = match command {
        ConsentCommand::Start => ConsentEvent::RequestOptIn { purposes: ConsentPurpose::ALL.to_vec(), via: Via::Chat },
        ConsentCommand::Yes => ConsentEvent::Confirm,
        ConsentCommand::No => ConsentEvent::Decline,
        ConsentCommand::Stop => ConsentEvent::Stop,
    };
    let policy = app.consent.policy();
    let decision = dconsent::apply(&contact.consent, &event, msg.timestamp, &policy);
    let reply = match (command, decision.reply) {
        // The person asked in the chat: always show the question while something is pending.
        (ConsentCommand::Start, None | Some(ConsentReply::Question))
            if ConsentPurpose::ALL.iter().any(|p| decision.consent.get(*p).state == ConsentState::Pending) =>
        {
            Some(ConsentReply::Question)
        }
        (_, r) => r,
    };
    // YES/NO with nothing pending are ordinary words: let the conversation answer them.
    if reply.is_none() && matches!(command, ConsentCommand::Yes | ConsentCommand::No) {
        return None;
    }
    let write = (decision.consent != contact.consent).then(|| {
        let ctx = AuditContext {
            source: "chat",
            message_id: Some(msg.id.as_str().to_string()),
            words: Some(words),
            ..Default::default()
        };
        let events =
            audit_events(&msg.contact, &decision.transitions, msg.timestamp * 1000, &ctx, &policy.policy_version);
        (decision.consent.clone(), events, ConsentStepMark { message: msg.id.as_str().to_string(), reply })
    });
    count("ConsentChanges", decision.transitions.len() as u64);
    Some(ConsentStep { replies: reply.map(|r| vec![texts.reply(r).clone()]).unwrap_or_default(), write, outcome })
}

/// Our ids for replies are derived from the inbound message id, so re-processing the same
/// message yields the same ids and the sender sends each reply once.
pub fn reply_id(channel: Channel, inbound: &str, index: usize) -> OutboundId {
    let digest = Sha256::digest(format!("{channel}|{inbound}|{index}").as_bytes());
    OutboundId::parse(format!("r-{}", &hex::encode(digest)[..32])).expect("hex id is valid")
}

fn build_envelopes(
    app: &App,
    account: &Account,
    contact: &ContactId,
    inbound: Option<&InboundMessage>,
    replies: &[OutboundBody],
    locale: &str,
    now: i64,
) -> Vec<Envelope> {
    let fallback = fallback_template(app, account, locale);
    let seed = match inbound {
        Some(m) => m.id.as_str().to_string(),
        // Releases have no inbound id: one release reply per contact and minute.
        None => format!("release|{}|{}", contact.key(), now / 60),
    };
    replies
        .iter()
        .enumerate()
        .map(|(i, body)| Envelope {
            v: crate::queue::ENVELOPE_VERSION,
            id: reply_id(contact.channel, &seed, i),
            account: account.id.clone(),
            contact: contact.clone(),
            purpose: Purpose::Reply,
            body: body.clone(),
            fallback: fallback.clone(),
            withheld: None,
            in_reply_to: inbound.map(|m| m.id.clone()),
            created_at: now,
            created_ms: Some(crate::time_util::now_millis() + i as i64),
            campaign: None,
            author: None,
        })
        .collect()
}

/// The account's template for a closed window, in the contact's language (WhatsApp only).
fn fallback_template(app: &App, account: &Account, locale: &str) -> Option<TemplateRef> {
    if account.channel != Channel::WhatsApp {
        return None;
    }
    let name = account.fallback_template.as_deref()?;
    match app.templates.body(name, locale, &[]) {
        Some(OutboundBody::Template { mut template }) => {
            // Its first quick reply asks for the held-back replies.
            if app.templates.get(name, locale).is_some_and(|d| !d.buttons.is_empty()) {
                template.payloads = vec![crate::domain::CONTINUE_PAYLOAD.to_string()];
            }
            Some(template)
        }
        _ => {
            tracing::warn!(template = name, locale, "fallback template is not in the templates catalog");
            None
        }
    }
}

/// WhatsApp's `user_preferences`: the person stopped (or resumed) marketing messages in the app.
async fn handle_preference(app: &App, p: &crate::domain::PreferenceChange) -> Result<(), ApiError> {
    let event = if p.stop { ConsentEvent::MarketingStoppedInApp } else { ConsentEvent::MarketingResumedInApp };
    let ctx = AuditContext {
        source: "whatsapp_preferences",
        words: Some(format!("{}={}", p.category, if p.stop { "stop" } else { "resume" })),
        ..Default::default()
    };
    let policy = app.consent.policy();
    crate::consent::change_consent(&app.store, &p.contact, &event, p.timestamp, &ctx, &policy, &ProfileSeed::default())
        .await?;
    count("ConsentPreferenceChanges", 1);
    Ok(())
}

/// Applies a delivery status; a late "window closed" failure re-queues the message once as its
/// template fallback (returned for the batched enqueue), a failure for good is the bridge's
/// `message.failed` (returned for round 2, when the bridge is on).
async fn handle_status(app: &App, st: &StatusUpdate) -> Result<(Option<Envelope>, Option<BridgeEvent>), ApiError> {
    let outcome = app.store.record_status(st).await?;
    count("InboundStatuses", 1);
    let failed =
        |envelope: Option<&Envelope>| app.bridge.as_ref().and_then(|_| BridgeEvent::status_failed(st, envelope));
    let StatusOutcome::Applied { envelope } = outcome else {
        count("InboundStatusesStale", 1);
        // Meta re-delivering a failure (after a delivery whose event may not have been queued):
        // its event again, under the same id.
        if app.bridge.is_some() && st.state == DeliveryState::Failed {
            let envelope = app.store.provider_envelope(&st.provider_id).await?;
            let requeued = st.errors.iter().any(|e| e.code == 131047)
                && envelope.as_ref().and_then(Envelope::as_template_fallback).is_some();
            return Ok((None, if requeued { None } else { failed(envelope.as_ref()) }));
        }
        return Ok((None, None));
    };
    // A campaign message's delivery counts in its campaign's report.
    if let Some(env) = envelope.as_deref().filter(|e| e.campaign.is_some()) {
        crate::campaigns::record_delivery(&app.store, env, st.state.as_str(), st.errors.first().map(|e| e.code))
            .await?;
    }
    if st.errors.iter().any(|e| e.code == 131050) {
        if let Some(env) = envelope.as_deref() {
            crate::consent::marketing_rejected(&app.store, &env.contact, &app.consent.policy()).await?;
        }
    }
    let window_closed = st.errors.iter().any(|e| e.code == 131047);
    if !window_closed {
        if let Some(err) = st.errors.first() {
            tracing::warn!(provider_id = %st.provider_id, code = err.code, "message failed after sending");
            count("DeliveryFailed", 1);
        }
        let event = (st.state == DeliveryState::Failed).then(|| failed(envelope.as_deref())).flatten();
        return Ok((None, event));
    }
    let Some(fallback) = envelope.as_deref().and_then(Envelope::as_template_fallback) else {
        count("DeliveryFailed", 1);
        return Ok((None, failed(envelope.as_deref())));
    };
    if app.store.claim_fallback(&st.provider_id).await? {
        count("TemplateFallbackRequeued", 1);
        Ok((Some(fallback), None))
    } else {
        Ok((None, None))
    }
}

/// What the bot says to a contact a person hands back (the flows' release words, in their
/// language, from the account they wrote to); one per contact and minute.
pub fn release_envelopes(app: &App, record: &ContactRecord, now: i64) -> Vec<Envelope> {
    let contact = record.contact_id();
    let Some(acc) = record.account.as_deref().and_then(|a| app.accounts.get(contact.channel, a)) else {
        return Vec::new();
    };
    let locale = record.locale.clone().unwrap_or_else(|| acc.locale.clone());
    let decision = conversation::release(app.flows.for_locale(&acc.flows, &locale));
    build_envelopes(app, acc, &contact, None, &decision.replies, &locale, now)
}

/// `POST /contacts/{channel}/{address}/release-to-bot` (x-api-key): the agent is done; the bot
/// answers this contact again.
pub async fn release_to_bot(app: &App, req: &Request<Bytes>, path: &str) -> Result<Response<String>, ApiError> {
    app.check_admin(req)?;
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let [_, channel, address, _] = parts.as_slice() else {
        return Err(ApiError::NotFound);
    };
    let contact = super::path_contact(channel, address)?;
    let Some(was_on) = release_contact(app, &contact).await? else {
        return Err(ApiError::NotFound);
    };
    Ok(super::json_response(StatusCode::OK, &serde_json::json!({ "handover": false, "was_handover": was_on })))
}

/// Hands a contact back to the bot (the admin route and `parley contact release`): `None` when
/// the contact is unknown, else whether a person had it (the customer is then told).
pub async fn release_contact(app: &App, contact: &ContactId) -> Result<Option<bool>, ReleaseError> {
    let Some(record) = app.store.get_contact(contact).await? else {
        return Ok(None);
    };
    let was_on = record.handover;
    app.store.set_handover(contact, false).await?;
    if was_on {
        let envelopes = release_envelopes(app, &record, crate::time_util::now_unix());
        if !envelopes.is_empty() {
            app.producer.send(&envelopes).await?;
        }
    }
    Ok(Some(was_on))
}

/// Why a release failed: both are retryable.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

impl From<ReleaseError> for ApiError {
    fn from(e: ReleaseError) -> Self {
        match e {
            ReleaseError::Store(e) => e.into(),
            ReleaseError::Queue(e) => e.into(),
        }
    }
}

impl From<ReleaseError> for crate::ops::OpsError {
    fn from(e: ReleaseError) -> Self {
        match e {
            ReleaseError::Store(e) => e.into(),
            ReleaseError::Queue(e) => e.into(),
        }
    }
}
