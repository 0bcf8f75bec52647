//! Pseudonyms: keyed hashes (HMAC-SHA256 with `PARLEY_PSEUDONYM_KEY`) that let a brand prove past
//! consent or spot repeated sources without keeping the number or the IP address. A plain hash of
//! a phone number could be reversed by trying every number; a keyed one cannot without the key.
use crate::domain::ContactId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn keyed(key: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The pseudonym of a contact (what erased consent proof is kept under).
pub fn contact_pseudonym(key: &str, contact: &ContactId) -> String {
    keyed(key, &format!("contact:{contact}"))
}

/// The pseudonym of a channel message id, kept in erased consent proof in place of the id (a
/// WhatsApp `wamid` encodes the sender's number).
pub fn message_pseudonym(key: &str, message_id: &str) -> String {
    keyed(key, &format!("message:{message_id}"))
}

/// A short pseudonym of a client IP address for the opt-in audit trail.
pub fn ip_pseudonym(key: &str, ip: &str) -> String {
    keyed(key, &format!("ip:{}", ip.trim()))[..32].to_string()
}

/// What is wrong with a JSON document, without any of its values: serde's messages quote the
/// offending value (`invalid type: string "+49151…", expected u64`), and values are phone
/// numbers, names and texts. Keeps the rule (`invalid type, expected u64`), our own field names
/// (`missing field `address``) and the position.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let msg = e.to_string();
    // A reader's errors end in " at line L column C"; the position is added back below.
    let msg = match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg.as_str(),
    };
    let what = match e.classify() {
        Category::Io => "the body could not be read".to_string(),
        Category::Eof => "the JSON ends too early".to_string(),
        // Syntax messages name the rule (`expected `,` or `}``, `trailing characters`), never data.
        Category::Syntax => format!("malformed JSON: {msg}"),
        Category::Data => data_rule(msg),
    };
    if e.line() > 0 {
        format!("{what} at line {} column {}", e.line(), e.column())
    } else {
        what
    }
}

fn data_rule(msg: &str) -> String {
    const KINDS: [&str; 5] = ["invalid type", "invalid value", "invalid length", "unknown field", "unknown variant"];
    if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        // `missing field `address``: the name is ours, from the type being read.
        return msg.to_string();
    }
    match (KINDS.iter().find(|k| msg.starts_with(*k)), msg.split_once(", expected ")) {
        (Some(kind), Some((_, expected))) => format!("{kind}, expected {expected}"),
        (Some(kind), None) => kind.to_string(),
        // A type's own check (`try_from`): its message may carry the value.
        (None, _) => "a value does not have the expected form".to_string(),
    }
}

/// [`describe_json_error`] with the path of the field it concerns (`purposes[1]`, `customer.phone`).
pub fn describe_json_path_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    use serde_path_to_error::Segment;
    let inner = describe_json_error(e.inner());
    let mut segments: Vec<&Segment> = e.path().iter().collect();
    // The last segment of an unknown field is the sender's key, not ours: never repeat it.
    if inner.starts_with("unknown field") {
        segments.pop();
    }
    let mut path = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Enum { variant } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(variant);
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    if path.is_empty() {
        inner
    } else {
        format!("field `{path}`: {inner}")
    }
}

/// Reads JSON into `T`, failing with a message that names the field and the rule, never a value.
pub fn from_json_slice<'de, T: serde::Deserialize<'de>>(body: &'de [u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| describe_json_path_error(&e))?;
    de.end().map_err(|e| describe_json_error(&e))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Address, Channel};

    #[test]
    fn json_errors_name_the_rule_and_the_field_but_never_a_value() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Form {
            address: String,
            purposes: Option<Vec<u8>>,
        }
        let secret = "4915123456789";
        let cases: &[(&str, &str)] = &[
            (r#"{"address": 4915123456789}"#, "field `address`: invalid type, expected a string at line 1"),
            (r#"{"address": "x", "purposes": [1, "4915123456789"]}"#, "field `purposes[1]`: invalid type, expected u8"),
            (r#"{"address": "x", "4915123456789": 1}"#, "unknown field, expected `address` or `purposes`"),
            (r#"{"address": "x", "purposes": [1, 2], "4915123456789": 1}"#, "unknown field, expected `address`"),
            (r#"{"purposes": []}"#, "missing field `address`"),
            (r#"{"address": "Hallo 4915123456789"#, "the JSON ends too early at line 1"),
            (r#"{"address": "4915123456789" x}"#, "malformed JSON: expected `,` or `}` at line 1"),
            (r#"{"address": "4915123456789"} 4915123456789"#, "malformed JSON: trailing characters at line 1"),
        ];
        for (body, want) in cases {
            let e = from_json_slice::<Form>(body.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
            assert!(!e.contains(secret), "{body}: {e}");
        }
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_distinct() {
        let c = ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap());
        let a = contact_pseudonym("k1", &c);
        assert_eq!(a, contact_pseudonym("k1", &c));
        assert_ne!(a, contact_pseudonym("k2", &c));
        assert!(!a.contains("4915123456789"));
        assert_eq!(a.len(), 64);
        assert_eq!(ip_pseudonym("k1", "203.0.113.7").len(), 32);
        assert_ne!(ip_pseudonym("k1", "203.0.113.7"), ip_pseudonym("k1", "203.0.113.8"));
    }
}
