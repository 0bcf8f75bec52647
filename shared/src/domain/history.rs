//! Conversation history: what a message looks like in the team inbox, rendered once when it is
//! recorded (inbound: on the inbound claim; outbound: on the send claim), and the plain-language
//! reason for a Graph error code. Pure: no storage, no HTTP.
use super::inbound::InboundContent;
use super::message::OutboundBody;
use super::templates::Templates;
use serde::{Deserialize, Serialize};

/// The longest text a history entry keeps (WhatsApp texts go up to 4096 characters; the item
/// must stay small so the write stays at few write units).
pub const MAX_TEXT_CHARS: usize = 1000;

/// One message as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `text`, `button`, `list_reply`, `order`, `location`, `media`, `reaction`, `unsupported`
    /// (inbound); `text`, `buttons`, `list`, `template` (outbound).
    pub kind: String,
    /// What the person saw, rendered.
    pub text: String,
    /// Outbound: who wrote it (`agent:<id>`), else the bot. Inbound: none (the customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Outbound templates: the template's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Inbound media: the channel's media id or URL, for fetching it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl Entry {
    pub fn inbound(content: &InboundContent) -> Entry {
        let text = match content {
            InboundContent::Text { body } => body.clone(),
            InboundContent::Button { title, .. } => title.clone(),
            InboundContent::ListReply { title, .. } => title.clone(),
            InboundContent::Order { items, note, .. } => {
                let lines: Vec<String> = items.iter().map(|i| format!("{}× {}", i.quantity, i.retailer_id)).collect();
                let mut t = format!("🛒 {}", lines.join(", "));
                if let Some(n) = note.as_deref().filter(|n| !n.is_empty()) {
                    t.push_str(&format!(" — {n}"));
                }
                t
            }
            InboundContent::Location { latitude, longitude, name } => match name {
                Some(n) => format!("📍 {n} ({latitude:.5}, {longitude:.5})"),
                None => format!("📍 {latitude:.5}, {longitude:.5}"),
            },
            InboundContent::Media { media_kind } => format!("[{media_kind}]"),
            InboundContent::Reaction { emoji } => emoji.clone(),
            InboundContent::Unsupported { type_name } => format!("[{type_name}]"),
        };
        Entry { kind: content.kind_name().to_string(), text: clip(&text), author: None, template: None, media: None }
    }

    /// An outbound body as the customer sees it; templates rendered from the approved text.
    pub fn outbound(body: &OutboundBody, templates: &Templates, author: Option<&str>) -> Entry {
        let (kind, text, template) = match body {
            OutboundBody::Text { text } => ("text", text.clone(), None),
            OutboundBody::Buttons { text, buttons } => {
                let titles: Vec<&str> = buttons.iter().map(|b| b.title.as_str()).collect();
                ("buttons", format!("{text}\n[{}]", titles.join("] [")), None)
            }
            OutboundBody::List { text, button, .. } => ("list", format!("{text}\n[{button}]"), None),
            OutboundBody::Template { template } => {
                let rendered = templates
                    .render(&template.name, &template.language, &template.params)
                    .unwrap_or_else(|| format!("[{}] {}", template.name, template.params.join(" · ")));
                ("template", rendered, Some(template.name.clone()))
            }
        };
        Entry { kind: kind.to_string(), text: clip(&text), author: author.map(str::to_string), template, media: None }
    }

    /// The compact JSON kept on the record.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("history entry serialises")
    }

    pub fn from_json(s: &str) -> Option<Entry> {
        serde_json::from_str(s).ok()
    }
}

