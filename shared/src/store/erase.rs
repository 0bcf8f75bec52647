//! Export and erase of everything stored about one contact (GDPR Art. 15 and 17).
use super::consent::ConsentAuditEvent;
use super::{keys, s, Store, StoreError};
use crate::domain::ContactId;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use serde::Serialize;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Everything stored about a contact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContactExport {
    pub profile: Option<serde_json::Value>,
    pub consent_events: Vec<ConsentAuditEvent>,
    pub messages: Vec<serde_json::Value>,
    /// The conversation as the team inbox shows it, oldest first.
    pub history: Vec<super::history::Message>,
    /// Other items of the contact (carts, …) as stored.
    pub other: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct EraseReport {
    pub deleted: usize,
    pub consent_events_pseudonymised: usize,
}

fn sk_of(item: &Item) -> &str {
    item.get("sk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default()
}

fn to_json(mut item: Item) -> serde_json::Value {
    for k in ["pk", "sk", "gsi1pk", "gsi1sk", "ttl"] {
        item.remove(k);
    }
    let mut v: serde_json::Value = serde_dynamo::from_item(item).unwrap_or(serde_json::Value::Null);
    // Stored envelopes and history entries are JSON strings: show them as JSON.
    for k in ["envelope", "hist"] {
        if let Some(j) = v.get(k).and_then(|e| e.as_str()).and_then(|e| serde_json::from_str(e).ok()) {
            v[k] = j;
        }
    }
    v
}

/// The key of the item a `REF#` item points to.
fn ref_target(item: &Item) -> Option<Item> {
    if !sk_of(item).starts_with(keys::REF_PREFIX) {
        return None;
    }
    let pk = item.get("ref_pk")?.clone();
    let sk = item.get("ref_sk")?.clone();
    Some(Item::from([("pk".to_string(), pk), ("sk".to_string(), sk)]))
}

fn is_inbound_claim(item: &Item) -> bool {
    sk_of(item) == "IN" && item.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("IN#"))
}

fn key_of(item: &Item) -> Item {
    ["pk", "sk"].iter().filter_map(|k| Some((k.to_string(), item.get(*k)?.clone()))).collect()
}

impl Store {
    /// Everything of a contact without a scan: their partition (profile, consent events, cart,
    /// references), what `gsi1` lists under them (message records, order state, cart owners),
    /// and the keys their `REF#` items point to (checkouts).
    async fn contact_items(&self, contact: &ContactId) -> Result<(Vec<Item>, Vec<Item>, Vec<Item>), StoreError> {
        let pk = keys::contact_pk(contact);
        let partition = self.query_partition(&pk, None, true);
        let messages = super::query_gsi(self, &pk, None);
        let (partition, messages) = futures::join!(partition, messages);
        let partition = partition?;
        let referenced = partition.iter().filter_map(ref_target).collect();
        Ok((partition, messages?, referenced))
    }

    /// Points from the contact's partition to an item of theirs stored elsewhere (see
    /// [`keys::ref_sk`]); it expires with the item (`ttl`).
    pub(crate) async fn put_ref(
        &self,
        contact: &ContactId,
        target_pk: &str,
        target_sk: &str,
        ttl: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::contact_pk(contact)))
            .item("sk", s(keys::ref_sk(target_pk)))
            .item("ref_pk", s(target_pk))
            .item("ref_sk", s(target_sk))
            .item("ttl", AttributeValue::N(ttl.to_string()))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn export_contact(&self, contact: &ContactId) -> Result<ContactExport, StoreError> {
        let (partition, messages, referenced) = self.contact_items(contact).await?;
        let mut export = ContactExport::default();
        for item in partition {
            let sk = sk_of(&item).to_string();
            if sk.starts_with(keys::REF_PREFIX) {
                continue;
            } else if sk == keys::PROFILE {
                export.profile = Some(to_json(item));
            } else if sk.starts_with("EV#") {
                export.consent_events.push(
                    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("consent event: {e}")))?,
                );
            } else {
                export.other.push(to_json(item));
            }
        }
        export.consent_events.reverse();
        export.history = super::history::fold_all(&messages);
        export.messages = messages.into_iter().map(to_json).collect();
        let fetched =
            futures::future::join_all(referenced.into_iter().map(|key| {
                self.client.get_item().table_name(&self.table).set_key(Some(key)).consistent_read(true).send()
            }))
            .await;
        for out in fetched {
            if let Some(item) = out.map_err(StoreError::sdk)?.item {
                export.other.push(to_json(item));
            }
        }
        Ok(export)
    }

    /// Deletes the contact's profile, messages, cart, order state, checkouts and every other item
    /// that names them; consent events are kept only as pseudonymised copies (no address, the
    /// message id as a keyed hash) under the contact's pseudonym. Idempotent; never scans.
    pub async fn erase_contact(&self, contact: &ContactId, pseudonym_key: &str) -> Result<EraseReport, StoreError> {
        let pseudonym = crate::privacy::contact_pseudonym(pseudonym_key, contact);
        let (partition, messages, referenced) = self.contact_items(contact).await?;
        let mut writes = Vec::new();
        let mut report = EraseReport::default();
        for item in &partition {
            let sk = sk_of(item);
            if sk.starts_with("EV#") {
                let mut copy = item.clone();
                copy.insert("pk".into(), s(keys::pseudonym_pk(&pseudonym)));
                copy.remove("address");
                if let Some(id) = copy.remove("message_id").and_then(|v| v.as_s().ok().cloned()) {
                    copy.insert("message_id_hash".into(), s(crate::privacy::message_pseudonym(pseudonym_key, &id)));
                }
                writes.push(
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(copy))
                                .build()
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        )
                        .build(),
                );
                report.consent_events_pseudonymised += 1;
            }
        }
        // Inbound claims stay, stripped of the message and of the contact: a late re-delivery
        // must still be recognised as a duplicate (their key is a hash of the message id).
        let (claims, messages): (Vec<&Item>, Vec<&Item>) = messages.iter().partition(|i| is_inbound_claim(i));
        for claim in claims {
            let mut stripped = claim.clone();
            for k in ["gsi1pk", "gsi1sk", "hist", "at"] {
                stripped.remove(k);
            }
            writes.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(stripped))
                            .build()
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    )
                    .build(),
            );
        }
        // Copies first: if the erase stops half-way, the proof is never the part that is lost.
        self.batch_write(writes).await?;
        // Referenced items first, their references last: a stopped erase can be run again.
        let deletes = referenced
            .into_iter()
            .chain(messages.iter().map(|i| key_of(i)))
            .chain(partition.iter().map(key_of))
            .map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        report.deleted = deletes.len();
        self.batch_write(deletes).await?;
        Ok(report)
    }

    /// BatchWriteItem in chunks of 25, retrying what DynamoDB leaves unprocessed.
    pub(crate) async fn batch_write(&self, writes: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in writes.chunks(25) {
            let mut pending = HashMap::from([(self.table.clone(), chunk.to_vec())]);
            for attempt in 0..8 {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(StoreError::sdk)?;
                match out.unprocessed_items {
                    Some(u) if u.values().any(|v| !v.is_empty()) => {
                        pending = u;
                        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    }
                    _ => {
                        pending.clear();
                        break;
                    }
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable("batch write left items unprocessed".into()));
            }
        }
        Ok(())
    }
}
