//! Carts in chat as an application service: a cart command from any channel is applied to the
//! contact's cart with optimistic concurrency (retried on a concurrent change, so two quick
//! messages never lose an item); orders that carry the cart id (or come from the same contact
//! soon after a checkout link) convert the cart; idle carts get one reminder.
use crate::api::{ApiError, App};
use crate::domain::cart::{
    apply, checkout_link, parse_command, parse_payload, reminder_due, Cart, CartCommand, CartLimits, CartStatus,
    CatalogItem, CheckoutConfig, Conversion, WooLinkStyle,
};
use crate::domain::consent::ConsentPurpose;
use crate::domain::{ContactId, InboundContent, OutboundBody, OutboundId, Purpose, TemplateRef};
use crate::observability::count;
use crate::queue::Envelope;
use crate::shops::{OrderSnapshot, OrderStatus, Platform};
use crate::store::carts::CheckoutRecord;

/// The attribute a checkout link carries back on the order.
pub const CART_ATTRIBUTE: &str = "parley_cart";
pub const REMINDER_TEMPLATE: &str = "cart_reminder";

impl App {
    /// Where checkout links point; `None` when no shop is connected.
    pub fn checkout_config(&self) -> Option<CheckoutConfig> {
        let platform = self.carts.shop?;
        let shop_url = match platform {
            Platform::Shopify => self.carts.shopify_storefront_url.clone(),
            Platform::WooCommerce => self.shops.woo_store_url.clone(),
        };
        Some(CheckoutConfig {
            platform,
            shop_url,
            woo_style: if self.carts.woo_single_product {
                WooLinkStyle::SingleProduct
            } else {
                WooLinkStyle::WholeCart
            },
            discount: self.carts.discount.clone(),
        })
    }

    /// The shop whose catalog the carts use: (platform, shop key as orders and products use it).
    fn cart_shop(&self) -> Option<(Platform, String)> {
        let platform = self.carts.shop?;
        let shop = match platform {
            Platform::Shopify => self.shops.shopify_domain.clone(),
            Platform::WooCommerce => self.shops.woo_host(),
        };
        Some((platform, shop))
    }

    fn cart_limits(&self) -> CartLimits {
        CartLimits { max_quantity_per_line: self.carts.max_quantity, max_lines: self.carts.max_lines }
    }
}

/// The cart command an inbound message carries, if any.
pub fn command_of(content: &InboundContent) -> Option<CartCommand> {
    match content {
        InboundContent::Text { body } => parse_command(body),
        InboundContent::Button { payload, .. } => parse_payload(payload),
        InboundContent::ListReply { id, .. } => parse_payload(id),
        InboundContent::Order { items, .. } => Some(CartCommand::FromCatalogOrder {
            items: items.iter().map(|i| (i.retailer_id.clone(), i.quantity)).collect(),
        }),
        _ => None,
    }
}

fn skus_of(cmd: &CartCommand, cart: &Cart) -> Vec<String> {
    let mut skus: Vec<String> = match cmd {
        CartCommand::Add { sku, .. } | CartCommand::Remove { sku } | CartCommand::SetQuantity { sku, .. } => {
            vec![sku.clone()]
        }
        CartCommand::FromCatalogOrder { items } => items.iter().map(|(s, _)| s.clone()).collect(),
        _ => Vec::new(),
    };
    if matches!(cmd, CartCommand::Checkout) {
        skus.extend(cart.lines.iter().map(|l| l.sku.as_str().to_string()));
    }
    skus
}

/// Applies a cart command for `contact`; returns the replies, or `None` when no shop is
/// connected (then the conversation engine answers the words instead).
pub async fn handle_command(
    app: &App,
    contact: &ContactId,
    cmd: &CartCommand,
    message_id: &str,
    locale: &str,
    now: i64,
) -> Result<Option<Vec<OutboundBody>>, ApiError> {
    Ok(apply_command(app, contact, cmd, message_id, None, now)
        .await?
        .map(|(cart, reply)| vec![app.cart_texts.render(locale, &cart, &reply)]))
}

