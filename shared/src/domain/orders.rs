//! Order notifications (journey step 5): what an order or fulfillment webhook means for the
//! customer, given what this order was already told, and the texts those messages are rendered
//! from.
//!
//! Pure: the per-order state, one [`ShopEvent`] and the brand's [`OrderPolicy`] in, the new
//! state and the messages to send out ([`decide`]). The adapter keeps the state as one DynamoDB
//! item per shop order, enqueues the notifications under [`Notification::idempotency_key`] and
//! renders them with [`NotificationTexts`].
//!
//! Shops deliver webhooks late, twice and out of order (shop-platforms.md §1.5, §6), so every
//! rule holds for any delivery order. Each is enforced in [`decide`] and covered by the tests:
//! - **Forward only.** [`Stage`] moves `None → Confirmed → Shipped → Delivered`, never back;
//!   `Cancelled` is terminal: after it nothing is sent for the order, not even a late shipment.
//! - **Once per business key.** Every message has a key (`confirmation`, `shipped:<fid>`,
//!   `tracking:<fid>:<number>`, `delivered:<fid>`, `cancelled`) that is kept in
//!   [`OrderNotifyState::sent`]; a duplicate event finds its keys there and sends nothing.
//! - **Confirmation** once, only while the stage is `None`, when the order is Placed, Paid or
//!   Completed ([`ConfirmOn::Placed`], the default) or Paid or Completed ([`ConfirmOn::Paid`]).
//!   Never after a shipping message: a late `orders/create` after `fulfillments/create` sends
//!   nothing, and an order whose first snapshot already carries a tracked fulfillment (a Woo
//!   `completed` order seen for the first time) gets the shipping message only, because that
//!   message already names the order. A Completed order without tracking gets the confirmation.
//! - **Shipped** once per fulfillment id, when it has a tracking number and its status is not
//!   cancelled/error/failure (`cancelled` sticks). Without a number it is recorded and waits for
//!   the update that brings one. Fulfillments come from fulfillment events and from the order's
//!   own `fulfillments[]`.
//! - **TrackingUpdate**: a number not seen before on an announced fulfillment sends one
//!   correction carrying the new number(s). Numbers are merged, never replaced, and compared
//!   ignoring case and spaces, so a re-sent old number is not news.
//! - **Delivered**: the first fulfillment reported delivered sends one review request per
//!   order. A fulfillment that is delivered before it was announced skips its Shipped message
//!   (it would arrive after the parcel). Shipment status is monotonic: a late `in_transit`
//!   changes nothing.
//! - **Cancelled** sends one notice if the customer heard from us about this order, or if the
//!   cancellation is the first we learn of the order and the policy confirms placed orders (the
//!   customer knows they ordered). With [`ConfirmOn::Paid`] an order we never confirmed is
//!   cancelled quietly: most likely an unpaid checkout the shop timed out. A notice needs the
//!   order name.
//! - **Refunded/Failed** snapshots send nothing; a newer Paid snapshot (Woo: a retried payment)
//!   confirms as usual.
//! - **Stale**: an order snapshot whose `updated_at` is older than the newest one seen changes
//!   nothing; the same holds per fulfillment, so an old tracking number cannot come back as a
//!   "correction".
//! - **Unknown order**: a fulfillment for an order not seen yet is recorded and joined when the
//!   order arrives; nothing is sent until then (the contact comes from the order).
//! - **Unchanged is not rewritten.** [`OrderDecision::changed`] says whether the new state
//!   differs from the old; a duplicate (or a delivery a concurrent one already applied) leaves it
//!   `false`, so the adapter writes nothing and concurrent deliveries of one order do not
//!   conflict. Anything sent always changes the state (its key joins `sent`).
use super::flows::MAX_TEXT;
use super::message::TemplateRef;
use super::money::Money;
use super::templates::{TemplateCategory, Templates};
use super::texts::{next_placeholder, placeholders};
use crate::config::ConfigError;
use crate::shops::{Fulfillment, OrderRef, OrderSnapshot, OrderStatus, ShipmentStatus, ShopEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Confirmation,
    Shipped,
    /// A new tracking number for a fulfillment that was already announced.
    TrackingUpdate,
    /// Delivered: a short review request.
    Delivered,
    Cancelled,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 5] = [
        NotificationKind::Confirmation,
        NotificationKind::Shipped,
        NotificationKind::TrackingUpdate,
        NotificationKind::Delivered,
        NotificationKind::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Confirmation => "confirmation",
            NotificationKind::Shipped => "shipped",
            NotificationKind::TrackingUpdate => "tracking_update",
            NotificationKind::Delivered => "delivered",
            NotificationKind::Cancelled => "cancelled",
        }
    }
}

/// How far the customer has been told. Declaration order is the only direction it moves
/// (`max`), and `Cancelled` sorts last so that nothing moves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    None,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

/// When the order confirmation goes out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmOn {
    /// As soon as the order exists (also when paid or completed).
    #[default]
    Placed,
    /// Only once it is paid (or completed): no confirmation for an unpaid checkout.
    Paid,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPolicy {
    pub confirm_on: ConfirmOn,
}

impl OrderPolicy {
    fn confirms(&self, status: OrderStatus) -> bool {
        match status {
            OrderStatus::Paid | OrderStatus::Completed => true,
            OrderStatus::Placed => self.confirm_on == ConfirmOn::Placed,
            OrderStatus::AwaitingPayment | OrderStatus::Cancelled | OrderStatus::Refunded | OrderStatus::Failed => {
                false
            }
        }
    }
}

/// Why a decision sent nothing: [`OrderDecision::ignored`], for a counter.
pub mod ignored {
    /// Not an order or fulfillment event.
    pub const NOT_AN_ORDER_EVENT: &str = "not_an_order_event";
    /// The event is about another order than the state (an adapter bug).
    pub const WRONG_ORDER: &str = "wrong_order";
    /// The order is cancelled: nothing is sent any more.
    pub const AFTER_CANCEL: &str = "after_cancel";
    pub const STALE_ORDER: &str = "stale_order";
    pub const STALE_FULFILLMENT: &str = "stale_fulfillment";
    pub const REFUNDED: &str = "refunded";
    pub const FAILED: &str = "failed";
    /// A fulfillment for an order not seen yet: recorded, joined when the order arrives.
    pub const ORDER_UNKNOWN: &str = "order_unknown";
    /// Placed but not paid, and the policy confirms paid orders only.
    pub const AWAITING_PAYMENT: &str = "awaiting_payment";
    /// A fulfillment without a tracking number: recorded, announced when one arrives.
    pub const NO_TRACKING: &str = "no_tracking_yet";
    /// A cancelled or failed fulfillment.
    pub const FULFILLMENT_VOID: &str = "fulfillment_void";
    /// A cancellation of an order the customer never heard about from us.
    pub const CANCEL_UNANNOUNCED: &str = "cancel_unannounced";
    /// Everything this event could cause was already sent (a duplicate).
    pub const NOTHING_NEW: &str = "nothing_new";
}

pub const KEY_CONFIRMATION: &str = "confirmation";
pub const KEY_CANCELLED: &str = "cancelled";

fn shipped_key(fid: &str) -> String {
    format!("shipped:{fid}")
}

fn tracking_key(fid: &str, number: &str) -> String {
    format!("tracking:{fid}:{number}")
}

fn delivered_key(fid: &str) -> String {
    format!("delivered:{fid}")
}

/// What Parley remembers per shop order: one DynamoDB item, so empty fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderNotifyState {
    #[serde(default)]
    pub stage: Stage,
    /// Business keys of the messages already sent (see the module docs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<String>,
    /// Per fulfillment id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fulfillments: BTreeMap<String, FulfillmentSeen>,
    /// The newest order snapshot; None while only fulfillments are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderSummary>,
}

