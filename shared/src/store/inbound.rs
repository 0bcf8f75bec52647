//! Inbound delivery claims: one conditional write per inbound message id makes every
//! re-delivered or concurrently duplicated message a no-op.
//!
//! A claim is `claimed` with a lease while an invocation works on it, then `done`. A delivery
//! whose claim is still live is *not* done: the invocation holding it may crash or time out, so
//! the caller answers "retry later" (never "done", which the platform would not retry). Once the
//! lease has run out the claim is taken over and the delivery processed.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::{history, Channel, InboundMessage, InboundMessageId};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sight, or an earlier attempt's lease ran out (it died): process it.
    Claimed,
    /// Already handled: a duplicate.
    Done,
    /// Another invocation holds a live claim until `lease_until` (unix seconds): answer
    /// "retry later", never "done".
    Held { lease_until: i64 },
}

impl Claim {
    /// Seconds until a held claim may be taken over (at least 1), for `Retry-After`.
    pub fn retry_after(&self, now: i64) -> Option<u64> {
        match self {
            Claim::Held { lease_until } => Some((lease_until - now + 1).max(1) as u64),
            Claim::Claimed | Claim::Done => None,
        }
    }
}

const CLAIMED: &str = "claimed";
/// How long the error path waits to take a claim back whose answer was lost.
const RELEASE_WITHIN: Duration = Duration::from_millis(400);

/// The history entry an inbound claim carries.
struct HistoryAttrs {
    gsi1pk: String,
    gsi1sk: String,
    hist: String,
    at: i64,
}
const DONE: &str = "done";

impl Store {
    /// Claims an inbound message. A claim that is still `claimed` after its lease means the
    /// first attempt died before it finished, so it may be taken again; `done` never is.
    pub async fn claim_inbound(
        &self,
        channel: Channel,
        id: &InboundMessageId,
        now: i64,
        lease: Duration,
        ttl: Duration,
    ) -> Result<Claim, StoreError> {
        self.claim_with(&keys::inbound_pk(channel, id), now, lease, ttl, None).await
    }

    /// Claims an inbound message and records it in the contact's history in the same write: the
    /// claim item is the history entry (no extra write on the hot path). It is kept for the
    /// history retention, at least for the dedupe window.
    pub async fn claim_message(
        &self,
        msg: &InboundMessage,
        now: i64,
        lease: Duration,
        dedupe_ttl: Duration,
    ) -> Result<Claim, StoreError> {
        let entry = history::Entry::inbound(&msg.content);
        let history = HistoryAttrs {
            gsi1pk: keys::contact_pk(&msg.contact),
            gsi1sk: keys::history_in_sk(msg.timestamp, crate::time_util::now_millis(), msg.contact.channel, &msg.id),
            hist: entry.to_json(),
            at: msg.timestamp,
        };
        let ttl = dedupe_ttl.max(self.retention);
        self.claim_with(&keys::inbound_pk(msg.contact.channel, &msg.id), now, lease, ttl, Some(history)).await
    }

    /// Claims any delivery key (inbound messages, shop webhook deliveries) the same way.
    pub async fn claim(&self, pk: &str, now: i64, lease: Duration, ttl: Duration) -> Result<Claim, StoreError> {
        self.claim_with(pk, now, lease, ttl, None).await
    }

    async fn claim_with(
        &self,
        pk: &str,
        now: i64,
        lease: Duration,
        ttl: Duration,
        history: Option<HistoryAttrs>,
    ) -> Result<Claim, StoreError> {
        // Tells our own write apart when the SDK retries a put that was applied but whose answer
        // timed out: the retry then fails its condition on our own claim.
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let mut put = self.client.put_item();
        if let Some(h) = history {
            put =
                put.item("gsi1pk", s(h.gsi1pk)).item("gsi1sk", s(h.gsi1sk)).item("hist", s(h.hist)).item("at", n(h.at));
        }
        let out = put
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s("IN"))
            .item("status", s(CLAIMED))
            .item("lease_until", n(now + lease.as_secs() as i64))
            .item("claimed_at", n(now))
            .item("owner", s(&owner))
            .item("ttl", n(now + ttl.as_secs() as i64))
            .condition_expression("attribute_not_exists(pk) OR (#st = :claimed AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let failed = match out {
            Ok(_) => return Ok(Claim::Claimed),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => c.item().cloned().unwrap_or_default(),
                // Throttled: refused, nothing landed, and one more request would only add to it.
                Some(se)
                    if se.is_provisioned_throughput_exceeded_exception()
                        || se.is_throttling_exception()
                        || se.is_request_limit_exceeded() =>
                {
                    return Err(StoreError::sdk(e))
                }
                // The answer was lost (timeout, dropped connection, 500): the put may have landed.
                _ => {
                    self.release_own_claim(pk, &owner).await;
                    return Err(StoreError::sdk(e));
                }
            },
        };
        let attr = |k: &str| failed.get(k).and_then(|v| v.as_s().ok()).cloned();
        if attr("owner").as_deref() == Some(owner.as_str()) {
            return Ok(Claim::Claimed);
        }
        Ok(match attr("status").as_deref() {
            Some(CLAIMED) => Claim::Held {
                lease_until: failed
                    .get("lease_until")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(now),
            },
            _ => Claim::Done,
        })
    }

    /// After a claim whose answer was lost (it timed out, the connection dropped): takes the
    /// claim back if it landed — only ours, by its owner token — so the platform's retry is
    /// processed at once instead of finding it held for the lease. Best effort and briefly
    /// ([`RELEASE_WITHIN`]: the error path must still answer within the webhook's 3 s); if it
    /// fails too, the lease brings the message back.
    async fn release_own_claim(&self, pk: &str, owner: &str) {
        match tokio::time::timeout(RELEASE_WITHIN, self.delete_claim(pk, Some(owner))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "a claim whose answer was lost was not taken back"),
            Err(_) => tracing::debug!("a claim whose answer was lost was not taken back in time"),
        }
    }

    /// Marks the inbound message as fully handled (its replies are on their way).
    pub async fn finish_inbound(&self, channel: Channel, id: &InboundMessageId) -> Result<(), StoreError> {
        self.finish_claim(&keys::inbound_pk(channel, id)).await
    }

    pub async fn finish_claim(&self, pk: &str) -> Result<(), StoreError> {
        // Erased or expired in the meantime: nothing to mark.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s("IN"))
            .update_expression("SET #st = :done")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":done", s(DONE))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Gives a claim back after a failure, so the channel's retry is processed again.
    pub async fn release_inbound(&self, channel: Channel, id: &InboundMessageId) -> Result<(), StoreError> {
        self.release_claim(&keys::inbound_pk(channel, id)).await
    }

    pub async fn release_claim(&self, pk: &str) -> Result<(), StoreError> {
        self.delete_claim(pk, None).await
    }

    /// Deletes a claim that is still `claimed` (and held by `owner`, when given).
    async fn delete_claim(&self, pk: &str, owner: Option<&str>) -> Result<(), StoreError> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s("IN"))
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(CLAIMED));
        delete = match owner {
            Some(owner) => delete
                .condition_expression("#st = :claimed AND #owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner)),
            None => delete.condition_expression("#st = :claimed"),
        };
        applied(delete.send().await).map(|_| ())
    }
}