/// Applies a cart command for `contact` (from the chat, or from an agent when `agent` is set —
/// an agent's cart remembers them, so its order is attributed to them). Returns the cart as
/// stored and the command's outcome, or `None` when no shop is connected.
pub async fn apply_command(
    app: &App,
    contact: &ContactId,
    cmd: &CartCommand,
    message_id: &str,
    agent: Option<&str>,
    now: i64,
) -> Result<Option<(Cart, crate::domain::cart::CartReply)>, ApiError> {
    let (Some((platform, shop)), Some(checkout)) = (app.cart_shop(), app.checkout_config()) else {
        return Ok(None);
    };
    let limits = app.cart_limits();
    for attempt in 0..CART_ATTEMPTS {
        if attempt > 0 {
            contention_pause(attempt).await;
        }
        let stored = app.store.get_cart(contact).await?;
        let (mut cart, version) = match &stored {
            Some(s) => (s.cart.clone(), s.version),
            None => (Cart::new(new_cart_id(), now), 0),
        };
        if cart.has_applied(message_id) {
            // Re-processed after a failure: already in the cart; just show it.
            return Ok(Some((cart, crate::domain::cart::CartReply::Shown)));
        }
        // A converted cart is history: the next edit starts a new one.
        if cart.status == CartStatus::Converted && !matches!(cmd, CartCommand::Show) {
            cart = Cart::new(new_cart_id(), now);
        }
        let catalog: Vec<CatalogItem> = match cmd {
            CartCommand::Browse { category } => {
                let all = app.store.catalog(platform.as_str(), &shop).await?;
                all.into_iter()
                    .filter(|i| i.available)
                    .filter(|i| match (category, &i.category) {
                        (None, _) => true,
                        (Some(c), Some(ic)) => ic.eq_ignore_ascii_case(c),
                        (Some(_), None) => false,
                    })
                    .take(10)
                    .collect()
            }
            _ => app.store.catalog_items(platform.as_str(), &shop, &skus_of(cmd, &cart)).await?,
        };
        let mut decision = apply(&cart, cmd, &catalog, &limits, &checkout, now);
        if decision.changed {
            decision.cart.mark_applied(message_id);
            if let Some(a) = agent {
                decision.cart.agent = Some(a.to_string());
            }
        }
        let written = if decision.changed {
            let idle = (!decision.cart.is_empty()
                && decision.cart.status != CartStatus::Converted
                && decision.cart.reminded_at.is_none())
            .then_some(decision.cart.updated_at);
            app.store.put_cart(contact, version, &decision.cart, idle).await?
        } else {
            true
        };
        if !written {
            continue; // someone else changed the cart: apply again on the new state
        }
        if decision.cart.status == CartStatus::CheckoutSent && decision.changed {
            app.store.put_cart_owner(&decision.cart.id, contact).await?;
            count("CartCheckoutLinks", 1);
        }
        count("CartCommands", 1);
        return Ok(Some((decision.cart, decision.reply)));
    }
    Err(ApiError::Unavailable("cart kept changing concurrently".into()))
}

/// Product webhooks keep the catalog: one item per variant with a SKU (the chat's handle for
/// it); a deleted product's items become unavailable. Returns how many items were written.
pub async fn sync_catalog(
    app: &App,
    platform: Platform,
    shop: &str,
    variants: &[crate::shops::ProductVariant],
    deleted: bool,
) -> Result<usize, ApiError> {
    let now = crate::time_util::now_unix();
    let items: Vec<CatalogItem> = if deleted {
        let gone: Vec<u64> = variants.iter().map(|v| v.product_id).collect();
        app.store
            .catalog(platform.as_str(), shop)
            .await?
            .into_iter()
            .filter(|i| gone.contains(&i.product_id))
            .map(|i| CatalogItem { available: false, updated_at: now, ..i })
            .collect()
    } else {
        variants
            .iter()
            .filter_map(|v| {
                let sku = crate::domain::cart::Sku::parse(v.sku.clone()?).ok();
                if sku.is_none() {
                    count("CatalogVariantWithoutSku", 1);
                }
                Some(CatalogItem {
                    sku: sku?,
                    title: v.title.clone(),
                    platform,
                    shop: shop.to_string(),
                    product_id: v.product_id,
                    variant_id: v.variant_id,
                    price: v.price,
                    available: v.available,
                    category: v.category.clone(),
                    updated_at: v.updated_at.unwrap_or(now),
                })
            })
            .collect()
    };
    app.store.put_catalog(&items).await?;
    count("CatalogItemsSynced", items.len() as u64);
    Ok(items.len())
}

