//! Conversation history: what a message looks like in the team inbox, rendered once when it is
//! recorded (inbound: on the inbound claim; outbound: on the send claim). Failure reasons come
//! from [`super::failure`]. Pure: no storage, no HTTP.
use super::inbound::InboundContent;
use super::message::OutboundBody;
use super::templates::Templates;
use serde::{Deserialize, Serialize};

/// The longest text a history entry keeps (WhatsApp texts go up to 4096 characters; the item
/// must stay small so the write stays at few write units).
pub const MAX_TEXT_CHARS: usize = 1000;

/// What the customer sent, as text an advisor (or the brand's own inbox) can read.
pub fn inbound_text(content: &InboundContent) -> String {
    match content {
        InboundContent::Text { body } => body.clone(),
        InboundContent::Button { title, .. } | InboundContent::ListReply { title, .. } => title.clone(),
        InboundContent::Order { items, note, .. } => {
            let lines: Vec<String> = items.iter().map(|i| format!("{} x {}", i.quantity, i.retailer_id)).collect();
            let order = format!("Order: {}", lines.join(", "));
            match note {
                Some(n) if !n.is_empty() => format!("{order} ({n})"),
                _ => order,
            }
        }
        InboundContent::Location { latitude, longitude, name } => match name {
            Some(n) => format!("Location: {n} ({latitude}, {longitude})"),
            None => format!("Location: {latitude}, {longitude}"),
        },
        InboundContent::Media { media_kind, caption, .. } => match caption {
            Some(c) => format!("[{media_kind}] {c}"),
            None => format!("[{media_kind}]"),
        },
        InboundContent::Reaction { emoji } => emoji.clone(),
        InboundContent::Unsupported { type_name } => format!("[{type_name}]"),
    }
}

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
        let media = match content {
            InboundContent::Media { media_id, .. } => media_id.clone(),
            _ => None,
        };
        Entry {
            kind: content.kind_name().to_string(),
            text: clip(&inbound_text(content)),
            author: None,
            template: None,
            media,
        }
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
        assert_eq!(Entry::inbound(&order).text, "Order: 2 x TSHIRT-M");
        let photo = InboundContent::Media {
            media_kind: "image".into(),
            media_id: Some("1043219".into()),
            caption: Some("Passt das?".into()),
        };
        let e = Entry::inbound(&photo);
        assert_eq!((e.text.as_str(), e.media.as_deref()), ("[image] Passt das?", Some("1043219")));
        assert_eq!(
            Entry::inbound(&InboundContent::Media { media_kind: "image".into(), media_id: None, caption: None }).text,
            "[image]"
        );
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
        let t = OutboundBody::Template { template: TemplateRef::new("service_followup", "de", vec![]) };
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
}
