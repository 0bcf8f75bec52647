//! Notification state per shop order: what was sent, which fulfillments and tracking numbers
//! were seen. One item per order, written with optimistic concurrency so two webhooks for the
//! same order (orders/create and orders/paid arrive together) never both send.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::orders::OrderNotifyState;
use crate::domain::ContactId;
use crate::shops::OrderRef;
use aws_sdk_dynamodb::types::AttributeValue;

/// Orders are remembered for 180 days (late fulfillment updates, delivery, cancellations).
const ORDER_TTL_SECS: i64 = 180 * 86_400;

#[derive(Debug, Clone, Default)]
pub struct StoredOrder {
    pub state: OrderNotifyState,
    /// 0 when the order was never stored.
    pub version: u64,
    /// The contact the order's messages go to, once matched.
    pub contact: Option<ContactId>,
}

fn order_pk(o: &OrderRef) -> String {
    keys::order_pk(o.platform.as_str(), &o.shop, o.order_id)
}

impl Store {
    pub async fn get_order(&self, order: &OrderRef) -> Result<StoredOrder, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(order_pk(order)))
            .key("sk", s("STATE"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let Some(item) = out.item() else { return Ok(StoredOrder::default()) };
        let state = match item.get("state") {
            Some(av) => serde_dynamo::from_attribute_value(av.clone())
                .map_err(|e| StoreError::Corrupt(format!("order state: {e}")))?,
            None => OrderNotifyState::default(),
        };
        let version = item.get("version").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0);
        let contact = item
            .get("contact")
            .and_then(|v| v.as_m().ok())
            .and_then(|m| serde_dynamo::from_item::<_, ContactId>(m.clone()).ok());
        Ok(StoredOrder { state, version, contact })
    }

    /// Writes the order's new state if nobody changed it since `expected_version` was read;
    /// `Ok(false)` means someone did (re-read and decide again).
    pub async fn put_order(
        &self,
        order: &OrderRef,
        expected_version: u64,
        state: &OrderNotifyState,
        contact: Option<&ContactId>,
    ) -> Result<bool, StoreError> {
        let now = crate::time_util::now_unix();
        let state_av =
            serde_dynamo::to_attribute_value(state).map_err(|e| StoreError::Corrupt(format!("order state: {e}")))?;
        let mut expr = String::from("SET #state = :state, version = :next, updated_at = :now, #ttl = :ttl");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(order_pk(order)))
            .key("sk", s("STATE"))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":state", state_av)
            .expression_attribute_values(":next", n(expected_version + 1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + ORDER_TTL_SECS));
        if let Some(c) = contact {
            // Listed under the contact (gsi1) so an erase finds the order's state too.
            let contact_av =
                serde_dynamo::to_attribute_value(c).map_err(|e| StoreError::Corrupt(format!("contact: {e}")))?;
            expr.push_str(", contact = :contact, gsi1pk = :gpk, gsi1sk = :gsk");
            req = req
                .expression_attribute_values(":contact", contact_av)
                .expression_attribute_values(":gpk", s(keys::contact_pk(c)))
                .expression_attribute_values(":gsk", s(order_pk(order)));
        }
        req = if expected_version == 0 {
            req.condition_expression("attribute_not_exists(version)")
        } else {
            req.condition_expression("version = :v").expression_attribute_values(":v", n(expected_version))
        };
        Ok(applied(req.update_expression(expr).send().await)?.is_some())
    }

    /// Removes orders' notification state (Shopify `customers/redact` names the orders).
    pub async fn delete_orders(&self, orders: &[OrderRef]) -> Result<(), StoreError> {
        let deletes = orders
            .iter()
            .map(|o| {
                aws_sdk_dynamodb::types::DeleteRequest::builder()
                    .key("pk", s(order_pk(o)))
                    .key("sk", s("STATE"))
                    .build()
                    .map(|d| aws_sdk_dynamodb::types::WriteRequest::builder().delete_request(d).build())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(deletes).await
    }

    /// The reconciler's watermark (unix seconds of the last successful poll) for one shop.
    pub async fn reconcile_watermark(&self, platform: &str, shop: &str) -> Result<Option<i64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::reconcile_pk(platform, shop)))
            .key("sk", s("RECON"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(out.item().and_then(|i| i.get("polled_until")).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()))
    }

    pub async fn set_reconcile_watermark(&self, platform: &str, shop: &str, until: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::reconcile_pk(platform, shop)))
            .item("sk", s("RECON"))
            .item("polled_until", n(until))
            .item("updated_at", AttributeValue::N(crate::time_util::now_unix().to_string()))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }
}