/// Quick messages of one customer race for the same cart; each loser re-reads and re-applies.
const CART_ATTEMPTS: u32 = 10;

/// A short, jittered pause so racing writers stop colliding in lockstep.
async fn contention_pause(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 20;
    tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
}

fn new_cart_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// An order that came from a chat cart: the cart's contact (so the order is answered on that
/// channel) after marking the cart converted with the order's revenue.
pub async fn attribute_order(
    app: &App,
    order: &OrderSnapshot,
    matched: Option<&ContactId>,
) -> Result<Option<ContactId>, ApiError> {
    if !matches!(order.status, OrderStatus::Placed | OrderStatus::Paid | OrderStatus::Completed) {
        return Ok(None);
    }
    let cart_id = order.attributes.iter().find(|(k, _)| k == CART_ATTRIBUTE).map(|(_, v)| v.clone());
    let owner = match &cart_id {
        Some(id) => app.store.cart_owner(id).await?,
        None => None,
    };
    let Some(contact) = owner.or_else(|| matched.cloned()) else { return Ok(None) };
    let window = app.carts.attribution_days * 86_400;
    let now = crate::time_util::now_unix();
    for _ in 0..4 {
        let Some(stored) = app.store.get_cart(&contact).await? else { return Ok(cart_id.and(Some(contact))) };
        let cart = &stored.cart;
        let by_id = cart_id.as_deref() == Some(cart.id.as_str());
        let in_window =
            cart.status == CartStatus::CheckoutSent && cart.checkout_sent_at.is_some_and(|t| now - t <= window);
        if cart.status == CartStatus::Converted || !(by_id || in_window) {
            return Ok(cart_id.and(Some(contact)));
        }
        let mut converted = cart.clone();
        converted.status = CartStatus::Converted;
        converted.converted = Some(Conversion { order_id: order.order.order_id, revenue: order.total, at: now });
        if app.store.put_cart(&contact, stored.version, &converted, None).await? {
            count("CartsConverted", 1);
            if let Some(agent) = &converted.agent {
                let attribution = crate::store::inbox::AgentAttribution {
                    order_id: order.order.order_id,
                    cart_id: converted.id.clone(),
                    agent: agent.clone(),
                    revenue: order.total,
                    at: now,
                };
                app.store.put_attribution(&contact, &attribution).await?;
                count("AgentCartsConverted", 1);
            }
            // Revenue per recipient: minor units of the shop currency (one metric per currency).
            count("ChatRevenueMinorUnits", order.total.minor.max(0) as u64);
            tracing::info!(cart = %converted.id, order = order.order.order_id, "chat cart converted");
            return Ok(Some(contact));
        }
    }
    Err(ApiError::Unavailable("cart kept changing concurrently".into()))
}

/// Shopify checkouts: an open one may become an abandoned checkout worth one reminder (with the
/// shop's own recovery link); a completed one never is.
pub async fn track_checkout(
    app: &App,
    snap: &crate::shops::CheckoutSnapshot,
) -> Result<Option<&'static str>, ApiError> {
    let Some(url) = snap.abandoned_checkout_url.clone() else { return Ok(Some("checkout without recovery link")) };
    let contact =
        match crate::orders::match_contact(&snap.phones, snap.country.as_deref(), &app.consent.default_phone_region) {
            Ok(c) => c,
            Err(why) => return Ok(Some(why)),
        };
    let rec = CheckoutRecord {
        checkout_id: snap.checkout_id,
        contact,
        url,
        items: snap.items.iter().map(|i| (i.title.clone(), i.quantity, i.unit_price)).collect(),
        updated_at: snap.updated_at.unwrap_or_else(crate::time_util::now_unix),
        completed: snap.completed_at.is_some(),
        reminded_at: None,
    };
    // The checkout's `gsi1` slot is the reminder index, so the contact's partition points to it
    // (an erase must find the address, items and recovery link without a scan). Shop path only,
    // concurrently: no extra round trip, no write on the inbound-message path.
    let pk = crate::store::carts::checkout_pk(snap.platform.as_str(), &snap.shop, snap.checkout_id);
    let ttl = rec.updated_at + crate::store::carts::CHECKOUT_TTL_SECS + 86_400;
    let (put, reference) = futures::join!(
        app.store.put_checkout(snap.platform.as_str(), &snap.shop, &rec),
        app.store.put_ref(&rec.contact, &pk, "CHK", ttl)
    );
    put?;
    reference?;
    count(if rec.completed { "ShopCheckoutsCompleted" } else { "ShopCheckoutsOpen" }, 1);
    Ok(None)
}

