//! Contact profiles: who wrote, when last (the 24-hour window), and bot/human handover.
use super::{applied, b, keys, n, s, Store, StoreError};
use crate::domain::{Address, Channel, ContactId, InboundMessage};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub channel: Channel,
    pub address: Address,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    /// Unix seconds of the newest inbound message: opens the customer-service window.
    #[serde(default)]
    pub last_inbound_at: Option<i64>,
    /// A human agent has the conversation; the bot stays silent.
    #[serde(default)]
    pub handover: bool,
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Replies held back while the window was closed (a template went out instead), as JSON
    /// bodies; delivered with the customer's next message.
    #[serde(default)]
    pub pending_replies: Vec<String>,
    /// Consent per purpose; changed only together with its audit events.
    #[serde(default)]
    pub consent: crate::domain::consent::Consent,
    /// Optimistic-concurrency version of `consent`.
    #[serde(default)]
    pub consent_version: u64,
    /// Unix seconds of the newest shop order matched to this contact.
    #[serde(default)]
    pub last_order_at: Option<i64>,
    /// The team inbox's state (see `domain::inbox`); absent = `bot`.
    #[serde(default)]
    pub conv_state: Option<crate::domain::inbox::State>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub waiting_since: Option<i64>,
    /// Inbound messages counted by the contact touch, and how many of them the team has read.
    #[serde(default)]
    pub inbound_count: u64,
    #[serde(default)]
    pub read_count: u64,
    /// Lower-case labels set by agents, the API or the shop.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The newest message in a few words, for the inbox list.
    #[serde(default)]
    pub last_preview: Option<Preview>,
    /// The newest campaign sent to this contact and when (unix seconds): a reply after it
    /// counts for that campaign (`crate::campaigns::record_reply`).
    #[serde(default)]
    pub last_campaign: Option<String>,
    #[serde(default)]
    pub last_campaign_at: Option<i64>,
    /// The marketing messages sent to this contact in the last 31 days, `{unix seconds:010}#{campaign}`
    /// (a string set, see `store::campaigns::mark_marketing_send`): the frequency cap and
    /// attribution read them from the profile the fan-out loads anyway.
    #[serde(default)]
    pub marketing_sends: Vec<String>,
    /// The chat message whose consent change was written last, and what it answered (removed by
    /// any other consent write). Meta's retry of that message — its delivery failed after the
    /// write, say because its reply could not be queued — gets the same answer, not a second
    /// decision on the state it already changed.
    #[serde(default)]
    pub consent_step: Option<ConsentStepMark>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentStepMark {
    /// The inbound message's id (Meta's `wamid`/`mid`).
    pub message: String,
    pub reply: Option<crate::domain::consent::ConsentReply>,
}

/// The newest message of a conversation, shortened, for the inbox list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// `in` or `out`.
    pub direction: String,
    pub text: String,
    pub at: i64,
}

/// How many characters a preview keeps.
pub const PREVIEW_CHARS: usize = 80;

impl Preview {
    pub fn new(direction: &str, text: &str, at: i64) -> Preview {
        let text = match text.char_indices().nth(PREVIEW_CHARS) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text.to_string(),
        };
        Preview { direction: direction.to_string(), text, at }
    }
}

/// At most this many held-back replies are delivered (the newest).
pub const MAX_PENDING_REPLIES: usize = 5;

impl ContactRecord {
    pub fn pending_bodies(&self) -> Vec<crate::domain::OutboundBody> {
        let skip = self.pending_replies.len().saturating_sub(MAX_PENDING_REPLIES);
        self.pending_replies.iter().skip(skip).filter_map(|j| serde_json::from_str(j).ok()).collect()
    }
}

impl ContactRecord {
    pub fn contact_id(&self) -> ContactId {
        ContactId::new(self.channel, self.address.clone())
    }

    /// The conversation's inbox state (contacts from before the inbox: handover = waiting).
    pub fn conversation(&self) -> crate::domain::inbox::Conversation {
        use crate::domain::inbox::{Conversation, State};
        let state = self.conv_state.unwrap_or(if self.handover { State::Waiting } else { State::Bot });
        Conversation { state, assignee: self.assignee.clone(), waiting_since: self.waiting_since }
    }

    pub fn unread(&self) -> u64 {
        self.inbound_count.saturating_sub(self.read_count)
    }

    /// Whether a free-form message may be sent now (the customer wrote within `window_secs`).
    pub fn window_open(&self, now: i64, window_secs: i64) -> bool {
        self.last_inbound_at.is_some_and(|t| now - t < window_secs)
    }
}

