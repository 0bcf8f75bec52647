//! Identifiers parsed once at the edge; the domain never handles raw strings.
use serde::{Deserialize, Serialize};
use std::fmt;

/// A customer's messaging channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[serde(rename = "whatsapp")]
    WhatsApp,
    Messenger,
    Instagram,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::WhatsApp, Channel::Messenger, Channel::Instagram];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WhatsApp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The rejected value is kept for the caller's own use but never shown: it may be anything
    /// a person typed (errors never echo input values).
    #[error("unknown channel (expected whatsapp, messenger or instagram)")]
    UnknownChannel(String),
    #[error(
        "a whatsapp address is the number in international form: country code first, digits only, \
         an optional leading + (E.164, e.g. 64211234567); national numbers are not accepted here"
    )]
    NotInternational,
    #[error("empty {0}")]
    Empty(&'static str),
    #[error("{what} is too long ({len} > {max} characters)")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what} contains characters that are not allowed")]
    BadCharacters { what: &'static str },
}

impl std::str::FromStr for Channel {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "whatsapp" | "wa" => Ok(Channel::WhatsApp),
            "messenger" | "facebook" | "page" => Ok(Channel::Messenger),
            "instagram" | "ig" => Ok(Channel::Instagram),
            other => Err(IdError::UnknownChannel(other.to_string())),
        }
    }
}

fn check_token(what: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty(what));
    }
    if s.len() > max {
        return Err(IdError::TooLong { what, len: s.len(), max });
    }
    // Ids are used inside DynamoDB keys joined with '#': keep them to a safe alphabet.
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'=' | b'+' | b'/')) {
        return Err(IdError::BadCharacters { what });
    }
    Ok(())
}

