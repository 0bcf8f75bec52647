//! Shop events as an application service: match the customer, let the domain decide which order
//! messages are due, enqueue them under ids derived from their business key, then record the
//! order's new state. Used by the shop webhooks and by the reconciler, so a missed webhook that
//! the reconciler finds still yields exactly one message.
use crate::api::{ApiError, App};
use crate::config::Account;
use crate::consent::{change_consent, AuditContext};
use crate::domain::consent::{ConsentEvent, ConsentPurpose, Via};
use crate::domain::orders::{decide, ConfirmOn, Notification, OrderPolicy};
use crate::domain::phone::normalize_phone;
use crate::domain::{Address, Channel, ContactId, OutboundBody, OutboundId, Purpose};
use crate::observability::count;
use crate::queue::Envelope;
use crate::shops::{OrderRef, OrderStatus, ShopConsent, ShopEvent};
use crate::store::consent::ProfileSeed;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

/// What one shop event led to (logged, and returned to the reconciler for its summary).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShopOutcome {
    pub enqueued: usize,
    /// Why messages that were due were not sent (no phone, no consent, …).
    pub skipped: Vec<&'static str>,
    pub ignored: Option<String>,
}

/// Our id for an order message: the same business key always gives the same id, so a duplicate,
/// a retry or the reconciler never sends it twice.
pub fn notification_id(order: &OrderRef, key: &str) -> OutboundId {
    let digest = Sha256::digest(format!("{}|{}|{}|{key}", order.platform.as_str(), order.shop, order.order_id));
    OutboundId::parse(format!("o-{}", &hex::encode(digest)[..32])).expect("hex id is valid")
}

/// The first phone of the order that is a valid number, as the WhatsApp contact.
pub fn match_contact(
    phones: &[String],
    country: Option<&str>,
    default_region: &str,
) -> Result<ContactId, &'static str> {
    if phones.is_empty() {
        return Err("no_phone");
    }
    let region = country.filter(|c| c.len() == 2).unwrap_or(default_region);
    phones
        .iter()
        .find_map(|p| normalize_phone(p, region).ok())
        .map(|phone| {
            ContactId::new(Channel::WhatsApp, Address::parse(phone.digits()).expect("digits are a valid address"))
        })
        .ok_or("invalid_phone")
}

impl App {
    /// The WhatsApp number business-initiated messages go out from (the first configured).
    pub fn sending_account(&self) -> Result<&Account, ApiError> {
        self.accounts
            .iter()
            .filter(|a| a.channel == Channel::WhatsApp)
            .min_by(|a, b| a.id.cmp(&b.id))
            .ok_or_else(|| ApiError::Internal("no WhatsApp number is configured".into()))
    }

    fn order_policy(&self) -> OrderPolicy {
        OrderPolicy { confirm_on: if self.shops.confirm_on_paid { ConfirmOn::Paid } else { ConfirmOn::Placed } }
    }
}