/// One reminder per idle cart and per abandoned shop checkout (scheduled): only with confirmed
/// marketing consent, never after an order, a conversion or STOP; the sender turns it into the
/// marketing template outside the customer-service window.
pub async fn send_reminders(app: &App) -> Result<usize, ApiError> {
    let carts = cart_reminders(app).await?;
    let checkouts = checkout_reminders(app).await?;
    crate::observability::flush();
    Ok(carts + checkouts)
}

async fn cart_reminders(app: &App) -> Result<usize, ApiError> {
    let now = crate::time_util::now_unix();
    let delay = app.carts.reminder_delay_minutes * 60;
    let Some(checkout) = app.checkout_config() else { return Ok(0) };
    let mut sent = 0;
    for contact in app.store.idle_carts(now - delay).await? {
        let (stored, record) = futures::join!(app.store.get_cart(&contact), app.store.get_contact(&contact));
        let (Some(stored), record) = (stored?, record?) else { continue };
        let allowed = record.as_ref().is_some_and(|r| r.consent.allows(ConsentPurpose::Marketing));
        let mut cart = stored.cart.clone();
        let ordered_since = record.as_ref().and_then(|r| r.last_order_at).is_some_and(|t| t >= cart.updated_at);
        if !reminder_due(&cart, now, delay) || !allowed || ordered_since {
            // Out of the index either way: converted, stopped or never consented carts get none.
            if !allowed {
                count("CartReminderSkippedNoConsent", 1);
            }
            app.store.put_cart(&contact, stored.version, &cart, None).await?;
            continue;
        }
        cart.reminded_at = Some(now);
        // Recorded first: a crash after this loses one reminder rather than sending two.
        if !app.store.put_cart(&contact, stored.version, &cart, None).await? {
            continue;
        }
        let locale = record.as_ref().and_then(|r| r.locale.clone()).unwrap_or_else(|| "de".into());
        let link = checkout_link(&cart, &checkout);
        let account = match record.as_ref().and_then(|r| r.account.clone()) {
            Some(a) => a,
            None => app.sending_account()?.id.as_str().to_string(),
        };
        let envelope =
            reminder_envelope(app, format!("rem-{}", cart.id), &account, &contact, &locale, &cart, &link, now)?;
        app.producer.send(std::slice::from_ref(&envelope)).await?;
        count("CartRemindersSent", 1);
        sent += 1;
    }
    Ok(sent)
}

/// The reminder message: the cart's text, and the marketing template for a closed window.
#[allow(clippy::too_many_arguments)]
fn reminder_envelope(
    app: &App,
    id: String,
    account: &str,
    contact: &ContactId,
    locale: &str,
    cart: &Cart,
    link: &str,
    now: i64,
) -> Result<Envelope, ApiError> {
    let summary: String =
        cart.lines.iter().map(|l| format!("{}× {}", l.quantity, l.title)).collect::<Vec<_>>().join(", ");
    let fallback = match app.templates.body(REMINDER_TEMPLATE, locale, &[summary, link.to_string()]) {
        Some(OutboundBody::Template { mut template }) => {
            template.payloads = vec![crate::domain::consent::PAYLOAD_STOP.to_string()];
            Some(template)
        }
        _ => None::<TemplateRef>,
    };
    Ok(Envelope {
        v: crate::queue::ENVELOPE_VERSION,
        id: OutboundId::parse(id).map_err(|e| ApiError::Internal(e.to_string()))?,
        account: crate::domain::AccountId::parse(account).map_err(|e| ApiError::Internal(e.to_string()))?,
        contact: contact.clone(),
        purpose: Purpose::Marketing,
        body: OutboundBody::text(app.cart_texts.reminder(locale, cart, link)),
        fallback,
        withheld: None,
        in_reply_to: None,
        created_at: now,
        created_ms: Some(crate::time_util::now_millis()),
        campaign: None,
        author: None,
    })
}

