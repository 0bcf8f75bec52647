//! Tolerant parser for Meta webhook deliveries: WhatsApp Cloud API (`whatsapp_business_account`),
//! Messenger (`page`) and Instagram (`instagram`).
//!
//! Meta batches up to 1000 updates per delivery and adds fields and message types without notice.
//! A WhatsApp delivery of the usual shape is read in one pass into borrowed typed structs
//! ([`fast`]); anything else — Messenger and Instagram, and any delivery with an odd item — is
//! read the tolerant way below: every entry, change, message and status on its own from a
//! `serde_json::Value`. One odd item becomes a [`Skipped`] record; it never costs its siblings.
//! Only a body that is not a JSON envelope at all fails the delivery.
use crate::domain::{
    AccountId, Address, Channel, ChannelError, ContactId, Currency, DeliveryState, E164Phone, InboundContent,
    InboundEvent, InboundMessage, InboundMessageId, Money, OrderItem, ParsedDelivery, PreferenceChange,
    ProviderMessageId, Skipped, StatusUpdate,
};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

mod fast;

#[derive(Debug, thiserror::Error)]
pub enum InboundParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object with an `object` field")]
    NotAnEnvelope,
}

/// Parses one webhook delivery body (the raw bytes whose signature was verified).
pub fn parse_delivery(body: &[u8]) -> Result<ParsedDelivery, InboundParseError> {
    match fast::parse(body) {
        Some(parsed) => Ok(parsed),
        None => parse_tolerant(body),
    }
}

/// The one-pass path alone (the fuzz target holds it to [`parse_tolerant`]).
pub(crate) fn parse_fast(body: &[u8]) -> Option<ParsedDelivery> {
    fast::parse(body)
}

/// Every item on its own from a `serde_json::Value`: what the fast path cannot take.
pub(crate) fn parse_tolerant(body: &[u8]) -> Result<ParsedDelivery, InboundParseError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| InboundParseError::NotJson(crate::privacy::describe_json_error(&e)))?;
    let object = match root.as_object().and_then(|o| o.get("object")) {
        None | Some(Value::Null) => return Err(InboundParseError::NotAnEnvelope),
        Some(object) => object,
    };
    let mut out = ParsedDelivery::default();
    match object.as_str() {
        Some("whatsapp_business_account") => for_each_entry(&root, &mut out, whatsapp_entry),
        Some("page") => for_each_entry(&root, &mut out, |e, out| social_entry(Channel::Messenger, e, out)),
        Some("instagram") => for_each_entry(&root, &mut out, |e, out| social_entry(Channel::Instagram, e, out)),
        // Other Graph subscriptions (`user`, `permissions`, …) may share the callback URL.
        _ => out.skipped.push(skip("object:unknown", format!("object {} is not a messaging channel", token(object)))),
    }
    Ok(out)
}

/// An unknown protocol value (`"user"`, `"deleted"`) is worth showing in a skip reason; anything
/// else a body carries there may be personal data and is shown only as its kind.
fn token_str(v: &str) -> String {
    if !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        format!("`{v}`")
    } else {
        "(an unexpected value)".to_string()
    }
}

fn token(v: &Value) -> String {
    v.as_str().map(token_str).unwrap_or_else(|| format!("(a {})", type_name(v)))
}

fn skip(what: impl Into<String>, reason: impl Into<String>) -> Skipped {
    Skipped { what: what.into(), reason: reason.into() }
}

fn for_each_entry(root: &Value, out: &mut ParsedDelivery, mut handle: impl FnMut(&Value, &mut ParsedDelivery)) {
    for entry in array(root, "entry", out) {
        handle(entry, out);
    }
}

