//! Consent as an application service: read the contact, let the domain decide, and write the
//! new state together with its audit events in one transaction (retrying on a concurrent change).
use crate::domain::consent::{apply, ConsentDecision, ConsentEvent, ConsentPolicy, Transition};
use crate::domain::ContactId;
use crate::store::consent::{ConsentAuditEvent, ProfileSeed};
use crate::store::contacts::ContactRecord;
use crate::store::{Store, StoreError};

/// Where a consent change came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    /// `chat`, `web`, `whatsapp_preferences`, `send_failure`, `shop`.
    pub source: &'static str,
    pub detail: Option<String>,
    pub message_id: Option<String>,
    pub words: Option<String>,
    pub ip_hash: Option<String>,
}

/// One immutable audit event per transition.
pub fn audit_events(
    contact: &ContactId,
    transitions: &[Transition],
    at_ms: i64,
    ctx: &AuditContext,
    policy_version: &str,
) -> Vec<ConsentAuditEvent> {
    transitions
        .iter()
        .map(|t| ConsentAuditEvent {
            at_ms,
            purpose: t.purpose,
            from: t.from,
            to: t.to,
            channel: contact.channel,
            address: Some(contact.address.as_str().to_string()),
            source: ctx.source.to_string(),
            detail: ctx.detail.clone(),
            message_id: ctx.message_id.clone(),
            message_id_hash: None,
            words: ctx.words.clone(),
            ip_hash: ctx.ip_hash.clone(),
            policy_version: policy_version.to_string(),
        })
        .collect()
}

/// Applies `event` to the stored contact. Returns the decision and the contact as it was before.
pub async fn change_consent(
    store: &Store,
    contact: &ContactId,
    event: &ConsentEvent,
    now: i64,
    ctx: &AuditContext,
    policy: &ConsentPolicy,
    seed: &ProfileSeed,
) -> Result<(ConsentDecision, Option<ContactRecord>), StoreError> {
    for _ in 0..5 {
        let record = store.get_contact(contact).await?;
        let (current, version) = record.as_ref().map(|r| (r.consent.clone(), r.consent_version)).unwrap_or_default();
        let decision = apply(&current, event, now, policy);
        if decision.consent == current {
            return Ok((decision, record));
        }
        let events = audit_events(contact, &decision.transitions, now * 1000, ctx, &policy.policy_version);
        if store.write_consent(contact, version, &decision.consent, &events, seed, None).await? {
            opted_out(store, contact, &events, now).await;
            return Ok((decision, record));
        }
        // Someone changed this contact's consent in between: decide again on the new state.
    }
    Err(StoreError::Unavailable("consent kept changing concurrently; try again".into()))
}

/// The items [`change_consent`] would write for a contact not known yet (see
/// [`crate::store::consent::new_contact_items`]): for bulk loads of confirmed contacts.
pub fn new_contact_items(
    contact: &ContactId,
    event: &ConsentEvent,
    now_ms: i64,
    ctx: &AuditContext,
    policy: &ConsentPolicy,
    seed: &ProfileSeed,
) -> Result<Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>, StoreError> {
    let decision = apply(&Default::default(), event, now_ms / 1000, policy);
    let events = audit_events(contact, &decision.transitions, now_ms, ctx, &policy.policy_version);
    crate::store::consent::new_contact_items(contact, &decision.consent, &events, seed, now_ms)
}

/// A marketing revocation counts as an opt-out of the contact's latest campaign (if its window
/// is open). The consent is written already: a lost counter is logged, never an error.
pub async fn opted_out(store: &Store, contact: &ContactId, events: &[ConsentAuditEvent], now: i64) {
    if !crate::campaigns::revokes_marketing(events) {
        return;
    }
    if let Err(e) = crate::campaigns::record_opt_out(store, contact, now).await {
        tracing::warn!(error = %e, "campaign opt-out not counted");
    }
}

/// A send that Meta rejected because the person stopped marketing messages (131050).
pub async fn marketing_rejected(
    store: &crate::store::Store,
    contact: &ContactId,
    policy: &ConsentPolicy,
) -> Result<(), crate::store::StoreError> {
    let ctx = AuditContext { source: "send_failure", detail: Some("131050".into()), ..Default::default() };
    let now = crate::time_util::now_unix();
    change_consent(
        store,
        contact,
        &crate::domain::consent::ConsentEvent::MarketingSendRejected,
        now,
        &ctx,
        policy,
        &ProfileSeed::default(),
    )
    .await
    .map(|_| ())
}
