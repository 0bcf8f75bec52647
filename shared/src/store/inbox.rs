//! The team inbox's storage: conversation state on the contact profile (listed in the sparse
//! `INBOX#{state}` partitions of `gsi1`, written only when the state changes), read marks,
//! tags, notes, the agents' audit trail and the orders attributed to an agent.
use super::contacts::{ContactRecord, Preview};
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::inbox::{Conversation, State};
use crate::domain::ContactId;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// One audited agent action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub agent: String,
    /// `claim`, `assign`, `reply`, `template`, `cart`, `note`, `tags`, `release`, `resolve`.
    pub action: String,
    /// What was done, without the customer's personal data (ids, counts, names of templates).
    pub detail: serde_json::Value,
    /// Unix milliseconds.
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub id: String,
    pub author: String,
    pub text: String,
    pub at: i64,
}

/// An order that came from a cart an agent built and sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAttribution {
    pub order_id: u64,
    pub cart_id: String,
    pub agent: String,
    pub revenue: crate::domain::Money,
    pub at: i64,
}

const NOTE_PREFIX: &str = "NOTE#";
const AUDIT_PREFIX: &str = "AUDIT#";
const ATTRIBUTION_PREFIX: &str = "ATTR#";
/// Notes are short; a longer text is refused by the service before it gets here.
pub const MAX_NOTE_CHARS: usize = 2000;

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn decode<T: serde::de::DeserializeOwned>(item: Item, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

impl Store {
    /// Moves the conversation from `old` (as read) to `new`. `Ok(false)`: it changed since it was
    /// read (or the contact is gone) — re-read and decide again.
    pub async fn set_conversation(
        &self,
        contact: &ContactId,
        old: &Conversation,
        new: &Conversation,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sort_ts = match new.state {
            State::Waiting => new.waiting_since.unwrap_or(now),
            _ => now,
        };
        let mut set = String::from(
            "SET conv_state = :st, handover = :h, conv_at = :now, updated_at = :now, gsi1pk = :gpk, gsi1sk = :gsk",
        );
        let mut remove = Vec::new();
        let mut req = self
            .update_profile(contact)
            .expression_attribute_values(":st", s(new.state.as_str()))
            .expression_attribute_values(":h", AttributeValue::Bool(new.state.human()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":gpk", s(keys::inbox_pk(new.state)))
            .expression_attribute_values(":gsk", s(keys::inbox_sk(sort_ts, contact)));
        match &new.assignee {
            Some(a) => {
                set.push_str(", assignee = :a");
                req = req.expression_attribute_values(":a", s(a));
            }
            None => remove.push("assignee"),
        }
        match new.waiting_since {
            Some(w) => {
                set.push_str(", waiting_since = :w");
                req = req.expression_attribute_values(":w", n(w));
            }
            None => remove.push("waiting_since"),
        }
        // Optimistic concurrency on what the decision was based on.
        let mut cond = String::from("attribute_exists(pk)");
        req = req.expression_attribute_values(":old_st", s(old.state.as_str()));
        if old.state == State::Bot {
            cond.push_str(" AND (attribute_not_exists(conv_state) OR conv_state = :old_st)");
        } else {
            cond.push_str(" AND (conv_state = :old_st OR (attribute_not_exists(conv_state) AND handover = :true))");
            req = req.expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        match &old.assignee {
            Some(a) => {
                cond.push_str(" AND assignee = :old_a");
                req = req.expression_attribute_values(":old_a", s(a));
            }
            None => cond.push_str(" AND attribute_not_exists(assignee)"),
        }
        let expr = if remove.is_empty() { set } else { format!("{set} REMOVE {}", remove.join(", ")) };
        let out = req.update_expression(expr).condition_expression(cond).send().await;
        applied(out).map(|o| o.is_some())
    }

    /// Conversations in `state`: waiting ones longest-waiting first, the others most recently
    /// changed first; at most `limit`.
    pub async fn inbox(&self, state: State, limit: usize) -> Result<Vec<ContactRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(keys::inbox_pk(state)))
            .scan_index_forward(state == State::Waiting)
            .limit(limit.clamp(1, 500) as i32)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.items.unwrap_or_default().into_iter().map(|i| decode(i, "contact")).collect()
    }

    /// The team has read everything the contact wrote so far.
    pub async fn mark_read(&self, contact: &ContactId) -> Result<bool, StoreError> {
        let out = self
            .update_profile(contact)
            .update_expression("SET read_count = if_not_exists(inbound_count, :zero)")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        applied(out).map(|o| o.is_some())
    }

    /// The newest message of the conversation was written by the team.
    pub async fn set_preview(&self, contact: &ContactId, preview: &Preview) -> Result<(), StoreError> {
        let pv = serde_dynamo::to_attribute_value(preview).map_err(|e| StoreError::Corrupt(format!("preview: {e}")))?;
        let out = self
            .update_profile(contact)
            .update_expression("SET last_preview = :pv")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(last_preview) OR last_preview.#at <= :at)",
            )
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":pv", pv)
            .expression_attribute_values(":at", n(preview.at))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Replaces the tags if they are still `old` (as read); `Ok(false)` when they changed.
    pub async fn replace_tags(&self, contact: &ContactId, old: &[String], new: &[String]) -> Result<bool, StoreError> {
        let list = |v: &[String]| AttributeValue::L(v.iter().map(|t| s(t.as_str())).collect());
        let req = self
            .update_profile(contact)
            .update_expression("SET tags = :new")
            .expression_attribute_values(":new", list(new));
        let req = if old.is_empty() {
            req.condition_expression("attribute_exists(pk) AND (attribute_not_exists(tags) OR size(tags) = :zero)")
                .expression_attribute_values(":zero", n(0))
        } else {
            req.condition_expression("attribute_exists(pk) AND tags = :old")
                .expression_attribute_values(":old", list(old))
        };
        applied(req.send().await).map(|o| o.is_some())
    }

    pub async fn add_note(
        &self,
        contact: &ContactId,
        author: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<Note, StoreError> {
        let note = Note { id: short_id(), author: author.to_string(), text: text.to_string(), at: now_ms / 1000 };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::contact_pk(contact)))
            .item("sk", s(format!("{NOTE_PREFIX}{now_ms:013}#{}", note.id)))
            .item("id", s(&note.id))
            .item("author", s(&note.author))
            .item("text", s(&note.text))
            .item("at", n(note.at))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(note)
    }

    /// The contact's notes, oldest first.
    pub async fn notes(&self, contact: &ContactId) -> Result<Vec<Note>, StoreError> {
        let items = self.query_partition(&keys::contact_pk(contact), Some(NOTE_PREFIX), true).await?;
        items.into_iter().map(|i| decode(i, "note")).collect()
    }

    /// Records an agent action on the contact (erased with the contact).
    pub async fn audit(&self, contact: &ContactId, event: &AuditEvent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::contact_pk(contact)))
            .item("sk", s(format!("{AUDIT_PREFIX}{:013}#{}", event.at_ms, short_id())))
            .item("agent", s(&event.agent))
            .item("action", s(&event.action))
            .item(
                "detail",
                serde_dynamo::to_attribute_value(&event.detail)
                    .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
            )
            .item("at_ms", n(event.at_ms))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// The contact's audit trail, newest first.
    pub async fn audit_events(&self, contact: &ContactId) -> Result<Vec<AuditEvent>, StoreError> {
        let items = self.query_partition(&keys::contact_pk(contact), Some(AUDIT_PREFIX), false).await?;
        items.into_iter().map(|i| decode(i, "audit event")).collect()
    }

    /// Records that an order came from a cart an agent sent (erased with the contact).
    pub async fn put_attribution(&self, contact: &ContactId, a: &AgentAttribution) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(a).map_err(|e| StoreError::Corrupt(format!("attribution: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .item("pk", s(keys::contact_pk(contact)))
            .item("sk", s(format!("{ATTRIBUTION_PREFIX}{}", a.order_id)))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn attributions(&self, contact: &ContactId) -> Result<Vec<AgentAttribution>, StoreError> {
        let items = self.query_partition(&keys::contact_pk(contact), Some(ATTRIBUTION_PREFIX), true).await?;
        items.into_iter().map(|i| decode(i, "attribution")).collect()
    }

    /// The contact's shop orders (their notification state), newest first.
    pub async fn contact_orders(
        &self,
        contact: &ContactId,
    ) -> Result<Vec<crate::domain::orders::OrderNotifyState>, StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :pk AND begins_with(gsi1sk, :o)")
            .expression_attribute_values(":pk", s(keys::contact_pk(contact)))
            .expression_attribute_values(":o", s("O#"));
        let items = super::query_all(q).await?;
        let mut orders: Vec<crate::domain::orders::OrderNotifyState> = items
            .into_iter()
            .filter(|i| i.get("sk").and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == "STATE"))
            .filter_map(|i| serde_dynamo::from_attribute_value(i.get("state")?.clone()).ok())
            .collect();
        orders.sort_by_key(|o| std::cmp::Reverse(o.order.as_ref().and_then(|s| s.created_at).unwrap_or_default()));
        Ok(orders)
    }
}
