//! The hot path for WhatsApp deliveries: one pass over the body into typed structs that borrow
//! its strings (a `Cow` owns only a string that had escapes to decode), contacts looked up by id
//! in a map built once per change, no `serde_json::Value` tree.
//!
//! These structs are strict: any shape the tolerant parser would have to judge item by item
//! (a malformed message, a `null` where a list belongs, a duplicate key) makes [`parse`] return
//! `None`, and the caller parses the delivery again the tolerant way. So this path either yields
//! exactly what the tolerant one would, or nothing; the unit tests hold both to that.
use super::{delivery_state, preference_stop, skip, Epoch};
use crate::domain::{
    AccountId, Address, Channel, ChannelError, ContactId, Currency, E164Phone, InboundContent, InboundEvent,
    InboundMessage, InboundMessageId, Money, OrderItem, ParsedDelivery, PreferenceChange, ProviderMessageId, Skipped,
    StatusUpdate,
};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// The delivery, or `None` when it is not a WhatsApp delivery of the usual shape.
pub(super) fn parse(body: &[u8]) -> Option<ParsedDelivery> {
    // Checked whole first: from bytes, serde_json does not check the UTF-8 of keys a struct
    // ignores, so a body the tolerant parser refuses as not JSON would pass (found by fuzzing).
    // Parsing from the checked `str` then skips the per-string checks, so this costs about nothing.
    let body = std::str::from_utf8(body).ok()?;
    // Likewise the escapes of strings it skips: a lone surrogate (`\ud800`) would pass here and
    // fail the tolerant parser, which is left to refuse it.
    if has_surrogate_escape(body.as_bytes()) {
        return None;
    }
    let d: Delivery<'_> = serde_json::from_str(body).ok()?;
    if d.object.as_deref() != Some("whatsapp_business_account") {
        return None;
    }
    let mut out = ParsedDelivery::default();
    for entry in d.entry.unwrap_or_default() {
        let Some(changes) = entry.changes else {
            out.skipped.push(skip("entry:malformed", "whatsapp entry without `changes`"));
            continue;
        };
        for change in changes {
            match (change.field.as_deref(), change.value) {
                (Some("messages"), Some(value)) => messages(value, &mut out),
                (Some("user_preferences"), Some(value)) => preferences(value, &mut out),
                (Some(field @ ("messages" | "user_preferences")), None) => {
                    out.skipped.push(skip("change:malformed", format!("`{field}` change without an object `value`")))
                }
                (Some(field), _) => out.skipped.push(skip(format!("change:{field}"), "field not handled")),
                (None, _) => out.skipped.push(skip("change:malformed", "change without `field`")),
            }
        }
    }
    Some(out)
}

/// A `\\uD800`–`\\uDFFF` escape that is not half of a high-low pair. Only the `\\u` of the body
/// are looked at, found by a SIMD substring search: the body is mostly not escapes.
fn has_surrogate_escape(body: &[u8]) -> bool {
    let surrogate = |at: usize, range: std::ops::RangeInclusive<u8>| {
        body.get(at..at + 4)
            .is_some_and(|e| e[0] == b'\\' && e[1] == b'u' && (e[2] | 0x20) == b'd' && range.contains(&(e[3] | 0x20)))
    };
    // The low half of a pair just checked is found again by the search: skip it.
    let mut paired_up_to = 0;
    for i in memchr::memmem::find_iter(body, b"\\u") {
        if i < paired_up_to {
            continue;
        }
        if surrogate(i, b'8'..=b'b') && surrogate(i + 6, b'c'..=b'f') {
            paired_up_to = i + 12;
        } else if surrogate(i, b'8'..=b'f') {
            return true;
        }
    }
    false
}

/// `Some` of a present value; a `null` is an error (the tolerant parser tells it from absence).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow)]
    entry: Option<Vec<Entry<'a>>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    changes: Option<Vec<Change<'a>>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    field: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "present")]
    value: Option<ChangeValue<'a>>,
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    contacts: Option<Vec<Contact<'a>>>,
    #[serde(borrow)]
    messages: Option<Vec<Message<'a>>>,
    #[serde(borrow)]
    statuses: Option<Vec<Status<'a>>>,
    errors: Option<Vec<LaxError>>,
    #[serde(borrow)]
    user_preferences: Option<Vec<Preference<'a>>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    phone_number_id: Id<'a>,
}