pub async fn handle_shop_event(app: &App, event: &ShopEvent) -> Result<ShopOutcome, ApiError> {
    match event {
        ShopEvent::Order(snapshot) => {
            let matched =
                match_contact(&snapshot.phones, snapshot.country.as_deref(), &app.consent.default_phone_region);
            if let (Ok(contact), Some(consent)) = (&matched, &snapshot.marketing_consent) {
                shop_consent(app, contact, consent, snapshot.order.platform.as_str()).await?;
            }
            if let Ok(contact) = &matched {
                // A checkout or cart before this order needs no reminder any more.
                app.store.set_last_order(contact, crate::time_util::now_unix()).await?;
            }
            // An order from a chat cart is answered on the cart's channel (and converts the cart).
            let cart_contact = crate::carts::attribute_order(app, snapshot, matched.as_ref().ok()).await?;
            // Otherwise the last campaign message the contact got may take it (a chat cart wins).
            if let (None, Ok(contact)) = (&cart_contact, &matched) {
                if matches!(snapshot.status, OrderStatus::Placed | OrderStatus::Paid | OrderStatus::Completed) {
                    let o = &snapshot.order;
                    let key = format!("{}#{}#{}", o.platform.as_str(), o.shop, o.order_id);
                    let now = crate::time_util::now_unix();
                    crate::campaigns::attribute_order(&app.store, contact, &key, &snapshot.total, now).await?;
                }
            }
            order_messages(app, &snapshot.order, event, cart_contact.or(matched.ok()), snapshot.locale.as_deref()).await
        }
        ShopEvent::Fulfillment { order, .. } => order_messages(app, order, event, None, None).await,
        ShopEvent::Refund { .. } => {
            count("ShopRefundsIgnored", 1);
            Ok(ShopOutcome { ignored: Some("refund".into()), ..Default::default() })
        }
        ShopEvent::CustomerConsent { phone, country, consent } => {
            let phones: Vec<String> = phone.iter().cloned().collect();
            match match_contact(&phones, country.as_deref(), &app.consent.default_phone_region) {
                Ok(contact) => {
                    shop_consent(app, &contact, consent, "shop").await?;
                    Ok(ShopOutcome::default())
                }
                Err(why) => {
                    count("ShopConsentWithoutPhone", 1);
                    Ok(ShopOutcome { ignored: Some(why.into()), ..Default::default() })
                }
            }
        }
        ShopEvent::Products { platform, shop, items, deleted } => {
            let synced = crate::carts::sync_catalog(app, *platform, shop, items, *deleted).await?;
            Ok(ShopOutcome { ignored: (synced == 0).then(|| "no sellable variant".to_string()), ..Default::default() })
        }
        ShopEvent::Checkout(snapshot) => {
            let ignored = crate::carts::track_checkout(app, snapshot).await?;
            Ok(ShopOutcome { ignored: ignored.map(str::to_string), ..Default::default() })
        }
        ShopEvent::CustomerRedact { .. } | ShopEvent::Ignored { .. } => {
            // Redaction needs the shop's identity; the webhook handles it (see `redact`).
            Ok(ShopOutcome { ignored: Some("not an order event".into()), ..Default::default() })
        }
    }
}

async fn order_messages(
    app: &App,
    order: &OrderRef,
    event: &ShopEvent,
    matched: Option<ContactId>,
    order_locale: Option<&str>,
) -> Result<ShopOutcome, ApiError> {
    let policy = app.order_policy();
    for attempt in 0..ORDER_WRITE_ATTEMPTS {
        if attempt > 0 {
            // Another delivery for this order won the race: back off a random bit so the
            // concurrent ones do not collide again, then decide again on its state.
            tokio::time::sleep(jitter(attempt)).await;
        }
        let stored = app.store.get_order(order).await?;
        let decision = decide(&stored.state, event, &policy);
        let contact = matched.clone().or_else(|| stored.contact.clone());
        let mut outcome = ShopOutcome { ignored: decision.ignored.map(str::to_string), ..Default::default() };
        // Decide first, write only if something changed: a duplicate (or a delivery a concurrent
        // one already applied) writes nothing, so it cannot conflict.
        if !decision.changed && contact == stored.contact {
            count("OrderStateUnchanged", 1);
            return Ok(outcome);
        }
        let envelopes = match (&contact, decision.notifications.is_empty()) {
            (_, true) => Vec::new(),
            (None, false) => {
                outcome.skipped.push("no_valid_phone");
                count("OrderMessageSkippedNoPhone", decision.notifications.len() as u64);
                tracing::info!(order = order.order_id, shop = %order.shop, "order message due, but the order has no usable phone");
                Vec::new()
            }
            (Some(c), false) => {
                envelopes_for(app, order, c, &decision.notifications, order_locale, &mut outcome).await?
            }
        };
        // Enqueue before recording: if the record fails, the retry re-decides and the ids,
        // derived from the business keys, make the same messages no-ops.
        if !envelopes.is_empty() {
            app.producer.send(&envelopes).await?;
        }
        if app.store.put_order(order, stored.version, &decision.state, contact.as_ref()).await? {
            outcome.enqueued = envelopes.len();
            count("OrderMessagesEnqueued", envelopes.len() as u64);
            return Ok(outcome);
        }
        count("OrderWriteConflicts", 1);
    }
    Err(ApiError::Unavailable("order state kept changing concurrently".into()))
}

/// Tries per shop event to record the order's new state against concurrent deliveries; each
/// conflict re-reads and re-decides. With unchanged states not rewritten, a burst of one order's
/// deliveries settles in two rounds; the rest is headroom for genuinely different events.
const ORDER_WRITE_ATTEMPTS: u32 = 8;

