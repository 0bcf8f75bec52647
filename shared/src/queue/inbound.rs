//! The inbound queue's envelope: one parsed webhook event per SQS message, grouped by contact so
//! a contact's events are handled one after another in the order they were written.
use super::producer::FifoMessage;
use super::EnvelopeError;
use crate::domain::{Channel, InboundEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const INBOUND_VERSION: u32 = 1;

/// One inbound event as it travels through SQS. Versioned like the outbound [`super::Envelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEnvelope {
    pub v: u32,
    pub event: InboundEvent,
}

impl InboundEnvelope {
    pub fn new(event: InboundEvent) -> Self {
        Self { v: INBOUND_VERSION, event }
    }

    pub fn parse(body: &str) -> Result<Self, EnvelopeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_str(body).map_err(|e| EnvelopeError::Invalid(crate::privacy::describe_json_error(&e)))?;
        if version.v != INBOUND_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version.v));
        }
        serde_json::from_str(body).map_err(|e| EnvelopeError::Invalid(crate::privacy::describe_json_error(&e)))
    }

    /// The FIFO group: the contact, so its messages, statuses and preference changes are
    /// handled in order, one at a time, while other contacts run in parallel.
    pub fn group_id(&self) -> String {
        match &self.event {
            InboundEvent::Message(m) => m.contact.key(),
            InboundEvent::Preference(p) => p.contact.key(),
            InboundEvent::AgentRelease { contact, .. } => contact.key(),
            // Statuses name the recipient by its WhatsApp id: the same group as its messages.
            InboundEvent::Status(s) => match &s.recipient {
                Some(r) => format!("{}#{r}", Channel::WhatsApp),
                None => format!("status#{}", s.provider_id),
            },
        }
    }

    /// Content-based: the same event delivered again within SQS's 5-minute window is dropped by
    /// SQS; later copies are caught by the inbound claims.
    pub fn to_message(&self) -> FifoMessage {
        let body = serde_json::to_string(self).expect("inbound envelope serialises");
        let dedupe_id = hex::encode(Sha256::digest(body.as_bytes()));
        FifoMessage { group: self.group_id(), dedupe_id, body }
    }

    /// When the event was written (Unix seconds), for ordering a contact's events.
    pub fn timestamp(&self) -> i64 {
        match &self.event {
            InboundEvent::Message(m) => m.timestamp,
            InboundEvent::Status(s) => s.timestamp,
            InboundEvent::Preference(p) => p.timestamp,
            InboundEvent::AgentRelease { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Address, ContactId, InboundContent, InboundMessage, InboundMessageId};

    fn message(text: &str) -> InboundEnvelope {
        InboundEnvelope::new(InboundEvent::Message(InboundMessage {
            id: InboundMessageId::parse("wamid.A").unwrap(),
            account: AccountId::parse("100000000000001").unwrap(),
            contact: ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap()),
            profile_name: Some("Erika".into()),
            phone: None,
            timestamp: 1_764_000_000,
            content: InboundContent::Text { body: text.into() },
        }))
    }

    #[test]
    fn round_trips_with_a_stable_dedupe_id_and_the_contact_as_group() {
        let e = message("Hallo");
        let m = e.to_message();
        assert_eq!(InboundEnvelope::parse(&m.body).unwrap(), e);
        assert_eq!(m.group, "whatsapp#4915123456789");
        assert_eq!(m.dedupe_id, message("Hallo").to_message().dedupe_id);
        assert_ne!(m.dedupe_id, message("Hallo!").to_message().dedupe_id);
        assert!(m.dedupe_id.len() <= 128);
    }

    #[test]
    fn bad_bodies_are_refused_without_echoing_them() {
        let v2 = message("Hallo").to_message().body.replace("\"v\":1", "\"v\":2");
        assert!(matches!(InboundEnvelope::parse(&v2), Err(EnvelopeError::UnsupportedVersion(2))));
        let err = InboundEnvelope::parse(r#"{"v":1,"event":{"Message":{"text":"4915123456789 geheim"}}}"#).unwrap_err();
        assert!(!err.to_string().contains("4915123456789"), "{err}");
        assert!(!err.to_string().contains("geheim"), "{err}");
    }
}
