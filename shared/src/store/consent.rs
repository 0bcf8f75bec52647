//! Consent state (on the contact profile) and its audit trail: one immutable item per change,
//! written in the same transaction as the state, so the proof can never disagree with the state.
use super::contacts::ConsentStepMark;
use super::{keys, n, s, Store, StoreError};
use crate::domain::consent::{Consent, ConsentPurpose, ConsentState};
use crate::domain::{Channel, ContactId, E164Phone};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One consent change, as kept for the brand's proof (GDPR Art. 7(1)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentAuditEvent {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub purpose: ConsentPurpose,
    pub from: ConsentState,
    pub to: ConsentState,
    pub channel: Channel,
    /// The address at the time; removed when the contact is erased (the pseudonym stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `chat`, `web`, `whatsapp_preferences`, `send_failure`, `shop`.
    pub source: String,
    /// Web: the form's `source` text; shop: the shop; send failure: the error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The inbound message that carried the words (chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Keyed hash of `message_id`, in place of it once the contact is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id_hash: Option<String>,
    /// The exact words or button payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<String>,
    /// Keyed hash of the requesting IP address (web).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hash: Option<String>,
    /// Version of the consent text the person agreed to.
    pub policy_version: String,
}

/// Profile fields to set when a consent change creates the contact (web opt-in before the
/// person ever wrote).
#[derive(Debug, Clone, Default)]
pub struct ProfileSeed {
    pub account: Option<String>,
    pub locale: Option<String>,
    pub phone: Option<E164Phone>,
}

/// Sort key of an audit event: ordered by when it was written (events of one message can share a
/// timestamp, and the customer can write twice in one second), unique by a random suffix.
fn event_sk(written_ms: i64, seq: usize) -> String {
    format!("EV#{written_ms:013}#{seq:02}#{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

fn item_of<T: Serialize>(v: &T) -> Result<HashMap<String, AttributeValue>, StoreError> {
    serde_dynamo::to_item(v).map_err(|e| StoreError::Corrupt(format!("serialise: {e}")))
}

impl Store {
    /// Writes a consent change and its audit events atomically. `expected_version` is the
    /// contact's `consent_version` the change was computed from; `Ok(false)` means someone else
    /// changed consent first (re-read and decide again).
    pub async fn write_consent(
        &self,
        contact: &ContactId,
        expected_version: u64,
        consent: &Consent,
        events: &[ConsentAuditEvent],
        seed: &ProfileSeed,
        step: Option<&ConsentStepMark>,
    ) -> Result<bool, StoreError> {
        let now = crate::time_util::now_unix();
        let pk = keys::contact_pk(contact);
        let consent_av =
            serde_dynamo::to_attribute_value(consent).map_err(|e| StoreError::Corrupt(format!("consent: {e}")))?;
        let mut expr = String::from(
            "SET consent = :c, consent_version = :next, #ch = :ch, #addr = :addr, \
             created_at = if_not_exists(created_at, :now), updated_at = :now",
        );
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(keys::PROFILE))
            .expression_attribute_names("#ch", "channel")
            .expression_attribute_names("#addr", "address")
            .expression_attribute_values(":c", consent_av)
            .expression_attribute_values(":next", n(expected_version + 1))
            .expression_attribute_values(":ch", s(contact.channel.as_str()))
            .expression_attribute_values(":addr", s(contact.address.as_str()))
            .expression_attribute_values(":now", n(now));
        for (name, value) in [
            ("account", seed.account.clone()),
            ("locale", seed.locale.clone()),
            ("phone", seed.phone.as_ref().map(|p| p.as_str().to_string())),
        ] {
            if let Some(v) = value {
                expr.push_str(&format!(", #{name} = if_not_exists(#{name}, :{name})"));
                update = update
                    .expression_attribute_names(format!("#{name}"), name)
                    .expression_attribute_values(format!(":{name}"), s(v));
            }
        }
        match step {
            Some(mark) => {
                let av = serde_dynamo::to_attribute_value(mark)
                    .map_err(|e| StoreError::Corrupt(format!("consent step: {e}")))?;
                expr.push_str(", consent_step = :step");
                update = update.expression_attribute_values(":step", av);
            }
            None => expr.push_str(" REMOVE consent_step"),
        }
        let update = if expected_version == 0 {
            update.condition_expression("attribute_not_exists(consent_version)")
        } else {
            update.condition_expression("consent_version = :v").expression_attribute_values(":v", n(expected_version))
        };
        let update = update.update_expression(expr).build().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        // The marketing audience index follows the consent in the same transaction.
        let marketing = consent.allows(crate::domain::consent::ConsentPurpose::Marketing);
        let audience = Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::campaigns::audience_item(contact, marketing)))
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        items.push(TransactWriteItem::builder().put(audience).build());
        let written_ms = crate::time_util::now_millis();
        for (seq, e) in events.iter().enumerate() {
            let mut item = item_of(e)?;
            item.insert("pk".into(), s(&pk));
            item.insert("sk".into(), s(event_sk(written_ms, seq)));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let conflict = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(tc))
                        if tc.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if conflict {
                    if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() {
                        let reasons: Vec<_> =
                            tc.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                        tracing::info!(?reasons, "consent write lost a race");
                    }
                    Ok(false)
                } else {
                    Err(StoreError::sdk(e))
                }
            }
        }
    }

    /// Writes items in batches of 25 (BatchWriteItem), retrying what DynamoDB left unprocessed:
    /// a bulk load of [`new_contact_items`], as the campaign benchmark seeds its audience.
    pub async fn batch_put(&self, items: Vec<HashMap<String, AttributeValue>>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in items.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|i| {
                    let put = PutRequest::builder().set_item(Some(i.clone())).build();
                    put.map(|p| WriteRequest::builder().put_request(p).build())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            for attempt in 0..8 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(StoreError::sdk)?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::Unavailable("items left unprocessed by BatchWriteItem".into()));
            }
        }
        Ok(())
    }

    /// The contact's consent events, newest first.
    pub async fn consent_events(&self, contact: &ContactId) -> Result<Vec<ConsentAuditEvent>, StoreError> {
        self.query_events(&keys::contact_pk(contact)).await
    }

    /// Pseudonymised consent proof kept after an erase, newest first.
    pub async fn pseudonymised_events(&self, pseudonym: &str) -> Result<Vec<ConsentAuditEvent>, StoreError> {
        self.query_events(&keys::pseudonym_pk(pseudonym)).await
    }

    async fn query_events(&self, pk: &str) -> Result<Vec<ConsentAuditEvent>, StoreError> {
        let items = self.query_partition(pk, Some("EV#"), false).await?;
        items
            .into_iter()
            .map(|i| serde_dynamo::from_item(i).map_err(|e| StoreError::Corrupt(format!("consent event: {e}"))))
            .collect()
    }

    /// Every item of a partition (optionally with a sort-key prefix), paging through results.
    pub(crate) async fn query_partition(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
        forward: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(forward)
            .consistent_read(true);
        let q = match sk_prefix {
            Some(p) => {
                q.key_condition_expression("pk = :pk AND begins_with(sk, :p)").expression_attribute_values(":p", s(p))
            }
            None => q.key_condition_expression("pk = :pk"),
        };
        super::query_all(q).await
    }
}

