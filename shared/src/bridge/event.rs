//! The conversation events the bridge delivers, and how one travels through the bridge queue.
//!
//! A payload follows the Standard Webhooks shape: `{"type", "timestamp", "data"}`. It is
//! serialised once, when the event is produced, and kept as a string: every delivery attempt
//! posts (and signs) exactly the same bytes. The event id is derived from what the event is
//! about (the inbound message id, our outbound id), so producing the same event again — a
//! re-delivered webhook, a retried batch — gives the same id, and a receiver that keeps the ids
//! it has seen handles each event once.
use crate::domain::failure::failure_reason;
use crate::domain::{
    Address, Channel, ContactId, InboundContent, InboundMessage, OutboundId, ProviderMessageId, StatusUpdate,
};
use crate::queue::Envelope;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const BRIDGE_VERSION: u32 = 1;

/// What happened, as the payload's `type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A new inbound customer message.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// The customer asked for a human (the bot stays silent for them from now on).
    #[serde(rename = "conversation.handover_requested")]
    HandoverRequested,
    /// An outbound message failed for good.
    #[serde(rename = "message.failed")]
    MessageFailed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::HandoverRequested => "conversation.handover_requested",
            EventType::MessageFailed => "message.failed",
        }
    }
}

/// One event as it waits in the bridge queue (the SQS message body). Versioned like the other
/// envelopes, so an event-bridge deployed later still reads what was queued before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeEvent {
    pub v: u32,
    /// The `webhook-id`: `evt_` and 32 hex digits (no `.`, which the signed content uses as its
    /// delimiter).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The exact body posted and signed.
    pub payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("bridge event is not valid JSON for version {BRIDGE_VERSION}: {0}")]
    Invalid(String),
    #[error("bridge event version {0} is not supported (this function reads {BRIDGE_VERSION})")]
    UnsupportedVersion(u32),
}

/// An outbound message that failed for good.
#[derive(Debug, Clone, Copy)]
pub struct FailedMessage<'a> {
    pub contact: &'a ContactId,
    /// Our id, when known (a status webhook for a message sent without our record has none).
    pub id: Option<&'a OutboundId>,
    /// The channel's id, when the message had been accepted before it failed.
    pub provider_id: Option<&'a ProviderMessageId>,
    /// The Graph error code.
    pub code: Option<i64>,
    /// When it failed (Unix seconds).
    pub at: i64,
}

impl BridgeEvent {
    /// `message.received` for a customer message.
    pub fn message_received(msg: &InboundMessage) -> Self {
        let data = json!({
            "contact": contact(&msg.contact, msg.profile_name.as_deref()),
            "message": message(msg),
        });
        Self::new(EventType::MessageReceived, &source(msg), msg.timestamp, data)
    }

    /// `conversation.handover_requested`: `msg` asked for a human.
    pub fn handover_requested(msg: &InboundMessage) -> Self {
        let data = json!({
            "contact": contact(&msg.contact, msg.profile_name.as_deref()),
            "message": message(msg),
        });
        Self::new(EventType::HandoverRequested, &source(msg), msg.timestamp, data)
    }

    /// `message.failed`: an outbound message that will not reach the customer.
    pub fn message_failed(f: &FailedMessage<'_>) -> Self {
        let source = match (f.id, f.provider_id) {
            (Some(id), _) => format!("out|{id}"),
            (None, Some(p)) => format!("provider|{p}"),
            (None, None) => format!("contact|{}|{}", f.contact.key(), f.at),
        };
        let data = json!({
            "contact": contact(f.contact, None),
            "message": {
                "id": f.id.map(OutboundId::as_str),
                "provider_id": f.provider_id.map(ProviderMessageId::as_str),
            },
            "error": { "code": f.code, "reason": failure_reason(f.code) },
        });
        Self::new(EventType::MessageFailed, &source, f.at, data)
    }

