//! The bridge for brands that already have an inbox: conversation events posted to the brand's
//! URL, signed per Standard Webhooks, retried with backoff through SQS.
//!
//! ```text
//! channel-webhook / inbound-worker ─ message.received, conversation.handover_requested ─┐
//! outbound-sender, status webhooks ─ message.failed ─────────────────────────────────────┤
//!                                                        BridgeQueue (standard, DLQ) ◀───┘
//!                                                               │ event-bridge
//!                                                               ▼
//!                                       POST BRIDGE_WEBHOOK_URL (webhook-id/-timestamp/-signature)
//! ```
//!
//! Rules:
//! 1. Off unless `BRIDGE_WEBHOOK_URL` is set: then no producer builds an event or makes a
//!    request for the bridge ([`Publisher::from_env`] is `None`), and template.yaml disables the
//!    event source.
//! 2. An event is produced where the fact is decided, in the same round trip as the work it
//!    belongs to, and a failure to queue it fails that work (which is then retried whole): an
//!    event is never lost while the customer's message is kept, nor the reverse.
//! 3. An event keeps its id and its bytes from production to the last attempt ([`BridgeEvent`]);
//!    each attempt is signed with its own timestamp, as the spec asks.
//! 4. Delivery ([`deliver`]): 2xx done; 408, 429, 5xx, timeouts and connection errors back off
//!    exponentially (SQS visibility) until `maxReceiveCount` moves the event to the DLQ; any
//!    other answer is permanent and moves it to the DLQ at once.
//! 5. Logs name the event id, its type and the receiver's status, never the payload or the URL.
pub mod deliver;
pub mod event;
pub mod publisher;
pub mod signer;

pub use deliver::Deliverer;
pub use event::{BridgeEvent, EventType, FailedMessage};
pub use publisher::Publisher;
pub use signer::{Signer, SigningSecret};

use crate::config::{env_opt, env_parse, ConfigError};

/// Where the events go and how they are signed (the event-bridge function's settings).
#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// `BRIDGE_WEBHOOK_URL` — the receiver (unset: the bridge is off).
    pub url: String,
    /// `BRIDGE_WEBHOOK_SECRET` — `whsec_<base64>`, required with the URL.
    pub secret: SigningSecret,
    /// `BRIDGE_RETRY_BASE_SECONDS` — default 5: the first retry's delay; each next one is 4 times
    /// longer, at most 12 hours (SQS's longest visibility timeout).
    pub retry_base_seconds: u64,
}

impl BridgeSettings {
    /// `None` when `BRIDGE_WEBHOOK_URL` is unset.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(url) = env_opt("BRIDGE_WEBHOOK_URL") else { return Ok(None) };
        let secret = env_opt("BRIDGE_WEBHOOK_SECRET").ok_or(ConfigError::Missing("BRIDGE_WEBHOOK_SECRET"))?;
        let mut settings = Self::new(&url, &secret)?;
        settings.retry_base_seconds = env_parse("BRIDGE_RETRY_BASE_SECONDS", DEFAULT_RETRY_BASE_SECONDS)?.max(1);
        Ok(Some(settings))
    }

    /// Parses both once; the errors name the setting, never its value (the URL may carry a key).
    pub fn new(url: &str, secret: &str) -> Result<Self, ConfigError> {
        let parsed = reqwest::Url::parse(url.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(parsed) = parsed else {
            return Err(ConfigError::Invalid { name: "BRIDGE_WEBHOOK_URL", reason: "must be an http(s) URL".into() });
        };
        let secret = SigningSecret::parse(secret)
            .map_err(|e| ConfigError::Invalid { name: "BRIDGE_WEBHOOK_SECRET", reason: e.to_string() })?;
        Ok(Self { url: parsed.to_string(), secret, retry_base_seconds: DEFAULT_RETRY_BASE_SECONDS })
    }
}

pub const DEFAULT_RETRY_BASE_SECONDS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_bad_values_without_echoing_them() {
        let secret = SigningSecret::generate();
        assert!(BridgeSettings::new("https://relay.example.com/parley?key=abc", &secret).is_ok());
        let e = BridgeSettings::new("ftp://relay.example.com/?key=abc", &secret).unwrap_err().to_string();
        assert!(e.contains("BRIDGE_WEBHOOK_URL") && !e.contains("abc"), "{e}");
        let e = BridgeSettings::new("https://relay.example.com/", "whsec_c2hvcnQ=").unwrap_err().to_string();
        assert!(e.contains("BRIDGE_WEBHOOK_SECRET") && !e.contains("c2hvcnQ"), "{e}");
    }
}