/// The items [`Store::write_consent`] leaves for a contact it creates: the profile with its
/// consent (version 1), the audience entry (in the marketing index if marketing is allowed)
/// and the audit events — the same keys and attributes, for a bulk load with
/// [`Store::batch_put`] (the transaction is for concurrent changes, which a load has none of).
pub fn new_contact_items(
    contact: &ContactId,
    consent: &Consent,
    events: &[ConsentAuditEvent],
    seed: &ProfileSeed,
    now_ms: i64,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let pk = keys::contact_pk(contact);
    let now = now_ms / 1000;
    let consent_av =
        serde_dynamo::to_attribute_value(consent).map_err(|e| StoreError::Corrupt(format!("consent: {e}")))?;
    let mut profile = HashMap::from([
        ("pk".to_string(), s(&pk)),
        ("sk".to_string(), s(keys::PROFILE)),
        ("consent".to_string(), consent_av),
        ("consent_version".to_string(), n(1)),
        ("channel".to_string(), s(contact.channel.as_str())),
        ("address".to_string(), s(contact.address.as_str())),
        ("created_at".to_string(), n(now)),
        ("updated_at".to_string(), n(now)),
    ]);
    for (name, value) in [
        ("account", seed.account.clone()),
        ("locale", seed.locale.clone()),
        ("phone", seed.phone.as_ref().map(|p| p.as_str().to_string())),
    ] {
        if let Some(v) = value {
            profile.insert(name.to_string(), s(v));
        }
    }
    let marketing = consent.allows(ConsentPurpose::Marketing);
    let mut items = vec![profile, super::campaigns::audience_item(contact, marketing)];
    for (seq, e) in events.iter().enumerate() {
        let mut item = item_of(e)?;
        item.insert("pk".into(), s(&pk));
        item.insert("sk".into(), s(event_sk(now_ms, seq)));
        items.push(item);
    }
    Ok(items)
}