fn from_item(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<ContactRecord, StoreError> {
    serde_dynamo::from_item(item.clone()).map_err(|e| StoreError::Corrupt(format!("contact: {e}")))
}

impl Store {
    /// An update of an existing contact profile (never creates one: erased stays erased).
    pub(crate) fn update_profile(
        &self,
        contact: &ContactId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact_pk(contact)))
            .key("sk", s(keys::PROFILE))
            .condition_expression("attribute_exists(pk)")
    }

    /// Records an inbound message on the contact (creating it on first contact) and returns the
    /// contact as it now stands. Only moves `last_inbound_at` forward, so a late re-delivery
    /// never shortens the service window; either way the current record comes back in the same
    /// round trip.
    pub async fn touch_contact(&self, msg: &InboundMessage, default_locale: &str) -> Result<ContactRecord, StoreError> {
        let mut expr = String::from(
            "SET #ch = :ch, #addr = :addr, #acc = :acc, #last = :ts, #loc = if_not_exists(#loc, :loc), \
             #created = if_not_exists(#created, :now), #upd = :now, last_preview = :pv",
        );
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact_pk(&msg.contact)))
            .key("sk", s(keys::PROFILE))
            .expression_attribute_names("#ch", "channel")
            .expression_attribute_names("#addr", "address")
            .expression_attribute_names("#acc", "account")
            .expression_attribute_names("#last", "last_inbound_at")
            .expression_attribute_names("#loc", "locale")
            .expression_attribute_names("#created", "created_at")
            .expression_attribute_names("#upd", "updated_at")
            .expression_attribute_values(":ch", s(msg.contact.channel.as_str()))
            .expression_attribute_values(":addr", s(msg.contact.address.as_str()))
            .expression_attribute_values(":acc", s(msg.account.as_str()))
            .expression_attribute_values(":ts", n(msg.timestamp))
            .expression_attribute_values(":loc", s(default_locale))
            .expression_attribute_values(":now", n(crate::time_util::now_unix()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":pv",
                serde_dynamo::to_attribute_value(Preview::new(
                    "in",
                    &crate::domain::history::Entry::inbound(&msg.content).text,
                    msg.timestamp,
                ))
                .map_err(|e| StoreError::Corrupt(format!("preview: {e}")))?,
            );
        if let Some(name) = &msg.profile_name {
            expr.push_str(", #name = :name");
            req = req.expression_attribute_names("#name", "name").expression_attribute_values(":name", s(name));
        }
        if let Some(phone) = &msg.phone {
            expr.push_str(", #phone = :phone");
            req = req
                .expression_attribute_names("#phone", "phone")
                .expression_attribute_values(":phone", s(phone.as_str()));
        }
        expr.push_str(" ADD inbound_count :one");
        let out = req
            .update_expression(expr)
            .condition_expression("attribute_not_exists(#last) OR #last <= :ts")
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => from_item(o.attributes().ok_or_else(|| StoreError::Corrupt("no attributes returned".into()))?),
            Err(e) => match e.as_service_error() {
                // A newer message is already recorded: keep it, use the record as it is.
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    from_item(c.item().ok_or_else(|| StoreError::Corrupt("no old item returned".into()))?)
                }
                _ => Err(StoreError::sdk(e)),
            },
        }
    }

    pub async fn get_contact(&self, contact: &ContactId) -> Result<Option<ContactRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::contact_pk(contact)))
            .key("sk", s(keys::PROFILE))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item().map(from_item).transpose()
    }

    /// Keeps a reply that could not be sent because the window was closed.
    pub async fn add_pending_reply(
        &self,
        contact: &ContactId,
        body: &crate::domain::OutboundBody,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(body).expect("body serialises");
        let out = self
            .update_profile(contact)
            .update_expression("SET pending_replies = list_append(if_not_exists(pending_replies, :empty), :new)")
            .expression_attribute_values(":empty", aws_sdk_dynamodb::types::AttributeValue::L(vec![]))
            .expression_attribute_values(":new", aws_sdk_dynamodb::types::AttributeValue::L(vec![s(json)]))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Clears the held-back replies once they are queued; only if no new one arrived meanwhile
    /// (that one then waits for the next message instead of being lost).
    pub async fn clear_pending_replies(&self, contact: &ContactId, seen: usize) -> Result<(), StoreError> {
        let out = self
            .update_profile(contact)
            .update_expression("REMOVE pending_replies")
            .condition_expression("size(pending_replies) = :n")
            .expression_attribute_values(":n", n(seen))
            .send()
            .await;
        applied(out).map(|_| ())
    }

    /// Hands the conversation to a human (`true`: it waits in the team inbox, unless a person
    /// has it already) or back to the bot (`false`). Returns whether anything changed.
    pub async fn set_handover(&self, contact: &ContactId, on: bool) -> Result<bool, StoreError> {
        use crate::domain::inbox::State;
        let now = crate::time_util::now_unix();
        let req = if on {
            // `domain::inbox` rule 2 as one conditional write: only a bot or resolved
            // conversation starts waiting; a waiting one keeps its place, an assigned one its agent.
            self.update_profile(contact)
                .update_expression(
                    "SET handover = :h, conv_state = :waiting, waiting_since = :now, conv_at = :now, \
                     updated_at = :now, gsi1pk = :gpk, gsi1sk = :gsk REMOVE assignee",
                )
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(conv_state) OR conv_state IN (:bot, :resolved))",
                )
                .expression_attribute_values(":waiting", s(State::Waiting.as_str()))
                .expression_attribute_values(":bot", s(State::Bot.as_str()))
                .expression_attribute_values(":resolved", s(State::Resolved.as_str()))
                .expression_attribute_values(":gpk", s(keys::inbox_pk(State::Waiting)))
                .expression_attribute_values(":gsk", s(keys::inbox_sk(now, contact)))
        } else {
            self.update_profile(contact)
                .update_expression(
                    "SET handover = :h, conv_state = :bot, conv_at = :now, updated_at = :now, gsi1pk = :gpk, \
                     gsi1sk = :gsk REMOVE assignee, waiting_since",
                )
                .expression_attribute_values(":bot", s(State::Bot.as_str()))
                .expression_attribute_values(":gpk", s(keys::inbox_pk(State::Bot)))
                .expression_attribute_values(":gsk", s(keys::inbox_sk(now, contact)))
        };
        let out = req.expression_attribute_values(":h", b(on)).expression_attribute_values(":now", n(now)).send().await;
        applied(out).map(|o| o.is_some())
    }
}
