//! What arrives from a channel, after parsing: channel-neutral inbound events.
use super::ids::{AccountId, ContactId, E164Phone, InboundMessageId, ProviderMessageId};
use super::money::Money;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The catalog's retailer id: our SKU.
    pub retailer_id: String,
    pub quantity: u32,
    pub unit_price: Option<Money>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundContent {
    Text {
        body: String,
    },
    /// A tap on a reply button: WhatsApp interactive `button_reply`, WhatsApp template quick-reply
    /// (`type: button`), Messenger/Instagram quick reply or postback.
    Button {
        payload: String,
        title: String,
    },
    /// A WhatsApp list row selection.
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A WhatsApp catalog cart.
    Order {
        catalog_id: Option<String>,
        items: Vec<OrderItem>,
        note: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
    },
    /// Image, audio, video, document, sticker, file… (`kind` names which).
    Media {
        media_kind: String,
        /// WhatsApp's media id (fetch it with `GET /{media-id}` while Meta keeps it); none for
        /// Messenger/Instagram, whose attachment URLs carry access keys and are not kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Reaction {
        emoji: String,
    },
    /// A type Parley does not handle (kept, answered politely, counted).
    Unsupported {
        type_name: String,
    },
}

impl InboundContent {
    /// Short name for logs and metrics.
    pub fn kind_name(&self) -> &str {
        match self {
            InboundContent::Text { .. } => "text",
            InboundContent::Button { .. } => "button",
            InboundContent::ListReply { .. } => "list_reply",
            InboundContent::Order { .. } => "order",
            InboundContent::Location { .. } => "location",
            InboundContent::Media { .. } => "media",
            InboundContent::Reaction { .. } => "reaction",
            InboundContent::Unsupported { .. } => "unsupported",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub id: InboundMessageId,
    /// The business account it was sent to (WhatsApp phone_number_id, Page id, IG account id).
    pub account: AccountId,
    pub contact: ContactId,
    pub profile_name: Option<String>,
    /// Known for WhatsApp senders that are identified by phone (`wa_id`).
    pub phone: Option<E164Phone>,
    /// Unix seconds.
    pub timestamp: i64,
    pub content: InboundContent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryState {
    /// Statuses only move forward; `failed` is terminal and wins over anything.
    pub fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Sent => 1,
            DeliveryState::Delivered => 2,
            DeliveryState::Read => 3,
            DeliveryState::Failed => 9,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Read => "read",
            DeliveryState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelError {
    pub code: i64,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub provider_id: ProviderMessageId,
    pub account: AccountId,
    /// `played` (voice) maps to `read`; unknown statuses are skipped before this point.
    pub state: DeliveryState,
    pub recipient: Option<String>,
    pub timestamp: i64,
    pub errors: Vec<ChannelError>,
}

/// WhatsApp `user_preferences`: the user stopped or resumed marketing messages in the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceChange {
    pub account: AccountId,
    pub contact: ContactId,
    pub category: String,
    pub stop: bool,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InboundEvent {
    Message(InboundMessage),
    Status(StatusUpdate),
    Preference(PreferenceChange),
    /// A human agent wrote `#bot` from the page inbox (a Messenger/Instagram echo): hand the
    /// conversation back to the bot.
    AgentRelease {
        account: AccountId,
        contact: ContactId,
    },
}

/// Something in a delivery that was not turned into an event; counted and logged, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

/// The result of parsing one webhook delivery: every event it carried plus what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParsedDelivery {
    pub events: Vec<InboundEvent>,
    pub skipped: Vec<Skipped>,
}
