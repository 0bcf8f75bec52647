//! Campaign storage: the campaign (`CAMP#{id}` / `META`), its counters (`STATS`, atomic `ADD`s),
//! one item per recipient (`R#{contact}`, listed under the contact in `gsi1` so erase finds it;
//! while waiting for their quiet hours also in the sparse, keys-only `gsi2` partition
//! `WAIT#{campaign}`, sorted by due time, which the quiet-hours pass reads instead of the campaign),
//! the marketing audience index (`AUDIENCE` items in the sparse `gsi1` partitions `MKT#{shard}`,
//! written with every consent change), the contacts' marketing send marks (frequency cap and
//! attribution: a string set on the profile) and the token bucket of each sending number
//! (`RATE#{number}`).
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::campaign::Bucket;
use crate::domain::ContactId;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Audience shards: the marketing audience is spread over this many `gsi1` partitions, read
/// concurrently by the dispatcher (one paced chain per shard).
pub const AUDIENCE_SHARDS: u8 = 8;
const META: &str = "META";
const STATS: &str = "STATS";
const RECIPIENT_PREFIX: &str = "R#";
/// The due-time index of a campaign's waiting recipients (`gsi2`).
const WAIT_PREFIX: &str = "WAIT#";
const DUE_INDEX: &str = "gsi2";
pub const AUDIENCE: &str = "AUDIENCE";
/// Send marks are kept this long (the longest frequency-cap or attribution window).
const MARK_KEEP_SECS: i64 = 31 * 86_400;
/// The profile attribute holding the send marks.
const SENDS: &str = "marketing_sends";

pub use super::keys::campaign_pk;

pub fn audience_shard(contact: &ContactId) -> u8 {
    use sha2::{Digest, Sha256};
    Sha256::digest(contact.key().as_bytes())[0] % AUDIENCE_SHARDS
}

pub fn audience_pk(shard: u8) -> String {
    format!("MKT#{shard:02}")
}

/// The audience item of a contact: in the index while marketing consent is confirmed.
pub(crate) fn audience_item(contact: &ContactId, marketing: bool) -> Item {
    let mut item = Item::from([
        ("pk".to_string(), s(keys::contact_pk(contact))),
        ("sk".to_string(), s(AUDIENCE)),
        ("channel".to_string(), s(contact.channel.as_str())),
        ("address".to_string(), s(contact.address.as_str())),
    ]);
    if marketing {
        item.insert("gsi1pk".into(), s(audience_pk(audience_shard(contact))));
        item.insert("gsi1sk".into(), s(contact.key()));
    }
    item
}

/// The stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    pub id: String,
    /// The definition as created (JSON), see `crate::campaigns::Spec`.
    pub spec: String,
    pub state: crate::domain::campaign::State,
    pub version: u64,
    pub created_at: i64,
    /// Absent until the first start: stored as NULL, `if_not_exists` would keep it NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    /// Per audience shard: the last contact key handed out, or `"done"`.
    #[serde(default)]
    pub cursors: HashMap<String, String>,
}

/// One recipient's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientRecord {
    pub contact: String,
    /// `queued`, `waiting`, `skipped`, `sent`, `delivered`, `read`, `failed`.
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub due_at: Option<i64>,
    pub at: i64,
    #[serde(default)]
    pub clicks: u64,
    #[serde(default)]
    pub orders: u64,
    /// The page attempt that wrote it: the SDK's repeat of a put whose first attempt landed
    /// finds this record and knows it as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w: Option<String>,
    /// Written by the quiet-hours pass: the recipient was first recorded as waiting, and the pass
    /// has moved the counters from `waiting` since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waited: bool,
}

/// What the due-time index holds for a campaign now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DueRecipients {
    /// Contact keys (`channel#address`) of recipients due now, earliest first.
    pub due: Vec<String>,
    /// More are due than were returned.
    pub more: bool,
    /// The due time of the first recipient not yet due (none: nobody else waits).
    pub next_due: Option<i64>,
    /// Index entries read.
    pub read: u64,
}

