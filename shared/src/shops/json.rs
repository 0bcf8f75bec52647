//! JSON field readers shared by the Shopify and WooCommerce mappers: ids as `u64` (never via
//! `f64`), money from a decimal string or a JSON number, trimmed optional text, phones, countries.
use super::event::ShopParseError;
use crate::domain::{Currency, Money};
use serde_json::Value;

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> ShopParseError {
    ShopParseError::Invalid { field, reason: reason.into() }
}

pub(super) fn field<'v>(v: Option<&'v Value>, key: &str) -> Option<&'v Value> {
    v.and_then(|v| v.get(key))
}

/// The object elements of an optional array.
pub(super) fn objects(v: Option<&Value>) -> impl Iterator<Item = &Value> + Clone {
    v.and_then(Value::as_array).into_iter().flatten().filter(|v| v.is_object())
}

/// A trimmed, non-empty string.
pub(super) fn text(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

const NOT_AN_ID: &str = "is not an id (expected an unsigned integer or a string of digits)";

/// An id: a JSON integer read as `u64` directly (never via `f64`) or a numeric string.
pub(super) fn opt_id(v: Option<&Value>, field: &'static str) -> Result<Option<u64>, ShopParseError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| invalid(field, NOT_AN_ID)),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid(field, NOT_AN_ID)),
        Some(_) => Err(invalid(field, "not a number or string")),
    }
}

pub(super) fn id(v: Option<&Value>, field: &'static str) -> Result<u64, ShopParseError> {
    opt_id(v, field)?.ok_or(ShopParseError::Missing(field))
}

pub(super) fn currency(v: Option<&Value>) -> Result<Currency, ShopParseError> {
    let code = text(v).ok_or(ShopParseError::Missing("currency"))?;
    Currency::parse(&code).map_err(|e| invalid("currency", e.to_string()))
}

/// A decimal string (`"89.99"`, exact) or a JSON number (`42.016807`, rounded half-up).
pub(super) fn money(
    v: Option<&Value>,
    currency: Currency,
    field: &'static str,
) -> Result<Option<Money>, ShopParseError> {
    let parsed = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => Money::parse_decimal(s, currency),
        Some(Value::Number(n)) => Money::from_json_number(n, currency),
        Some(_) => return Err(invalid(field, "not an amount")),
    };
    parsed.map(Some).map_err(|e| invalid(field, e.to_string()))
}

/// A listed line is at least one unit when the quantity is missing or unusable.
pub(super) fn quantity(v: Option<&Value>) -> u32 {
    opt_id(v, "quantity").ok().flatten().and_then(|q| u32::try_from(q).ok()).unwrap_or(1)
}

/// Adds a phone unless empty or already listed (compared by its digits, letters and `+`).
pub(super) fn push_phone(phones: &mut Vec<String>, v: Option<&Value>) {
    let key = |s: &str| s.chars().filter(|c| c.is_alphanumeric() || *c == '+').collect::<String>();
    if let Some(phone) = text(v) {
        if phones.iter().all(|p| key(p) != key(&phone)) {
            phones.push(phone);
        }
    }
}

pub(super) fn country(v: Option<&Value>) -> Option<String> {
    text(v).map(|c| c.to_ascii_uppercase())
}