macro_rules! token_newtype {
    ($(#[$m:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_token($what, &s, $max)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_newtype!(
    /// A business account that receives messages: a WhatsApp `phone_number_id`, a Facebook Page id
    /// or an Instagram account id.
    AccountId, "account id", 64
);
token_newtype!(
    /// The id the channel gave an inbound message (WhatsApp `wamid.…`, Messenger/Instagram `mid`).
    InboundMessageId, "inbound message id", 512
);
token_newtype!(
    /// The id the channel answered a send with; status webhooks carry it.
    ProviderMessageId, "provider message id", 512
);
token_newtype!(
    /// Our id of an outbound message. Deterministic where the message answers something, so a
    /// re-run produces the same id and the sender turns the re-send into a no-op.
    OutboundId, "outbound message id", 128
);

/// The sender identity exactly as the channel gives it: WhatsApp `wa_id` (digits) or a
/// business-scoped user id, Messenger PSID, Instagram IGSID. Never assumed to be a phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

impl Address {
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        let s = s.trim();
        // WhatsApp `to` may carry a leading '+'; the contract's address is the digits only.
        let s = s.strip_prefix('+').unwrap_or(s).to_string();
        check_token("address", &s, 128)?;
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// For logs: never a full phone number or user id.
    pub fn redacted(&self) -> String {
        let n = self.0.len();
        if n <= 4 {
            "***".to_string()
        } else {
            format!("***{}", &self.0[n - 4..])
        }
    }
}
impl TryFrom<String> for Address {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl From<Address> for String {
    fn from(v: Address) -> String {
        v.0
    }
}
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact: one person on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContactId {
    pub channel: Channel,
    pub address: Address,
}

impl ContactId {
    pub fn new(channel: Channel, address: Address) -> Self {
        Self { channel, address }
    }
    /// Stable key used for DynamoDB keys and SQS message groups.
    pub fn key(&self) -> String {
        format!("{}#{}", self.channel, self.address)
    }
    pub fn redacted(&self) -> String {
        format!("{}:{}", self.channel, self.address.redacted())
    }
}

impl ContactId {
    /// A contact named in an API path (CONTRACT.md "Channel addresses"); the one parser every
    /// path route uses. A WhatsApp number is E.164 digits (a leading `+`, also URL-encoded, is
    /// accepted) and always read as international: `64215745482` is a New Zealand number,
    /// never a national number of `DEFAULT_PHONE_REGION`. A WhatsApp address with letters is a
    /// business-scoped user id and taken as given; Messenger/Instagram ids always are.
    pub fn from_path(channel: &str, address: &str) -> Result<Self, IdError> {
        let channel: Channel = channel.parse()?;
        let trimmed = address.trim();
        let raw = ["%2B", "%2b", "+"].iter().find_map(|p| trimmed.strip_prefix(p)).unwrap_or(trimmed);
        let address = match channel {
            Channel::WhatsApp if raw.bytes().all(|b| b.is_ascii_digit()) => {
                let phone = E164Phone::from_digits(raw).ok_or(IdError::NotInternational)?;
                Address::parse(phone.digits())?
            }
            _ => Address::parse(raw)?,
        };
        Ok(Self::new(channel, address))
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.address)
    }
}

/// A phone number in E.164 form (`+` and 8–15 digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164Phone(String);

impl E164Phone {
    /// Accepts digits with or without a leading `+` (as WhatsApp's `wa_id` gives them).
    pub fn from_digits(s: &str) -> Option<Self> {
        let d = s.strip_prefix('+').unwrap_or(s);
        if (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0') {
            Some(Self(format!("+{d}")))
        } else {
            None
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Digits without the `+`: the WhatsApp address form.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}
impl TryFrom<String> for E164Phone {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::from_digits(&s).ok_or(IdError::BadCharacters { what: "E.164 phone" })
    }
}
impl From<E164Phone> for String {
    fn from(v: E164Phone) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_parses_case_insensitively_and_rejects_unknown() {
        assert_eq!("WhatsApp".parse::<Channel>().unwrap(), Channel::WhatsApp);
        assert_eq!(" instagram ".parse::<Channel>().unwrap(), Channel::Instagram);
        assert!(matches!("sms".parse::<Channel>(), Err(IdError::UnknownChannel(_))));
    }

    #[test]
    fn address_strips_plus_and_rejects_key_separators() {
        assert_eq!(Address::parse("+4915123456789").unwrap().as_str(), "4915123456789");
        assert!(Address::parse("").is_err());
        assert!(Address::parse("a#b").is_err());
        assert!(Address::parse("x".repeat(129)).is_err());
        assert_eq!(Address::parse("4915123456789").unwrap().redacted(), "***6789");
    }

    #[test]
    fn path_addresses_are_international_whatever_the_country() {
        for (given, want) in [
            ("4915123456789", "4915123456789"),
            ("+4915123456789", "4915123456789"),
            ("%2B4915123456789", "4915123456789"),
            ("64215745482", "64215745482"),
            ("+14155550123", "14155550123"),
            ("447700900123", "447700900123"),
            ("5511987654321", "5511987654321"),
            ("919876543210", "919876543210"),
        ] {
            let c = ContactId::from_path("whatsapp", given).unwrap();
            assert_eq!((c.channel, c.address.as_str()), (Channel::WhatsApp, want), "{given}");
        }
        // National forms are refused with a clear rule, not guessed.
        for national in ["015123456789", "0215745482", "1234567", "+0151", "1234567890123456"] {
            assert_eq!(ContactId::from_path("whatsapp", national), Err(IdError::NotInternational), "{national}");
        }
        assert!(matches!(ContactId::from_path("whatsapp", "0151 2345"), Err(IdError::BadCharacters { .. })));
        // Business-scoped user ids and page-scoped ids pass as given.
        assert_eq!(
            ContactId::from_path("whatsapp", "US.13491208655302741918").unwrap().address.as_str(),
            "US.13491208655302741918"
        );
        assert_eq!(ContactId::from_path("messenger", "7100000000000001").unwrap().address.as_str(), "7100000000000001");
        assert!(matches!(ContactId::from_path("sms", "4915123456789"), Err(IdError::UnknownChannel(_))));
    }

    #[test]
    fn id_errors_never_echo_the_value() {
        let secret = "4915123456789";
        for e in [
            ContactId::from_path(secret, "1").unwrap_err(),
            ContactId::from_path("whatsapp", "0151234567").unwrap_err(),
            ContactId::from_path("whatsapp", "0151 234567#").unwrap_err(),
            Address::parse(format!("{secret}#x")).unwrap_err(),
            Address::parse(secret.repeat(20)).unwrap_err(),
        ] {
            let text = e.to_string();
            assert!(!text.contains("151234") && !text.contains("0151"), "{text}");
        }
    }

    #[test]
    fn e164_from_wa_id() {
        assert_eq!(E164Phone::from_digits("4915123456789").unwrap().as_str(), "+4915123456789");
        assert!(E164Phone::from_digits("US.13491208655302741918").is_none());
        assert!(E164Phone::from_digits("0151").is_none());
    }
}