/// A recipient's item: under the campaign, listed under the contact (`gsi1`), and in the
/// campaign's due-time index (`gsi2`) while waiting — a later put without the index keys takes
/// it out again.
fn recipient_item(campaign: &str, contact: &ContactId, rec: &RecipientRecord) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(rec).map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?;
    item.insert("pk".into(), s(campaign_pk(campaign)));
    item.insert("sk".into(), s(format!("{RECIPIENT_PREFIX}{}", contact.key())));
    item.insert("gsi1pk".into(), s(keys::contact_pk(contact)));
    item.insert("gsi1sk".into(), s(format!("CAMPR#{campaign}")));
    if let (true, Some(due)) = (rec.status == "waiting", rec.due_at) {
        item.insert("gsi2pk".into(), s(format!("{WAIT_PREFIX}{campaign}")));
        // Fixed width: the index sorts the strings in due order.
        item.insert("gsi2sk".into(), s(format!("{:012}#{}", due.max(0), contact.key())));
    }
    Ok(item)
}

fn decode<T: serde::de::DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The numeric attributes of a `STATS` item (the keys are strings and drop out).
fn counts_of(item: Item) -> HashMap<String, i64> {
    item.into_iter().filter_map(|(k, v)| Some((k, v.as_n().ok()?.parse().ok()?))).collect()
}

/// A shard page's counts on `META` (added with its cursor move): `n_{counter}`.
const PAGE_COUNT_PREFIX: &str = "n_";

/// Adds the page counts of a `META` item to counts read from `STATS`.
fn add_page_counts(counts: &mut HashMap<String, i64>, meta: Item) {
    for (k, v) in meta {
        let (Some(name), Some(v)) =
            (k.strip_prefix(PAGE_COUNT_PREFIX), v.as_n().ok().and_then(|v| v.parse::<i64>().ok()))
        else {
            continue;
        };
        *counts.entry(name.to_string()).or_default() += v;
    }
}

