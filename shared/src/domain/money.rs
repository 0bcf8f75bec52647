//! Money as integer minor units plus an ISO 4217 currency; never floats in the domain.
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    // The rejected text is kept for callers but never shown: errors do not echo input values.
    #[error("is not an ISO 4217 currency code (three letters such as EUR)")]
    BadCurrency(String),
    #[error("is not an amount (expected a decimal such as 19.90)")]
    BadAmount(String),
    #[error("amount has more decimals than {1} allows")]
    TooPrecise(String, Currency),
    #[error("amount is out of range")]
    Overflow,
}

impl Currency {
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let t = s.trim();
        let b = t.as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_alphabetic()) {
            Ok(Self([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase(), b[2].to_ascii_uppercase()]))
        } else {
            Err(MoneyError::BadCurrency(s.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii")
    }
    /// Number of minor-unit digits (ISO 4217).
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
            | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}
impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, MoneyError> {
        Self::parse(&s)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parses a decimal string such as `"89.99"` (Shopify) exactly, without going through floats.
    pub fn parse_decimal(amount: &str, currency: Currency) -> Result<Self, MoneyError> {
        let s = amount.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MoneyError::BadAmount(amount.to_string()));
        }
        let exp = currency.exponent() as usize;
        let frac_trim = frac.trim_end_matches('0');
        if frac_trim.len() > exp {
            return Err(MoneyError::TooPrecise(amount.to_string(), currency));
        }
        let mut digits = String::with_capacity(int.len() + exp);
        digits.push_str(if int.is_empty() { "0" } else { int });
        digits.push_str(frac_trim);
        for _ in frac_trim.len()..exp {
            digits.push('0');
        }
        let v: i64 = digits.parse().map_err(|_| MoneyError::Overflow)?;
        Ok(Self { minor: if neg { -v } else { v }, currency })
    }

    /// For channel payloads that carry JSON numbers (WhatsApp `item_price`, WooCommerce):
    /// the number's shortest decimal form is parsed exactly, then rounded half-up to minor units.
    pub fn from_json_number(n: &serde_json::Number, currency: Currency) -> Result<Self, MoneyError> {
        let text = n.to_string();
        match Self::parse_decimal(&text, currency) {
            Ok(m) => Ok(m),
            Err(MoneyError::TooPrecise(..)) => {
                let f = n.as_f64().ok_or_else(|| MoneyError::BadAmount(text.clone()))?;
                let scaled = (f * 10f64.powi(currency.exponent() as i32)).round();
                if !scaled.is_finite() || scaled.abs() > 9.0e15 {
                    return Err(MoneyError::Overflow);
                }
                Ok(Self { minor: scaled as i64, currency })
            }
            Err(e) => Err(e),
        }
    }

    /// Plain decimal form, e.g. `12.50`.
    pub fn decimal_string(&self) -> String {
        let exp = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let p = 10u64.pow(exp);
        format!("{sign}{}.{:0width$}", abs / p, abs % p, width = exp as usize)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.decimal_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").unwrap()
    }

    #[test]
    fn parses_decimal_strings_exactly() {
        assert_eq!(Money::parse_decimal("89.99", eur()).unwrap().minor, 8999);
        assert_eq!(Money::parse_decimal("5", eur()).unwrap().minor, 500);
        assert_eq!(Money::parse_decimal("0.1", eur()).unwrap().minor, 10);
        assert_eq!(Money::parse_decimal("12.500", eur()).unwrap().minor, 1250);
        assert_eq!(Money::parse_decimal("-3.05", eur()).unwrap().minor, -305);
        assert_eq!(Money::parse_decimal("1200", Currency::parse("JPY").unwrap()).unwrap().minor, 1200);
        assert!(matches!(Money::parse_decimal("1.234", eur()), Err(MoneyError::TooPrecise(..))));
        assert!(Money::parse_decimal("abc", eur()).is_err());
        assert!(Money::parse_decimal("", eur()).is_err());
        assert!(Money::parse_decimal("99999999999999999999", eur()).is_err());
    }

    #[test]
    fn json_numbers_round_to_minor_units() {
        let n: serde_json::Number = serde_json::from_str("30").unwrap();
        assert_eq!(Money::from_json_number(&n, eur()).unwrap().minor, 3000);
        let n: serde_json::Number = serde_json::from_str("19.99").unwrap();
        assert_eq!(Money::from_json_number(&n, eur()).unwrap().minor, 1999);
        let n: serde_json::Number = serde_json::from_str("0.105").unwrap();
        assert_eq!(Money::from_json_number(&n, eur()).unwrap().minor, 11);
    }

    #[test]
    fn formats() {
        assert_eq!(Money::new(1250, eur()).to_string(), "12.50 EUR");
        assert_eq!(Money::new(-5, eur()).decimal_string(), "-0.05");
        assert!(Currency::parse("EURO").is_err());
    }
}
