//! Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0.0, symmetric `v1`):
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`,
//! keyed with the secret `whsec_<base64>` decoded. The HMAC is the reference implementation's
//! (`standardwebhooks` crate); this module parses the secret once and names the headers.
use base64::Engine;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

const PREFIX: &str = "whsec_";
/// The spec: "Random. At least 24 bytes (192 bits, 512 maximum)".
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

/// Why a secret was refused. Never carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("expected whsec_ followed by base64")]
    Format,
    #[error("the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, found {0}")]
    Length(usize),
}

/// A signing secret, parsed once at the edge; Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// `whsec_<base64>` (standard alphabet, padded), as the spec serialises secrets.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let encoded = s.trim().strip_prefix(PREFIX).ok_or(SecretError::Format)?;
        let key = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| SecretError::Format)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self { key })
    }

    /// A fresh random secret in the `whsec_` form: 32 bytes from two v4 UUIDs (244 random bits),
    /// for tests and tools; a deployment makes its own (`openssl rand -base64 32`, README).
    pub fn generate() -> String {
        let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()].iter().flat_map(|u| *u.as_bytes()).collect();
        format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// Why a delivery did not verify (the sandbox receiver's answer; says nothing about the secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(String);

/// Signs (and, for receivers, verifies) with one secret.
#[derive(Clone)]
pub struct Signer {
    webhook: std::sync::Arc<standardwebhooks::Webhook>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    pub fn new(secret: &SigningSecret) -> Self {
        let webhook = standardwebhooks::Webhook::from_bytes(secret.key.clone()).expect("a key of any length signs");
        Self { webhook: std::sync::Arc::new(webhook) }
    }

    /// The `webhook-signature` value for one attempt: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        self.webhook.sign(id, timestamp, body.as_bytes()).expect("a str is UTF-8")
    }

    /// The three Standard Webhooks headers of one attempt.
    pub fn headers(&self, id: &str, timestamp: i64, body: &str) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, id.to_string()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, self.sign(id, timestamp, body)),
        ]
    }

    /// Verifies a received delivery as the spec asks a consumer to: all three headers present,
    /// the timestamp within 5 minutes of now, one of the `v1` signatures matching in constant time.
    pub fn verify(&self, body: &[u8], headers: &http::HeaderMap) -> Result<(), VerifyError> {
        self.webhook.verify(body, headers).map_err(|e| VerifyError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector the Standard Webhooks reference libraries test against
    /// (standard-webhooks/standard-webhooks, libraries/*: `test_sign`).
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn signer(secret: &str) -> Signer {
        Signer::new(&SigningSecret::parse(secret).unwrap())
    }

    #[test]
    fn signs_the_published_test_vector() {
        assert_eq!(signer(SECRET).sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn the_signature_is_an_hmac_of_id_timestamp_and_body() {
        // The same thing computed from the spec's words with plain HMAC-SHA256.
        use hmac::{KeyInit, Mac};
        let key = base64::engine::general_purpose::STANDARD.decode(&SECRET[6..]).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{ID}.{TIMESTAMP}.{BODY}").as_bytes());
        let want = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(want, SIGNATURE);
        let headers = signer(SECRET).headers(ID, TIMESTAMP, BODY);
        assert_eq!(headers[0], ("webhook-id", ID.to_string()));
        assert_eq!(headers[1], ("webhook-timestamp", TIMESTAMP.to_string()));
        assert_eq!(headers[2], ("webhook-signature", SIGNATURE.to_string()));
    }

    fn header_map(id: &str, ts: i64, sig: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(HEADER_ID, id.parse().unwrap());
        h.insert(HEADER_TIMESTAMP, ts.to_string().parse().unwrap());
        h.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        h
    }

    #[test]
    fn a_wrong_secret_a_changed_body_or_an_old_timestamp_fail_verification() {
        let now = crate::time_util::now_unix();
        let good = signer(SECRET);
        let sig = good.sign(ID, now, BODY);
        assert!(good.verify(BODY.as_bytes(), &header_map(ID, now, &sig)).is_ok());
        let other = signer(&SigningSecret::generate());
        assert!(other.verify(BODY.as_bytes(), &header_map(ID, now, &sig)).is_err(), "wrong secret");
        assert!(good.verify(b"{}", &header_map(ID, now, &sig)).is_err(), "changed body");
        assert!(good.verify(BODY.as_bytes(), &header_map("msg_other", now, &sig)).is_err(), "changed id");
        let old = now - 600;
        let old_sig = good.sign(ID, old, BODY);
        assert!(good.verify(BODY.as_bytes(), &header_map(ID, old, &old_sig)).is_err(), "replayed");
        // Several signatures (a rotation): one valid is enough.
        let both = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {sig}");
        assert!(good.verify(BODY.as_bytes(), &header_map(ID, now, &both)).is_ok());
    }

    #[test]
    fn secrets_are_parsed_once_and_never_shown() {
        assert_eq!(SigningSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"), Err(SecretError::Format));
        assert_eq!(SigningSecret::parse("whsec_!!!"), Err(SecretError::Format));
        assert_eq!(SigningSecret::parse("whsec_c2hvcnQ="), Err(SecretError::Length(5)));
        let generated = SigningSecret::generate();
        let parsed = SigningSecret::parse(&generated).unwrap();
        assert_eq!(format!("{parsed:?}"), "SigningSecret(<redacted>)");
        assert!(!SecretError::Length(5).to_string().contains("c2hv"));
    }
}