impl Store {
    pub async fn create_campaign(&self, rec: &CampaignRecord) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(rec).map_err(|e| StoreError::Corrupt(format!("campaign: {e}")))?;
        item.insert("pk".into(), s(campaign_pk(&rec.id)));
        item.insert("sk".into(), s(META));
        item.insert("gsi1pk".into(), s("CAMPAIGNS"));
        item.insert("gsi1sk".into(), s(format!("{:010}#{}", rec.created_at, rec.id)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn get_campaign(&self, id: &str) -> Result<Option<CampaignRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(id)))
            .key("sk", s(META))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item.map(|i| decode(i, "campaign")).transpose()
    }

    /// Moves the campaign's state if it is still at `version`; `Ok(false)`: it changed meanwhile.
    pub async fn set_campaign_state(
        &self,
        id: &str,
        version: u64,
        state: crate::domain::campaign::State,
        now: i64,
    ) -> Result<bool, StoreError> {
        use crate::domain::campaign::State;
        let mut expr = String::from("SET #st = :st, version = :next");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(id)))
            .key("sk", s(META))
            .expression_attribute_names("#st", "state")
            .expression_attribute_values(":st", s(state.as_str()))
            .expression_attribute_values(":next", n(version + 1))
            .expression_attribute_values(":v", n(version))
            .condition_expression("version = :v");
        match state {
            State::Running => {
                expr.push_str(", started_at = if_not_exists(started_at, :now)");
                req = req.expression_attribute_values(":now", n(now));
            }
            State::Done | State::Cancelled => {
                expr.push_str(", finished_at = :now");
                req = req.expression_attribute_values(":now", n(now));
            }
            _ => {}
        }
        applied(req.update_expression(expr).send().await).map(|o| o.is_some())
    }

    /// Remembers how far a shard's chain got (never moves back: a late duplicate job is ignored).
    /// `mover` (the job's SQS message id) is kept with it: a retry of the same job whose first
    /// write landed after its caller gave up on it (a timeout) finds its own move and goes on,
    /// where a duplicate job stops.
    ///
    /// The page's `counts` are added in the same write as the move, so once per page: the SDK's
    /// repeat of a move that landed, and a retry that finds its own move, add nothing (they are
    /// `n_…` attributes on `META`, which [`Store::campaign_counts`] adds to `STATS`').
    pub async fn set_cursor(
        &self,
        id: &str,
        shard: u8,
        from: Option<&str>,
        to: &str,
        mover: &str,
        counts: &[(String, i64)],
    ) -> Result<bool, StoreError> {
        let mut first = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(id)))
            .key("sk", s(META))
            .expression_attribute_names("#s", shard.to_string())
            .expression_attribute_names("#mv", format!("mover_{shard}"))
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":mv", s(mover));
        let mut adds = Vec::new();
        for (i, (name, value)) in counts.iter().filter(|(_, v)| *v != 0).enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            first = first
                .expression_attribute_names(format!("#c{i}"), format!("{PAGE_COUNT_PREFIX}{name}"))
                .expression_attribute_values(format!(":c{i}"), n(*value));
        }
        let mut expr = String::from("SET cursors.#s = :to, #mv = :mv");
        if !adds.is_empty() {
            expr.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        let first = match from {
            Some(f) => first.condition_expression("cursors.#s = :from").expression_attribute_values(":from", s(f)),
            None => first.condition_expression("attribute_not_exists(cursors.#s)"),
        };
        if applied(first.update_expression(expr).send().await)?.is_some() {
            return Ok(true);
        }
        // Not the first move from `from`: ours if the cursor stands where this job moved it.
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(id)))
            .key("sk", s(META))
            .update_expression("SET cursors.#s = :to, #mv = :mv")
            .expression_attribute_names("#s", shard.to_string())
            .expression_attribute_names("#mv", format!("mover_{shard}"))
            .expression_attribute_values(":to", s(to))
            .expression_attribute_values(":mv", s(mover));
        let req = req.condition_expression("cursors.#s = :to AND #mv = :mv");
        applied(req.send().await).map(|o| o.is_some())
    }

    /// Campaigns, newest first.
    pub async fn list_campaigns(&self, limit: usize) -> Result<Vec<CampaignRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s("CAMPAIGNS"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.items.unwrap_or_default().into_iter().map(|i| decode(i, "campaign")).collect()
    }

    /// Adds to the campaign's counters (`ADD`, so concurrent dispatchers and senders never lose a count).
    pub async fn add_campaign_counts(&self, id: &str, counts: &[(String, i64)]) -> Result<(), StoreError> {
        let counts: Vec<&(String, i64)> = counts.iter().filter(|(_, v)| *v != 0).collect();
        if counts.is_empty() {
            return Ok(());
        }
        let mut req =
            self.client.update_item().table_name(&self.table).key("pk", s(campaign_pk(id))).key("sk", s(STATS));
        let mut parts = Vec::new();
        for (i, (name, value)) in counts.iter().enumerate() {
            parts.push(format!("#c{i} :c{i}"));
            req = req
                .expression_attribute_names(format!("#c{i}"), name.as_str())
                .expression_attribute_values(format!(":c{i}"), n(*value));
        }
        req.update_expression(format!("ADD {}", parts.join(", "))).send().await.map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Adds a page's counts once: `ADD` is not idempotent, and the SDK sends an update again
    /// when an attempt timed out — one that landed all the same would count twice. The write
    /// names its attempt (`key`, new per attempt) in its writer's marker attribute (`marker`, one
    /// per writer that counts this way, e.g. the quiet-hours pass: writers side by side must not
    /// overwrite each other's key), and a request whose key is already there is a repeat:
    /// `Ok(false)`, nothing added. (Shard pages count with their cursor move instead.)
    pub async fn add_campaign_counts_once(
        &self,
        id: &str,
        marker: &str,
        key: &str,
        counts: &[(String, i64)],
    ) -> Result<bool, StoreError> {
        let counts: Vec<&(String, i64)> = counts.iter().filter(|(_, v)| *v != 0).collect();
        if counts.is_empty() {
            return Ok(true);
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(id)))
            .key("sk", s(STATS))
            .condition_expression("attribute_not_exists(#m) OR #m <> :key")
            .expression_attribute_names("#m", marker)
            .expression_attribute_values(":key", s(key));
        let mut parts = Vec::new();
        for (i, (name, value)) in counts.iter().enumerate() {
            parts.push(format!("#c{i} :c{i}"));
            req = req
                .expression_attribute_names(format!("#c{i}"), name.as_str())
                .expression_attribute_values(format!(":c{i}"), n(*value));
        }
        let out = req.update_expression(format!("SET #m = :key ADD {}", parts.join(", "))).send().await;
        Ok(applied(out)?.is_some())
    }

    /// The campaign's counters: `STATS`, plus the shard pages' counts on `META`.
    pub async fn campaign_counts(&self, id: &str) -> Result<HashMap<String, i64>, StoreError> {
        let get = |sk: &'static str| {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(campaign_pk(id)))
                .key("sk", s(sk))
                .consistent_read(true)
                .send()
        };
        let (stats, meta) = futures::try_join!(get(STATS), get(META)).map_err(StoreError::sdk)?;
        let mut counts = counts_of(stats.item.unwrap_or_default());
        add_page_counts(&mut counts, meta.item.unwrap_or_default());
        Ok(counts)
    }

    /// The counters of several campaigns with one BatchGetItem per 100 (the campaign list).
    /// A campaign without counters yet is left out.
    pub async fn campaigns_counts(&self, ids: &[&str]) -> Result<HashMap<String, HashMap<String, i64>>, StoreError> {
        let by_pk: HashMap<String, &str> = ids.iter().map(|id| (campaign_pk(id), *id)).collect();
        let keys: Vec<(String, String)> =
            by_pk.keys().flat_map(|pk| [(pk.clone(), STATS.to_string()), (pk.clone(), META.to_string())]).collect();
        let mut out: HashMap<String, HashMap<String, i64>> = HashMap::new();
        // Throttled for good → an error: a list with counts missing would read as zero progress.
        for item in super::batch_get(self, &keys, true).await? {
            let Some(id) = item.get("pk").and_then(|v| v.as_s().ok()).and_then(|pk| by_pk.get(pk)) else {
                continue;
            };
            let meta = item.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == META);
            let counts = out.entry(id.to_string()).or_default();
            if meta {
                add_page_counts(counts, item);
            } else {
                for (k, v) in counts_of(item) {
                    *counts.entry(k).or_default() += v;
                }
            }
        }
        Ok(out)
    }

    /// One page of a shard of the marketing audience, after `after` (a contact key).
    pub async fn audience_page(
        &self,
        shard: u8,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ContactId>, bool), StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .expression_attribute_values(":pk", s(audience_pk(shard)))
            .limit(limit.clamp(1, 100) as i32);
        q = match after {
            Some(a) => q
                .key_condition_expression("gsi1pk = :pk AND gsi1sk > :after")
                .expression_attribute_values(":after", s(a)),
            None => q.key_condition_expression("gsi1pk = :pk"),
        };
        let out = q.send().await.map_err(StoreError::sdk)?;
        let more = out.last_evaluated_key.as_ref().is_some_and(|k| !k.is_empty());
        let contacts = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                let ch = i.get("channel")?.as_s().ok()?;
                let addr = i.get("address")?.as_s().ok()?;
                ContactId::from_path(ch, addr).ok()
            })
            .collect();
        Ok((contacts, more))
    }

    /// The profiles of several contacts at once (BatchGetItem, 100 keys a call).
    pub async fn contacts_batch(
        &self,
        contacts: &[ContactId],
    ) -> Result<HashMap<String, super::contacts::ContactRecord>, StoreError> {
        let keys: Vec<(String, String)> =
            contacts.iter().map(|c| (keys::contact_pk(c), keys::PROFILE.to_string())).collect();
        let mut out = HashMap::new();
        for item in super::batch_get(self, &keys, false).await? {
            let rec: super::contacts::ContactRecord = decode(item, "contact")?;
            out.insert(rec.contact_id().key(), rec);
        }
        Ok(out)
    }

    /// Waiting recipients of a campaign in due order (the keys-only `gsi2`, eventually
    /// consistent): those due by `now`, at most `limit`, and the next due time after them.
    pub async fn due_recipients(&self, campaign: &str, now: i64, limit: usize) -> Result<DueRecipients, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("gsi2pk = :pk")
            .expression_attribute_values(":pk", s(format!("{WAIT_PREFIX}{campaign}")))
            // One past the page: a recipient not yet due ends the read and names the next time.
            .limit(limit.clamp(1, 500) as i32 + 1)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let items = out.items.unwrap_or_default();
        let mut found = DueRecipients { read: items.len() as u64, ..Default::default() };
        for item in items {
            let Some((due, contact)) = item
                .get("gsi2sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| sk.split_once('#'))
                .and_then(|(due, contact)| Some((due.parse::<i64>().ok()?, contact.to_string())))
            else {
                return Err(StoreError::Corrupt("waiting recipient: gsi2sk".into()));
            };
            if due > now {
                found.next_due = Some(due);
                break;
            }
            if found.due.len() == limit {
                found.more = true;
                break;
            }
            found.due.push(contact);
        }
        Ok(found)
    }

    /// Records a recipient once: `Ok(None)` if new; a retried page finds the one recorded
    /// before and gets it back (in the same request) to finish what the failed attempt began.
    pub async fn put_recipient(
        &self,
        campaign: &str,
        contact: &ContactId,
        rec: &RecipientRecord,
    ) -> Result<Option<RecipientRecord>, StoreError> {
        let item = recipient_item(campaign, contact, rec)?;
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #st = :waiting")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":waiting", s("waiting"))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send()
            .await;
        match out {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Some(decode(c.item.clone().unwrap_or_default(), "recipient")?))
                }
                _ => Err(StoreError::sdk(e)),
            },
        }
    }

    /// Overwrites a recipient (their own page puts them back after a failed enqueue).
    pub async fn put_recipient_unconditional(
        &self,
        campaign: &str,
        contact: &ContactId,
        rec: &RecipientRecord,
    ) -> Result<(), StoreError> {
        let item = recipient_item(campaign, contact, rec)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Moves a recipient's delivery status forward (`rank`: queued 0, sent 1, delivered 2,
    /// read 3, failed 4); returns the previous rank when it moved.
    pub async fn advance_recipient(
        &self,
        campaign: &str,
        contact: &ContactId,
        status: &str,
        rank: i64,
        code: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(campaign)))
            .key("sk", s(format!("{RECIPIENT_PREFIX}{}", contact.key())))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":rank", n(rank))
            .expression_attribute_values(":zero", n(0))
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#rank) OR #rank < :rank)")
            .expression_attribute_names("#rank", "rank")
            .return_values(ReturnValue::UpdatedOld);
        let mut expr = String::from("SET #st = :st, #rank = :rank, old_rank = if_not_exists(#rank, :zero)");
        if let Some(c) = code {
            expr.push_str(", error_code = :code");
            req = req.expression_attribute_values(":code", n(c));
        }
        let out = applied(req.update_expression(expr).send().await)?;
        Ok(out.map(|o| {
            o.attributes()
                .and_then(|a| a.get("rank"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        }))
    }

    /// Adds one to a recipient's counter (`clicks`, `orders`).
    pub async fn bump_recipient(&self, campaign: &str, contact: &ContactId, field: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(campaign)))
            .key("sk", s(format!("{RECIPIENT_PREFIX}{}", contact.key())))
            .update_expression("ADD #f :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#f", field)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Marks a first event on a recipient (`marker`: the attribute holding its time, set only
    /// once) and optionally adds one to a counter in the same write. `Some(true)`: this was the
    /// first; `Some(false)`: marked before; `None`: no such recipient.
    pub async fn mark_recipient(
        &self,
        campaign: &str,
        contact: &ContactId,
        marker: &str,
        bump: Option<&str>,
        now: i64,
    ) -> Result<Option<bool>, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(campaign_pk(campaign)))
            .key("sk", s(format!("{RECIPIENT_PREFIX}{}", contact.key())))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#m", marker)
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld);
        let mut expr = String::from("SET #m = if_not_exists(#m, :now)");
        if let Some(field) = bump {
            expr.push_str(" ADD #f :one");
            req = req.expression_attribute_names("#f", field).expression_attribute_values(":one", n(1));
        }
        let Some(out) = applied(req.update_expression(expr).send().await)? else { return Ok(None) };
        // The item as it was: the marker is in it only if an earlier event set it.
        Ok(Some(!out.attributes().is_some_and(|a| a.contains_key(marker))))
    }

    /// A page of the campaign's recipients (by contact key), after `after`.
    pub async fn recipients_page(
        &self,
        campaign: &str,
        after: Option<&str>,
        limit: usize,
        only_status: Option<&str>,
    ) -> Result<(Vec<RecipientRecord>, Option<String>), StoreError> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(campaign_pk(campaign)))
            .limit(limit.clamp(1, 500) as i32);
        q = match after {
            Some(a) => q
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":from", s(format!("{RECIPIENT_PREFIX}{a}#")))
                .expression_attribute_values(":to", s(format!("{RECIPIENT_PREFIX}~"))),
            None => q
                .key_condition_expression("pk = :pk AND begins_with(sk, :r)")
                .expression_attribute_values(":r", s(RECIPIENT_PREFIX)),
        };
        if let Some(st) = only_status {
            q = q
                .filter_expression("#st = :st")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":st", s(st));
        }
        let out = q.send().await.map_err(StoreError::sdk)?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get("sk")?.as_s().ok()?.strip_prefix(RECIPIENT_PREFIX).map(str::to_string));
        let recs =
            out.items.unwrap_or_default().into_iter().map(|i| decode(i, "recipient")).collect::<Result<_, _>>()?;
        Ok((recs, next))
    }

    /// Marks a marketing message to the contact (frequency cap, attribution, replies): one
    /// write of the profile, adding to its send marks (a string set: concurrent campaigns'
    /// marks never overwrite each other, and a retried page adds no second mark) and naming
    /// its latest campaign, so the inbound path sees it in the record its contact touch returns
    /// anyway and counts a reply without reading anything more. Marks older than the longest
    /// window, as the fan-out read them on `profile`, are removed in a second write (a set
    /// takes one action per write), at most once per 31 days for a contact.
    pub async fn mark_marketing_send(
        &self,
        contact: &ContactId,
        profile: Option<&super::contacts::ContactRecord>,
        campaign: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let now = now_ms / 1000;
        let mark = format!("{now:010}#{campaign}");
        let out = self
            .update_profile(contact)
            .update_expression("SET last_campaign = :c, last_campaign_at = :at ADD #sends :mark")
            .expression_attribute_names("#sends", SENDS)
            .expression_attribute_values(":c", s(campaign))
            .expression_attribute_values(":at", n(now))
            .expression_attribute_values(":mark", AttributeValue::Ss(vec![mark]))
            .send()
            .await;
        applied(out)?;
        let expired: Vec<String> = profile
            .map(|p| p.marketing_sends.iter().filter(|m| parse_mark(m).is_none_or(|(at, _)| at < now - MARK_KEEP_SECS)))
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if !expired.is_empty() {
            let out = self
                .update_profile(contact)
                .update_expression("DELETE #sends :old")
                .expression_attribute_names("#sends", SENDS)
                .expression_attribute_values(":old", AttributeValue::Ss(expired))
                .send()
                .await;
            applied(out)?;
        }
        Ok(())
    }

    /// The contact's marketing sends since `since` (unix seconds), newest first: (at, campaign).
    pub async fn marketing_sends(&self, contact: &ContactId, since: i64) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self.get_contact(contact).await?.map(|p| sends_since(&p, since)).unwrap_or_default())
    }

    /// Takes up to `want` send slots from the number's bucket (and its daily cap); `(granted, wait_ms)`.
    pub async fn take_send_slots(
        &self,
        number: &str,
        rate: u32,
        daily_cap: u32,
        want: u32,
        now_ms: i64,
    ) -> Result<(u32, i64), StoreError> {
        let pk = format!("RATE#{number}");
        let day = now_ms / 86_400_000;
        for _ in 0..8 {
            let cur = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s("RATE"))
                .consistent_read(true)
                .send()
                .await
                .map_err(StoreError::sdk)?
                .item;
            let num = |k: &str| {
                cur.as_ref().and_then(|i| i.get(k)).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<f64>().ok())
            };
            let bucket = match (num("tokens"), num("at_ms")) {
                (Some(tokens), Some(at)) => Bucket { tokens, at_ms: at as i64 },
                _ => Bucket::full(rate, now_ms),
            };
            let version = num("v").unwrap_or(0.0) as i64;
            let today = if num("day").map(|d| d as i64) == Some(day) { num("today").unwrap_or(0.0) as u32 } else { 0 };
            let room = daily_cap.saturating_sub(today);
            if room == 0 {
                let next_day_ms = (day + 1) * 86_400_000;
                return Ok((0, next_day_ms - now_ms));
            }
            let (granted, after) = bucket.take(rate, want.min(room), now_ms);
            let wait = if granted == 0 { after.wait_ms(rate, want.min(room).max(1)) } else { 0 };
            let req = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("sk", s("RATE"))
                .item("tokens", n(after.tokens))
                .item("at_ms", n(after.at_ms))
                .item("day", n(day))
                .item("today", n(today + granted))
                .item("v", n(version + 1));
            let req = if cur.is_some() {
                req.condition_expression("v = :v").expression_attribute_values(":v", n(version))
            } else {
                req.condition_expression("attribute_not_exists(pk)")
            };
            if applied(req.send().await)?.is_some() {
                return Ok((granted, wait));
            }
        }
        // Heavily contended: let the caller come back shortly.
        Ok((0, 200))
    }

    /// Gives back to the day's count slots a page took and did not use: a page that failed
    /// takes them again on its retry, and must not use up the daily cap twice (best effort).
    pub async fn return_send_slots(&self, number: &str, count: u32, now_ms: i64) {
        if count == 0 {
            return;
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{number}")))
            .key("sk", s("RATE"))
            // `v` moves too, so a concurrent take re-reads the bucket instead of overwriting.
            .update_expression("ADD today :back, v :one")
            .condition_expression("#day = :day AND today >= :count")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":back", n(-i64::from(count)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":day", n(now_ms / 86_400_000))
            .send()
            .await;
        if let Err(e) = applied(out) {
            tracing::warn!(error = %e, "unused send slots not given back");
        }
    }

    /// Counts an order for the campaign once (`ORDER#…` marker): `Ok(false)` if already counted.
    pub async fn claim_campaign_order(&self, campaign: &str, order_key: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(campaign_pk(campaign)))
            .item("sk", s(format!("ORDER#{order_key}")))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        applied(out).map(|o| o.is_some())
    }
}

/// A send mark: (unix seconds, campaign).
fn parse_mark(mark: &str) -> Option<(i64, &str)> {
    let (at, campaign) = mark.split_once('#')?;
    Some((at.parse().ok()?, campaign))
}

/// The profile's marketing sends since `since` (unix seconds), newest first: (at, campaign).
pub fn sends_since(profile: &super::contacts::ContactRecord, since: i64) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = profile
        .marketing_sends
        .iter()
        .filter_map(|m| parse_mark(m))
        .filter(|(at, _)| *at >= since)
        .map(|(at, c)| (at, c.to_string()))
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_marks_read_newest_first_since_a_time_and_skip_what_they_cannot_read() {
        let profile: super::super::contacts::ContactRecord = serde_json::from_value(serde_json::json!({
            "channel": "whatsapp", "address": "4915112345678",
            "marketing_sends": ["0000001000#a", "0000003000#c", "junk", "0000002000#b"]
        }))
        .unwrap();
        assert_eq!(sends_since(&profile, 1500), vec![(3000, "c".to_string()), (2000, "b".to_string())]);
        assert_eq!(sends_since(&profile, 0).len(), 3);
        assert_eq!(parse_mark("0000001000#x#y"), Some((1000, "x#y")));
    }
}
