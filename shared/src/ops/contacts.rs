//! Contact lookup, export, erase and release: the services the admin API uses, for the CLI.
use super::OpsError;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ContactId;
use crate::store::erase::{ContactExport, EraseReport};
use crate::store::Store;
use serde::Serialize;

/// One contact as an operator sees it (what `GET /consent/…` and the console show, without
/// message texts).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContactSummary {
    pub contact: String,
    pub account: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub handover: bool,
    /// The team inbox's state (`bot`, `waiting`, `assigned`, `resolved`).
    pub inbox_state: serde_json::Value,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
    /// The consent state overall and per purpose.
    pub consent: serde_json::Value,
    pub consent_purposes: serde_json::Map<String, serde_json::Value>,
    pub consent_events: usize,
    pub last_inbound_at: Option<i64>,
    pub last_order_at: Option<i64>,
    pub inbound_count: u64,
}

pub async fn show(store: &Store, contact: &ContactId) -> Result<ContactSummary, OpsError> {
    let (record, events) = futures::join!(store.get_contact(contact), store.consent_events(contact));
    let record = record?.ok_or(OpsError::NotFound("contact"))?;
    let purposes = ConsentPurpose::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), serde_json::to_value(record.consent.get(*p).state).unwrap_or_default()))
        .collect();
    Ok(ContactSummary {
        contact: contact.to_string(),
        account: record.account.clone(),
        name: record.name.clone(),
        locale: record.locale.clone(),
        handover: record.handover,
        inbox_state: serde_json::to_value(record.conversation().state).unwrap_or_default(),
        assignee: record.assignee.clone(),
        tags: record.tags.clone(),
        consent: serde_json::to_value(record.consent.overall()).unwrap_or_default(),
        consent_purposes: purposes,
        consent_events: events?.len(),
        last_inbound_at: record.last_inbound_at,
        last_order_at: record.last_order_at,
        inbound_count: record.inbound_count,
    })
}

/// Everything stored about the person (`GET /contacts/{channel}/{address}/export`).
pub async fn export(store: &Store, contact: &ContactId) -> Result<ContactExport, OpsError> {
    Ok(store.export_contact(contact).await?)
}

/// Erases the person (`DELETE /contacts/{channel}/{address}`): consent proof stays only
/// pseudonymised under `pseudonym_key` (`PARLEY_PSEUDONYM_KEY`). Idempotent.
pub async fn erase(store: &Store, pseudonym_key: &str, contact: &ContactId) -> Result<EraseReport, OpsError> {
    if pseudonym_key.is_empty() {
        return Err(OpsError::NotConfigured("PARLEY_PSEUDONYM_KEY (erased consent proof is kept under it)".into()));
    }
    let report = store.erase_contact(contact, pseudonym_key).await?;
    crate::observability::count("ContactsErased", 1);
    tracing::info!(contact = %contact.redacted(), deleted = report.deleted, "contact erased by an operator");
    Ok(report)
}

/// What a release did.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Released {
    pub handover: bool,
    /// A person had the conversation (the customer is told the bot is back).
    pub was_handover: bool,
}

/// Hands the conversation back to the bot (`POST /contacts/{channel}/{address}/release-to-bot`).
pub async fn release(app: &crate::api::App, contact: &ContactId) -> Result<Released, OpsError> {
    let was = crate::api::meta_webhook::release_contact(app, contact).await?;
    Ok(Released { handover: false, was_handover: was.ok_or(OpsError::NotFound("contact"))? })
}
