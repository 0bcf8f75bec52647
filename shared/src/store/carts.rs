//! Catalog items (synced from product webhooks) and chat carts.
//!
//! A contact's current cart lives in its partition (`C#…` / `CART`) with a version for
//! optimistic concurrency, so two quick messages never lose an item. Carts that may need a
//! reminder are also in the sparse GSI `gsi1` under `CARTIDLE#{shard}` by last change, so the
//! reminder queries a handful of shards instead of scanning; a converted or reminded cart leaves
//! the index.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::cart::{Cart, CatalogItem};
use crate::domain::ContactId;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Shards of the idle-cart index (spread writes of a busy shop over several partitions).
pub const IDLE_SHARDS: u8 = 8;

pub fn catalog_pk(platform: &str, shop: &str) -> String {
    format!("CAT#{platform}#{shop}")
}

fn sku_sk(sku: &str) -> String {
    format!("SKU#{}", sku.to_ascii_uppercase())
}

pub fn idle_shard_pk(shard: u8) -> String {
    format!("CARTIDLE#{shard}")
}

fn shard_of(contact: &ContactId) -> u8 {
    Sha256::digest(contact.key().as_bytes())[0] % IDLE_SHARDS
}

fn cart_id_pk(id: &str) -> String {
    format!("CARTID#{id}")
}

/// A stored cart with what is needed to write it back.
#[derive(Debug, Clone)]
pub struct StoredCart {
    pub cart: Cart,
    /// 0 when the contact has no cart yet.
    pub version: u64,
}

fn from_av<T: serde::de::DeserializeOwned>(av: &AttributeValue, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_attribute_value(av.clone()).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Upserts catalog items (product webhooks; last write wins per SKU).
    pub async fn put_catalog(&self, items: &[CatalogItem]) -> Result<(), StoreError> {
        let writes = items
            .iter()
            .map(|item| {
                let mut map = HashMap::new();
                map.insert("pk".to_string(), s(catalog_pk(item.platform.as_str(), &item.shop)));
                map.insert("sk".to_string(), s(sku_sk(item.sku.as_str())));
                map.insert(
                    "item".to_string(),
                    serde_dynamo::to_attribute_value(item).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                );
                map.insert("product_id".to_string(), n(item.product_id));
                let put = PutRequest::builder()
                    .set_item(Some(map))
                    .build()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(writes).await
    }

    /// The whole catalog of a shop (a Query on its partition; catalogs for chat are small).
    pub async fn catalog(&self, platform: &str, shop: &str) -> Result<Vec<CatalogItem>, StoreError> {
        let items = self.query_partition(&catalog_pk(platform, shop), Some("SKU#"), true).await?;
        items.iter().filter_map(|i| i.get("item")).map(|av| from_av(av, "catalog item")).collect()
    }

    /// Catalog items by SKU (case-insensitive), in one BatchGetItem.
    pub async fn catalog_items(
        &self,
        platform: &str,
        shop: &str,
        skus: &[String],
    ) -> Result<Vec<CatalogItem>, StoreError> {
        let mut unique: Vec<String> = skus.iter().map(|s| s.to_ascii_uppercase()).collect();
        unique.sort();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let pk = catalog_pk(platform, shop);
        let keys: Vec<(String, String)> = unique.iter().map(|sku| (pk.clone(), sku_sk(sku))).collect();
        let mut out = Vec::new();
        for item in super::batch_get(self, &keys, true).await? {
            if let Some(av) = item.get("item") {
                out.push(from_av(av, "catalog item")?);
            }
        }
        Ok(out)
    }

    pub async fn get_cart(&self, contact: &ContactId) -> Result<Option<StoredCart>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact_pk(contact)))
            .key("sk", s("CART"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let Some(item) = out.item() else { return Ok(None) };
        let cart = from_av(item.get("cart").ok_or_else(|| StoreError::Corrupt("cart without body".into()))?, "cart")?;
        let version = item.get("version").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(StoredCart { cart, version }))
    }

    /// Writes the cart if it is still at `expected_version` (`Ok(false)`: re-read, apply again).
    /// `idle_since` puts the cart into the reminder index (or, `None`, takes it out).
    pub async fn put_cart(
        &self,
        contact: &ContactId,
        expected_version: u64,
        cart: &Cart,
        idle_since: Option<i64>,
    ) -> Result<bool, StoreError> {
        let cart_av = serde_dynamo::to_attribute_value(cart).map_err(|e| StoreError::Corrupt(format!("cart: {e}")))?;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact_pk(contact)))
            .key("sk", s("CART"))
            .expression_attribute_values(":cart", cart_av)
            .expression_attribute_values(":next", n(expected_version + 1))
            .expression_attribute_values(":contact", s(contact.key()));
        let expr = match idle_since {
            Some(t) => {
                req = req
                    .expression_attribute_values(":gpk", s(idle_shard_pk(shard_of(contact))))
                    .expression_attribute_values(":gsk", s(format!("{t:013}#{}", contact.key())));
                "SET cart = :cart, version = :next, contact = :contact, gsi1pk = :gpk, gsi1sk = :gsk"
            }
            None => "SET cart = :cart, version = :next, contact = :contact REMOVE gsi1pk, gsi1sk",
        };
        req = if expected_version == 0 {
            req.condition_expression("attribute_not_exists(version)")
        } else {
            req.condition_expression("version = :v").expression_attribute_values(":v", n(expected_version))
        };
        Ok(applied(req.update_expression(expr).send().await)?.is_some())
    }

    /// Remembers which contact a cart id belongs to (orders carry the cart id back).
    pub async fn put_cart_owner(&self, cart_id: &str, contact: &ContactId) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(cart_id_pk(cart_id)))
            .item("sk", s("CARTID"))
            .item("contact", serde_dynamo::to_attribute_value(contact).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            .item("gsi1pk", s(keys::contact_pk(contact)))
            .item("gsi1sk", s(cart_id_pk(cart_id)))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn cart_owner(&self, cart_id: &str) -> Result<Option<ContactId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(cart_id_pk(cart_id)))
            .key("sk", s("CARTID"))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item().and_then(|i| i.get("contact")).map(|av| from_av(av, "cart owner")).transpose()
    }

    /// Contacts whose cart has been idle since before `before` (unix seconds), from every shard.
    pub async fn idle_carts(&self, before: i64) -> Result<Vec<ContactId>, StoreError> {
        let bound = format!("{before:013}");
        let queries = (0..IDLE_SHARDS).map(|shard| {
            let bound = bound.clone();
            async move { super::query_gsi(self, &idle_shard_pk(shard), Some(&bound)).await }
        });
        let mut all = Vec::new();
        for items in futures::future::join_all(queries).await {
            for item in items? {
                let Some((ch, addr)) = item.get("contact").and_then(|v| v.as_s().ok()).and_then(|c| c.split_once('#'))
                else {
                    continue;
                };
                if let (Ok(ch), Ok(addr)) = (ch.parse(), crate::domain::Address::parse(addr)) {
                    all.push(ContactId::new(ch, addr));
                }
            }
        }
        Ok(all)
    }
}

