//! Inbound delivery claims: one conditional write per inbound message id makes every
//! re-delivered or concurrently duplicated message a no-op.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::{Channel, InboundMessageId};
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sight (or an earlier attempt died before finishing): process it.
    Claimed,
    /// Already handled, or being handled right now by another invocation.
    Duplicate,
}

const CLAIMED: &str = "claimed";
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
        self.claim(&keys::inbound_pk(channel, id), now, lease, ttl).await
    }

    /// Claims any delivery key (inbound messages, shop webhook deliveries) the same way.
    pub async fn claim(&self, pk: &str, now: i64, lease: Duration, ttl: Duration) -> Result<Claim, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s("IN"))
            .item("status", s(CLAIMED))
            .item("lease_until", n(now + lease.as_secs() as i64))
            .item("claimed_at", n(now))
            .item("ttl", n(now + ttl.as_secs() as i64))
            .condition_expression("attribute_not_exists(pk) OR (#st = :claimed AND lease_until < :now)")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await;
        Ok(if applied(out)?.is_some() { Claim::Claimed } else { Claim::Duplicate })
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
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s("IN"))
            .condition_expression("#st = :claimed")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .send()
            .await;
        applied(out).map(|_| ())
    }
}