/// Full jitter: a random wait below `10 ms × 2^attempt`, at most 320 ms.
fn jitter(attempt: u32) -> std::time::Duration {
    let cap_ms = 10u64 << attempt.min(5);
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    std::time::Duration::from_millis(random % cap_ms)
}

async fn envelopes_for(
    app: &App,
    order: &OrderRef,
    contact: &ContactId,
    notifications: &[Notification],
    order_locale: Option<&str>,
    outcome: &mut ShopOutcome,
) -> Result<Vec<Envelope>, ApiError> {
    let record = app.store.get_contact(contact).await?;
    if !record.as_ref().is_some_and(|r| r.consent.allows(ConsentPurpose::OrderUpdates)) {
        outcome.skipped.push("no_consent");
        count("OrderMessageSkippedNoConsent", notifications.len() as u64);
        let hashed = crate::privacy::ip_pseudonym(app.consent.pseudonym_key.expose_secret(), &contact.to_string());
        tracing::info!(order = order.order_id, contact = %hashed, "order message due, but no order_updates consent");
        return Ok(Vec::new());
    }
    let account = app.sending_account()?;
    let locale = record
        .as_ref()
        .and_then(|r| r.locale.clone())
        .or_else(|| {
            // `customer_locale` is e.g. `de`, `en-US`: the language part, if it is one we speak.
            order_locale
                .map(|l| l.chars().take(2).collect::<String>().to_ascii_lowercase())
                .filter(|l| l == "de" || l == "en")
        })
        .unwrap_or_else(|| account.locale.clone());
    let now = crate::time_util::now_unix();
    Ok(notifications
        .iter()
        .map(|n| {
            let rendered = app.notifications.render(&locale, n);
            Envelope {
                v: crate::queue::ENVELOPE_VERSION,
                id: notification_id(order, &n.key),
                account: account.id.clone(),
                contact: contact.clone(),
                purpose: Purpose::OrderUpdate,
                body: OutboundBody::text(rendered.text),
                fallback: Some(rendered.template),
                withheld: None,
                in_reply_to: None,
                created_at: now,
                created_ms: Some(crate::time_util::now_millis()),
                campaign: None,
                author: None,
            }
        })
        .collect())
}

/// Marketing consent the shop recorded: a confirmed (double) opt-in counts as Parley's proof; a
/// single opt-in starts Parley's double opt-in instead; an unsubscribe revokes marketing.
pub async fn shop_consent(
    app: &App,
    contact: &ContactId,
    consent: &ShopConsent,
    platform: &str,
) -> Result<(), ApiError> {
    let subscribed = consent.state == "subscribed";
    let event = match (subscribed, consent.opt_in_level.as_deref()) {
        (true, Some("confirmed_opt_in")) => ConsentEvent::ShopConfirmed { purposes: ConsentPurpose::ALL.to_vec() },
        (true, _) => ConsentEvent::RequestOptIn { purposes: ConsentPurpose::ALL.to_vec(), via: Via::Shop },
        (false, _) if consent.state == "unsubscribed" => ConsentEvent::MarketingStoppedInApp,
        _ => return Ok(()),
    };
    let ctx = AuditContext {
        source: "shop",
        detail: Some(format!(
            "{platform}:{}:{}:{}",
            consent.kind,
            consent.opt_in_level.as_deref().unwrap_or("unknown"),
            consent.collected_from.as_deref().unwrap_or("unknown")
        )),
        ..Default::default()
    };
    let now = consent.updated_at.unwrap_or_else(crate::time_util::now_unix);
    let seed = ProfileSeed {
        account: app.sending_account().ok().map(|a| a.id.as_str().to_string()),
        locale: None,
        phone: crate::domain::E164Phone::from_digits(contact.address.as_str()),
    };
    let (decision, _) = change_consent(&app.store, contact, &event, now, &ctx, &app.consent.policy(), &seed).await?;
    if decision.send_request {
        let account = app.sending_account()?;
        let envelope = crate::api::consent::confirmation_envelope(app, account, contact, &account.locale)?;
        app.producer.send(std::slice::from_ref(&envelope)).await?;
        count("ConsentRequestsSent", 1);
    }
    Ok(())
}