/// The plain-language reason for a Graph API error code (WhatsApp Cloud API, Messenger,
/// Instagram), for the people reading the inbox; sources in ../shared/reference/meta-channels.md.
pub fn graph_error_reason(code: i64) -> &'static str {
    match code {
        0 | 190 => "The access token has expired or was revoked; the brand must renew it.",
        3 | 10 | 200..=299 | 131005 => "The app lacks a permission for this; check the Meta app's setup.",
        4 | 80007 | 130429 => "Meta's rate limit was reached; the message is retried later.",
        131048 => "Meta restricted messages from this number (spam or quality); check the number's quality.",
        131056 => "Too many messages to this customer in a short time; retried after a pause.",
        131064 => "Messaging is limited after template category violations.",
        368 => "The business account is restricted for a policy violation.",
        131031 => "The business account is locked.",
        130497 => "Messages to customers in this country are restricted.",
        1 | 2 | 131000 | 131016 => "A temporary problem at Meta; the message is retried.",
        100 | 131008 | 131009 => "The message had a missing or invalid field.",
        131021 => "The sender and the recipient are the same number.",
        131026 => {
            "The message could not be delivered: not a WhatsApp number, terms not accepted, or an old app version."
        }
        131042 => "There is a problem with the business's payment method.",
        131045 => "The business phone number is not registered correctly.",
        131047 => "The 24-hour window is closed: only an approved template can be sent.",
        131049 => "Meta held back this marketing message to protect engagement; do not resend within 24 hours.",
        131050 => "The customer stopped marketing messages from this business.",
        130403 => "The business has blocked this customer.",
        130472 => "Held back by a Meta marketing experiment.",
        131051 => "This message type is not supported.",
        131052 => "The customer's media could not be downloaded.",
        131053 => "The media could not be uploaded.",
        131057 | 2494100 => "The business account is in maintenance; retried shortly.",
        132000 => "The template's parameter count does not match the approved template.",
        132001 => "The template does not exist or is not approved in this language.",
        132005 => "The template's translated text is too long.",
        132007 => "The template violates a WhatsApp policy.",
        132012 => "A template parameter has the wrong format.",
        132015 => "The template is paused because of low quality.",
        132016 => "The template is disabled.",
        133010 => "The business phone number is not registered on WhatsApp.",
        551 => "This person is not available right now (Messenger).",
        _ => "The channel refused the message; see the error code in Meta's documentation.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::OrderItem;
    use crate::domain::message::{Button, TemplateRef};

    #[test]
    fn inbound_contents_render_as_the_customer_wrote_them() {
        let e = Entry::inbound(&InboundContent::Text { body: "Hilfe".into() });
        assert_eq!((e.kind.as_str(), e.text.as_str()), ("text", "Hilfe"));
        let order = InboundContent::Order {
            catalog_id: None,
            items: vec![OrderItem { retailer_id: "TSHIRT-M".into(), quantity: 2, unit_price: None }],
            note: None,
        };
        assert_eq!(Entry::inbound(&order).text, "🛒 2× TSHIRT-M");
        assert_eq!(Entry::inbound(&InboundContent::Media { media_kind: "image".into() }).text, "[image]");
        let tap = InboundContent::Button { payload: "p".into(), title: "Ja".into() };
        assert_eq!(Entry::inbound(&tap).kind, "button");
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        let e = Entry::inbound(&InboundContent::Text { body: "ä".repeat(MAX_TEXT_CHARS + 10) });
        assert_eq!(e.text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(e.text.ends_with('…'));
    }

    #[test]
    fn templates_are_rendered_from_the_approved_text_and_authors_kept() {
        let templates = Templates::embedded().unwrap();
        let t = OutboundBody::Template {
            template: TemplateRef {
                name: "service_followup".into(),
                language: "de".into(),
                params: vec![],
                payloads: vec![],
            },
        };
        let e = Entry::outbound(&t, &templates, None);
        assert_eq!(e.template.as_deref(), Some("service_followup"));
        assert!(!e.text.starts_with('['), "rendered, not the fallback: {}", e.text);
        let b = OutboundBody::Buttons {
            text: "Größe?".into(),
            buttons: vec![Button { id: "m".into(), title: "M".into() }],
        };
        let e = Entry::outbound(&b, &templates, Some("agent:anna@example.com"));
        assert_eq!((e.text.as_str(), e.author.as_deref()), ("Größe?\n[M]", Some("agent:anna@example.com")));
        assert_eq!(Entry::from_json(&e.to_json()), Some(e));
    }

    #[test]
    fn every_documented_permanent_code_has_its_own_reason() {
        let generic = graph_error_reason(-1);
        for code in [131026, 131047, 131049, 131050, 131048, 132000, 132001, 190, 130429] {
            assert_ne!(graph_error_reason(code), generic, "{code}");
        }
    }
}