    /// `message.failed` for a `failed` status webhook: our id and the contact from the envelope the
    /// message was sent from, else the status's recipient (WhatsApp); `None` if neither is known.
    pub fn status_failed(st: &StatusUpdate, envelope: Option<&Envelope>) -> Option<Self> {
        let contact = match envelope {
            Some(e) => e.contact.clone(),
            None => ContactId::new(Channel::WhatsApp, Address::parse(st.recipient.clone()?).ok()?),
        };
        Some(Self::message_failed(&FailedMessage {
            contact: &contact,
            id: envelope.map(|e| &e.id),
            provider_id: Some(&st.provider_id),
            code: st.errors.first().map(|e| e.code),
            at: st.timestamp,
        }))
    }

    fn new(kind: EventType, source: &str, at: i64, data: Value) -> Self {
        let payload = json!({
            "type": kind.as_str(),
            "timestamp": crate::time_util::rfc3339(at),
            "data": data,
        });
        Self { v: BRIDGE_VERSION, id: event_id(kind, source), kind, payload: payload.to_string() }
    }

    pub fn parse(body: &str) -> Result<Self, EventError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        // Messages describe the JSON error's position, never the text they hold.
        let describe = |e: serde_json::Error| EventError::Invalid(crate::privacy::describe_json_error(&e));
        let version: Version = serde_json::from_str(body).map_err(describe)?;
        if version.v != BRIDGE_VERSION {
            return Err(EventError::UnsupportedVersion(version.v));
        }
        serde_json::from_str(body).map_err(describe)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("bridge event serialises")
    }
}

/// The same event always gets the same id: the type and what it is about, hashed.
fn event_id(kind: EventType, source: &str) -> String {
    let digest = Sha256::digest(format!("{}|{source}", kind.as_str()).as_bytes());
    format!("evt_{}", &hex::encode(digest)[..32])
}

fn source(msg: &InboundMessage) -> String {
    format!("in|{}|{}", msg.contact.channel, msg.id)
}

/// Who: enough to show the person (masked address, name) and to answer them (`channel` and
/// `address` are the agent API's `/agent/conversations/{channel}/{address}`).
fn contact(c: &ContactId, name: Option<&str>) -> Value {
    json!({
        "channel": c.channel.as_str(),
        "address": c.address.as_str(),
        "address_masked": c.address.redacted(),
        "key": c.key(),
        "name": name,
        "reply_path": format!("/agent/conversations/{}/{}/messages", c.channel, c.address.as_str()),
    })
}

fn message(msg: &InboundMessage) -> Value {
    json!({
        "id": msg.id.as_str(),
        "kind": msg.content.kind_name(),
        "text": text_of(&msg.content),
        "at": crate::time_util::rfc3339(msg.timestamp),
    })
}

