//! Webhook signatures: HMAC-SHA256 over the raw body bytes, checked in constant time against
//! every active secret (current and previous, so a rotation never drops a delivery).
use crate::config::Secret;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `sha256=<lowercase hex>` (Meta's `X-Hub-Signature-256`).
    PrefixedHex,
    /// Plain base64 (Shopify `X-Shopify-Hmac-Sha256`, WooCommerce `X-WC-Webhook-Signature`).
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is malformed")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// Verifies one kind of signature header against one or more secrets.
#[derive(Clone)]
pub struct Verifier {
    encoding: Encoding,
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("encoding", &self.encoding).field("secrets", &self.secrets.len()).finish()
    }
}

impl Verifier {
    /// `previous` is accepted too while it is set (secret rotation).
    pub fn new(encoding: Encoding, current: Secret, previous: Option<Secret>) -> Self {
        let secrets = std::iter::once(current).chain(previous).filter(|s| !s.expose_secret().is_empty()).collect();
        Self { encoding, secrets }
    }

    fn decode(&self, header: &str) -> Result<Vec<u8>, SignatureError> {
        let header = header.trim();
        let raw = match self.encoding {
            Encoding::PrefixedHex => {
                let hex_part = header
                    .strip_prefix("sha256=")
                    .or_else(|| header.strip_prefix("SHA256="))
                    .ok_or(SignatureError::Malformed)?;
                hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?
            }
            Encoding::Base64 => {
                base64::engine::general_purpose::STANDARD.decode(header).map_err(|_| SignatureError::Malformed)?
            }
        };
        // A SHA-256 MAC is 32 bytes; anything else cannot match and is reported as malformed.
        if raw.len() != 32 {
            return Err(SignatureError::Malformed);
        }
        Ok(raw)
    }

    /// Checks `header` (the signature header's value) over the exact `body` bytes.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
        let header = header.filter(|h| !h.trim().is_empty()).ok_or(SignatureError::Missing)?;
        let expected = self.decode(header)?;
        let mut ok = false;
        // Check every secret (no early exit) so timing does not tell which one matched.
        for secret in &self.secrets {
            let mut mac =
                HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key length");
            mac.update(body);
            ok |= mac.verify_slice(&expected).is_ok();
        }
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Produces the header value for `body` with the current secret (sandbox and tests).
    pub fn sign(&self, body: &[u8]) -> String {
        sign(self.encoding, self.secrets.first().map(|s| s.expose_secret()).unwrap_or(""), body)
    }
}

/// Signs `body` with `secret` in the given header encoding.
pub fn sign(encoding: Encoding, secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    match encoding {
        Encoding::PrefixedHex => format!("sha256={}", hex::encode(tag)),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(prev: Option<&str>) -> Verifier {
        Verifier::new(Encoding::PrefixedHex, Secret::from("current"), prev.map(Secret::from))
    }

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let v = sign(Encoding::PrefixedHex, "Jefe", b"what do ya want for nothing?");
        assert_eq!(v, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn accepts_current_and_previous_secret() {
        let body = br#"{"object":"page"}"#;
        let v = meta(Some("previous"));
        assert!(v.verify(body, Some(&sign(Encoding::PrefixedHex, "current", body))).is_ok());
        assert!(v.verify(body, Some(&sign(Encoding::PrefixedHex, "previous", body))).is_ok());
        assert_eq!(v.verify(body, Some(&sign(Encoding::PrefixedHex, "other", body))), Err(SignatureError::Mismatch));
        // Without the previous secret configured, the old signature no longer passes.
        assert_eq!(
            meta(None).verify(body, Some(&sign(Encoding::PrefixedHex, "previous", body))),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn raw_bytes_matter_escaped_unicode_is_not_reencoded() {
        // Meta signs the escaped form; a parse + re-serialise would change the bytes.
        let body = br#"{"text":"\u00e4\u00f6\u00e5 \ud83d\ude00 a\/b"}"#;
        let v = meta(None);
        let sig = sign(Encoding::PrefixedHex, "current", body);
        assert!(v.verify(body, Some(&sig)).is_ok());
        let reencoded = serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap()).unwrap();
        assert_eq!(v.verify(&reencoded, Some(&sig)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_and_malformed_headers() {
        let v = meta(None);
        assert_eq!(v.verify(b"{}", None), Err(SignatureError::Missing));
        assert_eq!(v.verify(b"{}", Some("  ")), Err(SignatureError::Missing));
        assert_eq!(v.verify(b"{}", Some("sha1=abcd")), Err(SignatureError::Malformed));
        assert_eq!(v.verify(b"{}", Some("sha256=zz")), Err(SignatureError::Malformed));
        assert_eq!(v.verify(b"{}", Some("sha256=")), Err(SignatureError::Malformed));
        assert_eq!(v.verify(b"{}", Some("sha256=abcd")), Err(SignatureError::Malformed));
        let good = sign(Encoding::PrefixedHex, "current", b"{}");
        let truncated = &good[..good.len() - 2];
        assert_eq!(v.verify(b"{}", Some(truncated)), Err(SignatureError::Malformed));
        // Uppercase hex is still the same MAC.
        assert!(v.verify(b"{}", Some(&format!("sha256={}", good[7..].to_uppercase()))).is_ok());
    }

    #[test]
    fn base64_encoding() {
        let v = Verifier::new(Encoding::Base64, Secret::from("shop"), None);
        let body = br#"{"id":820982911946154508,"url":"https:\/\/x"}"#;
        let sig = sign(Encoding::Base64, "shop", body);
        assert!(v.verify(body, Some(&sig)).is_ok());
        assert_eq!(v.verify(body, Some("not base64!")), Err(SignatureError::Malformed));
        assert_eq!(v.verify(&body[1..], Some(&sig)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let v = meta(Some("previous"));
        let s = format!("{v:?}");
        assert!(!s.contains("current") && !s.contains("previous"), "{s}");
    }
}