impl OrderNotifyState {
    pub fn has_sent(&self, key: &str) -> bool {
        self.sent.iter().any(|k| k == key)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentSeen {
    /// Parcels in the order their numbers were first seen: merged, never replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<Tracking>,
    /// How many of `tracking` (from the front) the customer has been told.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub announced: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Last fulfillment status, lowercased (`pending`, `success`, …); `cancelled` sticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Sticks once reported: shipment status only moves forward.
    #[serde(default, skip_serializing_if = "is_false")]
    pub delivered: bool,
    /// Unix seconds of the newest update applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

impl FulfillmentSeen {
    /// Cancelled or failed: nothing is announced for it.
    pub fn is_void(&self) -> bool {
        matches!(self.status.as_deref(), Some("cancelled" | "error" | "failure"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemLine {
    pub title: String,
    pub quantity: u32,
}

/// What the messages need from the newest order snapshot, and what finds the customer for a
/// fulfillment event (which carries no phone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order: OrderRef,
    /// As the customer knows it ("#1001").
    pub name: String,
    pub status: OrderStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemLine>,
    pub total: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Raw phone candidates, best first, and the country to normalise them with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// The newest `updated_at` seen: older snapshots are stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

impl OrderSummary {
    fn from_snapshot(o: &OrderSnapshot, previous: Option<&OrderSummary>) -> Self {
        let items = o
            .items
            .iter()
            .filter(|i| i.quantity > 0)
            .map(|i| ItemLine { title: flatten(&i.title), quantity: i.quantity })
            .filter(|i| !i.title.is_empty())
            .collect();
        Self {
            order: o.order.clone(),
            name: flatten(&o.name),
            status: o.status,
            first_name: o.customer_first_name.as_deref().map(flatten).filter(|s| !s.is_empty()),
            items,
            total: o.total,
            locale: o.locale.clone().filter(|l| !l.trim().is_empty()),
            phones: o.phones.clone(),
            country: o.country.clone(),
            created_at: o.created_at.or(previous.and_then(|p| p.created_at)),
            updated_at: o.updated_at.max(previous.and_then(|p| p.updated_at)),
        }
    }

    /// The name, or the order id when the shop sent none (a template parameter may not be empty).
    fn display_name(&self) -> String {
        if self.name.is_empty() {
            format!("#{}", self.order.order_id)
        } else {
            self.name.clone()
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub kind: NotificationKind,
    /// Business key, unique per order (see the module docs).
    pub key: String,
    pub facts: NotificationFacts,
}

impl Notification {
    /// The id that makes a re-send a no-op: platform, shop, order id and business key (which
    /// carries the message kind, fulfillment and tracking number).
    pub fn idempotency_key(&self, order: &OrderRef) -> String {
        format!("order:{}:{}:{}:{}", order.platform.as_str(), order.shop, order.order_id, self.key)
    }
}

/// What a message can say. Strings are trimmed and single-line; missing means unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationFacts {
    pub order_name: String,
    pub first_name: Option<String>,
    pub items: Vec<ItemLine>,
    pub total: Money,
    pub carrier: Option<String>,
    /// The parcel(s) this message is about; several are joined with ", ".
    pub tracking_number: Option<String>,
    /// The first of those parcels' tracking links.
    pub tracking_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDecision {
    pub state: OrderNotifyState,
    pub notifications: Vec<Notification>,
    /// Why nothing was sent, for a counter; None when something was.
    pub ignored: Option<&'static str>,
    /// Whether `state` differs from the state decided on: only then is it written.
    pub changed: bool,
}

/// Applies one shop event to an order's notification state (rules: module docs). Only order and
/// fulfillment events matter; anything else is ignored. Events that are stale, about another
/// order or arrive after a cancellation leave the state as it was.
pub fn decide(state: &OrderNotifyState, event: &ShopEvent, policy: &OrderPolicy) -> OrderDecision {
    let mut next = state.clone();
    let outcome = match event {
        ShopEvent::Order(o) => on_order(&mut next, o, policy),
        ShopEvent::Fulfillment { order, fulfillment, .. } => on_fulfillment(&mut next, order, fulfillment, policy),
        _ => Err(ignored::NOT_AN_ORDER_EVENT),
    };
    match outcome {
        Err(reason) => {
            OrderDecision { state: state.clone(), notifications: Vec::new(), ignored: Some(reason), changed: false }
        }
        Ok((notifications, reason)) => {
            let ignored = notifications.is_empty().then_some(reason);
            let changed = next != *state;
            OrderDecision { state: next, notifications, ignored, changed }
        }
    }
}

/// Ok: the state changed (maybe without a message, then with the reason); Err: it must not.
type Outcome = Result<(Vec<Notification>, &'static str), &'static str>;

fn on_order(s: &mut OrderNotifyState, o: &OrderSnapshot, policy: &OrderPolicy) -> Outcome {
    if s.stage == Stage::Cancelled {
        return Err(ignored::AFTER_CANCEL);
    }
    if let Some(known) = &s.order {
        if known.order != o.order {
            return Err(ignored::WRONG_ORDER);
        }
        if is_older(o.updated_at, known.updated_at) {
            return Err(ignored::STALE_ORDER);
        }
    }
    let first_sighting = s.order.is_none();
    s.order = Some(OrderSummary::from_snapshot(o, s.order.as_ref()));
    match o.status {
        OrderStatus::Refunded => Ok((Vec::new(), ignored::REFUNDED)),
        OrderStatus::Failed => Ok((Vec::new(), ignored::FAILED)),
        OrderStatus::Cancelled => Ok(cancel(s, first_sighting, policy)),
        OrderStatus::Placed | OrderStatus::AwaitingPayment | OrderStatus::Paid | OrderStatus::Completed => {
            for f in &o.fulfillments {
                // A stale fulfillment inside a fresh snapshot is simply not applied.
                let _ = merge_fulfillment(s, f);
            }
            Ok(reconcile(s, policy))
        }
    }
}

fn on_fulfillment(s: &mut OrderNotifyState, order: &OrderRef, f: &Fulfillment, policy: &OrderPolicy) -> Outcome {
    if s.stage == Stage::Cancelled {
        return Err(ignored::AFTER_CANCEL);
    }
    if s.order.as_ref().is_some_and(|known| known.order != *order) {
        return Err(ignored::WRONG_ORDER);
    }
    merge_fulfillment(s, f)?;
    if s.order.is_none() {
        return Ok((Vec::new(), ignored::ORDER_UNKNOWN));
    }
    let (notifications, reason) = reconcile(s, policy);
    let seen = &s.fulfillments[&f.id];
    let reason = if seen.is_void() {
        ignored::FULFILLMENT_VOID
    } else if seen.tracking.is_empty() && !seen.delivered && reason == ignored::NOTHING_NEW {
        ignored::NO_TRACKING
    } else {
        reason
    };
    Ok((notifications, reason))
}

/// Records what a fulfillment says, forward only. Err when it is older than what was applied.
fn merge_fulfillment(s: &mut OrderNotifyState, f: &Fulfillment) -> Result<(), &'static str> {
    let seen = s.fulfillments.entry(f.id.clone()).or_default();
    if is_older(f.updated_at, seen.updated_at) {
        return Err(ignored::STALE_FULFILLMENT);
    }
    seen.updated_at = seen.updated_at.max(f.updated_at);
    if let Some(status) = f.status.as_deref().map(|st| st.trim().to_ascii_lowercase()).filter(|st| !st.is_empty()) {
        if seen.status.as_deref() != Some("cancelled") {
            seen.status = Some(status);
        }
    }
    if let Some(carrier) = f.tracking_company.as_deref().map(flatten).filter(|c| !c.is_empty()) {
        seen.carrier = Some(carrier);
    }
    for (i, raw) in f.tracking_numbers.iter().enumerate() {
        let number = flatten(raw);
        if number.is_empty() {
            continue;
        }
        // Shopify's tracking_urls run parallel to tracking_numbers.
        let url = f.tracking_urls.get(i).map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        match seen.tracking.iter_mut().find(|t| same_number(&t.number, &number)) {
            Some(t) => t.url = url.or(t.url.take()),
            None => seen.tracking.push(Tracking { number, url }),
        }
    }
    if matches!(f.shipment_status, Some(ShipmentStatus::Delivered)) {
        seen.delivered = true;
    }
    Ok(())
}

/// Sends whatever the state now calls for and has not been sent: shipping messages for every
/// fulfillment, the review request, else the confirmation.
fn reconcile(s: &mut OrderNotifyState, policy: &OrderPolicy) -> (Vec<Notification>, &'static str) {
    let Some(summary) = s.order.clone() else { return (Vec::new(), ignored::ORDER_UNKNOWN) };
    match summary.status {
        OrderStatus::Refunded => return (Vec::new(), ignored::REFUNDED),
        OrderStatus::Failed => return (Vec::new(), ignored::FAILED),
        OrderStatus::Cancelled => return (Vec::new(), ignored::AFTER_CANCEL),
        OrderStatus::Placed | OrderStatus::AwaitingPayment | OrderStatus::Paid | OrderStatus::Completed => {}
    }
    let OrderNotifyState { stage, sent, fulfillments, .. } = s;
    let mut out = Vec::new();

    for (fid, f) in fulfillments.iter_mut() {
        if f.is_void() || f.delivered || f.tracking.is_empty() {
            continue;
        }
        let key = shipped_key(fid);
        if !was_sent(sent, &key) {
            out.push(notification(NotificationKind::Shipped, key, &summary, f, &f.tracking));
        } else if f.announced < f.tracking.len() {
            let new = &f.tracking[f.announced..];
            let key = tracking_key(fid, &new[0].number);
            out.push(notification(NotificationKind::TrackingUpdate, key, &summary, f, new));
        } else {
            continue;
        }
        f.announced = f.tracking.len();
        *stage = (*stage).max(Stage::Shipped);
    }

    if *stage < Stage::Delivered {
        if let Some((fid, f)) = fulfillments.iter().find(|(_, f)| f.delivered && !f.is_void()) {
            out.push(notification(NotificationKind::Delivered, delivered_key(fid), &summary, f, &f.tracking));
            *stage = Stage::Delivered;
        }
    }

    let mut reason = ignored::NOTHING_NEW;
    if *stage == Stage::None && !was_sent(sent, KEY_CONFIRMATION) {
        if policy.confirms(summary.status) {
            out.push(Notification {
                kind: NotificationKind::Confirmation,
                key: KEY_CONFIRMATION.to_string(),
                facts: order_facts(&summary),
            });
            *stage = Stage::Confirmed;
        } else {
            reason = ignored::AWAITING_PAYMENT;
        }
    }
    sent.extend(out.iter().map(|n| n.key.clone()));
    (out, reason)
}

fn was_sent(sent: &[String], key: &str) -> bool {
    sent.iter().any(|k| k == key)
}

fn cancel(s: &mut OrderNotifyState, first_sighting: bool, policy: &OrderPolicy) -> (Vec<Notification>, &'static str) {
    let told_before = s.stage > Stage::None;
    s.stage = Stage::Cancelled;
    let Some(summary) = &s.order else { return (Vec::new(), ignored::ORDER_UNKNOWN) };
    let announce = told_before || (first_sighting && policy.confirm_on == ConfirmOn::Placed);
    if !announce || summary.name.is_empty() {
        return (Vec::new(), ignored::CANCEL_UNANNOUNCED);
    }
    if s.has_sent(KEY_CANCELLED) {
        return (Vec::new(), ignored::NOTHING_NEW);
    }
    let n = Notification { kind: NotificationKind::Cancelled, key: KEY_CANCELLED.into(), facts: order_facts(summary) };
    s.sent.push(n.key.clone());
    (vec![n], ignored::NOTHING_NEW)
}

fn order_facts(o: &OrderSummary) -> NotificationFacts {
    NotificationFacts {
        order_name: o.display_name(),
        first_name: o.first_name.clone(),
        items: o.items.clone(),
        total: o.total,
        carrier: None,
        tracking_number: None,
        tracking_url: None,
    }
}

fn notification(
    kind: NotificationKind,
    key: String,
    o: &OrderSummary,
    f: &FulfillmentSeen,
    parcels: &[Tracking],
) -> Notification {
    let numbers: Vec<&str> = parcels.iter().map(|t| t.number.as_str()).collect();
    let facts = NotificationFacts {
        carrier: f.carrier.clone(),
        tracking_number: (!numbers.is_empty()).then(|| numbers.join(", ")),
        tracking_url: parcels.iter().find_map(|t| t.url.clone()),
        ..order_facts(o)
    };
    Notification { kind, key, facts }
}

/// Only a known time older than a known time is stale; without timestamps nothing is.
fn is_older(new: Option<i64>, seen: Option<i64>) -> bool {
    matches!((new, seen), (Some(n), Some(s)) if n < s)
}

/// Carriers treat tracking numbers case- and space-insensitively; so does the merge.
fn same_number(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect::<String>();
    norm(a) == norm(b)
}

/// Trimmed, with inner whitespace runs (newlines, tabs) as single spaces.
fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---- rendering ----

/// Used for a locale without texts (like the flows).
pub const DEFAULT_LOCALE: &str = "de";
pub const DEFAULT_MAX_ITEMS: usize = 5;
const MAX_ITEMS_LIMIT: usize = 20;

pub(crate) const EMBEDDED: &[(&str, &str, &str)] = &[
    ("config/notifications.de.toml", "de", include_str!("../../../config/notifications.de.toml")),
    ("config/notifications.en.toml", "en", include_str!("../../../config/notifications.en.toml")),
];

/// A message ready for the sender: free text inside the 24-hour window, the approved template
/// outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedNotification {
    /// At most 4096 characters.
    pub text: String,
    pub template: TemplateRef,
}

/// The brand-editable order message texts, one file per locale
/// (`config/notifications.<locale>.toml`), validated against the template catalog at load.
#[derive(Debug, Clone)]
pub struct NotificationTexts {
    // Never empty, so every locale has an answer.
    locales: Vec<LocaleTexts>,
}

#[derive(Debug, Clone)]
struct LocaleTexts {
    locale: String,
    max_items: usize,
    item_line: String,
    more_one: String,
    more_other: String,
    missing: RawMissing,
    /// Indexed like [`NotificationKind::ALL`].
    kinds: Vec<KindTexts>,
}

#[derive(Debug, Clone)]
struct KindTexts {
    text: String,
    template: String,
    /// The approved template's language code.
    language: String,
    params: Vec<Fact>,
}

/// The placeholders of a message text and template parameter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fact {
    FirstName,
    Order,
    Items,
    Total,
    Carrier,
    TrackingNumber,
    TrackingUrl,
}

impl Fact {
    const ALL: [Fact; 7] = [
        Fact::FirstName,
        Fact::Order,
        Fact::Items,
        Fact::Total,
        Fact::Carrier,
        Fact::TrackingNumber,
        Fact::TrackingUrl,
    ];

    fn name(self) -> &'static str {
        match self {
            Fact::FirstName => "first_name",
            Fact::Order => "order",
            Fact::Items => "items",
            Fact::Total => "total",
            Fact::Carrier => "carrier",
            Fact::TrackingNumber => "tracking_number",
            Fact::TrackingUrl => "tracking_url",
        }
    }

    fn parse(s: &str) -> Option<Fact> {
        Fact::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Whether a message of this kind has the fact: always, maybe (the shop may leave it out),
    /// or never (using it is a mistake in the file).
    fn availability(self, kind: NotificationKind) -> Avail {
        use NotificationKind as K;
        match (self, kind) {
            (Fact::Order | Fact::Total, _) => Avail::Always,
            (Fact::FirstName | Fact::Items, _) => Avail::Maybe,
            (Fact::TrackingNumber, K::Shipped | K::TrackingUpdate) => Avail::Always,
            (
                Fact::Carrier | Fact::TrackingUrl | Fact::TrackingNumber,
                K::Shipped | K::TrackingUpdate | K::Delivered,
            ) => Avail::Maybe,
            _ => Avail::Never,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Avail {
    Never,
    Maybe,
    Always,
}

impl NotificationTexts {
    /// The files shipped in `config/`, compiled into the binary, checked against the embedded
    /// template catalog.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_sources(EMBEDDED, &Templates::embedded()?)
    }

    /// `(file name for errors, locale, TOML)` per locale.
    pub fn from_sources(sources: &[(&'static str, &str, &str)], templates: &Templates) -> Result<Self, ConfigError> {
        let mut locales: Vec<LocaleTexts> = Vec::with_capacity(sources.len());
        for (file, locale, src) in sources {
            let texts = LocaleTexts::parse(file, locale, src, templates)?;
            if locales.iter().any(|l| l.locale == texts.locale) {
                return Err(ConfigError::Invalid { name: file, reason: format!("locale '{locale}' is loaded twice") });
            }
            locales.push(texts);
        }
        if locales.is_empty() {
            return Err(ConfigError::Invalid {
                name: "config/notifications.<locale>.toml",
                reason: "no notification texts".into(),
            });
        }
        Ok(Self { locales })
    }

    /// The locales that have texts.
    pub fn locales(&self) -> impl Iterator<Item = &str> {
        self.locales.iter().map(|l| l.locale.as_str())
    }

    /// `de_DE` and `de-AT` find `de`; a locale without texts gets [`DEFAULT_LOCALE`], else any.
    fn for_locale(&self, locale: &str) -> &LocaleTexts {
        let wanted = base_language(locale);
        let find = |l: &str| self.locales.iter().find(|t| t.locale == l);
        find(&wanted).or_else(|| find(DEFAULT_LOCALE)).unwrap_or(&self.locales[0])
    }

    pub fn render(&self, locale: &str, n: &Notification) -> RenderedNotification {
        let lt = self.for_locale(locale);
        let kt = &lt.kinds[kind_index(n.kind)];
        let items = lt.item_lines(&n.facts.items);
        let total = format_money(n.facts.total, &lt.locale);
        let value = |fact: Fact| -> Option<String> {
            let clean = |s: &Option<String>| s.as_deref().map(flatten).filter(|s| !s.is_empty());
            match fact {
                Fact::FirstName => clean(&n.facts.first_name),
                Fact::Order => Some(n.facts.order_name.clone()),
                Fact::Items => (!items.is_empty()).then(|| items.join("\n")),
                Fact::Total => Some(total.clone()),
                Fact::Carrier => clean(&n.facts.carrier),
                Fact::TrackingNumber => clean(&n.facts.tracking_number),
                Fact::TrackingUrl => clean(&n.facts.tracking_url),
            }
        };

        let lines: Vec<String> =
            kt.text.lines().filter_map(|line| substitute(line, |name| Fact::parse(name).and_then(&value))).collect();
        let text = truncate(&tidy(&lines), MAX_TEXT);

        let params = kt
            .params
            .iter()
            .map(|&fact| {
                let v = match fact {
                    Fact::Items => (!items.is_empty()).then(|| items.join(", ")),
                    // A link is best; the number still lets the customer track.
                    Fact::TrackingUrl => value(Fact::TrackingUrl).or_else(|| value(Fact::TrackingNumber)),
                    _ => value(fact),
                };
                // Validated at load: a fact that may be missing has a stand-in. "–" only guards
                // hand-built notifications, since Meta rejects empty parameters.
                flatten(&v.or_else(|| lt.missing.get(fact)).unwrap_or_else(|| "–".into()))
            })
            .collect();
        let template = TemplateRef::new(&kt.template, &kt.language, params);
        RenderedNotification { text, template }
    }
}

impl LocaleTexts {
    fn parse(file: &'static str, locale: &str, src: &str, templates: &Templates) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::Invalid { name: file, reason };
        if !(locale.len() == 2 && locale.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(err(format!("locale '{locale}' must be a two-letter language code like 'de'")));
        }
        let raw: RawTexts = toml::from_str(src).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let mut errors = Vec::new();

        if !(1..=MAX_ITEMS_LIMIT).contains(&raw.max_items) {
            errors.push(format!("max_items must be 1 to {MAX_ITEMS_LIMIT}, it is {}", raw.max_items));
        }
        check_small("item_line", &raw.item_line, &["title", "quantity"], &["title"], &mut errors);
        check_small("items_more.one", &raw.items_more.one, &["count"], &[], &mut errors);
        check_small("items_more.other", &raw.items_more.other, &["count"], &["count"], &mut errors);
        for (name, v) in raw.missing.entries() {
            if let Some(v) = v {
                check_small(&format!("missing.{name}"), v, &[], &[], &mut errors);
            }
        }

        let mut kinds = Vec::with_capacity(NotificationKind::ALL.len());
        for kind in NotificationKind::ALL {
            let rk = raw.kind(kind);
            let ctx = kind.as_str();
            check_text(kind, &rk.text, &mut errors);
            let mut params = Vec::with_capacity(rk.params.len());
            for p in &rk.params {
                let Some(fact) = Fact::parse(p) else {
                    errors.push(format!("{ctx}.params: '{p}' is not one of {}", fact_names()));
                    continue;
                };
                // The template link falls back to the number (see `render`).
                let avail = match fact {
                    Fact::TrackingUrl => fact.availability(kind).max(Fact::TrackingNumber.availability(kind)),
                    _ => fact.availability(kind),
                };
                match avail {
                    Avail::Never => errors.push(format!("{ctx}.params: a {ctx} message has no '{p}'")),
                    Avail::Maybe if raw.missing.get(fact).is_none() => errors.push(format!(
                        "{ctx}.params: '{p}' may be unknown and template parameters may not be empty; set missing.{}",
                        missing_name(fact)
                    )),
                    _ => {}
                }
                params.push(fact);
            }
            let language = match templates.get(&rk.template, locale) {
                None => {
                    errors
                        .push(format!("{ctx}.template: '{}' ({locale}) is not in config/templates.toml", rk.template));
                    String::new()
                }
                Some(def) => {
                    if def.category != TemplateCategory::Utility {
                        errors.push(format!(
                            "{ctx}.template: '{}' is a {} template; order messages need a utility one",
                            def.name,
                            def.category.as_str()
                        ));
                    }
                    if def.param_count() != rk.params.len() {
                        errors.push(format!(
                            "{ctx}.params: template '{}' ({}) takes {} parameters, {} are given",
                            def.name,
                            def.language,
                            def.param_count(),
                            rk.params.len()
                        ));
                    }
                    def.language.clone()
                }
            };
            kinds.push(KindTexts { text: rk.text.trim().to_string(), template: rk.template.clone(), language, params });
        }

        if !errors.is_empty() {
            return Err(err(errors.join("; ")));
        }
        Ok(Self {
            locale: locale.to_string(),
            max_items: raw.max_items,
            item_line: raw.item_line,
            more_one: raw.items_more.one,
            more_other: raw.items_more.other,
            missing: raw.missing,
            kinds,
        })
    }

    /// At most `max_items` lines, then one "… and N more items" line.
    fn item_lines(&self, items: &[ItemLine]) -> Vec<String> {
        let mut lines: Vec<String> = items
            .iter()
            .take(self.max_items)
            .filter_map(|i| {
                let q = i.quantity.to_string();
                let title = flatten(&i.title);
                substitute(&self.item_line, |name| match name {
                    "quantity" => Some(q.clone()),
                    "title" => Some(title.clone()),
                    _ => None,
                })
            })
            .collect();
        let rest = items.len().saturating_sub(self.max_items);
        if rest > 0 {
            let more = if rest == 1 { &self.more_one } else { &self.more_other };
            let count = rest.to_string();
            lines.extend(substitute(more, |name| (name == "count").then(|| count.clone())));
        }
        lines
    }
}

fn kind_index(kind: NotificationKind) -> usize {
    NotificationKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn fact_names() -> String {
    Fact::ALL.map(Fact::name).join(", ")
}

fn missing_name(fact: Fact) -> &'static str {
    match fact {
        Fact::TrackingNumber | Fact::TrackingUrl => "tracking",
        other => other.name(),
    }
}

/// A message text: known placeholders that this kind has, the order named, and for shipping
/// messages something to track with.
fn check_text(kind: NotificationKind, text: &str, errors: &mut Vec<String>) {
    let ctx = kind.as_str();
    let n = text.trim().chars().count();
    if n == 0 {
        errors.push(format!("{ctx}.text is empty"));
        return;
    }
    if n > MAX_TEXT {
        errors.push(format!("{ctx}.text is {n} characters, at most {MAX_TEXT} are allowed"));
    }
    let mut used = Vec::new();
    for name in placeholders(text) {
        match Fact::parse(name) {
            None => errors.push(format!("{ctx}.text: {{{name}}} is not one of {}", fact_names())),
            Some(f) if f.availability(kind) == Avail::Never => {
                errors.push(format!("{ctx}.text: a {ctx} message has no {{{name}}}"))
            }
            Some(f) => used.push(f),
        }
    }
    if !used.contains(&Fact::Order) {
        errors.push(format!("{ctx}.text must name the order with {{order}}"));
    }
    if matches!(kind, NotificationKind::Shipped | NotificationKind::TrackingUpdate)
        && !used.iter().any(|f| matches!(f, Fact::TrackingNumber | Fact::TrackingUrl))
    {
        errors.push(format!("{ctx}.text must contain {{tracking_number}} or {{tracking_url}}"));
    }
}

/// A one-line snippet: not empty, only the allowed placeholders, the required ones present.
fn check_small(ctx: &str, text: &str, allowed: &[&str], required: &[&str], errors: &mut Vec<String>) {
    if text.trim().is_empty() {
        errors.push(format!("{ctx} is empty"));
    }
    if text.contains('\n') {
        errors.push(format!("{ctx} must be a single line"));
    }
    let used = placeholders(text);
    for name in &used {
        if !allowed.contains(name) {
            errors.push(format!("{ctx}: {{{name}}} is not allowed here"));
        }
    }
    for name in required {
        if !used.contains(name) {
            errors.push(format!("{ctx} must contain {{{name}}}"));
        }
    }
}

/// The line with its placeholders filled; None if one has no value (the line is left out).
fn substitute(line: &str, value: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some((before, name, after)) = next_placeholder(rest) {
        out.push_str(before);
        out.push_str(&value(name)?);
        rest = after;
    }
    out.push_str(rest);
    Some(out)
}

/// Trailing spaces off, no blank lines at the ends, at most one blank line in a row (a left-out
/// line between two paragraphs must not leave a gap).
fn tidy(lines: &[String]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for line in lines.iter().flat_map(|l| l.split('\n')).map(str::trim_end) {
        if line.is_empty() && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

fn base_language(locale: &str) -> String {
    locale.trim().split(['_', '-']).next().unwrap_or_default().to_ascii_lowercase()
}

/// A price as the customer reads it, from integer minor units only: German style
/// `1.234,56 €` for `de` (and any other locale), English style `€1,234.56` for `en`. Decimals
/// follow the currency (JPY none, KWD three). Only € and £ get a symbol; other currencies show
/// their code (`1.234,56 USD`, `USD 1,234.56`), since `$` and `¥` name several.
pub fn format_money(m: Money, locale: &str) -> String {
    let english = base_language(locale) == "en";
    let (group, decimal) = if english { (',', '.') } else { ('.', ',') };
    let exp = m.currency.exponent();
    let abs = m.minor.unsigned_abs();
    let scale = 10u64.pow(exp);
    let digits = (abs / scale).to_string();
    let mut number = String::with_capacity(digits.len() + 8);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            number.push(group);
        }
        number.push(c);
    }
    if exp > 0 {
        number.push(decimal);
        number.push_str(&format!("{:0width$}", abs % scale, width = exp as usize));
    }
    let sign = if m.minor < 0 { "-" } else { "" };
    let symbol = match m.currency.as_str() {
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        _ => None,
    };
    let code = m.currency.as_str();
    match (symbol, english) {
        (Some(sym), true) => format!("{sign}{sym}{number}"),
        (Some(sym), false) => format!("{sign}{number} {sym}"),
        (None, true) => format!("{sign}{code} {number}"),
        (None, false) => format!("{sign}{number} {code}"),
    }
}

// ---- file format ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTexts {
    #[serde(default = "default_max_items")]
    max_items: usize,
    item_line: String,
    items_more: RawMore,
    #[serde(default)]
    missing: RawMissing,
    confirmation: RawKind,
    shipped: RawKind,
    tracking_update: RawKind,
    delivered: RawKind,
    cancelled: RawKind,
}

impl RawTexts {
    fn kind(&self, kind: NotificationKind) -> &RawKind {
        match kind {
            NotificationKind::Confirmation => &self.confirmation,
            NotificationKind::Shipped => &self.shipped,
            NotificationKind::TrackingUpdate => &self.tracking_update,
            NotificationKind::Delivered => &self.delivered,
            NotificationKind::Cancelled => &self.cancelled,
        }
    }
}

fn default_max_items() -> usize {
    DEFAULT_MAX_ITEMS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMore {
    one: String,
    other: String,
}

/// Stand-ins for template parameters the shop did not send.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMissing {
    first_name: Option<String>,
    items: Option<String>,
    carrier: Option<String>,
    /// For the tracking number and link.
    tracking: Option<String>,
}

impl RawMissing {
    fn get(&self, fact: Fact) -> Option<String> {
        match fact {
            Fact::FirstName => self.first_name.clone(),
            Fact::Items => self.items.clone(),
            Fact::Carrier => self.carrier.clone(),
            Fact::TrackingNumber | Fact::TrackingUrl => self.tracking.clone(),
            Fact::Order | Fact::Total => None,
        }
    }

    fn entries(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("first_name", &self.first_name),
            ("items", &self.items),
            ("carrier", &self.carrier),
            ("tracking", &self.tracking),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    text: String,
    template: String,
    #[serde(default)]
    params: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Currency;
    use crate::shops::{LineItem, Platform};
    use proptest::prelude::*;
    use NotificationKind as K;

    const T0: i64 = 1_700_000_000;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn order_ref() -> OrderRef {
        OrderRef { platform: Platform::Shopify, shop: "brand.myshopify.com".into(), order_id: 820982911946154508 }
    }

    fn item(title: &str, quantity: u32) -> LineItem {
        LineItem { title: title.into(), quantity, sku: None, variant_id: None, product_id: None, unit_price: None }
    }

    fn snapshot(status: OrderStatus, updated_at: Option<i64>) -> OrderSnapshot {
        OrderSnapshot {
            order: order_ref(),
            name: "#1001".into(),
            status,
            currency: Currency::parse("EUR").unwrap(),
            total: eur(8999),
            items: vec![item("Aviator sunglasses", 2)],
            phones: vec!["+49 151 2345678".into()],
            country: Some("DE".into()),
            customer_first_name: Some("Anna".into()),
            locale: Some("de".into()),
            attributes: vec![],
            created_at: Some(T0),
            updated_at,
            fulfillments: vec![],
            marketing_consent: None,
            test: false,
        }
    }

    fn order(status: OrderStatus, t: i64) -> ShopEvent {
        ShopEvent::Order(snapshot(status, Some(t)))
    }

    fn ful(id: &str, numbers: &[&str], shipment: Option<ShipmentStatus>, t: Option<i64>) -> Fulfillment {
        Fulfillment {
            id: id.into(),
            status: Some("success".into()),
            shipment_status: shipment,
            tracking_company: Some("DHL".into()),
            tracking_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            tracking_urls: numbers.iter().map(|n| format!("https://dhl.example/t/{n}")).collect(),
            updated_at: t,
        }
    }

    fn ful_ev(f: Fulfillment) -> ShopEvent {
        ShopEvent::Fulfillment { order: order_ref(), fulfillment: f, destination_phone: None, country: None }
    }

    fn shipped(id: &str, numbers: &[&str], t: i64) -> ShopEvent {
        ful_ev(ful(id, numbers, Some(ShipmentStatus::InTransit), Some(t)))
    }

    fn delivered(id: &str, numbers: &[&str], t: i64) -> ShopEvent {
        ful_ev(ful(id, numbers, Some(ShipmentStatus::Delivered), Some(t)))
    }

    /// Applies the events in turn; per event the kinds sent.
    fn run_with(policy: &OrderPolicy, events: &[ShopEvent]) -> (OrderNotifyState, Vec<Vec<K>>, Vec<Notification>) {
        let mut s = OrderNotifyState::default();
        let mut per_event = Vec::new();
        let mut all = Vec::new();
        for e in events {
            let d = decide(&s, e, policy);
            per_event.push(d.notifications.iter().map(|n| n.kind).collect());
            all.extend(d.notifications);
            s = d.state;
        }
        (s, per_event, all)
    }

    fn run(events: &[ShopEvent]) -> (OrderNotifyState, Vec<Vec<K>>, Vec<Notification>) {
        run_with(&OrderPolicy::default(), events)
    }

    fn paid_policy() -> OrderPolicy {
        OrderPolicy { confirm_on: ConfirmOn::Paid }
    }

    #[test]
    fn an_order_awaiting_payment_is_confirmed_only_once_paid() {
        // WooCommerce "pending payment" is mostly abandoned checkouts: no confirmation for those.
        let (_, sent, _) = run(&[
            order(OrderStatus::AwaitingPayment, T0),
            order(OrderStatus::AwaitingPayment, T0 + 5),
            order(OrderStatus::Paid, T0 + 10),
        ]);
        assert_eq!(sent, vec![vec![], vec![], vec![K::Confirmation]]);
        // Abandoned and auto-cancelled: the customer was never told anything, so no notice either.
        let (_, sent, _) = run(&[order(OrderStatus::AwaitingPayment, T0), order(OrderStatus::Cancelled, T0 + 10)]);
        assert_eq!(sent, vec![vec![], vec![]]);
    }

    #[test]
    fn confirmation_is_sent_once_when_placed() {
        let (s, sent, all) =
            run(&[order(OrderStatus::Placed, T0), order(OrderStatus::Placed, T0), order(OrderStatus::Paid, T0 + 10)]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![], vec![]]);
        assert_eq!(s.stage, Stage::Confirmed);
        assert_eq!(s.sent, ["confirmation"]);
        let f = &all[0].facts;
        assert_eq!((f.order_name.as_str(), f.first_name.as_deref(), f.total), ("#1001", Some("Anna"), eur(8999)));
        assert_eq!(f.items, vec![ItemLine { title: "Aviator sunglasses".into(), quantity: 2 }]);
        let d = decide(&s, &order(OrderStatus::Paid, T0 + 10), &OrderPolicy::default());
        assert_eq!(d.ignored, Some(ignored::NOTHING_NEW));
        let first = decide(&OrderNotifyState::default(), &order(OrderStatus::Placed, T0), &OrderPolicy::default());
        assert!(first.changed);
        let again = decide(&first.state, &order(OrderStatus::Placed, T0), &OrderPolicy::default());
        assert!(!again.changed, "a repeated snapshot must not be rewritten");
    }

    #[test]
    fn confirm_on_paid_waits_for_payment() {
        let p = paid_policy();
        let d = decide(&OrderNotifyState::default(), &order(OrderStatus::Placed, T0), &p);
        assert!(d.notifications.is_empty());
        assert_eq!(d.ignored, Some(ignored::AWAITING_PAYMENT));
        let (_, sent, _) = run_with(
            &p,
            &[order(OrderStatus::Placed, T0), order(OrderStatus::Paid, T0 + 5), order(OrderStatus::Completed, T0 + 9)],
        );
        assert_eq!(sent, vec![vec![], vec![K::Confirmation], vec![]]);
    }

    #[test]
    fn shipped_needs_a_tracking_number_and_is_sent_once_per_fulfillment() {
        let (s, sent, all) = run(&[
            order(OrderStatus::Paid, T0),
            shipped("f1", &[], T0 + 10),
            shipped("f1", &["1Z999"], T0 + 20),
            shipped("f1", &["1Z999"], T0 + 20),
            shipped("f2", &["00340434"], T0 + 30),
        ]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![], vec![K::Shipped], vec![], vec![K::Shipped]]);
        assert_eq!(s.stage, Stage::Shipped);
        assert_eq!(all[1].key, "shipped:f1");
        assert_eq!(all[2].key, "shipped:f2");
        let f = &all[1].facts;
        assert_eq!(f.carrier.as_deref(), Some("DHL"));
        assert_eq!(f.tracking_number.as_deref(), Some("1Z999"));
        assert_eq!(f.tracking_url.as_deref(), Some("https://dhl.example/t/1Z999"));

        let s0 = run(&[order(OrderStatus::Paid, T0)]).0;
        let d = decide(&s0, &shipped("f1", &[], T0 + 10), &OrderPolicy::default());
        assert_eq!(d.ignored, Some(ignored::NO_TRACKING));
        assert!(d.state.fulfillments.contains_key("f1"), "recorded for the update with tracking");
    }

    #[test]
    fn fulfillment_before_order_is_joined_and_no_confirmation_follows() {
        let d = decide(&OrderNotifyState::default(), &shipped("f1", &["1Z999"], T0 + 20), &OrderPolicy::default());
        assert!(d.notifications.is_empty());
        assert_eq!(d.ignored, Some(ignored::ORDER_UNKNOWN));
        assert_eq!(d.state.fulfillments["f1"].tracking.len(), 1);

        let (s, sent, _) = run(&[
            shipped("f1", &["1Z999"], T0 + 20),
            order(OrderStatus::Placed, T0),
            order(OrderStatus::Paid, T0 + 5),
        ]);
        assert_eq!(sent, vec![vec![], vec![K::Shipped], vec![]]);
        assert_eq!(s.stage, Stage::Shipped);
        assert!(!s.has_sent(KEY_CONFIRMATION));
    }

    #[test]
    fn late_create_after_the_shipping_message_sends_nothing() {
        // A create with an older timestamp is stale; one without a timestamp still finds the
        // stage past None. Either way no confirmation after the shipping message.
        let p = OrderPolicy::default();
        let (s, sent, _) = run(&[order(OrderStatus::Paid, T0 + 5), shipped("f1", &["1Z999"], T0 + 20)]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![K::Shipped]]);
        let d = decide(&s, &order(OrderStatus::Placed, T0), &p);
        assert_eq!((d.notifications.len(), d.ignored), (0, Some(ignored::STALE_ORDER)));
        assert_eq!(d.state, s);
        let d = decide(&s, &ShopEvent::Order(snapshot(OrderStatus::Placed, None)), &p);
        assert!(d.notifications.is_empty());

        // Shipping known before any order event: the late create confirms nothing either.
        let (_, sent, _) = run(&[shipped("f1", &["1Z999"], T0 + 20), order(OrderStatus::Placed, T0)]);
        assert_eq!(sent, vec![vec![], vec![K::Shipped]]);
    }

    #[test]
    fn new_tracking_number_sends_one_correction_and_numbers_are_merged() {
        let (s, sent, all) = run(&[
            order(OrderStatus::Paid, T0),
            shipped("f1", &["1Z999"], T0 + 10),
            shipped("f1", &["1Z999", "1Z777"], T0 + 20),
            shipped("f1", &["1Z777"], T0 + 30),
            shipped("f1", &[" 1z 777"], T0 + 40),
            shipped("f1", &["1Z999", "1Z777"], T0 + 40),
        ]);
        assert_eq!(
            sent,
            vec![vec![K::Confirmation], vec![K::Shipped], vec![K::TrackingUpdate], vec![], vec![], vec![]]
        );
        let correction = &all[2];
        assert_eq!(correction.key, "tracking:f1:1Z777");
        assert_eq!(correction.facts.tracking_number.as_deref(), Some("1Z777"));
        assert_eq!(correction.facts.tracking_url.as_deref(), Some("https://dhl.example/t/1Z777"));
        let numbers: Vec<&str> = s.fulfillments["f1"].tracking.iter().map(|t| t.number.as_str()).collect();
        assert_eq!(numbers, ["1Z999", "1Z777"], "merged, never replaced");
        assert_eq!(s.fulfillments["f1"].announced, 2);
    }

    #[test]
    fn a_stale_fulfillment_brings_no_old_number_back() {
        let (s, sent, _) = run(&[order(OrderStatus::Paid, T0), shipped("f1", &["NEW"], T0 + 20)]);
        assert_eq!(sent[1], vec![K::Shipped]);
        let d = decide(&s, &shipped("f1", &["OLD"], T0 + 10), &OrderPolicy::default());
        assert!(d.notifications.is_empty());
        assert_eq!(d.ignored, Some(ignored::STALE_FULFILLMENT));
        assert_eq!(d.state, s);
    }

    #[test]
    fn delivered_sends_one_review_request_and_stays_delivered() {
        let (s, sent, all) = run(&[
            order(OrderStatus::Paid, T0),
            shipped("f1", &["1Z999"], T0 + 10),
            delivered("f1", &["1Z999"], T0 + 20),
            shipped("f1", &["1Z999"], T0 + 30),
            delivered("f1", &["1Z999"], T0 + 40),
            delivered("f2", &["1Z555"], T0 + 50),
        ]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![K::Shipped], vec![K::Delivered], vec![], vec![], vec![]]);
        assert_eq!(all[2].key, "delivered:f1");
        assert_eq!(s.stage, Stage::Delivered);
        assert!(s.fulfillments["f1"].delivered, "a late in_transit does not undo delivered");
    }

    #[test]
    fn delivered_before_shipped_skips_the_shipping_message() {
        let (s, sent, _) = run(&[
            order(OrderStatus::Paid, T0),
            delivered("f1", &["1Z999"], T0 + 20),
            shipped("f1", &["1Z999"], T0 + 10),
            // Without a timestamp it is not stale, and still changes nothing.
            ful_ev(ful("f1", &["1Z999"], Some(ShipmentStatus::InTransit), None)),
            shipped("f1", &["1Z999", "1Z000"], T0 + 40),
        ]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![K::Delivered], vec![], vec![], vec![]]);
        assert!(!s.has_sent("shipped:f1"));
        // Delivered as the very first news: no confirmation and no shipped message either.
        let (s, sent, _) = run(&[delivered("f1", &["1Z999"], T0 + 20), order(OrderStatus::Placed, T0)]);
        assert_eq!(sent, vec![vec![], vec![K::Delivered]]);
        assert_eq!(s.stage, Stage::Delivered);
    }

    #[test]
    fn a_second_parcel_still_ships_after_the_first_was_delivered() {
        let (_, sent, _) = run(&[
            order(OrderStatus::Paid, T0),
            delivered("f1", &["A1"], T0 + 20),
            shipped("f2", &["B1"], T0 + 30),
            delivered("f2", &["B1"], T0 + 40),
        ]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![K::Delivered], vec![K::Shipped], vec![]]);
    }

    #[test]
    fn cancellation_is_terminal() {
        let (s, sent, all) = run(&[
            order(OrderStatus::Paid, T0),
            order(OrderStatus::Cancelled, T0 + 10),
            order(OrderStatus::Cancelled, T0 + 10),
            shipped("f1", &["1Z999"], T0 + 20),
            order(OrderStatus::Paid, T0 + 30),
            delivered("f1", &["1Z999"], T0 + 40),
        ]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![K::Cancelled], vec![], vec![], vec![], vec![]]);
        assert_eq!(all[1].key, "cancelled");
        assert_eq!(s.stage, Stage::Cancelled);
        let d = decide(&s, &shipped("f1", &["1Z999"], T0 + 20), &OrderPolicy::default());
        assert_eq!(d.ignored, Some(ignored::AFTER_CANCEL));
        assert_eq!(d.state, s);
        // After shipping too: the notice goes out, later scans do not.
        let (_, sent, _) =
            run(&[shipped("f1", &["A"], T0), order(OrderStatus::Paid, T0), order(OrderStatus::Cancelled, T0 + 9)]);
        assert_eq!(sent, vec![vec![], vec![K::Shipped], vec![K::Cancelled]]);
    }

    #[test]
    fn cancellation_as_first_news_depends_on_the_policy_and_the_name() {
        let first = order(OrderStatus::Cancelled, T0);
        let (s, sent, _) = run(std::slice::from_ref(&first));
        assert_eq!(sent, vec![vec![K::Cancelled]]);
        assert_eq!(s.stage, Stage::Cancelled);

        let d = decide(&OrderNotifyState::default(), &first, &paid_policy());
        assert!(d.notifications.is_empty());
        assert_eq!(d.ignored, Some(ignored::CANCEL_UNANNOUNCED));
        assert_eq!(d.state.stage, Stage::Cancelled, "terminal even when not announced");

        let mut nameless = snapshot(OrderStatus::Cancelled, Some(T0));
        nameless.name = "  ".into();
        let d = decide(&OrderNotifyState::default(), &ShopEvent::Order(nameless), &OrderPolicy::default());
        assert_eq!(d.ignored, Some(ignored::CANCEL_UNANNOUNCED));

        // Seen unpaid (no confirmation under ConfirmOn::Paid), then cancelled: quiet.
        let (_, sent, _) =
            run_with(&paid_policy(), &[order(OrderStatus::Placed, T0), order(OrderStatus::Cancelled, T0 + 60)]);
        assert_eq!(sent, vec![vec![], vec![]]);
        // Seen failed, then cancelled: the customer never heard of it from us.
        let (_, sent, _) = run(&[order(OrderStatus::Failed, T0), order(OrderStatus::Cancelled, T0 + 60)]);
        assert_eq!(sent, vec![vec![], vec![]]);
    }

    #[test]
    fn refunded_and_failed_send_nothing_but_a_retried_payment_confirms() {
        for (status, reason) in [(OrderStatus::Refunded, ignored::REFUNDED), (OrderStatus::Failed, ignored::FAILED)] {
            let mut snap = snapshot(status, Some(T0));
            snap.fulfillments = vec![ful("f1", &["1Z999"], None, Some(T0))];
            let d = decide(&OrderNotifyState::default(), &ShopEvent::Order(snap), &OrderPolicy::default());
            assert!(d.notifications.is_empty());
            assert_eq!(d.ignored, Some(reason));
        }
        let (_, sent, _) = run(&[order(OrderStatus::Failed, T0), order(OrderStatus::Paid, T0 + 60)]);
        assert_eq!(sent, vec![vec![], vec![K::Confirmation]]);
        // A refunded order stays quiet for fulfillments too.
        let (_, sent, _) = run(&[order(OrderStatus::Refunded, T0), shipped("f1", &["1Z999"], T0 + 5)]);
        assert_eq!(sent, vec![vec![], vec![]]);
    }

    #[test]
    fn stale_order_snapshots_change_nothing() {
        let (s, _, _) = run(&[order(OrderStatus::Paid, T0 + 100)]);
        let mut old = snapshot(OrderStatus::Cancelled, Some(T0));
        old.fulfillments = vec![ful("f9", &["X"], None, Some(T0))];
        let d = decide(&s, &ShopEvent::Order(old), &OrderPolicy::default());
        assert_eq!(d.ignored, Some(ignored::STALE_ORDER));
        assert_eq!(d.state, s);
        assert!(d.notifications.is_empty());
        // A snapshot without a timestamp keeps the newest one as the watermark.
        let d = decide(&s, &ShopEvent::Order(snapshot(OrderStatus::Paid, None)), &OrderPolicy::default());
        assert_eq!(d.state.order.unwrap().updated_at, Some(T0 + 100));
    }

    #[test]
    fn woo_completed_seen_first_sends_shipped_if_tracked_else_confirmation() {
        let mut completed = snapshot(OrderStatus::Completed, Some(T0));
        completed.fulfillments = vec![ful("wc-1", &["00340434"], None, None)];
        let (s, sent, all) = run(&[ShopEvent::Order(completed)]);
        assert_eq!(sent, vec![vec![K::Shipped]]);
        assert_eq!(all[0].key, "shipped:wc-1");
        assert_eq!(s.stage, Stage::Shipped);

        let (_, sent, _) = run_with(&paid_policy(), &[order(OrderStatus::Completed, T0)]);
        assert_eq!(sent, vec![vec![K::Confirmation]]);
    }

    #[test]
    fn cancelled_fulfillments_announce_nothing_and_stay_cancelled() {
        let s = run(&[order(OrderStatus::Paid, T0)]).0;
        let mut f = ful("f1", &["1Z999"], None, Some(T0 + 10));
        f.status = Some("Cancelled".into());
        let d = decide(&s, &ful_ev(f.clone()), &OrderPolicy::default());
        assert!(d.notifications.is_empty());
        assert_eq!(d.ignored, Some(ignored::FULFILLMENT_VOID));
        f.status = Some("success".into());
        f.updated_at = Some(T0 + 20);
        let d = decide(&d.state, &ful_ev(f), &OrderPolicy::default());
        assert!(d.notifications.is_empty(), "cancelled sticks");
        // error/failure do not stick: a later success ships.
        let mut e = ful("f2", &["2Z"], None, Some(T0 + 10));
        e.status = Some("error".into());
        let (_, sent, _) = run(&[order(OrderStatus::Paid, T0), ful_ev(e.clone()), {
            e.status = Some("success".into());
            e.updated_at = Some(T0 + 20);
            ful_ev(e)
        }]);
        assert_eq!(sent, vec![vec![K::Confirmation], vec![], vec![K::Shipped]]);
    }

    #[test]
    fn other_events_and_other_orders_are_ignored() {
        let s = run(&[order(OrderStatus::Paid, T0)]).0;
        let p = OrderPolicy::default();
        let d = decide(&s, &ShopEvent::Refund { order: order_ref() }, &p);
        assert_eq!((d.ignored, &d.state), (Some(ignored::NOT_AN_ORDER_EVENT), &s));
        let d = decide(&s, &ShopEvent::Ignored { topic: "products/update".into(), reason: "-".into() }, &p);
        assert_eq!(d.ignored, Some(ignored::NOT_AN_ORDER_EVENT));
        let mut other = snapshot(OrderStatus::Cancelled, Some(T0 + 5));
        other.order.order_id = 1;
        let d = decide(&s, &ShopEvent::Order(other.clone()), &p);
        assert_eq!((d.ignored, &d.state), (Some(ignored::WRONG_ORDER), &s));
        let ev = ShopEvent::Fulfillment {
            order: other.order,
            fulfillment: ful("f1", &["A"], None, None),
            destination_phone: None,
            country: None,
        };
        assert_eq!(decide(&s, &ev, &p).ignored, Some(ignored::WRONG_ORDER));
    }

    #[test]
    fn state_is_compact_and_round_trips() {
        assert_eq!(serde_json::to_string(&OrderNotifyState::default()).unwrap(), r#"{"stage":"none"}"#);
        let (s, _, _) = run(&[
            order(OrderStatus::Paid, T0),
            shipped("f1", &["1Z999"], T0 + 10),
            shipped("f1", &["1Z999", "1Z777"], T0 + 20),
        ]);
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("null"), "{json}");
        assert_eq!(serde_json::from_str::<OrderNotifyState>(&json).unwrap(), s);
        // The DynamoDB form too.
        let item: serde_dynamo::Item = serde_dynamo::to_item(&s).unwrap();
        assert_eq!(serde_dynamo::from_item::<_, OrderNotifyState>(item).unwrap(), s);
    }

    #[test]
    fn idempotency_key_names_shop_order_and_business_key() {
        let (_, _, all) =
            run(&[order(OrderStatus::Paid, T0), shipped("f1", &["A"], T0), shipped("f1", &["A", "B"], T0)]);
        let keys: Vec<String> = all.iter().map(|n| n.idempotency_key(&order_ref())).collect();
        assert_eq!(
            keys,
            [
                "order:shopify:brand.myshopify.com:820982911946154508:confirmation",
                "order:shopify:brand.myshopify.com:820982911946154508:shipped:f1",
                "order:shopify:brand.myshopify.com:820982911946154508:tracking:f1:B",
            ]
        );
    }

    // ---- random sequences ----

    fn arb_fulfillment() -> impl Strategy<Value = Fulfillment> {
        let status = prop::option::of(prop::sample::select(vec!["pending", "success", "cancelled", "error"]));
        let shipment = prop::option::of(prop_oneof![
            Just(ShipmentStatus::LabelPrinted),
            Just(ShipmentStatus::InTransit),
            Just(ShipmentStatus::Delivered),
            Just(ShipmentStatus::Other("delayed".into())),
        ]);
        let numbers = prop::collection::vec(prop::sample::select(vec!["A", "B", "C", "a", " "]), 0..3);
        let carrier = prop::option::of(prop::sample::select(vec!["DHL", "UPS", ""]));
        (prop::sample::select(vec!["f1", "f2"]), status, shipment, numbers, carrier, prop::option::of(0..6i64))
            .prop_map(|(id, status, shipment_status, numbers, carrier, t)| Fulfillment {
                id: id.into(),
                status: status.map(str::to_string),
                shipment_status,
                tracking_company: carrier.map(str::to_string),
                tracking_urls: numbers.iter().map(|n| format!("https://t.example/{n}")).collect(),
                tracking_numbers: numbers.into_iter().map(str::to_string).collect(),
                updated_at: t.map(|t| T0 + t),
            })
    }

    fn arb_event() -> impl Strategy<Value = ShopEvent> {
        let status = prop::sample::select(vec![
            OrderStatus::Placed,
            OrderStatus::Paid,
            OrderStatus::Completed,
            OrderStatus::Cancelled,
            OrderStatus::Refunded,
            OrderStatus::Failed,
        ]);
        let snapshot_ev = (status, prop::option::of(0..6i64), prop::collection::vec(arb_fulfillment(), 0..2)).prop_map(
            |(status, t, fulfillments)| {
                let mut o = snapshot(status, t.map(|t| T0 + t));
                o.fulfillments = fulfillments;
                ShopEvent::Order(o)
            },
        );
        prop_oneof![
            4 => snapshot_ev,
            4 => arb_fulfillment().prop_map(ful_ev),
            1 => Just(ShopEvent::Refund { order: order_ref() }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn random_sequences_never_send_wrong_doubled_or_backwards_messages(
            events in prop::collection::vec(arb_event(), 0..14),
            paid in any::<bool>(),
        ) {
            let policy = OrderPolicy { confirm_on: if paid { ConfirmOn::Paid } else { ConfirmOn::Placed } };
            let mut s = OrderNotifyState::default();
            let mut sent: Vec<Notification> = Vec::new();
            for e in &events {
                let d = decide(&s, e, &policy);
                // Nothing after the order is cancelled, announced or not.
                if s.stage == Stage::Cancelled {
                    prop_assert!(d.notifications.is_empty());
                }
                prop_assert!(d.state.stage >= s.stage, "stage went back: {:?} → {:?}", s.stage, d.state.stage);
                prop_assert_eq!(d.notifications.is_empty(), d.ignored.is_some());
                for n in &d.notifications {
                    prop_assert!(d.state.has_sent(&n.key));
                }
                for (fid, before) in &s.fulfillments {
                    let after = &d.state.fulfillments[fid];
                    let numbers = |f: &FulfillmentSeen| f.tracking.iter().map(|t| t.number.clone()).collect::<Vec<_>>();
                    prop_assert!(numbers(after).starts_with(&numbers(before)), "numbers replaced");
                    prop_assert!(after.delivered >= before.delivered);
                }
                // `changed` is exactly "the state differs"; whatever is sent changes it.
                prop_assert_eq!(d.changed, d.state != s);
                prop_assert!(d.notifications.is_empty() || d.changed);
                // The same event again is a no-op, down to the state: nothing to write.
                let again = decide(&d.state, e, &policy);
                prop_assert!(again.notifications.is_empty(), "duplicate sent {:?}", again.notifications);
                prop_assert!(!again.changed, "a duplicate changed the state: {:?}", e);
                // What is stored reads back the same.
                let json = serde_json::to_string(&d.state).unwrap();
                prop_assert_eq!(&serde_json::from_str::<OrderNotifyState>(&json).unwrap(), &d.state);
                sent.extend(d.notifications);
                s = d.state;
            }

            let mut keys: Vec<&str> = sent.iter().map(|n| n.key.as_str()).collect();
            keys.sort_unstable();
            let n = keys.len();
            keys.dedup();
            prop_assert_eq!(keys.len(), n, "a key was sent twice");

            let count = |k: K| sent.iter().filter(|n| n.kind == k).count();
            prop_assert!(count(K::Confirmation) <= 1);
            prop_assert!(count(K::Delivered) <= 1);
            prop_assert!(count(K::Cancelled) <= 1);
            if let Some(i) = sent.iter().position(|n| n.kind == K::Cancelled) {
                prop_assert_eq!(i, sent.len() - 1, "something after the cancellation");
            }
            if let Some(i) = sent.iter().position(|n| n.kind == K::Confirmation) {
                prop_assert!(sent[..i].is_empty(), "confirmation after {:?}", sent[..i].iter().map(|n| n.kind).collect::<Vec<_>>());
            }
            for (i, n) in sent.iter().enumerate() {
                let fid = n.key.split(':').nth(1).unwrap_or_default();
                let earlier = &sent[..i];
                match n.kind {
                    K::TrackingUpdate => prop_assert!(earlier.iter().any(|m| m.key == shipped_key(fid))),
                    K::Shipped => prop_assert!(!earlier.iter().any(|m| m.key == delivered_key(fid))),
                    _ => {}
                }
                if matches!(n.kind, K::Shipped | K::TrackingUpdate) {
                    prop_assert!(n.facts.tracking_number.as_deref().is_some_and(|t| !t.trim().is_empty()));
                    prop_assert!(!earlier.iter().any(|m| m.key == delivered_key(fid)), "shipping news after delivery");
                }
            }
        }
    }

    #[test]
    fn random_sequences_reach_every_kind_and_reason() {
        // Guards the property above against a generator that never gets anywhere.
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let seq = prop::collection::vec(arb_event(), 0..14);
        let mut kinds = std::collections::BTreeSet::new();
        let mut reasons = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let policy = OrderPolicy { confirm_on: if i % 2 == 0 { ConfirmOn::Placed } else { ConfirmOn::Paid } };
            let mut s = OrderNotifyState::default();
            for e in seq.new_tree(&mut runner).unwrap().current() {
                let d = decide(&s, &e, &policy);
                kinds.extend(d.notifications.iter().map(|n| n.kind));
                reasons.extend(d.ignored);
                s = d.state;
            }
        }
        assert_eq!(kinds.len(), K::ALL.len(), "{kinds:?}");
        for r in [ignored::STALE_ORDER, ignored::STALE_FULFILLMENT, ignored::AFTER_CANCEL, ignored::ORDER_UNKNOWN] {
            assert!(reasons.contains(r), "{r} never happened: {reasons:?}");
        }
    }

    // ---- rendering ----

    fn texts() -> NotificationTexts {
        NotificationTexts::embedded().expect("embedded notification texts are valid")
    }

    fn facts() -> NotificationFacts {
        NotificationFacts {
            order_name: "#1001".into(),
            first_name: Some("Anna".into()),
            items: vec![ItemLine { title: "Aviator sunglasses".into(), quantity: 2 }],
            total: eur(123456),
            carrier: Some("DHL".into()),
            tracking_number: Some("1Z999".into()),
            tracking_url: Some("https://dhl.example/t/1Z999".into()),
        }
    }

    fn note(kind: K, facts: NotificationFacts) -> Notification {
        Notification { kind, key: "k".into(), facts }
    }

    #[test]
    fn money_formatting() {
        let m = |minor: i64, code: &str| Money::new(minor, Currency::parse(code).unwrap());
        let cases: &[(Money, &str, &str)] = &[
            (m(123456, "EUR"), "de", "1.234,56 €"),
            (m(123456, "EUR"), "en", "€1,234.56"),
            (m(123456, "EUR"), "de_DE", "1.234,56 €"),
            (m(123456, "EUR"), "en-GB", "€1,234.56"),
            (m(123456, "EUR"), "fr", "1.234,56 €"),
            (m(5, "EUR"), "de", "0,05 €"),
            (m(-1999, "EUR"), "de", "-19,99 €"),
            (m(-1999, "EUR"), "en", "-€19.99"),
            (m(100000000, "EUR"), "de", "1.000.000,00 €"),
            (m(99900, "GBP"), "en", "£999.00"),
            (m(123456, "USD"), "de", "1.234,56 USD"),
            (m(123456, "USD"), "en", "USD 1,234.56"),
            (m(1234, "JPY"), "de", "1.234 JPY"),
            (m(1234, "JPY"), "en", "JPY 1,234"),
            (m(1234567, "KWD"), "de", "1.234,567 KWD"),
            (m(5, "KWD"), "en", "KWD 0.005"),
            (m(0, "CHF"), "de", "0,00 CHF"),
            (m(i64::MIN, "JPY"), "en", "-JPY 9,223,372,036,854,775,808"),
        ];
        for (money, locale, want) in cases {
            assert_eq!(format_money(*money, locale), *want, "{money} in {locale}");
        }
    }

    #[test]
    fn embedded_texts_load_for_de_and_en_and_fit_the_template_catalog() {
        let t = texts();
        assert_eq!(t.locales().collect::<Vec<_>>(), ["de", "en"]);
        let catalog = Templates::embedded().unwrap();
        let expected = [
            (K::Confirmation, "order_confirmation", 2),
            (K::Shipped, "order_shipped", 3),
            (K::TrackingUpdate, "order_shipped", 3),
            (K::Delivered, "order_delivered", 1),
            (K::Cancelled, "order_cancelled", 1),
        ];
        for locale in ["de", "en"] {
            for (kind, name, count) in expected {
                let r = t.render(locale, &note(kind, facts()));
                assert_eq!(r.template.name, name);
                assert_eq!(r.template.language, locale);
                assert_eq!(r.template.params.len(), count, "{name} {locale}");
                let def = catalog.get(name, locale).unwrap();
                assert_eq!(def.category, TemplateCategory::Utility);
                assert_eq!(def.param_count(), count);
                assert!(catalog.body(name, locale, &r.template.params).is_some());
                assert!(r.template.params.iter().all(|p| !p.trim().is_empty()));
                assert!(!r.text.contains('{') && !r.text.contains('}'), "{}", r.text);
                assert!(r.text.contains("#1001"), "{}", r.text);
            }
        }
    }

    #[test]
    fn renders_each_kind_in_german() {
        let t = texts();
        let r = t.render("de", &note(K::Confirmation, facts()));
        assert_eq!(
            r.text,
            "Hallo Anna! 👋\nDanke für deine Bestellung #1001! 🎉\n\n2× Aviator sunglasses\n\nGesamtbetrag: 1.234,56 €\n\
             Wir melden uns hier, sobald dein Paket unterwegs ist."
        );
        assert_eq!(r.template.params, ["#1001", "1.234,56 €"]);

        let r = t.render("de_DE", &note(K::Shipped, facts()));
        assert!(r.text.contains("Versand mit DHL\nSendungsnummer: 1Z999\n"), "{}", r.text);
        assert!(r.text.contains("verfolgen: https://dhl.example/t/1Z999"), "{}", r.text);
        assert_eq!(r.template.params, ["#1001", "DHL", "https://dhl.example/t/1Z999"]);

        let r = t.render("de", &note(K::TrackingUpdate, facts()));
        assert!(r.text.contains("neue Sendungsnummer") && r.text.contains("1Z999"), "{}", r.text);

        let r = t.render("de", &note(K::Delivered, facts()));
        assert!(r.text.contains("angekommen") && r.text.contains("Feedback"), "{}", r.text);
        let r = t.render("de", &note(K::Cancelled, facts()));
        assert!(r.text.contains("storniert") && r.text.contains("Geld"), "{}", r.text);
        assert!(r.text.chars().count() < 400);
    }

    #[test]
    fn long_item_lists_are_cut_with_a_count() {
        let t = texts();
        let with_items = |n: usize| NotificationFacts {
            items: (1..=n).map(|i| ItemLine { title: format!("Artikel {i}"), quantity: i as u32 }).collect(),
            ..facts()
        };
        let r = t.render("de", &note(K::Confirmation, with_items(8)));
        assert!(r.text.contains("5× Artikel 5\n… und 3 weitere Artikel\n"), "{}", r.text);
        assert!(!r.text.contains("Artikel 6"), "{}", r.text);
        let r = t.render("de", &note(K::Confirmation, with_items(6)));
        assert!(r.text.contains("… und 1 weiterer Artikel"), "{}", r.text);
        let r = t.render("de", &note(K::Confirmation, with_items(5)));
        assert!(r.text.contains("5× Artikel 5\n\nGesamtbetrag") && !r.text.contains('…'), "{}", r.text);
        let r = t.render("en", &note(K::Confirmation, with_items(8)));
        assert!(r.text.contains("… and 3 more items"), "{}", r.text);
        let r = t.render("en", &note(K::Confirmation, with_items(6)));
        assert!(r.text.contains("… and 1 more item\n"), "{}", r.text);

        // No items: the line goes, no double gap is left.
        let r = t.render("de", &note(K::Confirmation, with_items(0)));
        assert!(r.text.contains("🎉\n\nGesamtbetrag"), "{}", r.text);

        // Titles with newlines stay on their line; very long lists stay under the limit.
        let mut huge = with_items(0);
        huge.items = vec![ItemLine { title: format!("Sonnen\nbrille {}", "x".repeat(5000)), quantity: 1 }];
        let r = t.render("de", &note(K::Confirmation, huge));
        assert!(r.text.chars().count() <= MAX_TEXT);
        assert!(r.text.contains("1× Sonnen brille"));
    }

    #[test]
    fn missing_carrier_url_and_name_are_left_out_gracefully() {
        let t = texts();
        let bare = NotificationFacts { carrier: None, tracking_url: None, first_name: None, ..facts() };
        let r = t.render("de", &note(K::Shipped, bare.clone()));
        assert_eq!(
            r.text,
            "Gute Nachrichten: Deine Bestellung #1001 ist unterwegs! 📦\n\nSendungsnummer: 1Z999\n\nViel Freude damit!"
        );
        // Template parameters may not be empty: the stand-in carrier and the number for the link.
        assert_eq!(r.template.params, ["#1001", "unserem Versandpartner", "1Z999"]);
        let r = t.render("en", &note(K::Shipped, bare.clone()));
        assert!(!r.text.contains("Shipped with") && !r.text.contains("Track your parcel"), "{}", r.text);
        assert!(r.text.starts_with("Good news"), "{}", r.text);
        assert_eq!(r.template.params, ["#1001", "our delivery partner", "1Z999"]);

        let r = t.render("de", &note(K::Cancelled, bare.clone()));
        assert!(r.text.starts_with("Deine Bestellung #1001 wurde storniert."), "{}", r.text);
        let r = t.render("en", &note(K::Delivered, NotificationFacts { tracking_number: None, ..bare }));
        assert!(r.text.starts_with("Your order #1001 has arrived."), "{}", r.text);
    }

    #[test]
    fn locale_falls_back_to_german() {
        let t = texts();
        for (locale, want) in [("en-US", "en"), ("EN_gb", "en"), ("fr", "de"), ("", "de"), ("de-AT", "de")] {
            assert_eq!(t.render(locale, &note(K::Delivered, facts())).template.language, want, "{locale}");
        }
        assert!(t.render("fr", &note(K::Confirmation, facts())).text.contains("1.234,56 €"));
    }

    #[test]
    fn decided_notifications_render() {
        let t = texts();
        let (_, _, all) = run(&[
            order(OrderStatus::Paid, T0),
            shipped("f1", &["A1", "A2"], T0 + 1),
            shipped("f1", &["A3"], T0 + 2),
            delivered("f1", &[], T0 + 3),
        ]);
        let texts: Vec<String> = all.iter().map(|n| t.render("de", n).text).collect();
        assert!(texts[1].contains("Sendungsnummer: A1, A2"), "{}", texts[1]);
        assert!(texts[2].contains("Neue Sendungsnummer: A3"), "{}", texts[2]);
        assert!(texts[3].contains("angekommen"), "{}", texts[3]);
    }

    // ---- loading ----

    const EN: &str = include_str!("../../../config/notifications.en.toml");

    fn load(src: &str) -> Result<NotificationTexts, ConfigError> {
        NotificationTexts::from_sources(&[("config/notifications.en.toml", "en", src)], &Templates::embedded().unwrap())
    }

    fn rejects(src: &str, needles: &[&str]) {
        match load(src) {
            Err(ConfigError::Invalid { name, reason }) => {
                assert_eq!(name, "config/notifications.en.toml");
                for n in needles {
                    assert!(reason.contains(n), "'{reason}' should mention '{n}'");
                }
            }
            Err(other) => panic!("unexpected error kind: {other}"),
            Ok(_) => panic!("accepted a bad file"),
        }
    }

    #[test]
    fn rejects_bad_texts_with_clear_errors() {
        load(EN).unwrap();
        rejects(&EN.replace("Total: {total}", "Total: {totl}"), &["confirmation.text", "{totl}", "not one of"]);
        rejects(&EN.replace("Total: {total}", "Total: {total} via {carrier}"), &["confirmation.text", "{carrier}"]);
        rejects(&EN.replace("Thanks for your order {order}!", "Thanks!"), &["confirmation.text", "{order}"]);
        rejects(
            &EN.replace("Tracking number: {tracking_number}\nTrack your parcel here: {tracking_url}", "Soon."),
            &["shipped.text", "{tracking_number} or {tracking_url}"],
        );
        rejects(
            &EN.replace("params = [\"order\", \"total\"]", "params = [\"order\"]"),
            &["confirmation.params", "takes 2 parameters, 1 are given"],
        );
        rejects(
            &EN.replace("template = \"order_delivered\"", "template = \"order_arrived\""),
            &["delivered.template", "'order_arrived'"],
        );
        rejects(&EN.replace("template = \"order_delivered\"", "template = \"cart_reminder\""), &["marketing template"]);
        rejects(
            &EN.replace("params = [\"order\", \"total\"]", "params = [\"order\", \"carrier\"]"),
            &["confirmation.params", "no 'carrier'"],
        );
        rejects(&EN.replace("carrier = \"our delivery partner\"", ""), &["shipped.params", "missing.carrier"]);
        rejects(&EN.replace("max_items = 5", "max_items = 0"), &["max_items"]);
        rejects(&EN.replace("{count} more items", "more items"), &["items_more.other", "{count}"]);
        rejects(&EN.replace("max_items = 5", "max_itmes = 5"), &["max_itmes"]);
        rejects(&format!("{}x", EN), &["line"]);
        // All problems at once.
        rejects(&EN.replace("{total}", "{totl}").replace("max_items = 5", "max_items = 99"), &["{totl}", "max_items"]);
    }

    #[test]
    fn rejects_duplicate_and_missing_locales() {
        let t = Templates::embedded().unwrap();
        let dup = NotificationTexts::from_sources(&[("a.toml", "en", EN), ("b.toml", "en", EN)], &t);
        assert!(matches!(dup, Err(ConfigError::Invalid { name: "b.toml", reason }) if reason.contains("twice")));
        assert!(NotificationTexts::from_sources(&[], &t).is_err());
        let bad = NotificationTexts::from_sources(&[("a.toml", "english", EN)], &t);
        assert!(matches!(bad, Err(ConfigError::Invalid { reason, .. }) if reason.contains("two-letter")));
    }

    #[test]
    fn placeholders_ignore_other_braces() {
        assert_eq!(placeholders("Hi {first_name} :-{ {Order} {} {tracking_url}"), ["first_name", "tracking_url"]);
        assert_eq!(substitute("a {x} b", |_| None), None);
        assert_eq!(substitute("a {x} :-{ b", |_| Some("1".into())).as_deref(), Some("a 1 :-{ b"));
    }
}
