//! Everything Parley keeps about one contact, in one read model: consent per purpose with its
//! audit trail, handover and inbox state, the customer-service window, the cart with its checkout
//! link, orders with the timeline of their notifications, and the conversation with each
//! message's delivery status. The sandbox's state panel shows it; it reads the same store the
//! functions write, so what it shows is what they would act on.
use super::contacts::{consent_purposes, ProfileView};
use super::OpsError;
use crate::api::App;
use crate::domain::cart::{checkout_link, Cart, CartStatus};
use crate::domain::orders::{OrderNotifyState, Stage};
use crate::domain::{ContactId, Money};
use crate::store::consent::ConsentAuditEvent;
use crate::store::history::{Message, MessageError};
use serde::Serialize;

/// How many of the newest messages the state carries.
pub const HISTORY_LIMIT: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct ContactState {
    /// The contact has written (or was created by an opt-in or an order) and has a profile.
    pub known: bool,
    #[serde(flatten)]
    pub profile: ProfileView,
    pub consent: ConsentView,
    pub window: WindowView,
    pub cart: Option<CartView>,
    pub orders: Vec<OrderView>,
    /// Oldest first, at most [`HISTORY_LIMIT`].
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    /// The overall state (`none`, `pending`, `confirmed`, `revoked`).
    pub overall: serde_json::Value,
    /// Purpose → state.
    pub purposes: serde_json::Map<String, serde_json::Value>,
    /// Oldest first.
    pub events: Vec<ConsentAuditEvent>,
}

/// The customer-service window: free-form replies only while it is open.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct WindowView {
    pub open: bool,
    /// Unix seconds of the customer's newest message.
    pub last_inbound_at: Option<i64>,
    /// Unix seconds when it closes (closed: when it closed).
    pub closes_at: Option<i64>,
    /// Seconds left (0 when closed).
    pub seconds_left: i64,
    pub window_secs: i64,
}

impl WindowView {
    pub fn at(last_inbound_at: Option<i64>, now: i64, window_secs: i64) -> Self {
        let closes_at = last_inbound_at.map(|t| t + window_secs);
        let seconds_left = closes_at.map_or(0, |c| (c - now).max(0));
        Self { open: seconds_left > 0, last_inbound_at, closes_at, seconds_left, window_secs }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CartView {
    pub id: String,
    /// `open`, `checkout_sent`, `converted`.
    pub status: CartStatus,
    pub lines: Vec<CartLineView>,
    /// One total per currency.
    pub totals: Vec<Money>,
    /// The link the customer was sent (rebuilt from the cart as the bot builds it), once sent.
    pub checkout_url: Option<String>,
    pub checkout_sent_at: Option<i64>,
    pub reminded_at: Option<i64>,
    /// The order the cart turned into.
    pub converted_order_id: Option<u64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CartLineView {
    pub sku: String,
    pub title: String,
    pub quantity: u32,
    pub unit_price: Money,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub platform: String,
    pub order_id: String,
    /// As the customer knows it ("#1001"); none while only fulfillments are known.
    pub name: Option<String>,
    pub stage: Stage,
    pub total: Option<Money>,
    /// Tracking numbers seen, in the order they were first seen.
    pub tracking: Vec<TrackingView>,
    /// The order's messages in the order they were decided, with their delivery status.
    pub notifications: Vec<NotificationView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackingView {
    pub carrier: Option<String>,
    pub number: String,
    pub url: Option<String>,
    pub delivered: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationView {
    /// The business key (`confirmation`, `shipped:…`, …): one message per key, ever.
    pub key: String,
    pub message_id: String,
    /// As in the history (`queued` … `read`, `failed`); `unknown` when it is older than the
    /// history page.
    pub status: String,
    pub error: Option<MessageError>,
    pub at: Option<i64>,
}

fn cart_view(app: &App, cart: Cart) -> CartView {
    let checkout_url = match (cart.checkout_sent_at, app.checkout_config()) {
        (Some(_), Some(cfg)) => Some(checkout_link(&cart, &cfg)),
        _ => None,
    };
    CartView {
        totals: cart.totals(),
        lines: cart
            .lines
            .iter()
            .map(|l| CartLineView {
                sku: l.sku.as_str().to_string(),
                title: l.title.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
            })
            .collect(),
        id: cart.id,
        status: cart.status,
        checkout_url,
        checkout_sent_at: cart.checkout_sent_at,
        reminded_at: cart.reminded_at,
        converted_order_id: cart.converted.as_ref().map(|c| c.order_id),
        updated_at: cart.updated_at,
    }
}

fn order_view(state: &OrderNotifyState, messages: &[Message]) -> Option<OrderView> {
    let summary = state.order.as_ref()?;
    let order = &summary.order;
    let notifications = state
        .sent
        .iter()
        .map(|key| {
            let id = crate::orders::notification_id(order, key);
            let msg = messages.iter().find(|m| m.id == id.as_str());
            NotificationView {
                key: key.clone(),
                message_id: id.as_str().to_string(),
                status: msg.map_or_else(|| "unknown".to_string(), |m| m.status.clone()),
                error: msg.and_then(|m| m.error.clone()),
                at: msg.map(|m| m.at),
            }
        })
        .collect();
    let tracking = state
        .fulfillments
        .values()
        .flat_map(|f| {
            f.tracking.iter().map(|t| TrackingView {
                carrier: f.carrier.clone(),
                number: t.number.clone(),
                url: t.url.clone(),
                delivered: f.delivered,
            })
        })
        .collect();
    Some(OrderView {
        platform: order.platform.as_str().to_string(),
        order_id: order.order_id.to_string(),
        name: Some(summary.name.clone()),
        stage: state.stage,
        total: Some(summary.total),
        tracking,
        notifications,
    })
}

/// The contact's state now; an unknown contact is `known: false` with everything empty.
pub async fn state(app: &App, contact: &ContactId, now: i64) -> Result<ContactState, OpsError> {
    let store = &app.store;
    let (record, events, cart, orders, history) = futures::join!(
        store.get_contact(contact),
        store.consent_events(contact),
        store.get_cart(contact),
        store.contact_orders(contact),
        store.history(contact, None, HISTORY_LIMIT),
    );
    let record = record?;
    let messages = history?.messages;
    let mut events = events?;
    events.sort_by_key(|e| e.at_ms);
    let window_secs = app.settings.service_window.as_secs() as i64;
    let consent = ConsentView {
        overall: serde_json::to_value(record.as_ref().map(|r| r.consent.overall()).unwrap_or_default())
            .unwrap_or_default(),
        purposes: consent_purposes(record.as_ref()),
        events,
    };
    let orders = orders?.iter().filter_map(|o| order_view(o, &messages)).collect();
    Ok(ContactState {
        known: record.is_some(),
        profile: ProfileView::of(record.as_ref()),
        consent,
        window: WindowView::at(record.as_ref().and_then(|r| r.last_inbound_at), now, window_secs),
        cart: cart?.map(|c| cart_view(app, c.cart)).filter(|c| !c.lines.is_empty() || c.converted_order_id.is_some()),
        orders,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_down_and_closes() {
        let w = WindowView::at(Some(1_000), 1_000 + 3_600, 86_400);
        assert!(w.open);
        assert_eq!(w.seconds_left, 86_400 - 3_600);
        assert_eq!(w.closes_at, Some(1_000 + 86_400));
        let closed = WindowView::at(Some(1_000), 1_000 + 86_400, 86_400);
        assert!(!closed.open);
        assert_eq!(closed.seconds_left, 0);
        let never = WindowView::at(None, 5, 86_400);
        assert!(!never.open && never.closes_at.is_none());
    }
}