/// A shop checkout that may be abandoned (Shopify `checkouts/create|update`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckoutRecord {
    pub checkout_id: u64,
    pub contact: ContactId,
    pub url: String,
    /// What it contained, for the reminder text: (title, quantity, unit price).
    pub items: Vec<(String, u32, Option<crate::domain::Money>)>,
    pub updated_at: i64,
    #[serde(default)]
    pub completed: bool,
    #[serde(default)]
    pub reminded_at: Option<i64>,
}

/// Checkouts are forgotten 30 days after their last update.
pub const CHECKOUT_TTL_SECS: i64 = 30 * 86_400;

pub fn checkout_pk(platform: &str, shop: &str, checkout_id: u64) -> String {
    format!("CHK#{platform}#{shop}#{checkout_id}")
}

fn checkout_idle_pk(shard: u8) -> String {
    format!("CHKIDLE#{shard}")
}

impl Store {
    /// Upserts a checkout; open ones go into the reminder index, completed or reminded ones leave it.
    pub async fn put_checkout(&self, platform: &str, shop: &str, rec: &CheckoutRecord) -> Result<(), StoreError> {
        let pk = checkout_pk(platform, shop, rec.checkout_id);
        let av = serde_dynamo::to_attribute_value(rec).map_err(|e| StoreError::Corrupt(format!("checkout: {e}")))?;
        let due = !rec.completed && rec.reminded_at.is_none();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("CHK"))
            .expression_attribute_values(":rec", av)
            .expression_attribute_values(":updated", n(rec.updated_at))
            .expression_attribute_values(":ttl", n(rec.updated_at + CHECKOUT_TTL_SECS));
        let closing = rec.completed || rec.reminded_at.is_some();
        let set = "SET rec = :rec, updated_at = :updated, #ttl = :ttl, completed = :completed, reminded = :reminded";
        req = if due {
            req.update_expression(format!("{set}, gsi1pk = :gpk, gsi1sk = :gsk"))
                .expression_attribute_values(":gpk", s(checkout_idle_pk(shard_of(&rec.contact))))
                .expression_attribute_values(":gsk", s(format!("{:013}#{pk}", rec.updated_at)))
        } else {
            req.update_expression(format!("{set} REMOVE gsi1pk, gsi1sk"))
        };
        // Webhooks arrive out of order: an older update never overwrites a newer one, and a
        // completed or reminded checkout is never reopened; closing it always goes through.
        let out = req
            .expression_attribute_names("#ttl", "ttl")
            .condition_expression(
                "attribute_not_exists(pk) OR :closing = :true \
                 OR (updated_at <= :updated AND completed = :false AND reminded = :false)",
            )
            .expression_attribute_values(":completed", AttributeValue::Bool(rec.completed))
            .expression_attribute_values(":reminded", AttributeValue::Bool(rec.reminded_at.is_some()))
            .expression_attribute_values(":closing", AttributeValue::Bool(closing))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Open checkouts idle since before `before`, from every shard: (platform, shop, record).
    pub async fn idle_checkouts(&self, before: i64) -> Result<Vec<(String, CheckoutRecord)>, StoreError> {
        let bound = format!("{before:013}");
        let queries = (0..IDLE_SHARDS).map(|shard| {
            let bound = bound.clone();
            async move {
                super::query_gsi(self, &checkout_idle_pk(shard), Some(&bound))
                    .await?
                    .into_iter()
                    .filter_map(|i| {
                        let pk = i.get("pk")?.as_s().ok()?.clone();
                        i.get("rec").map(|av| from_av::<CheckoutRecord>(av, "checkout")).map(|r| r.map(|r| (pk, r)))
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
            }
        });
        let mut all = Vec::new();
        for r in futures::future::join_all(queries).await {
            all.extend(r?);
        }
        Ok(all)
    }

    /// Records that the contact ordered (an open checkout or cart before this gets no reminder).
    pub async fn set_last_order(&self, contact: &ContactId, at: i64) -> Result<(), StoreError> {
        let out = self
            .update_profile(contact)
            .update_expression("SET last_order_at = :t")
            .expression_attribute_values(":t", n(at))
            .send()
            .await;
        applied(out).map(|_| ())
    }
}