/// The array under `key`, or nothing. A present but non-array value is recorded as malformed.
fn array<'v>(v: &'v Value, key: &str, out: &mut ParsedDelivery) -> &'v [Value] {
    match v.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(other) => {
            out.skipped
                .push(skip(format!("{key}:malformed"), format!("`{key}` is not an array: {}", type_name(other))));
            &[]
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Deserializes an optional sub-value into a lenient typed struct; the error is a skip reason.
fn typed<T: DeserializeOwned>(v: Option<&Value>, what: &str) -> Result<T, String> {
    match v {
        None | Some(Value::Null) => Err(format!("missing `{what}`")),
        Some(v) => T::deserialize(v).map_err(|e| format!("`{what}`: {}", crate::privacy::describe_json_error(&e))),
    }
}

/// An id-like scalar. Meta sends ids as strings, but test tools and older payloads send integers;
/// accepting both is cheaper than losing the item.
#[derive(Debug, Clone, PartialEq)]
struct Lenient(String);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient, E> {
                Ok(Lenient(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Lenient, E> {
                Ok(Lenient(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Unix time as Meta sends it: a string of seconds (WhatsApp) or a number of milliseconds
/// (Messenger/Instagram; their docs' own postback example uses seconds). Normalised to seconds.
#[derive(Debug, Clone, Copy)]
struct Epoch(i64);

impl Epoch {
    /// Anything above 10^11 seconds (year 5138) can only be milliseconds.
    fn seconds(self) -> i64 {
        if self.0.abs() >= 100_000_000_000 {
            self.0 / 1000
        } else {
            self.0
        }
    }
}

impl<'de> Deserialize<'de> for Epoch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Epoch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("unix time as an integer or a string of digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Epoch, E> {
                v.trim().parse().map(Epoch).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Epoch, E> {
                i64::try_from(v).map(Epoch).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Epoch, E> {
                Ok(Epoch(v))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// WhatsApp Cloud API
// ---------------------------------------------------------------------------------------------

fn whatsapp_entry(entry: &Value, out: &mut ParsedDelivery) {
    if entry.get("changes").is_none() {
        out.skipped.push(skip("entry:malformed", "whatsapp entry without `changes`"));
        return;
    }
    for change in array(entry, "changes", out) {
        let value = change.get("value").filter(|v| v.is_object());
        match (change.get("field").and_then(Value::as_str), value) {
            (Some("messages"), Some(value)) => wa_messages(value, out),
            (Some("user_preferences"), Some(value)) => wa_preferences(value, out),
            (Some(field @ ("messages" | "user_preferences")), None) => {
                out.skipped.push(skip("change:malformed", format!("`{field}` change without an object `value`")))
            }
            (Some(field), _) => out.skipped.push(skip(format!("change:{field}"), "field not handled")),
            (None, _) => out.skipped.push(skip("change:malformed", "change without `field`")),
        }
    }
}

#[derive(Deserialize)]
struct WaMetadata {
    phone_number_id: Lenient,
}

/// The business phone that received the change: routing uses `phone_number_id`, never the display number.
fn wa_account(value: &Value) -> Result<AccountId, String> {
    let meta: WaMetadata = typed(value.get("metadata"), "metadata")?;
    AccountId::parse(meta.phone_number_id.0).map_err(|e| format!("metadata.phone_number_id: {e}"))
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: Option<Lenient>,
    user_id: Option<Lenient>,
    profile: Option<WaProfile>,
}

#[derive(Deserialize)]
struct WaProfile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct WaMessageHead {
    id: String,
    from: Option<Lenient>,
    /// Business-scoped user id; sent instead of `from` for users who hide their phone number.
    from_user_id: Option<Lenient>,
    timestamp: Epoch,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct WaStatus {
    id: String,
    status: String,
    timestamp: Epoch,
    recipient_id: Option<Lenient>,
    recipient_user_id: Option<Lenient>,
    errors: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct WaError {
    code: i64,
    title: Option<String>,
}

fn wa_messages(value: &Value, out: &mut ParsedDelivery) {
    let account = match wa_account(value) {
        Ok(account) => account,
        Err(reason) => {
            // Without the receiving account nothing in the change can be routed; say what was lost.
            let count = |key| value.get(key).and_then(Value::as_array).map_or(0, Vec::len);
            let lost = format!("{reason} ({} messages, {} statuses dropped)", count("messages"), count("statuses"));
            out.skipped.push(skip("change:malformed", lost));
            return;
        }
    };
    let mut contacts = Vec::new();
    for c in array(value, "contacts", out) {
        match WaContact::deserialize(c) {
            Ok(c) => contacts.push(c),
            Err(e) => out.skipped.push(skip("contact:malformed", crate::privacy::describe_json_error(&e))),
        }
    }
    for m in array(value, "messages", out) {
        match wa_message(m, &account, &contacts) {
            Ok(msg) => out.events.push(InboundEvent::Message(msg)),
            Err(s) => out.skipped.push(s),
        }
    }
    for s in array(value, "statuses", out) {
        match wa_status(s, &account) {
            Ok(status) => out.events.push(InboundEvent::Status(status)),
            Err(s) => out.skipped.push(s),
        }
    }
    // System-level errors (e.g. 131000 for the whole app) carry no message to attach them to.
    let errors = array(value, "errors", out);
    if !errors.is_empty() {
        let codes: Vec<String> = errors
            .iter()
            .map(|e| match WaError::deserialize(e) {
                Ok(WaError { code, title: Some(title) }) => format!("{code} ({title})"),
                Ok(WaError { code, title: None }) => code.to_string(),
                Err(_) => "?".to_string(),
            })
            .collect();
        out.skipped.push(skip("errors", format!("system errors for {account}: {}", codes.join(", "))));
    }
}

/// The contact entry describing the sender: matched by id, or the only one if it doesn't conflict.
fn wa_sender_contact<'c>(
    contacts: &'c [WaContact],
    from: Option<&str>,
    from_user_id: Option<&str>,
) -> Option<&'c WaContact> {
    let same = |a: &Option<Lenient>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a.0 == b);
    let differs = |a: &Option<Lenient>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a.0 != b);
    contacts.iter().find(|c| same(&c.wa_id, from) || same(&c.user_id, from_user_id)).or(match contacts {
        [only] if !differs(&only.wa_id, from) && !differs(&only.user_id, from_user_id) => Some(only),
        _ => None,
    })
}

fn wa_message(m: &Value, account: &AccountId, contacts: &[WaContact]) -> Result<InboundMessage, Skipped> {
    let head = WaMessageHead::deserialize(m)
        .map_err(|e| skip("message:malformed", crate::privacy::describe_json_error(&e)))?;
    let malformed = |reason: String| skip("message:malformed", format!("{}: {reason}", head.id));
    let id = InboundMessageId::parse(head.id.as_str()).map_err(|e| malformed(e.to_string()))?;
    let from = head.from.as_ref().map(|f| f.0.as_str());
    let from_user_id = head.from_user_id.as_ref().map(|f| f.0.as_str());
    let address = from.or(from_user_id).ok_or_else(|| malformed("no `from` or `from_user_id`".into()))?;
    let address = Address::parse(address).map_err(|e| malformed(e.to_string()))?;

    let contact = wa_sender_contact(contacts, from, from_user_id);
    let profile_name = contact.and_then(|c| c.profile.as_ref()?.name.clone()).filter(|n| !n.is_empty());
    // `from` is a phone only for phone-identified users; a user id is never mistaken for one.
    let phone = from
        .and_then(E164Phone::from_digits)
        .or_else(|| contact.and_then(|c| E164Phone::from_digits(&c.wa_id.as_ref()?.0)));

    let content =
        wa_content(&head.kind, m).map_err(|e| Skipped { reason: format!("{}: {}", head.id, e.reason), ..e })?;
    Ok(InboundMessage {
        id,
        account: account.clone(),
        contact: ContactId::new(Channel::WhatsApp, address),
        profile_name,
        phone,
        timestamp: head.timestamp.seconds(),
        content,
    })
}

#[derive(Deserialize)]
struct WaText {
    body: String,
}

#[derive(Deserialize)]
struct WaInteractive {
    #[serde(rename = "type")]
    kind: Option<String>,
    button_reply: Option<WaReply>,
    list_reply: Option<WaReply>,
}

#[derive(Deserialize)]
struct WaReply {
    id: String,
    title: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct WaButton {
    payload: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct WaOrder {
    catalog_id: Option<Lenient>,
    text: Option<String>,
    product_items: Vec<WaProductItem>,
}

#[derive(Deserialize)]
struct WaProductItem {
    product_retailer_id: Lenient,
    quantity: u32,
    item_price: Option<Value>,
    currency: Option<String>,
}

#[derive(Deserialize, Default)]
struct WaMedia {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    caption: Option<String>,
}

#[derive(Deserialize)]
struct WaLocation {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
}

#[derive(Deserialize)]
struct WaReaction {
    emoji: Option<String>,
}

/// Maps a message's type-specific object (it lives under a key named after `type`).
fn wa_content(kind: &str, m: &Value) -> Result<InboundContent, Skipped> {
    let body = m.get(kind);
    let malformed = |reason: String| skip("message:malformed", reason);
    Ok(match kind {
        "text" => InboundContent::Text { body: typed::<WaText>(body, kind).map_err(malformed)?.body },
        "interactive" => {
            let i: WaInteractive = typed(body, kind).map_err(malformed)?;
            match (i.button_reply, i.list_reply) {
                (Some(r), _) => InboundContent::Button { payload: r.id, title: r.title.unwrap_or_default() },
                (None, Some(r)) => InboundContent::ListReply {
                    id: r.id,
                    title: r.title.unwrap_or_default(),
                    description: r.description,
                },
                // Flow responses (`nfm_reply`) and future interactive replies.
                (None, None) => InboundContent::Unsupported {
                    type_name: format!("interactive.{}", i.kind.as_deref().unwrap_or("unknown")),
                },
            }
        }
        "button" => {
            let b: WaButton = typed(body, kind).map_err(malformed)?;
            // A template button without a developer payload reports its label as the payload.
            let payload =
                b.payload.or_else(|| b.text.clone()).ok_or_else(|| malformed("button without payload".into()))?;
            InboundContent::Button { payload, title: b.text.unwrap_or_default() }
        }
        "order" => wa_order(typed(body, kind).map_err(malformed)?).map_err(malformed)?,
        "location" => {
            let l: WaLocation = typed(body, kind).map_err(malformed)?;
            InboundContent::Location { latitude: l.latitude, longitude: l.longitude, name: l.name }
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            // The media object is only a reference: a message without one is still a message.
            let m: WaMedia = typed(body, kind).unwrap_or_default();
            InboundContent::Media {
                media_kind: kind.to_owned(),
                media_id: m.id.filter(|i| !i.is_empty()),
                caption: m.caption.filter(|c| !c.is_empty()),
            }
        }
        "reaction" => {
            let r: WaReaction = typed(body, kind).map_err(malformed)?;
            match r.emoji.filter(|e| !e.is_empty()) {
                Some(emoji) => InboundContent::Reaction { emoji },
                // An empty emoji means the user removed their reaction: nothing to answer.
                None => return Err(skip("reaction:removed", "reaction without emoji")),
            }
        }
        other => InboundContent::Unsupported { type_name: other.to_owned() },
    })
}

fn wa_order(order: WaOrder) -> Result<InboundContent, String> {
    if order.product_items.is_empty() {
        return Err("order without product_items".into());
    }
    let items = order
        .product_items
        .into_iter()
        .map(|item| OrderItem {
            retailer_id: item.product_retailer_id.0,
            quantity: item.quantity,
            unit_price: order_price(item.item_price.as_ref(), item.currency.as_deref()),
        })
        .collect();
    Ok(InboundContent::Order {
        catalog_id: order.catalog_id.map(|c| c.0),
        items,
        note: order.text.filter(|t| !t.trim().is_empty()),
    })
}

/// `item_price` is a JSON float; an unreadable price is dropped (the shop re-prices), not the cart.
fn order_price(price: Option<&Value>, currency: Option<&str>) -> Option<Money> {
    let currency = Currency::parse(currency?).ok()?;
    match price? {
        Value::Number(n) => Money::from_json_number(n, currency).ok(),
        Value::String(s) => Money::parse_decimal(s, currency).ok(),
        _ => None,
    }
}

fn wa_status(s: &Value, account: &AccountId) -> Result<StatusUpdate, Skipped> {
    let st = WaStatus::deserialize(s).map_err(|e| skip("status:malformed", crate::privacy::describe_json_error(&e)))?;
    let provider_id =
        ProviderMessageId::parse(st.id.as_str()).map_err(|e| skip("status:malformed", format!("status id: {e}")))?;
    let state = delivery_state(&st.id, &st.status)?;
    let errors = st
        .errors
        .unwrap_or_default()
        .iter()
        .filter_map(|e| WaError::deserialize(e).ok())
        .map(|e| ChannelError { code: e.code, title: e.title })
        .collect();
    Ok(StatusUpdate {
        provider_id,
        account: account.clone(),
        state,
        recipient: st.recipient_id.or(st.recipient_user_id).map(|r| r.0),
        timestamp: st.timestamp.seconds(),
        errors,
    })
}

fn delivery_state(id: &str, status: &str) -> Result<DeliveryState, Skipped> {
    Ok(match status {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        // `played` is a voice message's read receipt.
        "read" | "played" => DeliveryState::Read,
        "failed" => DeliveryState::Failed,
        other => return Err(skip("status:unknown_value", format!("{id}: status {}", token_str(other)))),
    })
}

/// A preference change's `value`: `true` for an opt-out.
fn preference_stop(value: &str) -> Result<bool, Skipped> {
    match value.to_ascii_lowercase().as_str() {
        "stop" => Ok(true),
        "resume" => Ok(false),
        other => Err(skip("preference:unknown_value", format!("value {}", token_str(other)))),
    }
}

#[derive(Deserialize)]
struct WaPreference {
    wa_id: Option<Lenient>,
    user_id: Option<Lenient>,
    category: Option<String>,
    value: String,
    timestamp: Epoch,
}

fn wa_preferences(value: &Value, out: &mut ParsedDelivery) {
    let account = match wa_account(value) {
        Ok(account) => account,
        Err(reason) => {
            out.skipped.push(skip("change:malformed", reason));
            return;
        }
    };
    for p in array(value, "user_preferences", out) {
        match wa_preference(p, &account) {
            Ok(change) => out.events.push(InboundEvent::Preference(change)),
            Err(s) => out.skipped.push(s),
        }
    }
}

fn wa_preference(p: &Value, account: &AccountId) -> Result<PreferenceChange, Skipped> {
    let malformed = |reason: String| skip("preference:malformed", reason);
    let p = WaPreference::deserialize(p).map_err(|e| malformed(crate::privacy::describe_json_error(&e)))?;
    let address = p.wa_id.or(p.user_id).ok_or_else(|| malformed("no `wa_id` or `user_id`".into()))?;
    let address = Address::parse(address.0).map_err(|e| malformed(e.to_string()))?;
    let stop = preference_stop(&p.value)?;
    Ok(PreferenceChange {
        account: account.clone(),
        contact: ContactId::new(Channel::WhatsApp, address),
        // The only category Meta documents; an opt-out must not be lost over a missing label.
        category: p.category.unwrap_or_else(|| "marketing_messages".to_owned()),
        stop,
        timestamp: p.timestamp.seconds(),
    })
}

// ---------------------------------------------------------------------------------------------
// Messenger and Instagram
// ---------------------------------------------------------------------------------------------

fn social_entry(channel: Channel, entry: &Value, out: &mut ParsedDelivery) {
    let account = match typed::<Lenient>(entry.get("id"), "id")
        .and_then(|id| AccountId::parse(id.0).map_err(|e| e.to_string()))
    {
        Ok(account) => account,
        Err(reason) => {
            out.skipped.push(skip("entry:malformed", reason));
            return;
        }
    };
    for ev in array(entry, "messaging", out) {
        push_social(social_event(channel, &account, ev), out);
    }
    // Handover protocol: another app owns these threads, so we must stay silent.
    for _ in array(entry, "standby", out) {
        out.skipped.push(skip("standby", format!("{channel} {account}: not the thread owner")));
    }
    // Instagram's dashboard "Test" button wraps a messaging event as a `messages` change.
    for change in array(entry, "changes", out) {
        match (change.get("field").and_then(Value::as_str), change.get("value")) {
            (Some("messages"), Some(value)) => push_social(social_event(channel, &account, value), out),
            (Some(field), _) => out.skipped.push(skip(format!("change:{field}"), "field not handled")),
            (None, _) => out.skipped.push(skip("change:malformed", "change without `field`")),
        }
    }
}

fn push_social(result: Result<InboundEvent, Skipped>, out: &mut ParsedDelivery) {
    match result {
        Ok(ev) => out.events.push(ev),
        Err(s) => out.skipped.push(s),
    }
}

#[derive(Deserialize)]
struct Party {
    id: Lenient,
}

#[derive(Deserialize)]
struct SocialMessage {
    mid: Option<String>,
    text: Option<String>,
    is_echo: Option<bool>,
    is_deleted: Option<bool>,
    is_unsupported: Option<bool>,
    quick_reply: Option<QuickReply>,
    attachments: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct QuickReply {
    payload: String,
}

#[derive(Deserialize)]
struct Postback {
    mid: Option<String>,
    title: Option<String>,
    payload: Option<String>,
}

#[derive(Deserialize)]
struct Coordinates {
    lat: f64,
    long: f64,
}

fn party(ev: &Value, key: &str) -> Result<Address, String> {
    let p: Party = typed(ev.get(key), key)?;
    Address::parse(p.id.0).map_err(|e| format!("{key}.id: {e}"))
}

fn social_event(channel: Channel, account: &AccountId, ev: &Value) -> Result<InboundEvent, Skipped> {
    let malformed = |reason: String| skip("message:malformed", reason);
    if let Some(message) = ev.get("message") {
        let m: SocialMessage = typed(Some(message), "message").map_err(malformed)?;
        if m.is_echo == Some(true) {
            // What the page sent (bot or human agent); sender and recipient are swapped.
            let is_release = m.text.as_deref().is_some_and(|t| t.trim().eq_ignore_ascii_case("#bot"));
            if !is_release {
                return Err(skip("echo", format!("{channel} echo {}", m.mid.as_deref().unwrap_or("-"))));
            }
            let contact = party(ev, "recipient").map_err(|e| skip("echo:malformed", e))?;
            return Ok(InboundEvent::AgentRelease {
                account: account.clone(),
                contact: ContactId::new(channel, contact),
            });
        }
        if m.is_deleted == Some(true) {
            return Err(skip("message:deleted", format!("{channel} message {}", m.mid.as_deref().unwrap_or("-"))));
        }
        let mid = m.mid.clone().ok_or_else(|| malformed("message without `mid`".into()))?;
        let content = social_content(m);
        return social_message(channel, account, ev, &mid, content);
    }
    if let Some(postback) = ev.get("postback") {
        let pb: Postback = typed(Some(postback), "postback").map_err(malformed)?;
        let payload = pb.payload.ok_or_else(|| malformed("postback without `payload`".into()))?;
        let mid = match pb.mid {
            Some(mid) => mid,
            // Postbacks from older menus lack a mid; sender + raw timestamp is stable across retries.
            None => {
                let sender = party(ev, "sender").map_err(malformed)?;
                let ts: Epoch = typed(ev.get("timestamp"), "timestamp").map_err(malformed)?;
                format!("pb.{sender}.{}", ts.0)
            }
        };
        let content = InboundContent::Button { payload, title: pb.title.unwrap_or_default() };
        return social_message(channel, account, ev, &mid, content);
    }
    let Some(obj) = ev.as_object() else {
        return Err(skip("event:malformed", format!("messaging event is {}", type_name(ev))));
    };
    let kind = obj.keys().find(|k| !matches!(k.as_str(), "sender" | "recipient" | "timestamp"));
    Err(match kind.map(String::as_str) {
        Some(k @ ("read" | "delivery" | "reaction")) => skip(k, format!("{channel} {k} event")),
        Some(k) => skip(format!("event:{k}"), format!("{channel} event not handled")),
        None => skip("event:malformed", "messaging event without a payload"),
    })
}

fn social_content(m: SocialMessage) -> InboundContent {
    if let Some(qr) = m.quick_reply {
        return InboundContent::Button { payload: qr.payload, title: m.text.unwrap_or_default() };
    }
    if let Some(body) = m.text.filter(|t| !t.is_empty()) {
        return InboundContent::Text { body };
    }
    if let Some(first) = m.attachments.as_deref().and_then(<[Value]>::first) {
        let kind = first.get("type").and_then(Value::as_str);
        let coords = first.pointer("/payload/coordinates").and_then(|c| Coordinates::deserialize(c).ok());
        if let Some(c) = coords {
            let name = first.get("title").and_then(Value::as_str).map(str::to_owned);
            return InboundContent::Location { latitude: c.lat, longitude: c.long, name };
        }
        return match kind {
            Some(kind) => InboundContent::Media { media_kind: kind.to_owned(), media_id: None, caption: None },
            None => InboundContent::Unsupported { type_name: "attachment".into() },
        };
    }
    let type_name = if m.is_unsupported == Some(true) { "unsupported" } else { "message" };
    InboundContent::Unsupported { type_name: type_name.into() }
}

fn social_message(
    channel: Channel,
    account: &AccountId,
    ev: &Value,
    mid: &str,
    content: InboundContent,
) -> Result<InboundEvent, Skipped> {
    let malformed = |reason: String| skip("message:malformed", format!("{mid}: {reason}"));
    let id = InboundMessageId::parse(mid).map_err(|e| malformed(e.to_string()))?;
    let sender = party(ev, "sender").map_err(malformed)?;
    let ts: Epoch = typed(ev.get("timestamp"), "timestamp").map_err(malformed)?;
    Ok(InboundEvent::Message(InboundMessage {
        id,
        account: account.clone(),
        contact: ContactId::new(channel, sender),
        // Messenger/Instagram webhooks carry neither a name nor a phone.
        profile_name: None,
        phone: None,
        timestamp: ts.seconds(),
        content,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WA_ACCOUNT: &str = "100000000000001";
    const WA_ID: &str = "4915123456789";
    const PAGE: &str = "200000000000001";
    const PSID: &str = "7100000000000001";
    const IG_ACCOUNT: &str = "300000000000001";
    const IGSID: &str = "8100000000000001";

    /// Parses `body`, holding the fast path to the tolerant one: where it answers, it answers
    /// exactly the same.
    fn parse(body: &[u8]) -> ParsedDelivery {
        let tolerant = parse_tolerant(body).expect("delivery parses");
        if let Some(fast) = fast::parse(body) {
            assert_eq!(fast, tolerant, "the fast path differs from the tolerant one");
        }
        parse_delivery(body).expect("delivery parses")
    }

    /// Found by fuzzing: invalid UTF-8 inside a key the typed structs ignore passed the fast
    /// path, while the tolerant parser refuses the body as not JSON. Both refuse it now.
    #[test]
    fn invalid_utf8_in_an_ignored_key_is_not_json_on_both_paths() {
        let mut body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone"#.to_vec();
        body.extend_from_slice(&[0xda, 0xda]);
        body.extend_from_slice(br#"_number_id":"1"}}}]}]}"#);
        assert!(fast::parse(&body).is_none());
        assert!(matches!(parse_delivery(&body), Err(InboundParseError::NotJson(_))));
        // Found next: a lone surrogate escape in a string the fast path skips.
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","x":"\ud800"}]}"#;
        assert!(fast::parse(body).is_none());
        assert!(matches!(parse_delivery(body), Err(InboundParseError::NotJson(_))));
    }

    fn messages(d: &ParsedDelivery) -> Vec<&InboundMessage> {
        d.events
            .iter()
            .filter_map(|e| match e {
                InboundEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn only_message(d: &ParsedDelivery) -> &InboundMessage {
        assert_eq!(d.events.len(), 1, "expected exactly one event: {d:?}");
        assert!(d.skipped.is_empty(), "unexpected skips: {:?}", d.skipped);
        messages(d)[0]
    }

    fn only_status(d: &ParsedDelivery) -> &StatusUpdate {
        assert_eq!(d.events.len(), 1, "expected exactly one event: {d:?}");
        match &d.events[0] {
            InboundEvent::Status(s) => s,
            other => panic!("expected a status, got {other:?}"),
        }
    }

    fn skipped_whats(d: &ParsedDelivery) -> Vec<&str> {
        d.skipped.iter().map(|s| s.what.as_str()).collect()
    }

    fn wa_contact() -> ContactId {
        ContactId::new(Channel::WhatsApp, Address::parse(WA_ID).unwrap())
    }

    fn usd(minor: i64) -> Option<Money> {
        Some(Money::new(minor, Currency::parse("USD").unwrap()))
    }

    /// A WhatsApp delivery with one `messages` change carrying `value` (metadata added).
    fn wa_delivery(mut value: Value) -> Vec<u8> {
        value["messaging_product"] = json!("whatsapp");
        if value.get("metadata").is_none() {
            value["metadata"] = json!({"display_phone_number": "15550000001", "phone_number_id": WA_ACCOUNT});
        }
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "900000000000001", "changes": [{"field": "messages", "value": value}]}]
        });
        serde_json::to_vec(&body).unwrap()
    }

    fn wa_text(id: &str, from: &str, body: &str) -> Value {
        json!({"from": from, "id": id, "timestamp": "1767268800", "type": "text", "text": {"body": body}})
    }

    fn page_delivery(object: &str, entry_id: &str, messaging: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": object,
            "entry": [{"id": entry_id, "time": 1767270600123_i64, "messaging": messaging}]
        }))
        .unwrap()
    }

    // --- WhatsApp fixtures -------------------------------------------------------------------

    #[test]
    fn whatsapp_text_decodes_escaped_unicode_and_surrogate_pair_emoji() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_text.json"));
        let expected = InboundMessage {
            id: InboundMessageId::parse("wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABIYFjNFQjBBMUIyQzNENEU1RjZBN0I4QzkA").unwrap(),
            account: AccountId::parse(WA_ACCOUNT).unwrap(),
            contact: wa_contact(),
            profile_name: Some("Jürgen Müller".into()),
            phone: E164Phone::from_digits("+4915123456789"),
            timestamp: 1767268800,
            content: InboundContent::Text { body: "Hallo! Habt ihr das in Größe M? äöå 😀".into() },
        };
        assert_eq!(only_message(&d), &expected);
        // The fixture spells these as `\u` escapes: the emoji must be one scalar value, not two halves.
        let raw = include_str!("../../../../events/meta/whatsapp_text.json");
        assert!(raw.is_ascii() && raw.contains(r"\ud83d\ude00") && raw.contains(r"\u00e4\u00f6\u00e5"));
        let InboundContent::Text { body } = &only_message(&d).content else { panic!("not text") };
        assert_eq!(body.chars().last(), Some('\u{1F600}'));
    }

    #[test]
    fn whatsapp_button_reply() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_button_reply.json"));
        let m = only_message(&d);
        assert_eq!(m.content, InboundContent::Button { payload: "order:status".into(), title: "Order status".into() });
        assert_eq!(m.profile_name.as_deref(), Some("Anna Schmidt"));
        assert_eq!(m.timestamp, 1767268860);
    }

    #[test]
    fn whatsapp_list_reply() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_list_reply.json"));
        assert_eq!(
            only_message(&d).content,
            InboundContent::ListReply {
                id: "size:m".into(),
                title: "Size M".into(),
                description: Some("Chest 96–101 cm".into())
            }
        );
    }

    #[test]
    fn whatsapp_template_quick_reply_button() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_template_button.json"));
        assert_eq!(
            only_message(&d).content,
            InboundContent::Button { payload: "track:1001".into(), title: "Track my order".into() }
        );
    }

    #[test]
    fn whatsapp_order_float_prices_become_exact_minor_units() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_order.json"));
        let expected = InboundContent::Order {
            catalog_id: Some("194836987003835".into()),
            items: vec![
                OrderItem { retailer_id: "di9ozbzfi4".into(), quantity: 2, unit_price: usd(3000) },
                OrderItem { retailer_id: "nqryix03ez".into(), quantity: 1, unit_price: usd(1999) },
            ],
            note: Some("Please gift-wrap the mug".into()),
        };
        assert_eq!(only_message(&d).content, expected);
    }

    #[test]
    fn whatsapp_order_empty_text_is_no_note_and_bad_price_keeps_the_item() {
        let order = json!({"from": WA_ID, "id": "wamid.O1", "timestamp": "1767269040", "type": "order",
            "order": {"catalog_id": "194836987003835", "text": "", "product_items": [
                {"product_retailer_id": "a", "quantity": 1, "item_price": "12.5", "currency": "EUR"},
                {"product_retailer_id": "b", "quantity": 3, "item_price": 4.5, "currency": "euro"}]}});
        let d = parse(&wa_delivery(json!({"messages": [order]})));
        let InboundContent::Order { items, note, .. } = &only_message(&d).content else { panic!("not an order") };
        assert_eq!(note, &None);
        assert_eq!(items[0].unit_price, Some(Money::new(1250, Currency::parse("EUR").unwrap())));
        assert_eq!((items[1].retailer_id.as_str(), items[1].quantity, items[1].unit_price), ("b", 3, None));
    }

    #[test]
    fn whatsapp_location() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_location.json"));
        assert_eq!(
            only_message(&d).content,
            InboundContent::Location { latitude: 52.520008, longitude: 13.404954, name: Some("Alexanderplatz".into()) }
        );
    }

    #[test]
    fn whatsapp_image_is_media() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_image.json"));
        // The media stays a reference (its id) with the caption the customer typed.
        assert_eq!(
            only_message(&d).content,
            InboundContent::Media {
                media_kind: "image".into(),
                media_id: Some("1234567890123456".into()),
                caption: Some("This one, but in blue".into())
            }
        );
    }

    #[test]
    fn whatsapp_unknown_types_are_kept_as_unsupported() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_unknown_type.json"));
        let kinds: Vec<_> = messages(&d).iter().map(|m| m.content.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                InboundContent::Unsupported { type_name: "unsupported".into() },
                InboundContent::Unsupported { type_name: "hologram".into() },
            ]
        );
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    }

    #[test]
    fn whatsapp_status_delivered() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_status_delivered.json"));
        let expected = StatusUpdate {
            provider_id: ProviderMessageId::parse("wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABEYEjQ1QzVBNUE0QjNCMkE2OTk3MQA=")
                .unwrap(),
            account: AccountId::parse(WA_ACCOUNT).unwrap(),
            state: DeliveryState::Delivered,
            recipient: Some(WA_ID.into()),
            timestamp: 1767269280,
            errors: vec![],
        };
        assert_eq!(only_status(&d), &expected);
    }

    #[test]
    fn whatsapp_status_failed_carries_error_code() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_status_failed_131047.json"));
        let s = only_status(&d);
        assert_eq!(s.state, DeliveryState::Failed);
        assert_eq!(s.errors, vec![ChannelError { code: 131047, title: Some("Re-engagement message".into()) }]);
        assert_eq!(s.timestamp, 1767355680);
    }

    #[test]
    fn whatsapp_user_preferences_stop() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_user_preferences_stop.json"));
        let expected = InboundEvent::Preference(PreferenceChange {
            account: AccountId::parse(WA_ACCOUNT).unwrap(),
            contact: wa_contact(),
            category: "marketing_messages".into(),
            stop: true,
            timestamp: 1767269400,
        });
        assert_eq!(d.events, vec![expected]);
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn whatsapp_batch_keeps_every_message_and_status_in_order() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_batch.json"));
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        let summary: Vec<String> = d
            .events
            .iter()
            .map(|e| match e {
                InboundEvent::Message(m) => format!("msg:{}:{}", m.contact.address, m.content.kind_name()),
                InboundEvent::Status(s) => format!("status:{}", s.state.as_str()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "msg:4915123456789:text",
                "msg:436641234567:text",
                "msg:4915123456789:reaction",
                "status:sent",
                "status:delivered",
                "msg:4915123456789:media",
                "status:read",
                // `played` (voice message) counts as read.
                "status:read",
            ]
        );
        let msgs = messages(&d);
        // Each sender gets the name of *their* contact entry, not the first one.
        assert_eq!(msgs[1].profile_name.as_deref(), Some("Ben Gruber"));
        assert_eq!(msgs[1].phone.as_ref().map(E164Phone::as_str), Some("+436641234567"));
        assert_eq!(msgs[2].content, InboundContent::Reaction { emoji: "👍".into() });
    }

    #[test]
    fn whatsapp_user_id_sender_is_never_taken_for_a_phone() {
        let d = parse(include_bytes!("../../../../events/meta/whatsapp_text_bsuid.json"));
        let m = only_message(&d);
        assert_eq!(m.contact, ContactId::new(Channel::WhatsApp, Address::parse("US.13491208655302741918").unwrap()));
        assert_eq!(m.phone, None);
        assert_eq!(m.profile_name.as_deref(), Some("Kim"));
    }

    #[test]
    fn whatsapp_contact_wa_id_gives_phone_when_from_is_a_user_id() {
        let msg = json!({"from_user_id": "US.1349", "id": "wamid.U1", "timestamp": "1", "type": "text", "text": {"body": "hi"}});
        let contacts = json!([{"profile": {"name": "Kim"}, "wa_id": WA_ID, "user_id": "US.1349"}]);
        let d = parse(&wa_delivery(json!({"contacts": contacts, "messages": [msg]})));
        let m = only_message(&d);
        assert_eq!(m.contact.address.as_str(), "US.1349");
        assert_eq!(m.phone.as_ref().map(E164Phone::as_str), Some("+4915123456789"));
    }

    #[test]
    fn the_only_contact_names_the_sender_unless_its_id_conflicts() {
        let anonymous = json!([{"profile": {"name": "Anna"}}]);
        let d = parse(&wa_delivery(json!({"contacts": anonymous, "messages": [wa_text("wamid.A", WA_ID, "hi")]})));
        assert_eq!(only_message(&d).profile_name.as_deref(), Some("Anna"));

        let someone_else = json!([{"profile": {"name": "Ben"}, "wa_id": "436641234567"}]);
        let d = parse(&wa_delivery(json!({"contacts": someone_else, "messages": [wa_text("wamid.B", WA_ID, "hi")]})));
        let m = only_message(&d);
        assert_eq!(
            (m.profile_name.as_deref(), m.phone.as_ref().map(E164Phone::as_str)),
            (None, Some("+4915123456789"))
        );
    }

    // --- Contacts: looked up by id, never by scanning ------------------------------------------

    /// A text message from `from` with the given id.
    fn text_from(i: usize, from: &str) -> Value {
        wa_text(&format!("wamid.C{i}"), from, "hi")
    }

    #[test]
    fn each_of_a_thousand_senders_gets_its_own_contact_whatever_the_order() {
        let phones: Vec<String> = (0..1000).map(|i| format!("49151{i:08}")).collect();
        let msgs: Vec<Value> = phones.iter().enumerate().map(|(i, p)| text_from(i, p)).collect();
        // Contacts in another order than the messages (Meta promises none): every 7th, then reversed.
        let mut order: Vec<usize> = (0..1000).map(|i| (i * 7) % 1000).collect();
        order.reverse();
        let contacts: Vec<Value> =
            order.iter().map(|&i| json!({"profile": {"name": format!("Kundin {i}")}, "wa_id": phones[i]})).collect();
        let body = wa_delivery(json!({"contacts": contacts, "messages": msgs}));
        assert!(fast::parse(&body).is_some(), "a usual delivery takes the one-pass path");
        let d = parse(&body);
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        let msgs = messages(&d);
        assert_eq!(msgs.len(), 1000);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.profile_name.as_deref(), Some(format!("Kundin {i}").as_str()), "message {i}");
            assert_eq!(m.phone.as_ref().map(E164Phone::as_str), Some(format!("+{}", phones[i]).as_str()));
        }
    }

    #[test]
    fn a_duplicate_contact_keeps_the_first_and_an_absent_one_names_nobody() {
        let contacts = json!([
            {"profile": {"name": "Anna"}, "wa_id": WA_ID},
            {"profile": {"name": "Anders"}, "wa_id": WA_ID},
            {"profile": {"name": "Ben"}, "wa_id": "436641234567"},
        ]);
        let msgs = json!([text_from(1, "436641234567"), text_from(2, WA_ID), text_from(3, "4917600000001")]);
        let d = parse(&wa_delivery(json!({"contacts": contacts, "messages": msgs})));
        let names: Vec<_> = messages(&d).iter().map(|m| m.profile_name.clone()).collect();
        assert_eq!(names, [Some("Ben".into()), Some("Anna".into()), None]);
        // The sender without a contact entry still has the phone it wrote from.
        assert_eq!(messages(&d)[2].phone.as_ref().map(E164Phone::as_str), Some("+4917600000001"));
    }

    #[test]
    fn the_first_contact_matching_either_id_wins() {
        let by_user = json!({"profile": {"name": "By user id"}, "user_id": "US.1349"});
        let by_phone = json!({"profile": {"name": "By phone"}, "wa_id": WA_ID});
        let msg = json!({"from": WA_ID, "from_user_id": "US.1349", "id": "wamid.U1", "timestamp": "1",
            "type": "text", "text": {"body": "hi"}});
        for (contacts, want) in [(json!([by_user, by_phone]), "By user id"), (json!([by_phone, by_user]), "By phone")] {
            let d = parse(&wa_delivery(json!({"contacts": contacts, "messages": [msg.clone()]})));
            assert_eq!(only_message(&d).profile_name.as_deref(), Some(want));
        }
    }

    #[test]
    fn odd_shapes_leave_the_one_pass_path_and_are_read_the_tolerant_way() {
        let fixtures: [&[u8]; 6] = [
            include_bytes!("../../../../events/meta/whatsapp_text.json"),
            include_bytes!("../../../../events/meta/whatsapp_batch.json"),
            include_bytes!("../../../../events/meta/whatsapp_order.json"),
            include_bytes!("../../../../events/meta/whatsapp_status_failed_131047.json"),
            include_bytes!("../../../../events/meta/whatsapp_user_preferences_stop.json"),
            include_bytes!("../../../../events/meta/whatsapp_unknown_type.json"),
        ];
        for f in fixtures {
            assert!(fast::parse(f).is_some(), "{}", String::from_utf8_lossy(f));
        }
        // A duplicate key (the tolerant reader keeps the last), a malformed contact, a `null` list.
        let dup = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",
            "value":{"metadata":{"phone_number_id":"100000000000001"},"messages":[{"from":"4915123456789",
            "id":"wamid.FIRST","id":"wamid.LAST","timestamp":"1","type":"text","text":{"body":"hi"}}]}}]}]}"#;
        assert!(fast::parse(dup).is_none());
        assert_eq!(only_message(&parse(dup)).id.as_str(), "wamid.LAST");
        let bad_contact = wa_delivery(json!({"contacts": [{"wa_id": [1]}], "messages": [text_from(1, WA_ID)]}));
        assert!(fast::parse(&bad_contact).is_none());
        let d = parse(&bad_contact);
        assert_eq!((messages(&d).len(), skipped_whats(&d)), (1, vec!["contact:malformed"]));
        let null_changes = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":null}]}"#;
        assert!(fast::parse(null_changes).is_none());
        assert_eq!(
            parse(null_changes),
            ParsedDelivery::default(),
            "`null` changes are no changes, not a malformed entry"
        );
        // Messenger and Instagram are always read the tolerant way.
        assert!(fast::parse(include_bytes!("../../../../events/meta/messenger_text.json")).is_none());
    }

    #[test]
    fn deep_nesting_and_huge_texts_are_bounded() {
        let deep = format!(
            "{{\"object\":\"whatsapp_business_account\",\"entry\":{}{}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(parse_delivery(deep.as_bytes()), Err(InboundParseError::NotJson(_))));
        let long = "ä".repeat(500_000);
        let d = parse(&wa_delivery(json!({"messages": [wa_text("wamid.L", WA_ID, &long)]})));
        assert_eq!(only_message(&d).content, InboundContent::Text { body: long });
    }

    // --- Messenger / Instagram fixtures ------------------------------------------------------

    #[test]
    fn messenger_text_converts_millisecond_timestamps() {
        let d = parse(include_bytes!("../../../../events/meta/messenger_text.json"));
        let expected = InboundMessage {
            id: InboundMessageId::parse(
                "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
            )
            .unwrap(),
            account: AccountId::parse(PAGE).unwrap(),
            contact: ContactId::new(Channel::Messenger, Address::parse(PSID).unwrap()),
            profile_name: None,
            phone: None,
            timestamp: 1767270599,
            content: InboundContent::Text { body: "Hej! Har ni den här i storlek M? äöå".into() },
        };
        assert_eq!(only_message(&d), &expected);
    }

    #[test]
    fn messenger_quick_reply_is_a_button() {
        let d = parse(include_bytes!("../../../../events/meta/messenger_quick_reply.json"));
        assert_eq!(
            only_message(&d).content,
            InboundContent::Button { payload: "order:status".into(), title: "Order status".into() }
        );
    }

    #[test]
    fn messenger_postback_is_a_button_with_its_mid() {
        let d = parse(include_bytes!("../../../../events/meta/messenger_postback.json"));
        let m = only_message(&d);
        assert_eq!(m.content, InboundContent::Button { payload: "GET_STARTED".into(), title: "Get Started".into() });
        assert!(m.id.as_str().starts_with("m_Cz7yX6"));
        assert_eq!(m.timestamp, 1767270720);
    }

    #[test]
    fn postback_without_mid_gets_a_stable_synthetic_id() {
        let ev = json!([{"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1767270720500_i64,
            "postback": {"title": "Menu", "payload": "MENU"}}]);
        let body = page_delivery("page", PAGE, ev);
        let first = parse(&body);
        assert_eq!(only_message(&first).id.as_str(), "pb.7100000000000001.1767270720500");
        assert_eq!(first, parse(&body), "a redelivery must produce the same id");
    }

    #[test]
    fn messenger_echo_is_skipped() {
        let d = parse(include_bytes!("../../../../events/meta/messenger_echo.json"));
        assert!(d.events.is_empty(), "{:?}", d.events);
        assert_eq!(skipped_whats(&d), ["echo"]);
    }

    #[test]
    fn messenger_bot_echo_releases_the_conversation() {
        let d = parse(include_bytes!("../../../../events/meta/messenger_echo_bot.json"));
        let expected = InboundEvent::AgentRelease {
            account: AccountId::parse(PAGE).unwrap(),
            contact: ContactId::new(Channel::Messenger, Address::parse(PSID).unwrap()),
        };
        assert_eq!(d.events, vec![expected]);
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn instagram_text() {
        let d = parse(include_bytes!("../../../../events/meta/instagram_text.json"));
        let m = only_message(&d);
        assert_eq!(m.account.as_str(), IG_ACCOUNT);
        assert_eq!(m.contact, ContactId::new(Channel::Instagram, Address::parse(IGSID).unwrap()));
        assert_eq!(m.content, InboundContent::Text { body: "Love this mug 😍 how much is shipping?".into() });
        assert_eq!(m.timestamp, 1767270900);
    }

    #[test]
    fn instagram_echo_is_skipped() {
        let d = parse(include_bytes!("../../../../events/meta/instagram_echo.json"));
        assert!(d.events.is_empty());
        assert_eq!(skipped_whats(&d), ["echo"]);
    }

    #[test]
    fn instagram_dashboard_test_payload_in_changes() {
        let body = json!({"object": "instagram", "entry": [{"id": "0", "time": 1767270900333_i64, "changes": [
            {"field": "messages", "value": {"sender": {"id": "12334"}, "recipient": {"id": "23245"},
                "timestamp": "1527459824", "message": {"mid": "random_mid", "text": "random_text"}}},
            {"field": "comments", "value": {"id": "1", "text": "nice"}}]}]});
        let d = parse(&serde_json::to_vec(&body).unwrap());
        let m = messages(&d)[0];
        assert_eq!(m.contact, ContactId::new(Channel::Instagram, Address::parse("12334").unwrap()));
        assert_eq!(m.timestamp, 1527459824, "a seconds timestamp stays seconds");
        assert_eq!(m.content, InboundContent::Text { body: "random_text".into() });
        assert_eq!(skipped_whats(&d), ["change:comments"]);
    }

    #[test]
    fn messenger_attachments_location_standby_and_receipts() {
        let ev = |extra: Value| {
            let mut e = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1767270600000_i64});
            e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            e
        };
        let messaging = json!([
            ev(
                json!({"message": {"mid": "m_1", "attachments": [{"type": "image", "payload": {"url": "https://x/y.jpg"}}]}})
            ),
            ev(json!({"message": {"mid": "m_2", "attachments": [{"type": "location", "title": "Home",
                "payload": {"coordinates": {"lat": 59.33, "long": 18.06}}}]}})),
            ev(json!({"read": {"watermark": 1767270600000_i64}})),
            ev(json!({"delivery": {"mids": ["m_0"], "watermark": 1767270600000_i64}})),
            ev(json!({"reaction": {"mid": "m_0", "action": "react", "emoji": "❤"}})),
            ev(json!({"optin": {"type": "notification_messages"}})),
        ]);
        let mut body: Value = serde_json::from_slice(&page_delivery("page", PAGE, messaging)).unwrap();
        body["entry"][0]["standby"] = json!([ev(json!({"message": {"mid": "m_3", "text": "hi"}}))]);
        let d = parse(&serde_json::to_vec(&body).unwrap());
        let contents: Vec<_> = messages(&d).iter().map(|m| m.content.clone()).collect();
        assert_eq!(
            contents,
            [
                InboundContent::Media { media_kind: "image".into(), media_id: None, caption: None },
                InboundContent::Location { latitude: 59.33, longitude: 18.06, name: Some("Home".into()) },
            ]
        );
        assert_eq!(skipped_whats(&d), ["read", "delivery", "reaction", "event:optin", "standby"]);
    }

    // --- Tolerance ---------------------------------------------------------------------------

    #[test]
    fn a_thousand_messages_yield_a_thousand_events() {
        let msgs: Vec<Value> =
            (0..1000).map(|i| wa_text(&format!("wamid.M{i}"), WA_ID, &format!("message {i}"))).collect();
        let d = parse(&wa_delivery(json!({"messages": msgs})));
        assert_eq!(d.events.len(), 1000);
        assert!(d.skipped.is_empty());
        assert_eq!(messages(&d)[999].id.as_str(), "wamid.M999");
        // No `contacts[]` here: the phone comes from `from` alone, and there is no name to guess.
        assert_eq!(messages(&d)[0].phone.as_ref().map(E164Phone::as_str), Some("+4915123456789"));
        assert_eq!(messages(&d)[0].profile_name, None);
    }

    #[test]
    fn unknown_status_values_and_unknown_fields_do_not_fail() {
        let value = json!({
            "brand_new_field": {"nested": [1, 2, 3]},
            "statuses": [
                {"id": "wamid.S1", "status": "deleted", "timestamp": "1767269280", "recipient_id": WA_ID},
                {"id": "wamid.S2", "status": "delivered", "timestamp": "1767269281", "recipient_user_id": "US.1349",
                 "future": true, "errors": [{"unexpected": "shape"}]}
            ]
        });
        let mut body: Value = serde_json::from_slice(&wa_delivery(value)).unwrap();
        body["unknown_top_level"] = json!("x");
        body["entry"][0]["changes"][0]["extra"] = json!(null);
        let d = parse(&serde_json::to_vec(&body).unwrap());
        let s = only_status(&d);
        assert_eq!(
            (s.provider_id.as_str(), s.state, s.recipient.as_deref()),
            ("wamid.S2", DeliveryState::Delivered, Some("US.1349"))
        );
        assert!(s.errors.is_empty());
        assert_eq!(skipped_whats(&d), ["status:unknown_value"]);
        assert!(d.skipped[0].reason.contains("deleted"));
    }

    #[test]
    fn a_malformed_message_is_skipped_while_its_siblings_parse() {
        let no_id = json!({"from": WA_ID, "timestamp": "1767268800", "type": "text", "text": {"body": "lost"}});
        let bad_text =
            json!({"from": WA_ID, "id": "wamid.B", "timestamp": "1767268800", "type": "text", "text": {"body": 5}});
        let value = json!({"messages": [wa_text("wamid.A", WA_ID, "first"), no_id, bad_text, wa_text("wamid.C", WA_ID, "last")]});
        let d = parse(&wa_delivery(value));
        let ids: Vec<_> = messages(&d).iter().map(|m| m.id.as_str().to_owned()).collect();
        assert_eq!(ids, ["wamid.A", "wamid.C"]);
        assert_eq!(skipped_whats(&d), ["message:malformed", "message:malformed"]);
        assert!(d.skipped[0].reason.contains("id"), "{:?}", d.skipped[0]);
        assert!(d.skipped[1].reason.starts_with("wamid.B"), "{:?}", d.skipped[1]);
    }

    #[test]
    fn ids_with_key_separators_are_skipped_not_fatal() {
        let d = parse(&wa_delivery(json!({"messages": [
            wa_text("wamid.A#1", WA_ID, "bad id"),
            wa_text("wamid.B", "4915#123", "bad sender"),
            wa_text("wamid.C", WA_ID, "fine"),
        ]})));
        assert_eq!(messages(&d).len(), 1);
        assert_eq!(skipped_whats(&d), ["message:malformed", "message:malformed"]);

        let bad_account = json!({"metadata": {"phone_number_id": "1#2"}, "messages": [wa_text("wamid.D", WA_ID, "x")]});
        let d = parse(&wa_delivery(bad_account));
        assert!(d.events.is_empty());
        assert_eq!(skipped_whats(&d), ["change:malformed"]);
        assert!(d.skipped[0].reason.contains("1 messages"), "{:?}", d.skipped[0]);

        let ev = json!([{"sender": {"id": "71#00"}, "recipient": {"id": PAGE}, "timestamp": 1, "message": {"mid": "m_1", "text": "x"}}]);
        let d = parse(&page_delivery("page", PAGE, ev.clone()));
        assert_eq!(skipped_whats(&d), ["message:malformed"]);
        let d = parse(&page_delivery("page", "2000#1", ev));
        assert_eq!(skipped_whats(&d), ["entry:malformed"]);
    }

    #[test]
    fn whatsapp_system_errors_and_other_fields_are_skipped() {
        let errors = json!({"errors": [{"code": 131000, "title": "Something went wrong"}]});
        let mut body: Value = serde_json::from_slice(&wa_delivery(errors)).unwrap();
        body["entry"][0]["changes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}));
        let d = parse(&serde_json::to_vec(&body).unwrap());
        assert!(d.events.is_empty());
        assert_eq!(skipped_whats(&d), ["errors", "change:account_update"]);
        assert!(d.skipped[0].reason.contains("131000"));
    }

    #[test]
    fn removed_reaction_is_skipped_and_numeric_ids_are_tolerated() {
        let removed = json!({"from": WA_ID, "id": "wamid.R", "timestamp": 1767268800, "type": "reaction",
            "reaction": {"message_id": "wamid.X", "emoji": ""}});
        let numeric_from =
            json!({"from": 4915123456789_u64, "id": "wamid.N", "timestamp": "1767268800", "type": "sticker"});
        let value = json!({"metadata": {"phone_number_id": 100000000000001_u64}, "messages": [removed, numeric_from]});
        let d = parse(&wa_delivery(value));
        let [InboundEvent::Message(m)] = &d.events[..] else { panic!("expected one message: {d:?}") };
        assert_eq!((m.account.as_str(), m.contact.address.as_str()), (WA_ACCOUNT, WA_ID));
        assert_eq!(m.content, InboundContent::Media { media_kind: "sticker".into(), media_id: None, caption: None });
        assert_eq!(skipped_whats(&d), ["reaction:removed"]);
    }

    #[test]
    fn preference_resume_and_unknown_value() {
        let prefs = json!([
            {"wa_id": WA_ID, "category": "marketing_messages", "value": "resume", "timestamp": "1767269400"},
            {"wa_id": WA_ID, "category": "marketing_messages", "value": "snooze", "timestamp": "1767269401"},
        ]);
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001", "changes": [
            {"field": "user_preferences", "value": {"metadata": {"phone_number_id": WA_ACCOUNT}, "user_preferences": prefs}}]}]});
        let d = parse(&serde_json::to_vec(&body).unwrap());
        assert!(matches!(&d.events[..], [InboundEvent::Preference(PreferenceChange { stop: false, .. })]));
        assert_eq!(skipped_whats(&d), ["preference:unknown_value"]);
    }

    // --- Whole-delivery errors ---------------------------------------------------------------

    #[test]
    fn bodies_that_are_not_json_envelopes_fail() {
        let full = include_bytes!("../../../../events/meta/whatsapp_text.json");
        assert!(matches!(parse_delivery(&full[..full.len() / 2]), Err(InboundParseError::NotJson(_))));
        assert!(matches!(parse_delivery(b""), Err(InboundParseError::NotJson(_))));
        assert!(matches!(parse_delivery(b"\xff\xfe"), Err(InboundParseError::NotJson(_))));
        assert!(matches!(parse_delivery(b"[{\"object\":\"page\"}]"), Err(InboundParseError::NotAnEnvelope)));
        assert!(matches!(parse_delivery(b"{\"entry\":[]}"), Err(InboundParseError::NotAnEnvelope)));
        assert!(matches!(parse_delivery(b"\"page\""), Err(InboundParseError::NotAnEnvelope)));
    }

    #[test]
    fn unknown_object_is_a_skip_not_an_error() {
        let d = parse(br#"{"object":"user","entry":[{"id":"1","changed_fields":["email"]}]}"#);
        assert!(d.events.is_empty());
        assert_eq!(skipped_whats(&d), ["object:unknown"]);
        assert!(d.skipped[0].reason.contains("user"));
    }
}
