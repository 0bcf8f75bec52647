//! Outbound message records: a conditional claim before every send makes a re-send a no-op,
//! and delivery statuses only ever move forward.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::{DeliveryState, OutboundId, ProviderMessageId, StatusUpdate};
use crate::queue::Envelope;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::time::Duration;

/// Why an agent's message is marked failed when it could not be put on the queue.
pub const UNQUEUED: &str = "could not be queued; send it again";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendClaim {
    /// Ours to send; `attempt` counts from 1.
    Go { attempt: u32 },
    /// Already finished (sent, failed or dropped): nothing to do.
    Finished { status: String },
    /// Another invocation is sending it right now (or died doing so): its claim is live until
    /// `lease_until` (unix seconds). Not done: the queue must bring the message back later.
    InFlight { lease_until: i64 },
}

/// The stored state of one outbound message (for ops and tests).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct OutboundRecord {
    pub status: String,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub provider_id: Option<String>,
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub via_template: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatusOutcome {
    /// The status moved the message forward; `envelope` is what was sent, when known.
    Applied { envelope: Option<Box<Envelope>> },
    /// Older than (or equal to) what is already recorded: ignored.
    Stale,
}

fn attr_str(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

impl Store {
    /// Claims an outbound message for sending; the record is also the message's history entry
    /// (`hist`, rendered by the caller), kept for the history retention.
    pub async fn claim_send(
        &self,
        env: &Envelope,
        hist: &str,
        now: i64,
        lease: Duration,
        queue_message: Option<&str>,
    ) -> Result<SendClaim, StoreError> {
        // Recognises our own claim when the SDK retries an update that was applied but whose
        // answer timed out — and, owned by the queue message, when the sender's retry of that
        // message finds the claim of its earlier receive: a FIFO queue hands a message to one
        // receiver at a time, and a receive that ended with the claim's answer lost (timed out)
        // reported the message failed without sending it, so it is not waited for.
        let owner = match queue_message {
            Some(id) => format!("sqs:{id}"),
            None => uuid::Uuid::new_v4().simple().to_string(),
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_pk(&env.id)))
            .key("sk", s("OUT"))
            .update_expression(
                "SET #st = :sending, lease_until = :lease, attempts = if_not_exists(attempts, :zero) + :one, \
                 contact = :contact, gsi1pk = :gpk, gsi1sk = :gsk, created_at = if_not_exists(created_at, :now), \
                 updated_at = :now, #ttl = :ttl, claim_owner = :owner, hist = if_not_exists(hist, :hist), #at = :at",
            )
            // `queued`: an agent's message, recorded by the agent API before it was enqueued.
            .condition_expression(
                "attribute_not_exists(pk) OR #st IN (:retry, :queued) OR (#st = :sending AND lease_until < :now)",
            )
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":hist", s(hist))
            .expression_attribute_values(":at", n(env.created_at))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":retry", s("retry"))
            .expression_attribute_values(":lease", n(now + lease.as_secs() as i64))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":contact", s(env.contact.key()))
            .expression_attribute_values(":gpk", s(keys::contact_pk(&env.contact)))
            .expression_attribute_values(":gsk", s(keys::history_out_sk(env.sort_ms(), &env.id)))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":ttl", n(now + self.retention.as_secs() as i64))
            .expression_attribute_values(":owner", s(&owner))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => {
                let attempt = o
                    .attributes()
                    .and_then(|a| a.get("attempts"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Ok(SendClaim::Go { attempt })
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    let item = c.item();
                    let status = item.and_then(|i| attr_str(i, "status")).unwrap_or_default();
                    let attempts = || item.and_then(|i| i.get("attempts")).and_then(|v| v.as_n().ok());
                    if item.and_then(|i| attr_str(i, "claim_owner")).as_deref() == Some(owner.as_str()) {
                        return Ok(SendClaim::Go { attempt: attempts().and_then(|v| v.parse().ok()).unwrap_or(1) });
                    }
                    if status == "sending" {
                        let lease_until = item
                            .and_then(|i| i.get("lease_until"))
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(now + lease.as_secs() as i64);
                        Ok(SendClaim::InFlight { lease_until })
                    } else {
                        Ok(SendClaim::Finished { status })
                    }
                }
                _ => Err(StoreError::sdk(e)),
            },
        }
    }

    async fn set_outbound_status(
        &self,
        id: &OutboundId,
        status: &str,
        extra: &[(&str, AttributeValue)],
    ) -> Result<(), StoreError> {
        let mut expr = String::from("SET #st = :st, updated_at = :now");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_pk(id)))
            .key("sk", s("OUT"))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":now", n(crate::time_util::now_unix()));
        for (i, (name, value)) in extra.iter().enumerate() {
            expr.push_str(&format!(", #x{i} = :x{i}"));
            req = req
                .expression_attribute_names(format!("#x{i}"), *name)
                .expression_attribute_values(format!(":x{i}"), value.clone());
        }
        req.update_expression(expr).send().await.map_err(StoreError::sdk)?;
        Ok(())
    }

    /// Records a successful send under both our id and the provider's id (status webhooks
    /// carry only the latter). Both writes go out concurrently.
    /// `sent_hist`: the history entry of what actually went out, when it differs from the
    /// message (the window had closed and its template was sent instead).
    pub async fn mark_sent(
        &self,
        env: &Envelope,
        provider_id: &ProviderMessageId,
        via_template: bool,
        sent_hist: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = crate::time_util::now_unix();
        let mut extra =
            vec![("provider_id", s(provider_id.as_str())), ("via_template", AttributeValue::Bool(via_template))];
        if let Some(h) = sent_hist {
            extra.push(("hist", s(h)));
        }
        let outbound = self.set_outbound_status(&env.id, "sent", &extra);
        // What a status needs later: the contact, the campaign, and for a late "window closed"
        // the message to re-send as its template. Not the inbound message it answered: that
        // claim is finished by now, and its ~60 bytes keep a longer reply's record under 1 KB
        // (one write unit on the table and one on gsi1 instead of two each).
        let kept = Envelope { in_reply_to: None, ..env.clone() };
        let provider = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_pk(provider_id)))
            .key("sk", s("PM"))
            // A status webhook may have arrived first: never move its status backwards.
            .update_expression(
                "SET out_id = :out, envelope = :env, contact = :contact, gsi1pk = :gpk, gsi1sk = :gsk, \
                 #st = if_not_exists(#st, :sent), #rank = if_not_exists(#rank, :one), #ttl = :ttl",
            )
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":out", s(env.id.as_str()))
            .expression_attribute_values(":env", s(kept.to_json()))
            .expression_attribute_values(":contact", s(env.contact.key()))
            .expression_attribute_values(":gpk", s(keys::contact_pk(&env.contact)))
            .expression_attribute_values(":gsk", s(keys::history_status_sk(env.sort_ms(), &env.id)))
            .expression_attribute_values(":sent", s(DeliveryState::Sent.as_str()))
            .expression_attribute_values(":one", n(DeliveryState::Sent.rank()))
            .expression_attribute_values(":ttl", n(now + self.retention.as_secs() as i64))
            .send();
        let (a, b) = futures::join!(outbound, provider);
        a?;
        b.map_err(StoreError::sdk)?;
        Ok(())
    }

    pub async fn mark_retry(&self, id: &OutboundId, code: Option<i64>, detail: &str) -> Result<(), StoreError> {
        let mut extra = vec![("detail", s(detail))];
        if let Some(c) = code {
            extra.push(("error_code", n(c)));
        }
        self.set_outbound_status(id, "retry", &extra).await
    }

    pub async fn mark_failed(&self, id: &OutboundId, code: Option<i64>, detail: &str) -> Result<(), StoreError> {
        let mut extra = vec![("detail", s(detail))];
        if let Some(c) = code {
            extra.push(("error_code", n(c)));
        }
        self.set_outbound_status(id, "failed", &extra).await
    }

    /// Records a message an agent wrote as `queued` before it is enqueued, so the thread shows it
    /// at once; the sender's claim takes it from there. Returns false when the id exists already
    /// (a retried request: its record stays as it is).
    pub async fn record_queued(&self, env: &Envelope, hist: &str) -> Result<bool, StoreError> {
        let now = crate::time_util::now_unix();
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::outbound_pk(&env.id)))
            .item("sk", s("OUT"))
            .item("status", s("queued"))
            .item("attempts", n(0))
            .item("contact", s(env.contact.key()))
            .item("gsi1pk", s(keys::contact_pk(&env.contact)))
            .item("gsi1sk", s(keys::history_out_sk(env.sort_ms(), &env.id)))
            .item("hist", s(hist))
            .item("at", n(env.created_at))
            .item("created_at", n(now))
            .item("updated_at", n(now))
            .item("ttl", n(now + self.retention.as_secs() as i64))
            // A retry of a request whose enqueue failed takes the record over again.
            .condition_expression("attribute_not_exists(pk) OR (#st = :failed AND detail = :unqueued)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":unqueued", s(UNQUEUED))
            .send()
            .await;
        applied(out).map(|o| o.is_some())
    }

    /// Not sent on purpose (e.g. window closed and no template); final.
    pub async fn mark_dropped(&self, id: &OutboundId, reason: &str) -> Result<(), StoreError> {
        self.set_outbound_status(id, "dropped", &[("detail", s(reason))]).await
    }

    pub async fn get_outbound(&self, id: &OutboundId) -> Result<Option<OutboundRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::outbound_pk(id)))
            .key("sk", s("OUT"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item()
            .map(|i| serde_dynamo::from_item(i.clone()).map_err(|e| StoreError::Corrupt(format!("outbound: {e}"))))
            .transpose()
    }

    /// Applies a delivery status. Out-of-order statuses never go backwards (`read` then a late
    /// `delivered` keeps `read`); `failed` wins over everything.
    pub async fn record_status(&self, st: &StatusUpdate) -> Result<StatusOutcome, StoreError> {
        let now = crate::time_util::now_unix();
        let mut expr = String::from("SET #st = :st, #rank = :rank, status_at = :ts, #ttl = if_not_exists(#ttl, :ttl)");
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_pk(&st.provider_id)))
            .key("sk", s("PM"))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":st", s(st.state.as_str()))
            .expression_attribute_values(":rank", n(st.state.rank()))
            .expression_attribute_values(":ts", n(st.timestamp))
            .expression_attribute_values(":ttl", n(now + self.retention.as_secs() as i64));
        if let Some(err) = st.errors.first() {
            expr.push_str(", error_code = :code");
            req = req.expression_attribute_values(":code", n(err.code));
        }
        let out = req
            .update_expression(expr)
            .condition_expression("attribute_not_exists(#rank) OR #rank < :rank")
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match applied(out)? {
            Some(o) => {
                let envelope = o
                    .attributes()
                    .and_then(|a| attr_str(a, "envelope"))
                    .and_then(|j| Envelope::parse(&j).ok())
                    .map(Box::new);
                Ok(StatusOutcome::Applied { envelope })
            }
            None => Ok(StatusOutcome::Stale),
        }
    }

    /// Claims the one-time re-queue of a message as its template fallback.
    pub async fn claim_fallback(&self, provider_id: &ProviderMessageId) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_pk(provider_id)))
            .key("sk", s("PM"))
            .update_expression("SET requeued = :t")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(requeued)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await;
        applied(out).map(|o| o.is_some())
    }
}

impl Store {
    /// The recorded delivery status of a provider message id (ops and tests).
    pub async fn get_provider_status(&self, id: &ProviderMessageId) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_pk(id)))
            .key("sk", s("PM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(out.item().and_then(|i| attr_str(i, "status")))
    }

    /// The envelope a provider message was sent from (kept on its record since it was sent).
    pub async fn provider_envelope(&self, id: &ProviderMessageId) -> Result<Option<Envelope>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::provider_pk(id)))
            .key("sk", s("PM"))
            .projection_expression("envelope")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(out.item().and_then(|i| attr_str(i, "envelope")).and_then(|j| Envelope::parse(&j).ok()))
    }
}
