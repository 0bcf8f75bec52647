//! What Parley sends: channel-neutral outbound message bodies and their purpose.
use serde::{Deserialize, Serialize};

/// A reply button (WhatsApp allows at most 3, titles ≤ 20 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    pub title: String,
    pub rows: Vec<ListRow>,
}

/// An approved WhatsApp template (or Messenger utility template) with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub name: String,
    /// Template language code, e.g. `de` or `en_US`.
    pub language: String,
    /// Positional: the body's parameters in order, then one per URL button whose URL ends in a
    /// placeholder (the template catalog knows which is which).
    #[serde(default)]
    pub params: Vec<String>,
    /// Payloads of the template's quick-reply buttons, by button index (what a tap sends back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<String>,
    /// The image of an IMAGE header (an `https://` link or a WhatsApp media id) instead of the
    /// one the catalog names for the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_image: Option<String>,
}

impl TemplateRef {
    pub fn new(name: impl Into<String>, language: impl Into<String>, params: Vec<String>) -> Self {
        Self { name: name.into(), language: language.into(), params, payloads: Vec::new(), header_image: None }
    }
}

/// The payload of the "continue" button of a window-closed template: the customer wants the
/// replies that were held back.
pub const CONTINUE_PAYLOAD: &str = "parley:continue";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundBody {
    Text { text: String },
    Buttons { text: String, buttons: Vec<Button> },
    List { text: String, button: String, sections: Vec<ListSection> },
    Template { template: TemplateRef },
}

impl OutboundBody {
    pub fn text(t: impl Into<String>) -> Self {
        OutboundBody::Text { text: t.into() }
    }
    pub fn is_template(&self) -> bool {
        matches!(self, OutboundBody::Template { .. })
    }
}

/// Why a message is sent; decides which consent and window rules apply in the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Answers a message the customer sent (inside the conversation they started).
    Reply,
    /// Asks a customer to confirm an opt-in (the double opt-in question itself).
    ConsentRequest,
    /// Business-initiated service message: order confirmation, shipping, delivery.
    OrderUpdate,
    /// Business-initiated marketing: reminders, campaigns.
    Marketing,
}