/// An id-like scalar: a string (borrowed when it has no escapes) or an integer.
struct Id<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Id<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id<'de>, E> {
                Ok(Id(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

fn id_str<'s>(id: &'s Option<Id<'_>>) -> Option<&'s str> {
    id.as_ref().map(|i| i.0.as_ref())
}

#[derive(Deserialize)]
struct Contact<'a> {
    #[serde(borrow)]
    wa_id: Option<Id<'a>>,
    #[serde(borrow)]
    user_id: Option<Id<'a>>,
    #[serde(borrow)]
    profile: Option<Profile<'a>>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// The change's contact entries by `wa_id` and by `user_id`, built once: a sender's lookup costs
/// O(1), not a scan of up to 1000 entries per message. The first entry with an id wins.
struct Contacts<'c, 'a> {
    list: &'c [Contact<'a>],
    by_wa_id: HashMap<&'c str, usize>,
    by_user_id: HashMap<&'c str, usize>,
}

impl<'c, 'a> Contacts<'c, 'a> {
    fn new(list: &'c [Contact<'a>]) -> Self {
        let mut by_wa_id = HashMap::with_capacity(list.len());
        let mut by_user_id = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            if let Some(id) = id_str(&c.wa_id) {
                by_wa_id.entry(id).or_insert(i);
            }
            if let Some(id) = id_str(&c.user_id) {
                by_user_id.entry(id).or_insert(i);
            }
        }
        Self { list, by_wa_id, by_user_id }
    }

    /// The contact entry describing the sender: the first matched by either id, or the only one
    /// if its ids don't conflict with the sender's.
    fn sender(&self, from: Option<&str>, from_user_id: Option<&str>) -> Option<&'c Contact<'a>> {
        let by_wa = from.and_then(|f| self.by_wa_id.get(f));
        let by_user = from_user_id.and_then(|u| self.by_user_id.get(u));
        let first = match (by_wa, by_user) {
            (Some(&a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b).copied(),
        };
        if let Some(i) = first {
            return Some(&self.list[i]);
        }
        let differs = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
        match self.list {
            [only] if !differs(id_str(&only.wa_id), from) && !differs(id_str(&only.user_id), from_user_id) => {
                Some(only)
            }
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    from: Option<Id<'a>>,
    #[serde(borrow)]
    from_user_id: Option<Id<'a>>,
    timestamp: Epoch,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Text<'a>>,
    #[serde(borrow)]
    interactive: Option<Interactive<'a>>,
    #[serde(borrow)]
    button: Option<Button<'a>>,
    #[serde(borrow)]
    order: Option<Order<'a>>,
    #[serde(borrow)]
    location: Option<Location<'a>>,
    #[serde(borrow)]
    image: Option<Media<'a>>,
    #[serde(borrow)]
    audio: Option<Media<'a>>,
    #[serde(borrow)]
    video: Option<Media<'a>>,
    #[serde(borrow)]
    document: Option<Media<'a>>,
    #[serde(borrow)]
    sticker: Option<Media<'a>>,
    #[serde(borrow)]
    reaction: Option<Reaction<'a>>,
}

#[derive(Deserialize)]
struct Text<'a> {
    #[serde(borrow)]
    body: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Interactive<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    button_reply: Option<Reply<'a>>,
    #[serde(borrow)]
    list_reply: Option<Reply<'a>>,
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Button<'a> {
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Order<'a> {
    #[serde(borrow)]
    catalog_id: Option<Id<'a>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    product_items: Vec<ProductItem<'a>>,
}

#[derive(Deserialize)]
struct ProductItem<'a> {
    #[serde(borrow)]
    product_retailer_id: Id<'a>,
    quantity: u32,
    #[serde(borrow)]
    item_price: Option<Price<'a>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
}