async fn checkout_reminders(app: &App) -> Result<usize, ApiError> {
    let now = crate::time_util::now_unix();
    let delay = app.carts.reminder_delay_minutes * 60;
    let mut sent = 0;
    for (pk, mut rec) in app.store.idle_checkouts(now - delay).await? {
        let mut parts = pk.splitn(4, '#').skip(1);
        let (Some(platform), Some(shop)) = (parts.next(), parts.next()) else { continue };
        if now - rec.updated_at <= delay {
            continue;
        }
        let record = app.store.get_contact(&rec.contact).await?;
        let ordered_since = record.as_ref().and_then(|r| r.last_order_at).is_some_and(|t| t >= rec.updated_at);
        let allowed = record.as_ref().is_some_and(|r| r.consent.allows(ConsentPurpose::Marketing));
        if ordered_since || !allowed {
            // Out of the index either way: ordered after all, or no marketing consent.
            count(if ordered_since { "CheckoutReminderSkippedOrdered" } else { "CartReminderSkippedNoConsent" }, 1);
            rec.completed |= ordered_since;
            rec.reminded_at = rec.reminded_at.or((!ordered_since).then_some(now));
            app.store.put_checkout(platform, shop, &rec).await?;
            continue;
        }
        // Recorded first: a crash after this loses one reminder rather than sending two.
        rec.reminded_at = Some(now);
        app.store.put_checkout(platform, shop, &rec).await?;
        let mut cart = Cart::new(format!("chk{}", rec.checkout_id), rec.updated_at);
        let placeholder = crate::domain::cart::Sku::parse("ITEM".to_string()).expect("valid SKU");
        for (title, quantity, price) in &rec.items {
            if let Some(price) = price {
                cart.lines.push(crate::domain::cart::CartLine {
                    sku: placeholder.clone(),
                    title: title.clone(),
                    product_id: 0,
                    variant_id: 0,
                    quantity: *quantity,
                    unit_price: *price,
                });
            }
        }
        let locale = record.as_ref().and_then(|r| r.locale.clone()).unwrap_or_else(|| "de".into());
        let account = match record.as_ref().and_then(|r| r.account.clone()) {
            Some(a) => a,
            None => app.sending_account()?.id.as_str().to_string(),
        };
        let id = format!("remchk-{}", rec.checkout_id);
        let envelope = reminder_envelope(app, id, &account, &rec.contact, &locale, &cart, &rec.url, now)?;
        app.producer.send(std::slice::from_ref(&envelope)).await?;
        count("CheckoutRemindersSent", 1);
        sent += 1;
    }
    Ok(sent)
}

/// The cart service and the flows, as the team inbox sees them.
impl crate::inbox::CartPort for App {
    async fn apply(
        &self,
        contact: &ContactId,
        cmd: &CartCommand,
        message_id: &str,
        agent: &str,
        now: i64,
    ) -> Result<Option<(Cart, crate::domain::cart::CartReply)>, crate::inbox::InboxError> {
        apply_command(self, contact, cmd, message_id, Some(agent), now).await.map_err(|e| match e {
            ApiError::Unavailable(d) => crate::inbox::InboxError::Unavailable(d),
            other => crate::inbox::InboxError::Unavailable(other.to_string()),
        })
    }

    fn render(&self, locale: &str, cart: &Cart, reply: &crate::domain::cart::CartReply) -> OutboundBody {
        self.cart_texts.render(locale, cart, reply)
    }

    async fn catalog(&self) -> Result<Option<Vec<CatalogItem>>, crate::inbox::InboxError> {
        let Some((platform, shop)) = self.cart_shop() else { return Ok(None) };
        Ok(Some(self.store.catalog(platform.as_str(), &shop).await?))
    }

    async fn cart(&self, contact: &ContactId) -> Result<Option<Cart>, crate::inbox::InboxError> {
        Ok(self.store.get_cart(contact).await?.map(|s| s.cart))
    }

    fn checkout_link(&self, cart: &Cart) -> Option<String> {
        Some(checkout_link(cart, &self.checkout_config()?))
    }

    fn release_replies(&self, record: &crate::store::contacts::ContactRecord, now: i64) -> Vec<Envelope> {
        crate::api::meta_webhook::release_envelopes(self, record, now)
    }
}
