use crate::domain::{AccountId, ContactId, InboundMessageId, OutboundBody, OutboundId, Purpose, TemplateRef};
use serde::{Deserialize, Serialize};

pub const ENVELOPE_VERSION: u32 = 1;

/// One outbound message as it travels through SQS. Versioned so a sender deployed later can
/// still read what an older webhook enqueued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub id: OutboundId,
    pub account: AccountId,
    pub contact: ContactId,
    pub purpose: Purpose,
    pub body: OutboundBody,
    /// Approved template to send instead when the customer-service window is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<TemplateRef>,
    /// For a template sent because the window was closed: the reply it stands in for, delivered
    /// when the customer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<OutboundBody>,
    /// The inbound message this answers; the sender marks its claim done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<InboundMessageId>,
    /// Unix seconds when it was enqueued.
    pub created_at: i64,
    /// Unix milliseconds when it was enqueued, stepped per message of one batch: orders the
    /// conversation history within a second (older envelopes have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<i64>,
    /// The campaign it belongs to (a campaign message: its delivery counts in the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Who wrote it, when a person did (`agent:<id>`); none for the bot and notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON for version {ENVELOPE_VERSION}: {0}")]
    Invalid(String),
    #[error("envelope version {0} is not supported (this sender reads {ENVELOPE_VERSION})")]
    UnsupportedVersion(u32),
}

impl Envelope {
    pub fn parse(body: &str) -> Result<Self, EnvelopeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_str(body).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
        if version.v != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version.v));
        }
        serde_json::from_str(body).map_err(|e| EnvelopeError::Invalid(e.to_string()))
    }

    /// The history's sort time in milliseconds.
    pub fn sort_ms(&self) -> i64 {
        self.created_ms.unwrap_or(self.created_at * 1000)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("envelope serialises")
    }

    /// The FIFO message group: one per contact keeps each conversation in order while
    /// different contacts are sent in parallel.
    pub fn group_id(&self) -> String {
        self.contact.key()
    }

    /// The same message as its template fallback, under a derived id so it is sent once.
    pub fn as_template_fallback(&self) -> Option<Envelope> {
        let template = self.fallback.clone()?;
        if self.body.is_template() {
            return None;
        }
        Some(Envelope {
            id: OutboundId::parse(format!("{}-t", self.id)).ok()?,
            body: OutboundBody::Template { template },
            fallback: None,
            withheld: Some(self.body.clone()),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Address, Channel};

    fn sample() -> Envelope {
        Envelope {
            v: 1,
            id: OutboundId::parse("r-abc").unwrap(),
            account: AccountId::parse("100000000000001").unwrap(),
            contact: ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap()),
            purpose: Purpose::Reply,
            body: OutboundBody::text("Hallo"),
            fallback: Some(TemplateRef::new("service_followup", "de", vec![])),
            withheld: None,
            in_reply_to: Some(InboundMessageId::parse("wamid.X").unwrap()),
            created_at: 1_764_000_000,
            created_ms: None,
            campaign: None,
            author: None,
        }
    }

    #[test]
    fn round_trips_and_checks_version() {
        let e = sample();
        assert_eq!(Envelope::parse(&e.to_json()).unwrap(), e);
        let v2 = e.to_json().replace("\"v\":1", "\"v\":2");
        assert!(matches!(Envelope::parse(&v2), Err(EnvelopeError::UnsupportedVersion(2))));
        assert!(matches!(Envelope::parse("{"), Err(EnvelopeError::Invalid(_))));
        assert!(matches!(Envelope::parse(r#"{"v":1}"#), Err(EnvelopeError::Invalid(_))));
    }

    #[test]
    fn sample_event_bodies_parse() {
        let event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/sqs/outbound_batch.json")).unwrap();
        for record in event["Records"].as_array().unwrap() {
            let e = Envelope::parse(record["body"].as_str().unwrap()).unwrap();
            assert_eq!(e.fallback.unwrap().name, "service_followup");
        }
    }

    #[test]
    fn template_fallback_gets_a_derived_id_once() {
        let t = sample().as_template_fallback().unwrap();
        assert_eq!(t.id.as_str(), "r-abc-t");
        assert!(t.body.is_template());
        assert_eq!(t.withheld, Some(OutboundBody::text("Hallo")));
        assert!(t.as_template_fallback().is_none());
        assert_eq!(sample().group_id(), "whatsapp#4915123456789");
    }
}