/// What the customer sent, as one line of text an inbox can show.
pub fn text_of(content: &InboundContent) -> String {
    crate::domain::history::inbound_text(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Address, Channel, InboundMessageId, OrderItem};

    fn msg(text: &str) -> InboundMessage {
        InboundMessage {
            id: InboundMessageId::parse("wamid.HBgNNDkxNTEyMzQ1Njc4OQ").unwrap(),
            account: AccountId::parse("100000000000001").unwrap(),
            contact: ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap()),
            profile_name: Some("Erika Muster".into()),
            phone: None,
            timestamp: 1_764_000_000,
            content: InboundContent::Text { body: text.into() },
        }
    }

    #[test]
    fn message_received_has_the_standard_webhooks_shape_and_what_an_inbox_needs() {
        let e = BridgeEvent::message_received(&msg("Hallo, wann kommt mein Paket?"));
        assert_eq!(e.kind, EventType::MessageReceived);
        let p: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(
            p,
            json!({
                "type": "message.received",
                "timestamp": "2025-11-24T16:00:00Z",
                "data": {
                    "contact": {
                        "channel": "whatsapp", "address": "4915123456789", "address_masked": "***6789",
                        "key": "whatsapp#4915123456789", "name": "Erika Muster",
                        "reply_path": "/agent/conversations/whatsapp/4915123456789/messages",
                    },
                    "message": {
                        "id": "wamid.HBgNNDkxNTEyMzQ1Njc4OQ", "kind": "text",
                        "text": "Hallo, wann kommt mein Paket?", "at": "2025-11-24T16:00:00Z",
                    },
                }
            })
        );
    }

    #[test]
    fn the_same_event_keeps_its_id_and_different_events_differ() {
        let a = BridgeEvent::message_received(&msg("Hilfe"));
        let again = BridgeEvent::message_received(&msg("Hilfe"));
        assert_eq!(a, again);
        assert!(a.id.starts_with("evt_") && a.id.len() == 36 && !a.id.contains('.'), "{}", a.id);
        let handover = BridgeEvent::handover_requested(&msg("Hilfe"));
        assert_eq!(handover.kind, EventType::HandoverRequested);
        assert_ne!(handover.id, a.id, "two events about one message are two events");
        let mut other = msg("Hilfe");
        other.id = InboundMessageId::parse("wamid.other").unwrap();
        assert_ne!(BridgeEvent::message_received(&other).id, a.id);
    }

    #[test]
    fn message_failed_names_our_id_the_code_and_a_plain_reason() {
        let contact = ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap());
        let id = OutboundId::parse("r-0123456789abcdef").unwrap();
        let f = FailedMessage {
            contact: &contact,
            id: Some(&id),
            provider_id: None,
            code: Some(131026),
            at: 1_764_000_000,
        };
        let e = BridgeEvent::message_failed(&f);
        let p: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(p["type"], "message.failed");
        assert_eq!(p["data"]["message"]["id"], "r-0123456789abcdef");
        assert_eq!(p["data"]["error"]["code"], 131026);
        assert_eq!(p["data"]["error"]["reason"], failure_reason(Some(131026)));
        assert_eq!(p["data"]["contact"]["address_masked"], "***6789");
        // A status webhook about the same message, later: the same event.
        let provider = ProviderMessageId::parse("wamid.sent").unwrap();
        let later = FailedMessage { provider_id: Some(&provider), at: 1_764_000_100, ..f };
        assert_eq!(BridgeEvent::message_failed(&later).id, e.id);
    }

    #[test]
    fn round_trips_through_the_queue_and_checks_the_version() {
        let e = BridgeEvent::message_received(&msg("Hallo"));
        assert_eq!(BridgeEvent::parse(&e.to_json()).unwrap(), e);
        let v2 = e.to_json().replacen("\"v\":1", "\"v\":2", 1);
        assert!(matches!(BridgeEvent::parse(&v2), Err(EventError::UnsupportedVersion(2))));
        assert!(matches!(BridgeEvent::parse(r#"{"v":1,"id":"evt_x"}"#), Err(EventError::Invalid(_))));
        let broken = BridgeEvent::parse(r#"{"v":1,"payload":"Hallo Erika"#).unwrap_err().to_string();
        assert!(!broken.contains("Erika"), "{broken}");
    }

    #[test]
    fn the_sample_event_holds_what_the_producers_queue() {
        let event: Value = serde_json::from_str(include_str!("../../../events/sqs/bridge_batch.json")).unwrap();
        let mut m = msg("Hilfe");
        m.id = InboundMessageId::parse("wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABIYFjNFQjBDMEY5").unwrap();
        let want = [BridgeEvent::message_received(&m), BridgeEvent::handover_requested(&m)];
        let got: Vec<BridgeEvent> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| BridgeEvent::parse(r["body"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_kind_of_message_reads_as_one_line() {
        let order = InboundContent::Order {
            catalog_id: None,
            items: vec![
                OrderItem { retailer_id: "TSHIRT-M".into(), quantity: 2, unit_price: None },
                OrderItem { retailer_id: "TSHIRT-L".into(), quantity: 1, unit_price: None },
            ],
            note: Some("als Geschenk".into()),
        };
        assert_eq!(text_of(&order), "Order: 2 x TSHIRT-M, 1 x TSHIRT-L (als Geschenk)");
        assert_eq!(
            text_of(&InboundContent::Media { media_kind: "image".into(), media_id: None, caption: None }),
            "[image]"
        );
        assert_eq!(text_of(&InboundContent::Button { payload: "p:1".into(), title: "Ja".into() }), "Ja");
        let loc = InboundContent::Location { latitude: 52.5, longitude: 13.4, name: None };
        assert_eq!(text_of(&loc), "Location: 52.5, 13.4");
    }
}