/// `item_price` as sent: a JSON number, a decimal string, or anything else (no price).
enum Price<'a> {
    Number(serde_json::Number),
    Text(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Price<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Price<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a price")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Price<'de>, E> {
                Ok(Price::Number(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Price<'de>, E> {
                Ok(Price::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Price<'de>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Price::Other, Price::Number))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Price<'de>, E> {
                Ok(Price::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Price<'de>, E> {
                Ok(Price::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Price<'de>, E> {
                Ok(Price::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Price<'de>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Price::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Price<'de>, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Price::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Media<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    caption: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Location<'a> {
    latitude: f64,
    longitude: f64,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Reaction<'a> {
    #[serde(borrow)]
    emoji: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    timestamp: Epoch,
    #[serde(borrow)]
    recipient_id: Option<Id<'a>>,
    #[serde(borrow)]
    recipient_user_id: Option<Id<'a>>,
    errors: Option<Vec<LaxError>>,
}

/// A WhatsApp error object (`{code, title}`): `None` when it has not that shape. Never fails, as
/// the tolerant parser drops an unreadable error and keeps the status.
struct LaxError(Option<ChannelError>);

impl<'de> Deserialize<'de> for LaxError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LaxError;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an error object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LaxError, A::Error> {
                let mut code: Option<Option<i64>> = None;
                let mut title: Option<Option<String>> = Some(None);
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key.0.as_ref() {
                        "code" => code = Some(map.next_value::<LaxScalar>()?.code()),
                        "title" => title = map.next_value::<LaxScalar>()?.title(),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let error = match (code, title) {
                    (Some(Some(code)), Some(title)) => Some(ChannelError { code, title }),
                    _ => None,
                };
                Ok(LaxError(error))
            }
            /// A struct may come as the array of its fields, `[code, title]`, as with serde's derive.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LaxError, A::Error> {
                let code = seq.next_element::<LaxScalar>()?.and_then(LaxScalar::code);
                let title = seq.next_element::<LaxScalar>()?.map(LaxScalar::title);
                let extra = seq.next_element::<IgnoredAny>()?.is_some();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LaxError(match (code, title, extra) {
                    (Some(code), Some(Some(title)), false) => Some(ChannelError { code, title }),
                    _ => None,
                }))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LaxError, E> {
                Ok(LaxError(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key, borrowed unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Id::<'a>::deserialize(d).map(|id| Key(id.0))
    }
}

/// Any JSON value, kept only as far as an error's `code` (an integer) or `title` (a string or
/// null) can use it.
enum LaxScalar {
    Int(i64),
    Text(String),
    Null,
    Other,
}

impl LaxScalar {
    fn code(self) -> Option<i64> {
        match self {
            LaxScalar::Int(i) => Some(i),
            _ => None,
        }
    }

    /// `Some(title)` when readable as an optional string, `None` when not.
    fn title(self) -> Option<Option<String>> {
        match self {
            LaxScalar::Text(t) => Some(Some(t)),
            LaxScalar::Null => Some(None),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for LaxScalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LaxScalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LaxScalar, E> {
                Ok(LaxScalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LaxScalar, E> {
                Ok(i64::try_from(v).map_or(LaxScalar::Other, LaxScalar::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<LaxScalar, E> {
                Ok(LaxScalar::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<LaxScalar, E> {
                Ok(LaxScalar::Other)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LaxScalar, E> {
                Ok(LaxScalar::Text(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LaxScalar, E> {
                Ok(LaxScalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LaxScalar, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| LaxScalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LaxScalar, A::Error> {
                IgnoredAny.visit_map(map).map(|_| LaxScalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Preference<'a> {
    #[serde(borrow)]
    wa_id: Option<Id<'a>>,
    #[serde(borrow)]
    user_id: Option<Id<'a>>,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Cow<'a, str>,
    timestamp: Epoch,
}

fn account(value: &ChangeValue<'_>) -> Result<AccountId, String> {
    let meta = value.metadata.as_ref().ok_or("missing `metadata`")?;
    AccountId::parse(meta.phone_number_id.0.as_ref()).map_err(|e| format!("metadata.phone_number_id: {e}"))
}

fn messages(value: ChangeValue<'_>, out: &mut ParsedDelivery) {
    let account = match account(&value) {
        Ok(account) => account,
        Err(reason) => {
            // Without the receiving account nothing in the change can be routed; say what was lost.
            let (m, s) = (value.messages.as_ref().map_or(0, Vec::len), value.statuses.as_ref().map_or(0, Vec::len));
            out.skipped.push(skip("change:malformed", format!("{reason} ({m} messages, {s} statuses dropped)")));
            return;
        }
    };
    let contact_list = value.contacts.unwrap_or_default();
    let contacts = Contacts::new(&contact_list);
    for m in value.messages.unwrap_or_default() {
        match message(m, &account, &contacts) {
            Ok(msg) => out.events.push(InboundEvent::Message(msg)),
            Err(s) => out.skipped.push(s),
        }
    }
    for s in value.statuses.unwrap_or_default() {
        match status(s, &account) {
            Ok(status) => out.events.push(InboundEvent::Status(status)),
            Err(s) => out.skipped.push(s),
        }
    }
    // System-level errors (e.g. 131000 for the whole app) carry no message to attach them to.
    let errors = value.errors.unwrap_or_default();
    if !errors.is_empty() {
        let codes: Vec<String> = errors
            .into_iter()
            .map(|e| match e.0 {
                Some(ChannelError { code, title: Some(title) }) => format!("{code} ({title})"),
                Some(ChannelError { code, title: None }) => code.to_string(),
                None => "?".to_string(),
            })
            .collect();
        out.skipped.push(skip("errors", format!("system errors for {account}: {}", codes.join(", "))));
    }
}

fn message(mut m: Message<'_>, account: &AccountId, contacts: &Contacts<'_, '_>) -> Result<InboundMessage, Skipped> {
    let malformed = |reason: String| skip("message:malformed", format!("{}: {reason}", m.id));
    let id = InboundMessageId::parse(m.id.as_ref()).map_err(|e| malformed(e.to_string()))?;
    let (from, from_user_id) = (id_str(&m.from), id_str(&m.from_user_id));
    let address = from.or(from_user_id).ok_or_else(|| malformed("no `from` or `from_user_id`".into()))?;
    let address = Address::parse(address).map_err(|e| malformed(e.to_string()))?;

    let contact = contacts.sender(from, from_user_id);
    let profile_name =
        contact.and_then(|c| c.profile.as_ref()?.name.as_deref()).filter(|n| !n.is_empty()).map(str::to_owned);
    // `from` is a phone only for phone-identified users; a user id is never mistaken for one.
    let phone = from
        .and_then(E164Phone::from_digits)
        .or_else(|| contact.and_then(|c| E164Phone::from_digits(id_str(&c.wa_id)?)));
    let content = content(&mut m).map_err(|e| Skipped { reason: format!("{}: {}", m.id, e.reason), ..e })?;
    Ok(InboundMessage {
        id,
        account: account.clone(),
        contact: ContactId::new(Channel::WhatsApp, address),
        profile_name,
        phone,
        timestamp: m.timestamp.seconds(),
        content,
    })
}

fn owned(s: Option<&Cow<'_, str>>) -> Option<String> {
    s.map(|s| s.as_ref().to_owned())
}

/// Maps a message's type-specific object (it lives under a key named after `type`). A text's
/// body is moved out, not copied: a decoded one (escapes) is already an owned string.
fn content(m: &mut Message<'_>) -> Result<InboundContent, Skipped> {
    let kind = m.kind.as_ref();
    let missing = || skip("message:malformed", format!("missing `{kind}`"));
    Ok(match kind {
        "text" => InboundContent::Text { body: m.text.take().ok_or_else(missing)?.body.into_owned() },
        "interactive" => {
            let i = m.interactive.as_ref().ok_or_else(missing)?;
            match (&i.button_reply, &i.list_reply) {
                (Some(r), _) => InboundContent::Button {
                    payload: r.id.as_ref().to_owned(),
                    title: owned(r.title.as_ref()).unwrap_or_default(),
                },
                (None, Some(r)) => InboundContent::ListReply {
                    id: r.id.as_ref().to_owned(),
                    title: owned(r.title.as_ref()).unwrap_or_default(),
                    description: owned(r.description.as_ref()),
                },
                // Flow responses (`nfm_reply`) and future interactive replies.
                (None, None) => InboundContent::Unsupported {
                    type_name: format!("interactive.{}", i.kind.as_deref().unwrap_or("unknown")),
                },
            }
        }
        "button" => {
            let b = m.button.as_ref().ok_or_else(missing)?;
            // A template button without a developer payload reports its label as the payload.
            let payload = owned(b.payload.as_ref().or(b.text.as_ref()))
                .ok_or_else(|| skip("message:malformed", "button without payload"))?;
            InboundContent::Button { payload, title: owned(b.text.as_ref()).unwrap_or_default() }
        }
        "order" => order(m.order.as_ref().ok_or_else(missing)?).map_err(|e| skip("message:malformed", e))?,
        "location" => {
            let l = m.location.as_ref().ok_or_else(missing)?;
            InboundContent::Location { latitude: l.latitude, longitude: l.longitude, name: owned(l.name.as_ref()) }
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            // The media object is only a reference: a message without one is still a message.
            let media = match kind {
                "image" => &m.image,
                "audio" => &m.audio,
                "video" => &m.video,
                "document" => &m.document,
                _ => &m.sticker,
            };
            let field = |s: Option<&Cow<'_, str>>| s.filter(|s| !s.is_empty()).map(|s| s.as_ref().to_owned());
            InboundContent::Media {
                media_kind: kind.to_owned(),
                media_id: field(media.as_ref().and_then(|m| m.id.as_ref())),
                caption: field(media.as_ref().and_then(|m| m.caption.as_ref())),
            }
        }
        "reaction" => {
            let r = m.reaction.as_ref().ok_or_else(missing)?;
            match r.emoji.as_ref().filter(|e| !e.is_empty()) {
                Some(emoji) => InboundContent::Reaction { emoji: emoji.as_ref().to_owned() },
                // An empty emoji means the user removed their reaction: nothing to answer.
                None => return Err(skip("reaction:removed", "reaction without emoji")),
            }
        }
        other => InboundContent::Unsupported { type_name: other.to_owned() },
    })
}

fn order(order: &Order<'_>) -> Result<InboundContent, String> {
    if order.product_items.is_empty() {
        return Err("order without product_items".into());
    }
    let items = order
        .product_items
        .iter()
        .map(|item| OrderItem {
            retailer_id: item.product_retailer_id.0.as_ref().to_owned(),
            quantity: item.quantity,
            unit_price: price(item.item_price.as_ref(), item.currency.as_deref()),
        })
        .collect();
    Ok(InboundContent::Order {
        catalog_id: order.catalog_id.as_ref().map(|c| c.0.as_ref().to_owned()),
        items,
        note: owned(order.text.as_ref()).filter(|t| !t.trim().is_empty()),
    })
}

/// An unreadable price is dropped (the shop re-prices), not the cart.
fn price(price: Option<&Price<'_>>, currency: Option<&str>) -> Option<Money> {
    let currency = Currency::parse(currency?).ok()?;
    match price? {
        Price::Number(n) => Money::from_json_number(n, currency).ok(),
        Price::Text(s) => Money::parse_decimal(s, currency).ok(),
        Price::Other => None,
    }
}

fn status(st: Status<'_>, account: &AccountId) -> Result<StatusUpdate, Skipped> {
    let provider_id =
        ProviderMessageId::parse(st.id.as_ref()).map_err(|e| skip("status:malformed", format!("status id: {e}")))?;
    let state = delivery_state(&st.id, &st.status)?;
    Ok(StatusUpdate {
        provider_id,
        account: account.clone(),
        state,
        recipient: st.recipient_id.or(st.recipient_user_id).map(|r| r.0.into_owned()),
        timestamp: st.timestamp.seconds(),
        errors: st.errors.unwrap_or_default().into_iter().filter_map(|e| e.0).collect(),
    })
}

fn preferences(value: ChangeValue<'_>, out: &mut ParsedDelivery) {
    let account = match account(&value) {
        Ok(account) => account,
        Err(reason) => {
            out.skipped.push(skip("change:malformed", reason));
            return;
        }
    };
    for p in value.user_preferences.unwrap_or_default() {
        match preference(p, &account) {
            Ok(change) => out.events.push(InboundEvent::Preference(change)),
            Err(s) => out.skipped.push(s),
        }
    }
}

fn preference(p: Preference<'_>, account: &AccountId) -> Result<PreferenceChange, Skipped> {
    let malformed = |reason: String| skip("preference:malformed", reason);
    let address = p.wa_id.or(p.user_id).ok_or_else(|| malformed("no `wa_id` or `user_id`".into()))?;
    let address = Address::parse(address.0.as_ref()).map_err(|e| malformed(e.to_string()))?;
    Ok(PreferenceChange {
        account: account.clone(),
        contact: ContactId::new(Channel::WhatsApp, address),
        stop: preference_stop(&p.value)?,
        // The only category Meta documents; an opt-out must not be lost over a missing label.
        category: p.category.map_or_else(|| "marketing_messages".to_owned(), Cow::into_owned),
        timestamp: p.timestamp.seconds(),
    })
}
