//! DynamoDB repositories over one table (`pk`/`sk` strings, `ttl`, one GSI `gsi1`).
//!
//! Access patterns and their keys (see README "Data model"):
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | contact profile | `C#{channel}#{address}` | `PROFILE` | last inbound time, name, phone, locale, handover |
//! | inbound claim (dedupe) + history | `IN#{channel}#{sha256 of the message id}` | `IN` | `claimed` with a lease, then `done`; `hist` + gsi1 `H#{ts}#I#…` under the contact; `ttl` = history retention (≥ dedupe window) |
//! | outbound message + history | `OUT#{our id}` | `OUT` | status, attempts, `hist`; gsi1 `H#{created}#O#{id}`; `ttl` = history retention |
//! | provider message | `PM#{provider id}` | `PM` | our id + envelope, delivery status (only moves forward); gsi1 `H#{created}#O#{id}#S` |
//! | consent event | `C#{channel}#{address}` | `EV#{ms}#{seq}#{purpose}` | immutable audit trail, newest first |
//! | shop order notification state | `O#{platform}#{shop}#{order id}` | `STATE` | sent keys, fulfillments; version |
//! | shop webhook delivery (dedupe) | `DLV#{platform}#{shop}#{delivery id}` | `IN` | `ttl` ≥ 24 h |
//! | reconciler watermark | `RECON#{platform}#{shop}` | `RECON` | last poll |
//! | catalog item | `CAT#{platform}#{shop}` | `SKU#{SKU}` | from product webhooks |
//! | chat cart | `C#{channel}#{address}` | `CART` | version; in gsi1 `CARTIDLE#{shard}` while a reminder may be due |
//! | cart owner | `CARTID#{cart id}` | `CARTID` | which contact an order's cart id belongs to |
//! | erased consent proof | `P#{keyed hash of the contact}` | `EV#…` | the events without the address, message id hashed |
//! | reference | `C#{channel}#{address}` | `REF#{target pk}` | `ref_pk`/`ref_sk`: a contact's item outside `gsi1` (checkouts) |
//! | tracked link | `LINK#{token}` | `LINK` | URL with utm, campaign, recipient, clicks; gsi1 `LINK#{token}` under the contact; `ttl` = history retention |
//! | campaign counters | `CAMP#{campaign id}` | `STATS` | `clicks_total`, `clicks_unique` (ADD) |
//!
//! GSI `gsi1` (`gsi1pk` = the contact's pk) lists a contact's message records, order state,
//! cart owners and tracked links for export/erase; `REF#` items reach the rest, so neither ever scans.
pub mod campaigns;
pub mod carts;
pub mod consent;
pub mod contacts;
pub mod erase;
pub mod history;
pub mod inbound;
pub mod inbox;
pub mod keys;
pub mod links;
pub mod orders;
pub mod outbound;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB could not be reached, throttled or failed: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item could not be read back into its record type: a bug or a manual edit.
    #[error("stored item is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub(crate) fn sdk<E, R>(e: SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Unavailable(DisplayErrorContext(&e).to_string())
    }
}

/// The table and the client, built once per container.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// How long conversation history (inbound claims, outbound records) is kept.
    pub(crate) retention: std::time::Duration,
    /// Whether [`Store::warm_up`] opens the connection (`INIT_WARM_UP`).
    warm_up: bool,
}

/// `HISTORY_RETENTION_DAYS`' default.
pub const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), retention: DEFAULT_RETENTION, warm_up: true }
    }

    /// The loop settings the store follows: how long conversation history is kept
    /// (`HISTORY_RETENTION_DAYS`) and whether init warms the connection (`INIT_WARM_UP`).
    pub fn with_settings(self, settings: &crate::config::LoopSettings) -> Self {
        Self { retention: settings.history_retention, warm_up: settings.init_warm_up, ..self }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Proves the table answers, with a call every function's role allows: a `GetItem` of a key
    /// no item uses (`DescribeTable` would need a permission no request path needs).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::PING))
            .key("sk", s(keys::PING))
            .projection_expression("pk")
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::sdk)
    }

    /// Opens the HTTP connection (TLS) during init rather than on the first event. A failure
    /// does not stop the init (the first request tries again) but is logged. `INIT_WARM_UP=false`
    /// skips it (`make bench-functions` measures the first call without it).
    pub async fn warm_up(&self) {
        if !self.warm_up {
            return;
        }
        if let Err(e) = self.ping().await {
            tracing::warn!(error = %e, "warm-up: the table did not answer");
        }
    }
}

/// Operation errors that can say "the condition failed".
pub(crate) trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

macro_rules! condition_failed {
    ($($t:ty),*) => {$(
        impl ConditionFailed for $t {
            fn condition_failed(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        }
    )*};
}
condition_failed!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

/// The result of a conditional write: `Some` when it was applied, `None` when its condition
/// did not hold (an expected outcome, not an error).
pub(crate) fn applied<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<Option<O>, StoreError>
where
    E: ConditionFailed + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.as_service_error().is_some_and(ConditionFailed::condition_failed) => Ok(None),
        Err(e) => Err(StoreError::sdk(e)),
    }
}

/// Runs a query to the end, page by page.
pub(crate) async fn query_all(
    q: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>, StoreError> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = q.clone().set_exclusive_start_key(start.take()).send().await.map_err(StoreError::sdk)?;
        out.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return Ok(out),
        }
    }
}

/// Items of the sparse index `gsi1` under `gsi1pk` (below `before` in `gsi1sk`, when given).
pub(crate) async fn query_gsi(
    store: &Store,
    gsi1pk: &str,
    before: Option<&str>,
) -> Result<Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>, StoreError> {
    let q = store
        .client
        .query()
        .table_name(&store.table)
        .index_name(keys::GSI1)
        .expression_attribute_values(":pk", s(gsi1pk));
    let q = match before {
        Some(b) => {
            q.key_condition_expression("gsi1pk = :pk AND gsi1sk < :before").expression_attribute_values(":before", s(b))
        }
        None => q.key_condition_expression("gsi1pk = :pk"),
    };
    query_all(q).await
}

/// Items by key (`pk`, `sk`) with BatchGetItem, 100 keys a call. Keys DynamoDB leaves
/// unprocessed (throttling, the 16 MB answer limit) are asked again after a growing pause; if
/// some are still left after a few rounds the read fails as retryable rather than returning
/// fewer items than asked for. Keys without an item are simply not in the answer.
pub(crate) async fn batch_get(
    store: &Store,
    keys: &[(String, String)],
    consistent: bool,
) -> Result<Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>, StoreError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    use std::collections::HashMap;
    const ROUNDS: u32 = 6;
    let mut out = Vec::new();
    for chunk in keys.chunks(100) {
        let keys = chunk.iter().map(|(pk, sk)| HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))]));
        let mut request = HashMap::from([(
            store.table.clone(),
            KeysAndAttributes::builder()
                .set_keys(Some(keys.collect()))
                .consistent_read(consistent)
                .build()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )]);
        for round in 0.. {
            let resp =
                store.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(StoreError::sdk)?;
            out.extend(resp.responses.unwrap_or_default().remove(&store.table).unwrap_or_default());
            match resp.unprocessed_keys {
                Some(u) if !u.is_empty() && round + 1 < ROUNDS => {
                    request = u;
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                Some(u) if !u.is_empty() => {
                    return Err(StoreError::Unavailable("BatchGetItem left keys unprocessed; try again".into()))
                }
                _ => break,
            }
        }
    }
    Ok(out)
}

pub(crate) fn s(v: impl Into<String>) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::N(v.to_string())
}

pub(crate) fn b(v: bool) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::Bool(v)
}
