//! Contact lookup, export, erase and release: the services the admin API uses, for the CLI.
use super::OpsError;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ContactId;
use crate::store::contacts::ContactRecord;
use crate::store::erase::{ContactExport, EraseReport};
use crate::store::Store;
use serde::Serialize;

/// One contact as an operator sees it (what `GET /consent/…` and the console show, without
/// message texts).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContactSummary {
    pub contact: String,
    pub account: Option<String>,
    #[serde(flatten)]
    pub profile: ProfileView,
    /// The consent state overall and per purpose.
    pub consent: serde_json::Value,
    pub consent_purposes: serde_json::Map<String, serde_json::Value>,
    pub consent_events: usize,
    pub last_inbound_at: Option<i64>,
    pub last_order_at: Option<i64>,
    pub inbound_count: u64,
}

/// Who the contact is and who has the conversation: the part of a contact both the CLI's
/// summary and the sandbox's state panel show.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProfileView {
    pub name: Option<String>,
    pub locale: Option<String>,
    /// A person has the conversation; the bot stays silent.
    pub handover: bool,
    /// The team inbox's state (`bot`, `waiting`, `assigned`, `resolved`).
    pub inbox_state: serde_json::Value,
    pub assignee: Option<String>,
    pub tags: Vec<String>,
}

impl ProfileView {
    /// The stored profile; a contact without one is the bot's, with nothing known.
    pub fn of(record: Option<&ContactRecord>) -> Self {
        Self {
            name: record.and_then(|r| r.name.clone()),
            locale: record.and_then(|r| r.locale.clone()),
            handover: record.is_some_and(|r| r.handover),
            inbox_state: record.map_or(serde_json::Value::from("bot"), |r| {
                serde_json::to_value(r.conversation().state).unwrap_or_default()
            }),
            assignee: record.and_then(|r| r.assignee.clone()),
            tags: record.map(|r| r.tags.clone()).unwrap_or_default(),
        }
    }
}

/// Consent per purpose (`none` for a contact without a profile).
pub fn consent_purposes(record: Option<&ContactRecord>) -> serde_json::Map<String, serde_json::Value> {
    ConsentPurpose::ALL
        .iter()
        .map(|p| {
            let state = record.map(|r| r.consent.get(*p).state).unwrap_or_default();
            (p.as_str().to_string(), serde_json::to_value(state).unwrap_or_default())
        })
        .collect()
}

pub async fn show(store: &Store, contact: &ContactId) -> Result<ContactSummary, OpsError> {
    let (record, events) = futures::join!(store.get_contact(contact), store.consent_events(contact));
    let record = record?.ok_or(OpsError::NotFound("contact"))?;
    Ok(ContactSummary {
        contact: contact.to_string(),
        account: record.account.clone(),
        profile: ProfileView::of(Some(&record)),
        consent: serde_json::to_value(record.consent.overall()).unwrap_or_default(),
        consent_purposes: consent_purposes(Some(&record)),
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
