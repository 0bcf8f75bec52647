//! Phone numbers from forms and shops ("0151 2345 6789", "+49 (151) 23456789", "0049…") become
//! E.164 once, at the edge.
use super::ids::E164Phone;

/// Never carries the number itself: these messages reach error bodies and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is not a phone number (expected digits, optionally + and the country code, at most 40 characters)")]
    Unparsable,
    #[error("is not a valid phone number for its country")]
    Invalid,
    /// The deployment's `DEFAULT_PHONE_REGION` (configuration, not personal data).
    #[error("'{0}' is not a known default region (expected an ISO country code such as DE)")]
    UnknownRegion(String),
}

/// Parses `input` in any common format; national numbers are read in `default_region`
/// (ISO 3166 alpha-2, e.g. `DE`).
pub fn normalize_phone(input: &str, default_region: &str) -> Result<E164Phone, PhoneError> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.len() > 40 {
        return Err(PhoneError::Unparsable);
    }
    let region: phonenumber::country::Id = default_region
        .trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| PhoneError::UnknownRegion(default_region.to_string()))?;
    // "0049…" is the international prefix written out; the parser wants "+".
    let candidate = match trimmed.strip_prefix("00") {
        Some(rest) if rest.chars().next().is_some_and(|c| c.is_ascii_digit() && c != '0') => format!("+{rest}"),
        _ => trimmed.to_string(),
    };
    let number = phonenumber::parse(Some(region), &candidate).map_err(|_| PhoneError::Unparsable)?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::Invalid);
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    E164Phone::from_digits(&e164).ok_or(PhoneError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_formats_normalise_to_the_same_number() {
        // The last one is the WhatsApp form (digits with the country code, no +).
        for input in
            ["+49 151 23456789", "0151 23456789", "0049 151 23456789", "+49 (0)151-234 567 89", "4915123456789"]
        {
            assert_eq!(normalize_phone(input, "DE").unwrap().as_str(), "+4915123456789", "{input}");
        }
        assert_eq!(normalize_phone("(312) 555-1212", "US").unwrap().as_str(), "+13125551212");
        assert!(matches!(normalize_phone("+49 151 2", "DE"), Err(PhoneError::Invalid | PhoneError::Unparsable)));
        assert_eq!(normalize_phone("+1 650-253-0000", "DE").unwrap().as_str(), "+16502530000");
    }

    #[test]
    fn garbage_and_invalid_numbers_are_rejected() {
        assert!(matches!(normalize_phone("hello", "DE"), Err(PhoneError::Unparsable)));
        assert!(matches!(normalize_phone("", "DE"), Err(PhoneError::Unparsable)));
        assert!(normalize_phone("555-555-SHIP", "US").is_err());
        assert!(matches!(normalize_phone("+49 1", "DE"), Err(PhoneError::Unparsable | PhoneError::Invalid)));
        assert!(matches!(normalize_phone("0151 23456789", "XX"), Err(PhoneError::UnknownRegion(_))));
        assert!(normalize_phone(&"1".repeat(100), "DE").is_err());
    }

    #[test]
    fn errors_never_echo_the_number() {
        for input in ["0151 2", "+49 151 2", "call 0151 23456789 please", &"4915123456789".repeat(5)] {
            let e = normalize_phone(input, "DE").unwrap_err().to_string();
            assert!(!e.contains("151"), "{e}");
        }
    }
}
