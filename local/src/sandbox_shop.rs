//! The shop side of the local sandbox (only in `make dev` and tests, never deployed).
//!
//! It stands in for a Shopify store and a WooCommerce shop:
//! - control routes (`/shop/...`) place, pay, ship and cancel orders, create products, mark them
//!   sold out, open and complete (Shopify) checkouts, and post the matching webhook deliveries, with the platforms' headers and signatures (WooCommerce bodies encoded
//!   like PHP's `wp_json_encode`, so only the raw bytes verify);
//! - the REST APIs the reconciler polls: Shopify Admin `orders.json`/`webhooks.json` and
//!   WooCommerce `wc/v3/orders`/`webhooks`, with their auth, filters and pagination.
//!
//! Routes carry no `/sandbox` prefix; the local runtime nests [`ShopSandbox::router`] under it.
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use parley::channels::meta::outbound::error_chain;
use parley::channels::signature::{self, Encoding};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, offset};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

pub const SHOPIFY_API_VERSION: &str = "2026-07";
/// The Shopify subscriptions the stand-in store starts with.
pub const SHOPIFY_TOPICS: &[&str] = &[
    "orders/create",
    "orders/paid",
    "orders/cancelled",
    "fulfillments/create",
    "fulfillments/update",
    "products/create",
    "products/update",
    "checkouts/create",
    "checkouts/update",
    "customers/redact",
];
/// The WooCommerce webhooks the stand-in shop starts with.
pub const WOO_TOPICS: &[&str] =
    &["order.created", "order.updated", "order.deleted", "order.restored", "product.created", "product.updated"];

const FIRST_SHOPIFY_ORDER_ID: u64 = 820_982_911_946_154_508;
const FIRST_ORDER_NUMBER: u64 = 1001;
const FIRST_WOO_ORDER_ID: u64 = 1000;
// Shopify ids of other resources, in realistic ranges (line items exceed 2^53 too).
const FIRST_LINE_ITEM_ID: u64 = 487_817_672_276_298_554;
const FIRST_CUSTOMER_ID: u64 = 115_310_627_314_723_954;
const FIRST_FULFILLMENT_ID: u64 = 5_648_283_582_514;
const FIRST_SHOPIFY_WEBHOOK_ID: u64 = 1_146_727_055_000;
const FIRST_SHOPIFY_PRODUCT_ID: u64 = 9_100_000_000_001;
const FIRST_CHECKOUT_ID: u64 = 37_845_092_106_262;
/// WordPress posts: products and variations share one id space, below the stand-in's orders.
const FIRST_WOO_PRODUCT_ID: u64 = 200;
const SHOPIFY_SHOP_ID: u64 = 548_380_009;
const SHOPIFY_LOCATION_ID: u64 = 24_826_418;
const SHOPIFY_APP_ID: u64 = 580_111;
/// Both stand-ins keep shop time in Europe/Berlin summer time: payload times carry an offset
/// (Shopify) or are local next to a `_gmt` twin (WooCommerce), like the real platforms.
const SHOP_OFFSET: UtcOffset = offset!(+2);
/// Where the local runtime nests the router; only used to build absolute `Link` headers.
const SANDBOX_PREFIX: &str = "/sandbox";

const SHOPIFY_USER_AGENT: &str = "Shopify-Captain-Hook";
const WOO_USER_AGENT: &str = "WooCommerce/10.1.0 Hookshot (WordPress/6.8.2)";
const WOO_VERSION: &str = "10.1.0";

pub struct ShopSandboxConfig {
    /// Where webhook subscriptions point, e.g. `http://127.0.0.1:3000` (+ `/webhooks/shopify`).
    pub webhook_base: String,
    /// `parley-demo.myshopify.com`: `X-Shopify-Shop-Domain`.
    pub shopify_domain: String,
    /// Signs Shopify deliveries (`X-Shopify-Hmac-Sha256`).
    pub shopify_secret: String,
    /// The Admin API token the Shopify REST stand-in accepts (`X-Shopify-Access-Token`).
    pub shopify_access_token: String,
    /// Signs WooCommerce deliveries (`X-WC-Webhook-Signature`).
    pub woo_secret: String,
    /// `http://127.0.0.1:3000/sandbox/woo`: `X-WC-Webhook-Source` and REST links.
    pub woo_store_url: String,
    /// The REST API key pair the WooCommerce stand-in accepts (HTTP Basic).
    pub woo_consumer_key: String,
    pub woo_consumer_secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Platform {
    Shopify,
    #[serde(rename = "woocommerce", alias = "woo")]
    WooCommerce,
}

impl Platform {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "shopify" => Some(Self::Shopify),
            "woocommerce" | "woo" => Some(Self::WooCommerce),
            _ => None,
        }
    }

    /// The platform's name for the same thing, e.g. a topic.
    fn pick(self, shopify: &'static str, woo: &'static str) -> &'static str {
        match self {
            Self::Shopify => shopify,
            Self::WooCommerce => woo,
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    platform: Platform,
    id: u64,
    created: OffsetDateTime,
    updated: OffsetDateTime,
    /// The platform's own representation: what webhooks and the REST stand-ins return.
    body: Value,
}

impl Order {
    /// What the customer sees: Shopify `name` ("#1001"), WooCommerce `number`.
    fn name(&self) -> String {
        let key = if self.platform == Platform::Shopify { "name" } else { "number" };
        self.body.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
    }
}

/// What a webhook is about: an order, product or checkout.
trait Resource {
    /// `(platform, id, payload)`.
    fn webhook_source(&self) -> (Platform, u64, &Value);
}

impl Resource for Order {
    fn webhook_source(&self) -> (Platform, u64, &Value) {
        (self.platform, self.id, &self.body)
    }
}

impl Resource for Product {
    fn webhook_source(&self) -> (Platform, u64, &Value) {
        (self.platform, self.id, &self.body)
    }
}

impl Resource for Checkout {
    fn webhook_source(&self) -> (Platform, u64, &Value) {
        (Platform::Shopify, self.id, &self.body)
    }
}

/// The stored resource with id `id`, or a 404 naming `what` ("product").
fn find_mut<'a, T: Resource>(items: &'a mut [T], id: u64, what: &str) -> Result<&'a mut T, Fail> {
    items
        .iter_mut()
        .find(|r| r.webhook_source().1 == id)
        .ok_or_else(|| Fail::Control(StatusCode::NOT_FOUND, format!("no {what} {id} in the shop sandbox")))
}

/// A webhook subscription of the stand-in store.
#[derive(Debug, Clone)]
struct Subscription {
    id: u64,
    topic: String,
    address: String,
    /// Shopify: removed subscriptions are gone; WooCommerce: `disabled`.
    active: bool,
    created: OffsetDateTime,
    updated: OffsetDateTime,
}

/// One delivery attempt, as `GET /shop/deliveries` lists it.
#[derive(Debug, Clone, Serialize)]
struct Delivery {
    platform: Platform,
    topic: String,
    /// `X-Shopify-Webhook-Id` / `X-WC-Webhook-Delivery-ID`; kept on redelivery.
    delivery_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// The subscription (`X-WC-Webhook-ID` for WooCommerce).
    webhook_id: u64,
    /// The order's id; for product and checkout webhooks, theirs.
    order_id: u64,
    url: String,
    status: Option<u16>,
    error: Option<String>,
    redelivery: bool,
    /// Held back by `"deliver": false`; `redeliver` sends it.
    withheld: bool,
    attempted_at: Option<String>,
    #[serde(skip)]
    body: Bytes,
    #[serde(skip)]
    triggered_at: String,
}

struct Counters {
    shopify_order: u64,
    order_number: u64,
    woo_order: u64,
    line_item: u64,
    woo_line_item: u64,
    customer: u64,
    fulfillment: u64,
    woo_meta: u64,
    shopify_product: u64,
    woo_product: u64,
    checkout: u64,
}

/// A product of the stand-in store, in the platform's own shape.
#[derive(Debug, Clone)]
struct Product {
    platform: Platform,
    id: u64,
    body: Value,
    /// `(sku, variant id)`; WooCommerce simple products: the product id.
    variants: Vec<(String, u64)>,
}

/// A Shopify checkout (`checkouts/*` body).
#[derive(Debug, Clone)]
struct Checkout {
    id: u64,
    body: Value,
}

struct Store {
    next: Counters,
    /// Shopify customer ids by phone, so repeat buyers keep theirs.
    customers: HashMap<String, u64>,
    orders: Vec<Order>,
    products: Vec<Product>,
    checkouts: Vec<Checkout>,
    deliveries: Vec<Delivery>,
    shopify_hooks: Vec<Subscription>,
    woo_hooks: Vec<Subscription>,
    next_shopify_hook: u64,
}

fn take(counter: &mut u64) -> u64 {
    let id = *counter;
    *counter += 1;
    id
}

impl Store {
    fn new(cfg: &ShopSandboxConfig) -> Self {
        let now = now();
        let base = cfg.webhook_base.trim_end_matches('/');
        let sub = |id, topic: &str, address: String| Subscription {
            id,
            topic: topic.to_string(),
            address,
            active: true,
            created: now,
            updated: now,
        };
        let shopify_hooks = SHOPIFY_TOPICS
            .iter()
            .zip(FIRST_SHOPIFY_WEBHOOK_ID..)
            .map(|(t, id)| sub(id, t, format!("{base}/webhooks/shopify")))
            .collect();
        let woo_hooks =
            WOO_TOPICS.iter().zip(1..).map(|(t, id)| sub(id, t, format!("{base}/webhooks/woocommerce"))).collect();
        Self {
            next: Counters {
                shopify_order: FIRST_SHOPIFY_ORDER_ID,
                order_number: FIRST_ORDER_NUMBER,
                woo_order: FIRST_WOO_ORDER_ID,
                line_item: FIRST_LINE_ITEM_ID,
                woo_line_item: 1,
                customer: FIRST_CUSTOMER_ID,
                fulfillment: FIRST_FULFILLMENT_ID,
                woo_meta: 4000,
                shopify_product: FIRST_SHOPIFY_PRODUCT_ID,
                woo_product: FIRST_WOO_PRODUCT_ID,
                checkout: FIRST_CHECKOUT_ID,
            },
            customers: HashMap::new(),
            orders: Vec::new(),
            products: Vec::new(),
            checkouts: Vec::new(),
            deliveries: Vec::new(),
            shopify_hooks,
            woo_hooks,
            next_shopify_hook: FIRST_SHOPIFY_WEBHOOK_ID + SHOPIFY_TOPICS.len() as u64,
        }
    }

    fn hooks(&self, platform: Platform) -> &[Subscription] {
        match platform {
            Platform::Shopify => &self.shopify_hooks,
            Platform::WooCommerce => &self.woo_hooks,
        }
    }

    fn hooks_mut(&mut self, platform: Platform) -> &mut Vec<Subscription> {
        match platform {
            Platform::Shopify => &mut self.shopify_hooks,
            Platform::WooCommerce => &mut self.woo_hooks,
        }
    }
}

struct Inner {
    cfg: ShopSandboxConfig,
    http: reqwest::Client,
    store: Mutex<Store>,
}

/// The shop sandbox's shared state; clones share it.
#[derive(Clone)]
pub struct ShopSandbox {
    inner: Arc<Inner>,
}

/// What became of an action's webhook.
enum Outcome {
    /// `"deliver": false`: recorded but not posted (a lost webhook); `redeliver` posts it late.
    Withheld(Delivery),
    /// The store has no active subscription for the topic, so the platform would not deliver.
    Unsubscribed(String),
    Delivery(Delivery),
}

impl ShopSandbox {
    pub fn new(cfg: ShopSandboxConfig) -> Self {
        // Shopify counts a 3xx as a failure: never follow redirects.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let store = Mutex::new(Store::new(&cfg));
        Self { inner: Arc::new(Inner { cfg, http, store }) }
    }

    /// The shop sandbox routes, without the `/sandbox` prefix.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/shop/orders", post(create_order))
            .route("/shop/orders/{id}", get(get_order))
            .route("/shop/orders/{id}/pay", post(pay_order))
            .route("/shop/orders/{id}/fulfill", post(fulfill_order))
            .route("/shop/orders/{id}/cancel", post(cancel_order))
            .route("/shop/orders/{id}/redeliver", post(redeliver))
            .route("/shop/products", get(list_products).post(create_product))
            .route("/shop/products/{id}/soldout", post(sold_out))
            .route("/shop/products/{id}/price", post(reprice))
            .route("/shop/checkouts", post(create_checkout))
            .route("/shop/checkouts/{id}/complete", post(complete_checkout))
            .route("/shop/deliveries", get(list_deliveries))
            .route("/shop/webhooks/{platform}/remove", post(remove_subscription))
            .route("/shop/webhooks/woocommerce/ping", post(woo_ping))
            .route("/shopify/admin/api/{version}/orders.json", get(shopify_orders))
            .route("/shopify/admin/api/{version}/orders/{file}", get(shopify_order))
            .route("/shopify/admin/api/{version}/webhooks.json", get(shopify_webhooks).post(shopify_create_webhook))
            .route("/woo/wp-json/wc/v3/orders", get(woo_orders))
            .route("/woo/wp-json/wc/v3/orders/{id}", get(woo_order))
            .route("/woo/wp-json/wc/v3/webhooks", get(woo_webhooks))
            .route("/woo/wp-json/wc/v3/webhooks/{id}", put(woo_update_webhook))
            .with_state(self.clone())
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic elsewhere must not take the sandbox down with it.
        self.inner.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cfg(&self) -> &ShopSandboxConfig {
        &self.inner.cfg
    }

    fn store_url(&self) -> &str {
        self.cfg().woo_store_url.trim_end_matches('/')
    }

    /// Prepares the webhook for `topic` (not sent yet), or says why there is none.
    fn plan(&self, store: &Store, order: &Order, topic: &str, payload: &Value, deliver: bool) -> Outcome {
        self.plan_for(store, order.platform, order.id, topic, payload, deliver)
    }

    /// [`Self::plan`] for any resource (order, product, checkout) by its id.
    fn plan_for(
        &self,
        store: &Store,
        platform: Platform,
        order_id: u64,
        topic: &str,
        payload: &Value,
        deliver: bool,
    ) -> Outcome {
        let Some(sub) = store.hooks(platform).iter().find(|s| s.active && s.topic == topic) else {
            let state = platform.pick("removed", "disabled");
            return Outcome::Unsubscribed(format!("the {topic} subscription is {state}; nothing was delivered"));
        };
        let (body, delivery_id, event_id) = match platform {
            Platform::Shopify => (
                serde_json::to_vec(payload).unwrap_or_default(),
                uuid::Uuid::new_v4().to_string(),
                Some(uuid::Uuid::new_v4().to_string()),
            ),
            Platform::WooCommerce => (php_json(payload), hex32(), None),
        };
        let delivery = Delivery {
            platform,
            topic: topic.to_string(),
            delivery_id,
            event_id,
            webhook_id: sub.id,
            order_id,
            url: sub.address.clone(),
            status: None,
            error: None,
            redelivery: false,
            withheld: !deliver,
            attempted_at: None,
            body: body.into(),
            triggered_at: triggered_at(OffsetDateTime::now_utc()),
        };
        if deliver {
            Outcome::Delivery(delivery)
        } else {
            Outcome::Withheld(delivery)
        }
    }

    /// Runs `change` under the store lock, then plans and sends the webhook about the resource it
    /// returns, on the topic it names.
    async fn publish<T: Resource>(
        &self,
        deliver: bool,
        change: impl FnOnce(&mut Store) -> Result<(T, &'static str), Fail>,
    ) -> Result<(T, &'static str, Outcome), Fail> {
        let (resource, topic, planned) = {
            let mut store = self.store();
            let (resource, topic) = change(&mut store)?;
            let (platform, id, body) = resource.webhook_source();
            let planned = self.plan_for(&store, platform, id, topic, body, deliver);
            (resource, topic, planned)
        };
        Ok((resource, topic, self.dispatch(planned).await))
    }

    /// [`Self::publish`] for a change to a stored resource: reads the `{"deliver":…}` body and
    /// the id from the path first.
    async fn publish_update<T: Resource>(
        &self,
        body: &[u8],
        id: &str,
        change: impl FnOnce(&mut Store, u64) -> Result<(T, &'static str), Fail>,
    ) -> Result<(T, &'static str, Outcome), Fail> {
        let deliver = deliver_flag(body)?.deliver.unwrap_or(true);
        let id = parse_id(id)?;
        self.publish(deliver, |store| change(store, id)).await
    }

    async fn dispatch(&self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Delivery(d) => Outcome::Delivery(self.send(d).await),
            Outcome::Withheld(d) => {
                self.store().deliveries.push(d.clone());
                Outcome::Withheld(d)
            }
            other => other,
        }
    }

    /// Posts a delivery with the platform's headers and records the attempt.
    async fn send(&self, mut d: Delivery) -> Delivery {
        let cfg = self.cfg();
        let mut req = self.inner.http.post(&d.url).header(header::CONTENT_TYPE, "application/json");
        match d.platform {
            Platform::Shopify => {
                let hmac = signature::sign(Encoding::Base64, &cfg.shopify_secret, &d.body);
                req = req
                    .header(header::USER_AGENT, SHOPIFY_USER_AGENT)
                    .header("X-Shopify-Topic", &d.topic)
                    .header("X-Shopify-Hmac-Sha256", hmac)
                    .header("X-Shopify-Shop-Domain", &cfg.shopify_domain)
                    .header("X-Shopify-Webhook-Id", &d.delivery_id)
                    .header("X-Shopify-Event-Id", d.event_id.as_deref().unwrap_or_default())
                    .header("X-Shopify-API-Version", SHOPIFY_API_VERSION)
                    .header("X-Shopify-Triggered-At", &d.triggered_at);
            }
            Platform::WooCommerce => {
                let (resource, event) = d.topic.split_once('.').unwrap_or((d.topic.as_str(), ""));
                let sig = signature::sign(Encoding::Base64, &cfg.woo_secret, &d.body);
                req = req
                    .header(header::USER_AGENT, WOO_USER_AGENT)
                    .header("X-WC-Webhook-Source", format!("{}/", self.store_url()))
                    .header("X-WC-Webhook-Topic", &d.topic)
                    .header("X-WC-Webhook-Resource", resource)
                    .header("X-WC-Webhook-Event", event)
                    .header("X-WC-Webhook-Signature", sig)
                    .header("X-WC-Webhook-ID", d.webhook_id.to_string())
                    .header("X-WC-Webhook-Delivery-ID", &d.delivery_id);
            }
        }
        d.attempted_at = Some(now_rfc3339());
        match req.body(d.body.clone()).send().await {
            Ok(resp) => d.status = Some(resp.status().as_u16()),
            Err(e) => d.error = Some(format!("cannot reach the webhook at {}: {}", d.url, error_chain(&e))),
        }
        self.store().deliveries.push(d.clone());
        d
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Whole seconds: both platforms keep timestamps at second precision, and the REST filters
/// compare at that precision.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Shopify's time format: shop-local with an offset, e.g. `2026-07-14T12:30:00+02:00`.
fn shopify_time(t: OffsetDateTime) -> String {
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
    );
    t.to_offset(SHOP_OFFSET).format(&fmt).unwrap_or_default()
}

/// `X-Shopify-Triggered-At`, e.g. `2025-07-10T16:15:47.000000Z`.
fn triggered_at(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.to_offset(UtcOffset::UTC).format(&fmt).unwrap_or_default()
}

const WOO_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// WooCommerce dates carry no offset: `date_*` is site-local, `date_*_gmt` is UTC.
fn woo_local(t: OffsetDateTime) -> String {
    t.to_offset(SHOP_OFFSET).format(WOO_TIME).unwrap_or_default()
}

fn woo_gmt(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).format(WOO_TIME).unwrap_or_default()
}

/// RFC 3339, or a bare `YYYY-MM-DDTHH:MM:SS` read at `local` (what the platforms do with
/// offset-less dates).
fn parse_time(s: &str, local: UtcOffset) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    PrimitiveDateTime::parse(s, WOO_TIME).ok().map(|p| p.assume_offset(local))
}

/// 32 lowercase hex digits (WooCommerce delivery ids, tokens).
fn hex32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn random_digits(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().into_bytes() {
            if out.len() < n {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    out
}

fn random_upper(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    uuid::Uuid::new_v4()
        .into_bytes()
        .iter()
        .take(n)
        .map(|b| char::from(ALPHABET[*b as usize % ALPHABET.len()]))
        .collect()
}

/// A stable id for a SKU (FNV-1a), so the same product keeps its ids across orders.
fn stable_id(sku: &str, base: u64, span: u64) -> u64 {
    let hash = sku.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    base + hash % span
}

/// The Shopify variant id an order line or product variant gets for a SKU.
fn variant_id_for(sku: &str) -> u64 {
    stable_id(sku, 49_148_385_000_000, 1_000_000_000)
}

/// A Shopify handle / WordPress slug: the lowercased title, other characters as `-`.
fn slug(title: &str) -> String {
    title.to_lowercase().chars().map(|c| if c.is_alphanumeric() { c } else { '-' }).collect()
}

/// Sets a WooCommerce date pair: `key` site-local and `key_gmt` in UTC.
fn set_woo_date(body: &mut Value, key: &str, t: OffsetDateTime) {
    body[key] = json!(woo_local(t));
    body[format!("{key}_gmt")] = json!(woo_gmt(t));
}

/// The REST `_links` of a WooCommerce resource, e.g. `orders` 1000.
fn woo_links(store_url: &str, collection: &str, id: u64) -> Value {
    json!({
        "self": [{ "href": format!("{store_url}/wp-json/wc/v3/{collection}/{id}") }],
        "collection": [{ "href": format!("{store_url}/wp-json/wc/v3/{collection}") }],
    })
}

/// Encodes like PHP's `wp_json_encode` with default flags: `/` as `\/`, non-ASCII as
/// `\uXXXX` (UTF-16, lowercase hex). Both only occur inside strings, so the rewrite is safe.
fn php_json(v: &Value) -> Vec<u8> {
    let plain = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(plain.len() + 32);
    for c in plain.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.into_bytes()
}

/// Minor units as the platforms' money strings ("19.90").
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// WooCommerce's numeric `line_items[].price`: an integer when whole (`3`), else a float.
fn woo_price(cents: i64) -> Value {
    if cents % 100 == 0 {
        json!(cents / 100)
    } else {
        json!(cents as f64 / 100.0)
    }
}

/// "19.90", "19.9", "19" or a JSON number → minor units.
fn parse_price(v: &Value) -> Option<i64> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_cents = format!("{frac:0<2}").parse::<i64>().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(frac_cents)
}

/// Adds `more`'s fields to the object `into`.
fn merge(into: &mut Value, more: Value) {
    if let (Some(obj), Value::Object(more)) = (into.as_object_mut(), more) {
        obj.extend(more);
    }
}

fn money_set(amount: &str, currency: &str) -> Value {
    let m = json!({ "amount": amount, "currency_code": currency });
    json!({ "shop_money": m, "presentment_money": m })
}

fn currency_symbol(currency: &str) -> &str {
    match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        other => other,
    }
}

struct SampleAddress {
    address1: &'static str,
    city: &'static str,
    zip: &'static str,
    province: &'static str,
    province_code: &'static str,
    country: &'static str,
}

fn sample_address(country: &str) -> SampleAddress {
    let a = |address1, city, zip, province, province_code, country| SampleAddress {
        address1,
        city,
        zip,
        province,
        province_code,
        country,
    };
    match country {
        // Non-ASCII on purpose: WooCommerce must encode it as \u00df.
        "DE" => a("Musterstraße 12", "Berlin", "10115", "Berlin", "BE", "Germany"),
        "AT" => a("Mariahilfer Straße 1", "Wien", "1060", "Wien", "9", "Austria"),
        "CH" => a("Bahnhofstrasse 1", "Zürich", "8001", "Zürich", "ZH", "Switzerland"),
        "US" => a("123 Shipping Street", "Shippington", "40003", "Kentucky", "KY", "United States"),
        "GB" => a("1 Sample Road", "London", "SW1A 1AA", "England", "ENG", "United Kingdom"),
        _ => a("1 Sample Street", "Sample City", "10000", "", "", ""),
    }
}

/// A carrier's public tracking page, the way Shopify fills `tracking_url` for known carriers.
fn carrier_url(company: &str, number: &str) -> Option<String> {
    let url = match company.trim().to_ascii_lowercase().as_str() {
        "dhl" | "dhl paket" | "dhl parcel" | "deutsche post" => {
            format!("https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode={number}")
        }
        "dhl express" => format!("https://www.dhl.com/en/express/tracking.html?AWB={number}"),
        "ups" => format!("https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums={number}"),
        "dpd" => format!("https://tracking.dpd.de/status/de_DE/parcel/{number}"),
        "hermes" => format!("https://www.myhermes.de/empfangen/sendungsverfolgung/sendungsinformation#{number}"),
        "usps" => format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
        _ => return None,
    };
    Some(url)
}

/// A DHL-style 20-digit parcel number.
fn sample_tracking_number() -> String {
    format!("00340434{}", random_digits(12))
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// An error answer, rendered at the end (a `Response` is too big to pass around in `Result`s).
enum Fail {
    /// Control routes: `{"error": "…"}`.
    Control(StatusCode, String),
    /// Shopify Admin REST: `{"errors": …}`.
    Shopify(StatusCode, Value),
    /// WooCommerce REST: `{"code","message","data"}`, PHP-encoded.
    Woo(StatusCode, Value),
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::Control(status, message) => json_error(status, message),
            Fail::Shopify(status, errors) => (status, Json(json!({ "errors": errors }))).into_response(),
            Fail::Woo(status, body) => woo_json(status, &body),
        }
    }
}

fn parse_body<T: for<'de> Deserialize<'de> + Default>(body: &[u8], expected: &str) -> Result<T, Fail> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    // `null` counts as "no options" too.
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| Fail::Control(StatusCode::BAD_REQUEST, format!("expected {expected}: {e}")))
}

/// A create request's JSON body (`expected` describes it in the error) and, from it, the new
/// resource with its defaults filled in.
fn parse_new<R: for<'de> Deserialize<'de>, N>(
    body: &[u8],
    expected: &str,
    fill: impl FnOnce(&R) -> Result<N, String>,
) -> Result<(R, N), Fail> {
    let bad = |message| Fail::Control(StatusCode::BAD_REQUEST, message);
    let req = serde_json::from_slice(body).map_err(|e| bad(format!("expected {expected}: {e}")))?;
    let new = fill(&req).map_err(bad)?;
    Ok((req, new))
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn parse_id(id: &str) -> Result<u64, Fail> {
    id.trim().parse().map_err(|_| Fail::Control(StatusCode::BAD_REQUEST, format!("'{id}' is not an order id")))
}

fn no_order(id: u64) -> Fail {
    Fail::Control(StatusCode::NOT_FOUND, format!("no order {id} in the shop sandbox"))
}

// ---------------------------------------------------------------------------------------------
// Control: orders

#[derive(Deserialize)]
struct ItemRequest {
    sku: Option<String>,
    title: Option<String>,
    quantity: Option<u32>,
    price: Option<Value>,
    variant_id: Option<u64>,
    product_id: Option<u64>,
}

#[derive(Deserialize)]
struct OrderRequest {
    platform: Platform,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    items: Option<Vec<ItemRequest>>,
    currency: Option<String>,
    country: Option<String>,
    /// Shopify `customer_locale`.
    locale: Option<String>,
    /// paid (default), pending or processing.
    status: Option<String>,
    attributes: Option<Map<String, Value>>,
    /// Shipping price (default free).
    shipping: Option<Value>,
    /// Backdates the order (reconciler tests); default now.
    created_at: Option<String>,
    deliver: Option<bool>,
}

struct Item {
    sku: String,
    title: String,
    quantity: u32,
    unit: i64,
    variant_id: u64,
    product_id: u64,
}

/// An order request with every default filled in.
struct NewOrder {
    phone: String,
    first_name: String,
    last_name: String,
    email: String,
    country: String,
    currency: String,
    locale: String,
    paid: bool,
    items: Vec<Item>,
    shipping: i64,
    attributes: Vec<(String, String)>,
    created: OffsetDateTime,
}

impl NewOrder {
    fn subtotal(&self) -> i64 {
        self.items.iter().map(|i| i.unit * i64::from(i.quantity)).sum()
    }

    /// Shopify `total_weight`: 200 g an item.
    fn total_weight(&self) -> u32 {
        200 * self.items.iter().map(|i| i.quantity).sum::<u32>()
    }

    /// Shopify `note_attributes`.
    fn note_attributes(&self) -> Vec<Value> {
        self.attributes.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect()
    }

    /// A Shopify address (orders and checkouts bill and ship to the same one).
    fn shopify_address(&self) -> Value {
        let a = sample_address(&self.country);
        json!({
            "first_name": self.first_name,
            "address1": a.address1,
            "phone": self.phone,
            "city": a.city,
            "zip": a.zip,
            "province": a.province,
            "country": a.country,
            "last_name": self.last_name,
            "address2": null,
            "company": null,
            "latitude": null,
            "longitude": null,
            "name": format!("{} {}", self.first_name, self.last_name),
            "country_code": self.country,
            "province_code": a.province_code,
        })
    }

    /// The Shopify `customer` fields orders and checkouts share.
    fn shopify_customer(&self, customer_id: u64) -> Value {
        let t = shopify_time(self.created);
        json!({
            "id": customer_id,
            "email": self.email,
            "created_at": t,
            "updated_at": t,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "state": "disabled",
            "verified_email": true,
            "tax_exempt": false,
            "phone": self.phone,
            "currency": self.currency,
            "admin_graphql_api_id": format!("gid://shopify/Customer/{customer_id}"),
        })
    }

    /// A WooCommerce order's `billing` (with `email`) or `shipping` address.
    fn woo_address(&self, billing: bool) -> Value {
        let a = sample_address(&self.country);
        let mut address = json!({
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company": "",
            "address_1": a.address1,
            "address_2": "",
            "city": a.city,
            "state": a.province_code,
            "postcode": a.zip,
            "country": self.country,
            "phone": self.phone,
        });
        if billing {
            address["email"] = json!(self.email);
        }
        address
    }

    fn from_request(req: &OrderRequest) -> Result<Self, String> {
        let paid = match non_empty(&req.status).as_deref().unwrap_or("paid") {
            "paid" | "processing" => true,
            "pending" => false,
            other => return Err(format!("status '{other}' must be paid, pending or processing")),
        };
        let items = match &req.items {
            None => vec![
                item("TSHIRT-M", "T-Shirt M", 2, 1990, None, None),
                item("MUG-WHITE", "Coffee Mug", 1, 1250, None, None),
            ],
            Some(list) if list.is_empty() => return Err("items must not be empty".into()),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    let title = non_empty(&i.title).unwrap_or_else(|| format!("Item {}", n + 1));
                    let sku = non_empty(&i.sku).unwrap_or_else(|| title.to_ascii_uppercase().replace(' ', "-"));
                    let unit = match &i.price {
                        None => 1000,
                        Some(p) => parse_price(p).ok_or_else(|| format!("items[{n}].price: '{p}' is not an amount"))?,
                    };
                    let quantity = i.quantity.unwrap_or(1);
                    if quantity == 0 {
                        return Err(format!("items[{n}].quantity must be at least 1"));
                    }
                    Ok(item(&sku, &title, quantity, unit, i.variant_id, i.product_id))
                })
                .collect::<Result<_, String>>()?,
        };
        let shipping = match &req.shipping {
            None => 0,
            Some(p) => parse_price(p).ok_or_else(|| format!("shipping: '{p}' is not an amount"))?,
        };
        let created = match non_empty(&req.created_at) {
            None => now(),
            Some(s) => parse_time(&s, SHOP_OFFSET)
                .ok_or_else(|| format!("created_at '{s}' is not an RFC 3339 time"))?
                .replace_nanosecond(0)
                .map_err(|e| e.to_string())?,
        };
        let first_name = non_empty(&req.first_name).unwrap_or_else(|| "Erika".into());
        let last_name = non_empty(&req.last_name).unwrap_or_else(|| "Mustermann".into());
        let email = non_empty(&req.email).unwrap_or_else(|| {
            let local: String = first_name.to_lowercase().chars().filter(char::is_ascii_alphanumeric).collect();
            format!("{}@example.com", if local.is_empty() { "customer" } else { &local })
        });
        let country = non_empty(&req.country).unwrap_or_else(|| "DE".into()).to_ascii_uppercase();
        let locale = non_empty(&req.locale)
            .unwrap_or_else(|| if matches!(country.as_str(), "DE" | "AT" | "CH") { "de" } else { "en" }.into());
        let attributes = req
            .attributes
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect();
        Ok(Self {
            phone: non_empty(&req.phone).unwrap_or_else(|| "+4915123456789".into()),
            first_name,
            last_name,
            email,
            currency: non_empty(&req.currency).unwrap_or_else(|| "EUR".into()).to_ascii_uppercase(),
            country,
            locale,
            paid,
            items,
            shipping,
            attributes,
            created,
        })
    }
}

fn item(sku: &str, title: &str, quantity: u32, unit: i64, variant: Option<u64>, product: Option<u64>) -> Item {
    Item {
        sku: sku.to_string(),
        title: title.to_string(),
        quantity,
        unit,
        variant_id: variant.unwrap_or_else(|| variant_id_for(sku)),
        product_id: product.unwrap_or_else(|| stable_id(sku, 8_949_425_000_000, 1_000_000_000)),
    }
}

/// The `line_items[]` fields Shopify orders and checkouts share.
fn shopify_line_item(i: &Item, product_id: u64) -> Value {
    json!({
        "discount_allocations": [],
        "fulfillment_service": "manual",
        "gift_card": false,
        "grams": 200,
        "product_id": product_id,
        "quantity": i.quantity,
        "requires_shipping": true,
        "sku": i.sku,
        "tax_lines": [],
        "taxable": true,
        "title": i.title,
        "variant_id": i.variant_id,
        "variant_title": null,
        "vendor": "Parley Demo",
    })
}

impl Store {
    /// The Shopify customer id for a phone number; repeat buyers keep theirs.
    fn customer_id(&mut self, phone: &str) -> u64 {
        *self.customers.entry(phone.to_string()).or_insert_with(|| take(&mut self.next.customer))
    }

    /// A Shopify order in the REST/webhook shape (orders/create, API 2026-07).
    fn new_shopify_order(&mut self, cfg: &ShopSandboxConfig, o: &NewOrder) -> Order {
        let id = take(&mut self.next.shopify_order);
        let order_number = take(&mut self.next.order_number);
        let customer_id = self.customer_id(&o.phone);
        let cur = o.currency.as_str();
        let t = shopify_time(o.created);
        let address = o.shopify_address();
        let mut default_address = address.clone();
        default_address["id"] = json!(customer_id + 1_000);
        default_address["customer_id"] = json!(customer_id);
        default_address["default"] = json!(true);
        let line_items: Vec<Value> = o
            .items
            .iter()
            .map(|i| {
                let lid = take(&mut self.next.line_item);
                let price = money(i.unit);
                let mut line = shopify_line_item(i, i.product_id);
                merge(
                    &mut line,
                    json!({
                        "id": lid,
                        "admin_graphql_api_id": format!("gid://shopify/LineItem/{lid}"),
                        "attributed_staffs": [],
                        "current_quantity": i.quantity,
                        "fulfillable_quantity": i.quantity,
                        "fulfillment_status": null,
                        "name": i.title,
                        "price": price,
                        "price_set": money_set(&price, cur),
                        "product_exists": true,
                        "properties": [],
                        "total_discount": "0.00",
                        "total_discount_set": money_set("0.00", cur),
                        "variant_inventory_management": "shopify",
                        "duties": [],
                    }),
                );
                line
            })
            .collect();
        let subtotal = money(o.subtotal());
        let shipping = money(o.shipping);
        let total = money(o.subtotal() + o.shipping);
        let zero = money_set("0.00", cur);
        let token = hex32();
        let mut customer = o.shopify_customer(customer_id);
        merge(
            &mut customer,
            json!({
                "note": null,
                "multipass_identifier": null,
                "tax_exemptions": [],
                "default_address": default_address,
            }),
        );
        let shipping_lines = json!([{
            "id": id / 100,
            "carrier_identifier": null,
            "code": "Standard",
            "discounted_price": shipping,
            "discounted_price_set": money_set(&shipping, cur),
            "price": shipping,
            "price_set": money_set(&shipping, cur),
            "source": "shopify",
            "title": if o.shipping == 0 { "Free Shipping" } else { "Standard" },
            "tax_lines": [],
            "discount_allocations": [],
        }]);
        // Two halves: one json! this size exceeds the macro recursion limit.
        let mut body = json!({
            "id": id,
            "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
            "app_id": SHOPIFY_APP_ID,
            "browser_ip": "203.0.113.7",
            "buyer_accepts_marketing": false,
            "cancel_reason": null,
            "cancelled_at": null,
            "cart_token": null,
            "checkout_id": id / 10,
            "checkout_token": hex32(),
            "client_details": {
                "accept_language": format!("{}-{}", o.locale, o.country),
                "browser_height": null,
                "browser_ip": "203.0.113.7",
                "browser_width": null,
                "session_hash": null,
                "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X)",
            },
            "closed_at": null,
            "company": null,
            "confirmation_number": random_upper(9),
            "confirmed": true,
            "contact_email": o.email,
            "created_at": t,
            "currency": cur,
            "current_shipping_price_set": money_set(&shipping, cur),
            "current_subtotal_price": subtotal,
            "current_subtotal_price_set": money_set(&subtotal, cur),
            "current_total_additional_fees_set": null,
            "current_total_discounts": "0.00",
            "current_total_discounts_set": zero,
            "current_total_duties_set": null,
            "current_total_price": total,
            "current_total_price_set": money_set(&total, cur),
            "current_total_tax": "0.00",
            "current_total_tax_set": zero,
            "customer_locale": o.locale,
            "device_id": null,
            "discount_codes": [],
            "duties_included": false,
            "email": o.email,
            "estimated_taxes": false,
            "financial_status": if o.paid { "paid" } else { "pending" },
            "fulfillment_status": null,
            "landing_site": null,
            "landing_site_ref": null,
            "location_id": null,
            "merchant_of_record_app_id": null,
        });
        merge(
            &mut body,
            json!({
                "name": format!("#{order_number}"),
                "note": null,
                "note_attributes": o.note_attributes(),
                "number": order_number - 1000,
                "order_number": order_number,
                "order_status_url": format!(
                    "https://{}/{SHOPIFY_SHOP_ID}/orders/{token}/authenticate?key={}",
                    cfg.shopify_domain,
                    hex32()
                ),
                "original_total_additional_fees_set": null,
                "original_total_duties_set": null,
                "payment_gateway_names": [if o.paid { "shopify_payments" } else { "manual" }],
                "phone": o.phone,
                "po_number": null,
                "presentment_currency": cur,
                "processed_at": t,
                "reference": null,
                "referring_site": null,
                "source_identifier": null,
                "source_name": "web",
                "source_url": null,
            }),
        );
        merge(
            &mut body,
            json!({
                "subtotal_price": subtotal,
                "subtotal_price_set": money_set(&subtotal, cur),
                "tags": "",
                "tax_exempt": false,
                "tax_lines": [],
                "taxes_included": true,
                "test": false,
                "token": token,
                "total_discounts": "0.00",
                "total_discounts_set": zero,
                "total_line_items_price": subtotal,
                "total_line_items_price_set": money_set(&subtotal, cur),
                "total_outstanding": if o.paid { "0.00".to_string() } else { total.clone() },
                "total_price": total,
                "total_price_set": money_set(&total, cur),
                "total_shipping_price_set": money_set(&shipping, cur),
                "total_tax": "0.00",
                "total_tax_set": zero,
                "total_tip_received": "0.00",
                "total_weight": o.total_weight(),
                "updated_at": t,
                "user_id": null,
                "billing_address": address,
                "customer": customer,
                "discount_applications": [],
                "fulfillments": [],
                "line_items": line_items,
                "payment_terms": null,
                "refunds": [],
                "shipping_address": address,
                "shipping_lines": shipping_lines,
            }),
        );
        Order { platform: Platform::Shopify, id, created: o.created, updated: o.created, body }
    }

    /// A WooCommerce order in the REST v3 shape (what `order.created` carries).
    fn new_woo_order(&mut self, store_url: &str, o: &NewOrder) -> Order {
        let id = take(&mut self.next.woo_order);
        let cur = o.currency.as_str();
        let order_key = format!("wc_order_{}", &hex32()[..13]);
        let line_items: Vec<Value> = o
            .items
            .iter()
            .map(|i| {
                let total = money(i.unit * i64::from(i.quantity));
                json!({
                    "id": take(&mut self.next.woo_line_item),
                    "name": i.title,
                    "product_id": i.product_id % 10_000,
                    "variation_id": 0,
                    "quantity": i.quantity,
                    "tax_class": "",
                    "subtotal": total,
                    "subtotal_tax": "0.00",
                    "total": total,
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                    "sku": i.sku,
                    "price": woo_price(i.unit),
                    "image": { "id": "", "src": "" },
                    "parent_name": null,
                })
            })
            .collect();
        let meta_data: Vec<Value> = o
            .attributes
            .iter()
            .map(|(k, v)| json!({ "id": take(&mut self.next.woo_meta), "key": k, "value": v }))
            .collect();
        let (payment_method, payment_title) =
            if o.paid { ("stripe", "Credit Card (Stripe)") } else { ("bacs", "Direct bank transfer") };
        let paid_local = o.paid.then(|| woo_local(o.created));
        let paid_gmt = o.paid.then(|| woo_gmt(o.created));
        let mut body = json!({
            "id": id,
            "parent_id": 0,
            "status": if o.paid { "processing" } else { "pending" },
            "currency": cur,
            "version": WOO_VERSION,
            "prices_include_tax": true,
            "date_created": woo_local(o.created),
            "date_modified": woo_local(o.created),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": money(o.shipping),
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": money(o.subtotal() + o.shipping),
            "total_tax": "0.00",
            "customer_id": 0,
            "order_key": order_key,
            "billing": o.woo_address(true),
            "shipping": o.woo_address(false),
        });
        merge(
            &mut body,
            json!({
                "payment_method": payment_method,
                "payment_method_title": payment_title,
                "transaction_id": if o.paid { format!("pi_{}", &hex32()[..24]) } else { String::new() },
                "customer_ip_address": "203.0.113.7",
                "customer_user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X)",
                "created_via": "checkout",
                "customer_note": "",
                "date_completed": null,
                "date_paid": paid_local,
                "cart_hash": hex32(),
                "number": id.to_string(),
                "meta_data": meta_data,
                "line_items": line_items,
                "tax_lines": [],
                "shipping_lines": [{
                    "id": take(&mut self.next.woo_line_item),
                    "method_title": if o.shipping == 0 { "Free shipping" } else { "Flat rate" },
                    "method_id": if o.shipping == 0 { "free_shipping" } else { "flat_rate" },
                    "instance_id": "1",
                    "total": money(o.shipping),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                }],
                "fee_lines": [],
                "coupon_lines": [],
                "refunds": [],
                "payment_url": format!("{store_url}/checkout/order-pay/{id}/?pay_for_order=true&key={order_key}"),
                "is_editable": !o.paid,
                "needs_payment": !o.paid,
                "needs_processing": true,
                "date_created_gmt": woo_gmt(o.created),
                "date_modified_gmt": woo_gmt(o.created),
                "date_completed_gmt": null,
                "date_paid_gmt": paid_gmt,
                "currency_symbol": currency_symbol(cur),
                "_links": woo_links(store_url, "orders", id),
            }),
        );
        Order { platform: Platform::WooCommerce, id, created: o.created, updated: o.created, body }
    }
}

/// Bumps an order's modification time in its body too.
fn touch(order: &mut Order, t: OffsetDateTime) {
    order.updated = t;
    match order.platform {
        Platform::Shopify => order.body["updated_at"] = json!(shopify_time(t)),
        Platform::WooCommerce => {
            set_woo_date(&mut order.body, "date_modified", t);
        }
    }
}

/// The control routes' answer for an action and its webhook.
fn answer(order: &Order, topic: &str, outcome: &Outcome, extra: Value) -> Response {
    let mut out = json!({
        "platform": order.platform,
        "order_id": order.id,
        // Shopify ids exceed 2^53: the web page must not round-trip them through a JS number.
        "order_id_str": order.id.to_string(),
        "name": order.name(),
    });
    add_webhook_fate(&mut out, topic, outcome);
    merge(&mut out, extra);
    Json(out).into_response()
}

/// Adds the webhook's fate (`topic`, `webhook_status`, `delivery_id`, …) to an answer.
fn add_webhook_fate(out: &mut Value, topic: &str, outcome: &Outcome) {
    let (status, delivery_id, error) = match outcome {
        Outcome::Withheld(d) => (None, Some(d.delivery_id.clone()), None),
        Outcome::Unsubscribed(why) => (None, None, Some(why.clone())),
        Outcome::Delivery(d) => (d.status, Some(d.delivery_id.clone()), d.error.clone()),
    };
    merge(out, json!({ "topic": topic, "webhook_status": status, "delivery_id": delivery_id }));
    if let Some(e) = error {
        out["webhook_error"] = json!(e);
    }
    if matches!(outcome, Outcome::Withheld(_)) {
        out["webhook_withheld"] = json!(true);
    }
}

async fn create_order(State(sb): State<ShopSandbox>, body: Bytes) -> Response {
    let expected = "{\"platform\":\"shopify|woocommerce\",\"phone\",\"items\":[…]}";
    let (req, new) = match parse_new(&body, expected, NewOrder::from_request) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let published = sb.publish(req.deliver.unwrap_or(true), |store| {
        let order = match req.platform {
            Platform::Shopify => store.new_shopify_order(sb.cfg(), &new),
            Platform::WooCommerce => store.new_woo_order(sb.store_url(), &new),
        };
        store.orders.push(order.clone());
        Ok((order, req.platform.pick("orders/create", "order.created")))
    });
    match published.await {
        Ok((order, topic, outcome)) => answer(&order, topic, &outcome, json!({})),
        Err(r) => r.into_response(),
    }
}

async fn get_order(State(sb): State<ShopSandbox>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    match sb.store().orders.iter().find(|o| o.id == id) {
        Some(o) => Json(json!({ "platform": o.platform, "order": o.body })).into_response(),
        None => no_order(id).into_response(),
    }
}

#[derive(Deserialize, Default)]
struct DeliverFlag {
    deliver: Option<bool>,
    /// Shopify `cancel_reason` (customer, fraud, inventory, declined, other).
    reason: Option<String>,
}

/// Runs `change` on a stored order; on success plans the resulting webhook.
fn mutate(
    sb: &ShopSandbox,
    id: &str,
    deliver: bool,
    change: impl FnOnce(&mut Store, usize) -> Result<(String, Value, Value), Fail>,
) -> Result<(Order, String, Outcome, Value), Fail> {
    let id = parse_id(id)?;
    let mut store = sb.store();
    let index = store.orders.iter().position(|o| o.id == id).ok_or_else(|| no_order(id))?;
    let (topic, payload, extra) = change(&mut store, index)?;
    let order = store.orders[index].clone();
    let planned = sb.plan(&store, &order, &topic, &payload, deliver);
    Ok((order, topic, planned, extra))
}

async fn finish(sb: &ShopSandbox, result: Result<(Order, String, Outcome, Value), Fail>) -> Response {
    match result {
        Ok((order, topic, planned, extra)) => {
            let outcome = sb.dispatch(planned).await;
            answer(&order, &topic, &outcome, extra)
        }
        Err(r) => r.into_response(),
    }
}

/// Pay and cancel: `change` updates the stored order at a time and names the topic; the webhook
/// carries the whole order.
async fn change_order(
    sb: &ShopSandbox,
    id: &str,
    body: &[u8],
    change: impl FnOnce(&mut Order, OffsetDateTime, &DeliverFlag) -> &'static str,
) -> Response {
    let req = match deliver_flag(body) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let result = mutate(sb, id, req.deliver.unwrap_or(true), |store, i| {
        let t = now();
        let order = &mut store.orders[i];
        let topic = change(order, t, &req);
        Ok((topic.to_string(), order.body.clone(), json!({})))
    });
    finish(sb, result).await
}

fn deliver_flag(body: &[u8]) -> Result<DeliverFlag, Fail> {
    parse_body(body, "{\"deliver\":true}")
}

fn conflict(message: impl Into<String>) -> Fail {
    Fail::Control(StatusCode::CONFLICT, message.into())
}

/// `POST /shop/orders/{id}/pay`: a pending order gets paid (Shopify `orders/paid`; WooCommerce
/// `processing` + `order.updated`).
async fn pay_order(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    change_order(&sb, &id, &body, |order, t, _| match order.platform {
        Platform::Shopify => {
            // Already paid: the topic is posted again (Shopify does send duplicates).
            if order.body["financial_status"] == "pending" {
                order.body["financial_status"] = json!("paid");
                order.body["total_outstanding"] = json!("0.00");
                order.body["payment_gateway_names"] = json!(["shopify_payments"]);
                touch(order, t);
            }
            "orders/paid"
        }
        Platform::WooCommerce => {
            if order.body["status"] == "pending" || order.body["status"] == "on-hold" {
                order.body["status"] = json!("processing");
                set_woo_date(&mut order.body, "date_paid", t);
                order.body["needs_payment"] = json!(false);
                order.body["is_editable"] = json!(false);
                touch(order, t);
            }
            "order.updated"
        }
    })
    .await
}

#[derive(Deserialize, Default)]
struct FulfillRequest {
    tracking_company: Option<String>,
    tracking_number: Option<String>,
    tracking_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    shipment_status: Option<Option<String>>,
    deliver: Option<bool>,
}

/// `POST /shop/orders/{id}/fulfill`: ships an order or corrects/advances its shipment.
async fn fulfill_order(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: FulfillRequest = match parse_body(
        &body,
        "{\"tracking_company\":\"DHL\",\"tracking_number\":\"…\",\"tracking_url\":\"…\",\"shipment_status\":null}",
    ) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let result = mutate(&sb, &id, req.deliver.unwrap_or(true), |store, i| match store.orders[i].platform {
        Platform::Shopify => shopify_fulfill(store, i, &req),
        Platform::WooCommerce => woo_fulfill(store, i, &req),
    });
    finish(&sb, result).await
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn shopify_fulfill(store: &mut Store, i: usize, req: &FulfillRequest) -> Result<(String, Value, Value), Fail> {
    let t = now();
    let existing = store.orders[i].body["fulfillments"].as_array().is_some_and(|f| !f.is_empty());
    let new_id = (!existing).then(|| take(&mut store.next.fulfillment));
    let order = &mut store.orders[i];
    let number = non_empty(&req.tracking_number);
    let company = non_empty(&req.tracking_company);
    let url = non_empty(&req.tracking_url);
    if let Some(items) = order.body["line_items"].as_array_mut() {
        for li in items {
            li["fulfillment_status"] = json!("fulfilled");
            li["fulfillable_quantity"] = json!(0);
        }
    }
    order.body["fulfillment_status"] = json!("fulfilled");
    let topic = if let Some(fid) = new_id {
        let company = company.unwrap_or_else(|| "DHL".into());
        let number = number.unwrap_or_else(sample_tracking_number);
        let url = url.or_else(|| carrier_url(&company, &number));
        let fulfillment = json!({
            "id": fid,
            "admin_graphql_api_id": format!("gid://shopify/Fulfillment/{fid}"),
            "created_at": shopify_time(t),
            "location_id": SHOPIFY_LOCATION_ID,
            "name": format!("{}.1", order.body["name"].as_str().unwrap_or_default()),
            "order_id": order.id,
            "origin_address": {},
            "receipt": {},
            "service": "manual",
            "shipment_status": req.shipment_status.clone().flatten(),
            "status": "success",
            "tracking_company": company,
            "tracking_number": number,
            "tracking_numbers": [number],
            "tracking_url": url,
            "tracking_urls": url.iter().collect::<Vec<_>>(),
            "updated_at": shopify_time(t),
            "email": order.body["email"],
            "destination": order.body["shipping_address"],
            "line_items": order.body["line_items"],
        });
        order.body["fulfillments"] = json!([fulfillment]);
        "fulfillments/create"
    } else {
        let Some(f) = order.body["fulfillments"].as_array_mut().and_then(|f| f.last_mut()) else {
            return Err(conflict("the order has no fulfillment"));
        };
        if let Some(c) = company {
            f["tracking_company"] = json!(c);
        }
        // A new number is a tracking correction: the carrier link follows it unless one is given.
        let changed = number.as_ref().is_some_and(|n| f["tracking_number"] != n.as_str());
        if let Some(n) = &number {
            f["tracking_number"] = json!(n);
            f["tracking_numbers"] = json!([n]);
        }
        let url = url.or_else(|| {
            changed
                .then(|| carrier_url(f["tracking_company"].as_str().unwrap_or_default(), number.as_deref()?))
                .flatten()
        });
        if let Some(u) = url {
            f["tracking_url"] = json!(u);
            f["tracking_urls"] = json!([u]);
        } else if changed {
            f["tracking_url"] = Value::Null;
            f["tracking_urls"] = json!([]);
        }
        if let Some(s) = &req.shipment_status {
            f["shipment_status"] = json!(s);
        }
        f["updated_at"] = json!(shopify_time(t));
        "fulfillments/update"
    };
    touch(order, t);
    let fulfillment = order.body["fulfillments"].as_array().and_then(|f| f.last()).cloned().unwrap_or_default();
    let extra = json!({
        "fulfillment_id": fulfillment["id"],
        "tracking_number": fulfillment["tracking_number"],
        "tracking_url": fulfillment["tracking_url"],
        "shipment_status": fulfillment["shipment_status"],
    });
    Ok((topic.into(), fulfillment, extra))
}

const TRACKING_META_KEY: &str = "_wc_shipment_tracking_items";

fn woo_fulfill(store: &mut Store, i: usize, req: &FulfillRequest) -> Result<(String, Value, Value), Fail> {
    let t = now();
    let meta_id = take(&mut store.next.woo_meta);
    let order = &mut store.orders[i];
    let meta = order.body["meta_data"].as_array_mut().ok_or_else(|| conflict("order has no meta_data"))?;
    let index = match meta.iter().position(|m| m["key"] == TRACKING_META_KEY) {
        Some(p) => p,
        None => {
            meta.push(json!({ "id": meta_id, "key": TRACKING_META_KEY, "value": [] }));
            meta.len() - 1
        }
    };
    let items = meta[index]["value"].as_array_mut().ok_or_else(|| conflict("tracking meta is not a list"))?;
    let number = non_empty(&req.tracking_number);
    // Shipment Tracking keeps one item per parcel: a known number is not added twice, and a call
    // without a number after the first (e.g. "delivered") only re-posts the order.
    let known = items.iter().position(|it| number.as_ref().is_some_and(|n| it["tracking_number"] == n.as_str()));
    let item = match (known, number, items.is_empty()) {
        (Some(p), _, _) => items[p].clone(),
        (None, None, false) => items.last().cloned().unwrap_or_default(),
        (None, number, _) => {
            let company = non_empty(&req.tracking_company).unwrap_or_else(|| "DHL".into());
            let number = number.unwrap_or_else(sample_tracking_number);
            let link = non_empty(&req.tracking_url).or_else(|| carrier_url(&company, &number)).unwrap_or_default();
            let provider: String =
                company.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let item = json!({
                "tracking_provider": provider,
                "custom_tracking_provider": "",
                "custom_tracking_link": link,
                "tracking_number": number,
                "date_shipped": t.unix_timestamp().to_string(),
                "tracking_id": hex32(),
            });
            items.push(item.clone());
            item
        }
    };
    if order.body["status"] != "completed" {
        order.body["status"] = json!("completed");
        set_woo_date(&mut order.body, "date_completed", t);
    }
    touch(order, t);
    let mut extra = json!({
        "tracking_id": item["tracking_id"],
        "tracking_number": item["tracking_number"],
        "tracking_url": item["custom_tracking_link"],
    });
    if matches!(&req.shipment_status, Some(Some(_))) {
        extra["note"] = json!("WooCommerce has no shipment status; the order was re-posted as order.updated");
    }
    Ok(("order.updated".into(), order.body.clone(), extra))
}

/// `POST /shop/orders/{id}/cancel`.
async fn cancel_order(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    change_order(&sb, &id, &body, |order, t, req| match order.platform {
        Platform::Shopify => {
            // Cancelling again re-posts the topic and keeps the first cancellation.
            if order.body["cancelled_at"].is_null() {
                order.body["cancelled_at"] = json!(shopify_time(t));
                order.body["cancel_reason"] = json!(non_empty(&req.reason).unwrap_or_else(|| "customer".into()));
                let financial = if order.body["financial_status"] == "paid" { "refunded" } else { "voided" };
                order.body["financial_status"] = json!(financial);
                touch(order, t);
            }
            "orders/cancelled"
        }
        Platform::WooCommerce => {
            if order.body["status"] != "cancelled" {
                order.body["status"] = json!("cancelled");
                touch(order, t);
            }
            "order.updated"
        }
    })
    .await
}

#[derive(Deserialize, Default)]
struct RedeliverRequest {
    topic: Option<String>,
}

/// `POST /shop/orders/{id}/redeliver`: a platform retry — the same bytes and delivery id again.
async fn redeliver(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    let req: RedeliverRequest = match parse_body(&body, "{\"topic\":\"orders/create\"}") {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return r.into_response(),
    };
    let topic = non_empty(&req.topic);
    let (order, last) = {
        let store = sb.store();
        let Some(order) = store.orders.iter().find(|o| o.id == id).cloned() else {
            return no_order(id).into_response();
        };
        let last = store
            .deliveries
            .iter()
            .rev()
            .find(|d| d.order_id == id && topic.as_deref().is_none_or(|t| d.topic == t))
            .cloned();
        (order, last)
    };
    let Some(mut d) = last else {
        let what = topic.map(|t| format!("{t} ")).unwrap_or_default();
        return json_error(StatusCode::NOT_FOUND, format!("order {id} has no {what}delivery to repeat"));
    };
    // A withheld webhook goes out for the first time: late, not repeated.
    d.redelivery = !d.withheld;
    d.withheld = false;
    d.status = None;
    d.error = None;
    let (topic, redelivery) = (d.topic.clone(), d.redelivery);
    let outcome = sb.dispatch(Outcome::Delivery(d)).await;
    answer(&order, &topic, &outcome, json!({ "redelivery": redelivery }))
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    platform: Option<String>,
    order_id: Option<u64>,
    topic: Option<String>,
}

async fn list_deliveries(State(sb): State<ShopSandbox>, Query(q): Query<DeliveriesQuery>) -> Response {
    let platform = q.platform.as_deref().and_then(Platform::parse);
    let store = sb.store();
    let list: Vec<&Delivery> = store
        .deliveries
        .iter()
        .filter(|d| platform.is_none_or(|p| d.platform == p))
        .filter(|d| q.order_id.is_none_or(|id| d.order_id == id))
        .filter(|d| q.topic.as_deref().is_none_or(|t| d.topic == t))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize, Default)]
struct TopicRequest {
    topic: Option<String>,
}

/// `POST /shop/webhooks/{platform}/remove`: Shopify deletes the subscription (as after repeated
/// failures), WooCommerce disables it.
async fn remove_subscription(State(sb): State<ShopSandbox>, Path(platform): Path<String>, body: Bytes) -> Response {
    let Some(platform) = Platform::parse(&platform) else {
        return json_error(StatusCode::NOT_FOUND, format!("unknown platform '{platform}' (shopify or woocommerce)"));
    };
    let req: TopicRequest = match parse_body(&body, "{\"topic\":\"orders/create\"}") {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let Some(topic) = non_empty(&req.topic) else {
        return json_error(StatusCode::BAD_REQUEST, "topic is required");
    };
    let mut store = sb.store();
    let Some(sub) = store.hooks_mut(platform).iter_mut().find(|s| s.active && s.topic == topic) else {
        return json_error(StatusCode::NOT_FOUND, format!("no active {topic} subscription"));
    };
    sub.active = false;
    sub.updated = now();
    let status = platform.pick("removed", "disabled");
    Json(json!({ "platform": platform, "topic": topic, "id": sub.id, "status": status })).into_response()
}

#[derive(Deserialize, Default)]
struct PingRequest {
    webhook_id: Option<u64>,
}

/// `POST /shop/webhooks/woocommerce/ping`: the unsigned, form-encoded `webhook_id=N` setup ping.
async fn woo_ping(State(sb): State<ShopSandbox>, body: Bytes) -> Response {
    let req: PingRequest = match parse_body(&body, "{\"webhook_id\":1}") {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let sub = {
        let store = sb.store();
        let hooks = store.hooks(Platform::WooCommerce);
        match req.webhook_id {
            Some(id) => hooks.iter().find(|s| s.id == id).cloned(),
            None => hooks.first().cloned(),
        }
    };
    let Some(sub) = sub else {
        return json_error(StatusCode::NOT_FOUND, "no such WooCommerce webhook");
    };
    let sent = sb
        .inner
        .http
        .post(&sub.address)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, "WordPress/6.8.2; http://127.0.0.1")
        .body(format!("webhook_id={}", sub.id))
        .send()
        .await;
    match sent {
        Ok(resp) => Json(json!({ "webhook_id": sub.id, "webhook_status": resp.status().as_u16() })).into_response(),
        Err(e) => json_error(StatusCode::BAD_GATEWAY, format!("cannot reach {}: {}", sub.address, error_chain(&e))),
    }
}

// ---------------------------------------------------------------------------------------------
// Control: products and checkouts

#[derive(Deserialize)]
struct VariantRequest {
    sku: Option<String>,
    /// Shopify option value ("M"); default "Default Title" for a single variant.
    title: Option<String>,
    price: Option<Value>,
    inventory: Option<i64>,
}

#[derive(Deserialize)]
struct ProductRequest {
    platform: Platform,
    title: Option<String>,
    /// Shopify `product_type`, WooCommerce category.
    product_type: Option<String>,
    variants: Option<Vec<VariantRequest>>,
    deliver: Option<bool>,
}

/// A product request with every default filled in.
struct NewProduct {
    title: String,
    category: String,
    /// `(sku, option title, price in minor units, inventory)`.
    variants: Vec<(String, String, i64, i64)>,
}

impl NewProduct {
    fn from_request(req: &ProductRequest) -> Result<Self, String> {
        let title = non_empty(&req.title).unwrap_or_else(|| "T-Shirt".into());
        let single = req.variants.as_ref().is_none_or(|v| v.len() == 1);
        let variants = match &req.variants {
            None => vec![(title.to_ascii_uppercase().replace(' ', "-"), "Default Title".into(), 1990, 10)],
            Some(list) if list.is_empty() => return Err("variants must not be empty".into()),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(n, v)| {
                    let option = non_empty(&v.title).unwrap_or_else(|| {
                        if single {
                            "Default Title".into()
                        } else {
                            format!("Variant {}", n + 1)
                        }
                    });
                    let sku = non_empty(&v.sku).unwrap_or_else(|| {
                        let base = title.to_ascii_uppercase().replace(' ', "-");
                        if single {
                            base
                        } else {
                            format!("{base}-{}", option.to_ascii_uppercase())
                        }
                    });
                    let price = match &v.price {
                        None => 1990,
                        Some(p) => {
                            parse_price(p).ok_or_else(|| format!("variants[{n}].price: '{p}' is not an amount"))?
                        }
                    };
                    Ok((sku, option, price, v.inventory.unwrap_or(10)))
                })
                .collect::<Result<_, String>>()?,
        };
        let category = non_empty(&req.product_type).unwrap_or_default();
        Ok(Self { title, category, variants })
    }
}

impl Store {
    /// A Shopify product in the REST/webhook shape (products/create, API 2026-07). Variant ids are
    /// the ones orders get for the same SKU.
    fn new_shopify_product(&mut self, p: &NewProduct) -> Product {
        let id = take(&mut self.next.shopify_product);
        let t = shopify_time(now());
        let handle = slug(&p.title);
        let variants: Vec<Value> = p
            .variants
            .iter()
            .zip(1..)
            .map(|((sku, option, price, inventory), position)| {
                let vid = variant_id_for(sku);
                json!({
                    "id": vid,
                    "product_id": id,
                    "title": option,
                    "price": money(*price),
                    "position": position,
                    "inventory_policy": "deny",
                    "compare_at_price": null,
                    "option1": option,
                    "option2": null,
                    "option3": null,
                    "created_at": t,
                    "updated_at": t,
                    "taxable": true,
                    "barcode": null,
                    "fulfillment_service": "manual",
                    "grams": 200,
                    "inventory_management": "shopify",
                    "requires_shipping": true,
                    "sku": sku,
                    "weight": 0.2,
                    "weight_unit": "kg",
                    "inventory_item_id": vid + 2_000_000_000_000,
                    "inventory_quantity": inventory,
                    "old_inventory_quantity": inventory,
                    "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{vid}"),
                    "image_id": null,
                })
            })
            .collect();
        let options: Vec<&str> = p.variants.iter().map(|v| v.1.as_str()).collect();
        let body = json!({
            "admin_graphql_api_id": format!("gid://shopify/Product/{id}"),
            "body_html": "",
            "created_at": t,
            "handle": handle,
            "id": id,
            "product_type": p.category,
            "published_at": t,
            "template_suffix": null,
            "title": p.title,
            "updated_at": t,
            "vendor": "Parley Demo",
            "status": "active",
            "published_scope": "web",
            "tags": "",
            "variants": variants,
            "options": [{ "id": id + 1, "product_id": id, "name": "Title", "position": 1, "values": options }],
            "images": [],
            "image": null,
            "media": [],
            "category": null,
        });
        let ids = p.variants.iter().map(|v| (v.0.clone(), variant_id_for(&v.0)));
        Product { platform: Platform::Shopify, id, variants: ids.collect(), body }
    }

    /// A WooCommerce product in the REST v3 shape (what `product.created` carries): a simple
    /// product, or for several variants a variable parent listing its variation ids.
    fn new_woo_product(&mut self, store_url: &str, p: &NewProduct) -> Product {
        let id = take(&mut self.next.woo_product);
        let t = now();
        let variable = p.variants.len() > 1;
        let variants: Vec<(String, u64)> = if variable {
            p.variants.iter().map(|v| (v.0.clone(), take(&mut self.next.woo_product))).collect()
        } else {
            vec![(p.variants[0].0.clone(), id)]
        };
        let price = p.variants.iter().map(|v| v.2).min().unwrap_or(0);
        let stock: i64 = p.variants.iter().map(|v| v.3).sum();
        let slug = slug(&p.title);
        let categories =
            if p.category.is_empty() { json!([]) } else { json!([{ "id": 17, "name": p.category, "slug": slug }]) };
        let mut body = json!({
            "id": id,
            "name": p.title,
            "slug": slug,
            "permalink": format!("{store_url}/product/{slug}/"),
            "date_created": woo_local(t),
            "date_created_gmt": woo_gmt(t),
            "date_modified": woo_local(t),
            "date_modified_gmt": woo_gmt(t),
            "type": if variable { "variable" } else { "simple" },
            "status": "publish",
            "featured": false,
            "catalog_visibility": "visible",
            "description": "",
            "short_description": "",
            "sku": if variable { String::new() } else { p.variants[0].0.clone() },
            "price": money(price),
            "regular_price": if variable { String::new() } else { money(price) },
            "sale_price": "",
            "on_sale": false,
            "purchasable": true,
            "total_sales": 0,
            "virtual": false,
            "downloadable": false,
            "tax_status": "taxable",
            "tax_class": "",
            "manage_stock": !variable,
            "stock_quantity": if variable { Value::Null } else { json!(stock) },
            "backorders": "no",
            "backorders_allowed": false,
            "backordered": false,
        });
        merge(
            &mut body,
            json!({
                "parent_id": 0,
                "categories": categories,
                "tags": [],
                "images": [],
                "attributes": [],
                "default_attributes": [],
                "variations": variants.iter().filter(|_| variable).map(|v| v.1).collect::<Vec<_>>(),
                "grouped_products": [],
                "menu_order": 0,
                "meta_data": [],
                "stock_status": if stock > 0 { "instock" } else { "outofstock" },
                "has_options": variable,
                "_links": woo_links(store_url, "products", id),
            }),
        );
        Product { platform: Platform::WooCommerce, id, variants, body }
    }
}

/// The product routes' answer.
fn product_answer(published: Result<(Product, &str, Outcome), Fail>) -> Response {
    let (product, topic, outcome) = match published {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let variants: Vec<Value> =
        product.variants.iter().map(|(sku, id)| json!({ "sku": sku, "variant_id": id })).collect();
    resource_answer(
        json!({
            "platform": product.platform,
            "product_id": product.id,
            "product_id_str": product.id.to_string(),
            "variants": variants,
        }),
        topic,
        &outcome,
    )
}

/// A product or checkout answer with its webhook's fate.
fn resource_answer(mut out: Value, topic: &str, outcome: &Outcome) -> Response {
    add_webhook_fate(&mut out, topic, outcome);
    Json(out).into_response()
}

/// `POST /shop/products`: creates a product and posts `products/create` / `product.created`.
async fn create_product(State(sb): State<ShopSandbox>, body: Bytes) -> Response {
    let expected = "{\"platform\":\"shopify|woocommerce\",\"title\",\"product_type\",\"variants\":[…]}";
    let (req, new) = match parse_new(&body, expected, NewProduct::from_request) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let published = sb.publish(req.deliver.unwrap_or(true), |store| {
        let product = match req.platform {
            Platform::Shopify => store.new_shopify_product(&new),
            Platform::WooCommerce => store.new_woo_product(sb.store_url(), &new),
        };
        store.products.push(product.clone());
        Ok((product, req.platform.pick("products/create", "product.created")))
    });
    product_answer(published.await)
}

/// `POST /shop/products/{id}/soldout`: every variant's inventory to 0, then
/// `products/update` / `product.updated`.
async fn sold_out(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    let published = sb.publish_update(&body, &id, |store, id| {
        let product = find_mut(&mut store.products, id, "product")?;
        let t = now();
        let topic = match product.platform {
            Platform::Shopify => {
                let stamp = shopify_time(t);
                for v in product.body["variants"].as_array_mut().into_iter().flatten() {
                    v["old_inventory_quantity"] = v["inventory_quantity"].clone();
                    v["inventory_quantity"] = json!(0);
                    v["updated_at"] = json!(stamp);
                }
                product.body["updated_at"] = json!(stamp);
                "products/update"
            }
            Platform::WooCommerce => {
                let b = &mut product.body;
                if b["manage_stock"] == true {
                    b["stock_quantity"] = json!(0);
                }
                b["stock_status"] = json!("outofstock");
                set_woo_date(b, "date_modified", t);
                "product.updated"
            }
        };
        Ok((product.clone(), topic))
    });
    product_answer(published.await)
}

#[derive(Deserialize)]
struct PriceRequest {
    /// The new price of every variant, e.g. `"17.90"` (or a number).
    price: Value,
}

/// `GET /shop/products`: the shop's products, oldest first (`{"platform","product_id_str",
/// "title","variants":[{"sku","variant_id"}]}`).
async fn list_products(State(sb): State<ShopSandbox>) -> Json<Vec<Value>> {
    let store = sb.store();
    Json(
        store
            .products
            .iter()
            .map(|p| {
                let variants: Vec<Value> =
                    p.variants.iter().map(|(sku, id)| json!({ "sku": sku, "variant_id": id })).collect();
                json!({
                    "platform": p.platform,
                    "product_id": p.id,
                    "product_id_str": p.id.to_string(),
                    "title": p.body["title"].as_str().or(p.body["name"].as_str()),
                    "variants": variants,
                })
            })
            .collect(),
    )
}

/// `POST /shop/products/{id}/price` `{"price":"17.90"}`: every variant to the new price, then
/// `products/update` / `product.updated`.
async fn reprice(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<PriceRequest>(&body).ok().and_then(|r| parse_price(&r.price));
    let cents = match parsed.filter(|c| *c > 0) {
        Some(c) => c,
        None => return json_error(StatusCode::BAD_REQUEST, "expected {\"price\":\"17.90\"} (a positive amount)"),
    };
    let published = sb.publish_update(&body, &id, |store, id| {
        let product = find_mut(&mut store.products, id, "product")?;
        let t = now();
        let topic = match product.platform {
            Platform::Shopify => {
                let stamp = shopify_time(t);
                for v in product.body["variants"].as_array_mut().into_iter().flatten() {
                    v["price"] = json!(money(cents));
                    v["updated_at"] = json!(stamp);
                }
                product.body["updated_at"] = json!(stamp);
                "products/update"
            }
            Platform::WooCommerce => {
                let b = &mut product.body;
                b["price"] = json!(money(cents));
                if b["type"] == "simple" {
                    b["regular_price"] = json!(money(cents));
                }
                set_woo_date(b, "date_modified", t);
                "product.updated"
            }
        };
        Ok((product.clone(), topic))
    });
    product_answer(published.await)
}

#[derive(Deserialize)]
struct CheckoutRequest {
    /// Only `shopify`: WooCommerce has no checkout webhooks.
    platform: Option<Platform>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    items: Option<Vec<ItemRequest>>,
    currency: Option<String>,
    country: Option<String>,
    locale: Option<String>,
    attributes: Option<Map<String, Value>>,
    /// `buyer_accepts_sms_marketing` (default true).
    sms_marketing: Option<bool>,
    deliver: Option<bool>,
}

impl Store {
    /// A Shopify checkout in the `checkouts/create` shape. Items naming a stored product's
    /// variant (or SKU) get its product id.
    fn new_checkout(&mut self, cfg: &ShopSandboxConfig, o: &NewOrder, sms_marketing: bool) -> Checkout {
        let id = take(&mut self.next.checkout);
        let token = hex32();
        let t = shopify_time(o.created);
        let cur = o.currency.as_str();
        let address = o.shopify_address();
        let known = |i: &Item| {
            self.products
                .iter()
                .filter(|p| p.platform == Platform::Shopify)
                .find_map(|p| p.variants.iter().any(|(sku, vid)| *vid == i.variant_id || *sku == i.sku).then_some(p.id))
        };
        let line_items: Vec<Value> = o
            .items
            .iter()
            .map(|i| {
                let mut line = shopify_line_item(i, known(i).unwrap_or(i.product_id));
                merge(
                    &mut line,
                    json!({
                        "applied_discounts": [],
                        "key": format!("{}:{}", i.variant_id, &hex32()[..6]),
                        "origin_location_id": SHOPIFY_LOCATION_ID,
                        "presentment_title": i.title,
                        "properties": null,
                        "variant_price": money(i.unit),
                        "compare_at_price": null,
                        "line_price": money(i.unit * i64::from(i.quantity)),
                        "price": money(i.unit),
                    }),
                );
                line
            })
            .collect();
        let subtotal = money(o.subtotal());
        let customer_id = self.customer_id(&o.phone);
        let mut body = json!({
            "id": id,
            "token": token,
            "cart_token": hex32(),
            "email": o.email,
            "gateway": null,
            "buyer_accepts_marketing": false,
            "buyer_accepts_sms_marketing": sms_marketing,
            "sms_marketing_phone": if sms_marketing { json!(o.phone) } else { Value::Null },
            "created_at": t,
            "updated_at": t,
            "landing_site": "/",
            "note": null,
            "note_attributes": o.note_attributes(),
            "referring_site": "",
            "shipping_lines": [],
            "shipping_address": address,
            "billing_address": address,
            "taxes_included": true,
            "total_weight": o.total_weight(),
            "currency": cur,
            "completed_at": null,
            "closed_at": null,
            "user_id": null,
            "location_id": null,
            "source_identifier": null,
            "source_url": null,
            "device_id": null,
            "phone": o.phone,
            "customer_locale": o.locale,
        });
        merge(
            &mut body,
            json!({
                "line_items": line_items,
                "name": format!("#{id}"),
                "source": null,
                "abandoned_checkout_url": format!("https://{}/checkouts/{token}/recover", cfg.shopify_domain),
                "discount_codes": [],
                "tax_lines": [],
                "source_name": "web",
                "presentment_currency": cur,
                "total_discounts": "0.00",
                "total_line_items_price": subtotal,
                "total_price": subtotal,
                "total_tax": "0.00",
                "subtotal_price": subtotal,
                "total_duties": null,
                "reservation_token": null,
                "customer": o.shopify_customer(customer_id),
            }),
        );
        Checkout { id, body }
    }
}

/// The checkout routes' answer.
fn checkout_answer(published: Result<(Checkout, &str, Outcome), Fail>) -> Response {
    let (c, topic, outcome) = match published {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    resource_answer(
        json!({
            "platform": Platform::Shopify,
            "checkout_id": c.id,
            "token": c.body["token"],
            "abandoned_checkout_url": c.body["abandoned_checkout_url"],
            "completed_at": c.body["completed_at"],
        }),
        topic,
        &outcome,
    )
}

/// `POST /shop/checkouts` (Shopify): a checkout the customer may abandon; posts `checkouts/create`.
async fn create_checkout(State(sb): State<ShopSandbox>, body: Bytes) -> Response {
    let req: CheckoutRequest = match parse_body_required(&body) {
        Ok(r) => r,
        Err(e) => {
            let expected = "{\"phone\":\"+49…\",\"items\":[{\"sku\",\"variant_id\",\"title\",\"quantity\",\"price\"}]}";
            return json_error(StatusCode::BAD_REQUEST, format!("expected {expected}: {e}"));
        }
    };
    if req.platform.is_some_and(|p| p != Platform::Shopify) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "checkouts are Shopify only (WooCommerce sends no checkout webhooks)",
        );
    }
    let order_req = OrderRequest {
        platform: Platform::Shopify,
        phone: req.phone,
        first_name: req.first_name,
        last_name: req.last_name,
        email: req.email,
        items: req.items,
        currency: req.currency,
        country: req.country,
        locale: req.locale,
        status: None,
        attributes: req.attributes,
        shipping: None,
        created_at: None,
        deliver: req.deliver,
    };
    let new = match NewOrder::from_request(&order_req) {
        Ok(n) => n,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let published = sb.publish(req.deliver.unwrap_or(true), |store| {
        let checkout = store.new_checkout(sb.cfg(), &new, req.sms_marketing.unwrap_or(true));
        store.checkouts.push(checkout.clone());
        Ok((checkout, "checkouts/create"))
    });
    checkout_answer(published.await)
}

/// `POST /shop/checkouts/{id}/complete`: the buyer pays; posts `checkouts/update` with `completed_at`.
async fn complete_checkout(State(sb): State<ShopSandbox>, Path(id): Path<String>, body: Bytes) -> Response {
    let published = sb.publish_update(&body, &id, |store, id| {
        let checkout = find_mut(&mut store.checkouts, id, "checkout")?;
        // Completing twice posts the update again with the first completion time.
        if checkout.body["completed_at"].is_null() {
            let t = shopify_time(now());
            checkout.body["completed_at"] = json!(t);
            checkout.body["updated_at"] = json!(t);
            checkout.body["gateway"] = json!("shopify_payments");
        }
        Ok((checkout.clone(), "checkouts/update"))
    });
    checkout_answer(published.await)
}

/// A JSON body that must be present (`{}` is fine).
fn parse_body_required<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body })
}

// ---------------------------------------------------------------------------------------------
// Shopify Admin REST stand-in

fn shopify_json(status: StatusCode, version: &str, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(version) {
        h.insert("X-Shopify-API-Version", v);
    }
    h.insert("X-Shopify-Shop-Api-Call-Limit", HeaderValue::from_static("1/40"));
    resp
}

fn shopify_auth(sb: &ShopSandbox, headers: &HeaderMap) -> Result<(), Fail> {
    let token = headers.get("x-shopify-access-token").and_then(|h| h.to_str().ok());
    let expected = sb.cfg().shopify_access_token.as_str();
    if !expected.is_empty() && token == Some(expected) {
        return Ok(());
    }
    let errors = json!("[API] Invalid API key or access token (unrecognized login or wrong password)");
    Err(Fail::Shopify(StatusCode::UNAUTHORIZED, errors))
}

/// The filters of an `orders.json` listing; a `page_info` cursor carries them to the next page.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ShopifyFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_id: Option<u64>,
    status: String,
    /// Keyset: the (updated_at, id) of the last order on the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<(i64, u64)>,
}

impl ShopifyFilter {
    fn from_query(q: &HashMap<String, String>) -> Result<Self, Fail> {
        if let Some(cursor) = q.get("page_info") {
            return base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .ok_or_else(|| shopify_bad_request("page_info", "Invalid value."));
        }
        let time = |key: &str| -> Result<Option<i64>, Fail> {
            match q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => parse_time(s, SHOP_OFFSET).map(|t| Some(t.unix_timestamp())).ok_or_else(|| {
                    let hint = if s.contains(' ') { " (a '+' in the offset must be sent as %2B)" } else { "" };
                    shopify_bad_request(key, &format!("'{s}' is not an ISO 8601 time{hint}"))
                }),
            }
        };
        let status = q.get("status").map(String::as_str).unwrap_or("open");
        if !matches!(status, "open" | "closed" | "cancelled" | "any") {
            return Err(shopify_bad_request("status", "must be open, closed, cancelled or any"));
        }
        let since_id = match q.get("since_id") {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| shopify_bad_request("since_id", "must be an integer"))?),
        };
        Ok(Self {
            updated_min: time("updated_at_min")?,
            updated_max: time("updated_at_max")?,
            created_min: time("created_at_min")?,
            created_max: time("created_at_max")?,
            since_id,
            status: status.to_string(),
            after: None,
        })
    }

    fn matches(&self, o: &Order) -> bool {
        let updated = o.updated.unix_timestamp();
        let created = o.created.unix_timestamp();
        let cancelled = !o.body["cancelled_at"].is_null();
        let closed = !o.body["closed_at"].is_null();
        let status_ok = match self.status.as_str() {
            "any" => true,
            "cancelled" => cancelled,
            "closed" => closed,
            _ => !cancelled && !closed,
        };
        status_ok
            && self.updated_min.is_none_or(|t| updated >= t)
            && self.updated_max.is_none_or(|t| updated <= t)
            && self.created_min.is_none_or(|t| created >= t)
            && self.created_max.is_none_or(|t| created <= t)
            && self.since_id.is_none_or(|id| o.id > id)
            && self.after.is_none_or(|key| (updated, o.id) > key)
    }
}

fn shopify_bad_request(field: &str, message: &str) -> Fail {
    Fail::Shopify(StatusCode::BAD_REQUEST, json!({ field: [message] }))
}

/// Checks Shopify Admin REST auth before a handler runs; carries the request headers.
struct ShopifyAuth(HeaderMap);

impl FromRequestParts<ShopSandbox> for ShopifyAuth {
    type Rejection = Fail;

    async fn from_request_parts(parts: &mut Parts, sb: &ShopSandbox) -> Result<Self, Fail> {
        shopify_auth(sb, &parts.headers)?;
        Ok(Self(parts.headers.clone()))
    }
}

/// `GET /shopify/admin/api/{version}/orders.json`: oldest `updated_at` first, `Link` cursor paging.
async fn shopify_orders(
    State(sb): State<ShopSandbox>,
    Path(version): Path<String>,
    ShopifyAuth(headers): ShopifyAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut filter = match ShopifyFilter::from_query(&q) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(l)) => l.clamp(1, 250),
        Some(Err(_)) => return shopify_bad_request("limit", "must be an integer").into_response(),
    };
    let (page, more) = {
        let store = sb.store();
        let mut matched: Vec<&Order> =
            store.orders.iter().filter(|o| o.platform == Platform::Shopify && filter.matches(o)).collect();
        matched.sort_by_key(|o| (o.updated, o.id));
        let more = matched.len() > limit;
        let page: Vec<(i64, u64, Value)> =
            matched.into_iter().take(limit).map(|o| (o.updated.unix_timestamp(), o.id, o.body.clone())).collect();
        (page, more)
    };
    let link = match page.last() {
        Some((updated, id, _)) if more => {
            filter.after = Some((*updated, *id));
            let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&filter).unwrap_or_default());
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            let base = format!("http://{host}{SANDBOX_PREFIX}/shopify/admin/api/{version}");
            Some(format!("<{base}/orders.json?limit={limit}&page_info={cursor}>; rel=\"next\""))
        }
        _ => None,
    };
    let orders: Vec<Value> = page.into_iter().map(|(_, _, body)| body).collect();
    let mut resp = shopify_json(StatusCode::OK, &version, json!({ "orders": orders }));
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LINK, v);
    }
    resp
}

/// `GET /shopify/admin/api/{version}/orders/{id}.json`.
async fn shopify_order(
    State(sb): State<ShopSandbox>,
    Path((version, file)): Path<(String, String)>,
    _: ShopifyAuth,
) -> Response {
    let not_found = || shopify_json(StatusCode::NOT_FOUND, &version, json!({ "errors": "Not Found" }));
    let Some(id) = file.strip_suffix(".json").and_then(|id| id.parse::<u64>().ok()) else { return not_found() };
    let order =
        sb.store().orders.iter().find(|o| o.platform == Platform::Shopify && o.id == id).map(|o| o.body.clone());
    match order {
        Some(body) => shopify_json(StatusCode::OK, &version, json!({ "order": body })),
        None => not_found(),
    }
}

fn shopify_webhook_json(s: &Subscription) -> Value {
    json!({
        "id": s.id,
        "address": s.address,
        "topic": s.topic,
        "created_at": shopify_time(s.created),
        "updated_at": shopify_time(s.updated),
        "format": "json",
        "fields": [],
        "metafield_namespaces": [],
        "api_version": SHOPIFY_API_VERSION,
        "private_metafield_namespaces": [],
    })
}

/// `GET /shopify/admin/api/{version}/webhooks.json`: removed subscriptions are gone.
async fn shopify_webhooks(
    State(sb): State<ShopSandbox>,
    Path(version): Path<String>,
    _: ShopifyAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let topic = q.get("topic");
    let hooks: Vec<Value> = sb
        .store()
        .shopify_hooks
        .iter()
        .filter(|s| s.active && topic.is_none_or(|t| &s.topic == t))
        .map(shopify_webhook_json)
        .collect();
    shopify_json(StatusCode::OK, &version, json!({ "webhooks": hooks }))
}

#[derive(Deserialize)]
struct CreateWebhook {
    webhook: NewWebhook,
}

#[derive(Deserialize)]
struct NewWebhook {
    topic: String,
    address: String,
    format: Option<String>,
}

/// `POST /shopify/admin/api/{version}/webhooks.json`: (re)subscribes, so a reconciler can repair
/// a removed subscription. Deliveries then go to the given address.
async fn shopify_create_webhook(
    State(sb): State<ShopSandbox>,
    Path(version): Path<String>,
    _: ShopifyAuth,
    body: Bytes,
) -> Response {
    let unprocessable = |field: &str, message: &str| {
        shopify_json(StatusCode::UNPROCESSABLE_ENTITY, &version, json!({ "errors": { field: [message] } }))
    };
    let req: CreateWebhook = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return shopify_json(
                StatusCode::BAD_REQUEST,
                &version,
                json!({ "errors": { "webhook": "Required parameter missing or invalid" } }),
            )
        }
    };
    let w = req.webhook;
    if !SHOPIFY_TOPICS.contains(&w.topic.as_str()) {
        return unprocessable("topic", "Invalid topic specified.");
    }
    if w.format.as_deref().is_some_and(|f| f != "json") {
        return unprocessable("format", "is not included in the list");
    }
    if !(w.address.starts_with("https://") || w.address.starts_with("http://")) {
        return unprocessable("address", "is invalid");
    }
    let mut store = sb.store();
    if store.shopify_hooks.iter().any(|s| s.active && s.topic == w.topic && s.address == w.address) {
        return unprocessable("address", "for this topic has already been taken");
    }
    let t = now();
    let sub = Subscription {
        id: take(&mut store.next_shopify_hook),
        topic: w.topic,
        address: w.address,
        active: true,
        created: t,
        updated: t,
    };
    let out = shopify_webhook_json(&sub);
    store.shopify_hooks.push(sub);
    shopify_json(StatusCode::CREATED, &version, json!({ "webhook": out }))
}

// ---------------------------------------------------------------------------------------------
// WooCommerce REST stand-in

/// WordPress answers REST calls through `wp_json_encode` too.
fn woo_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, php_json(body)).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    resp
}

fn woo_error_body(status: StatusCode, code: &str, message: &str) -> Value {
    json!({ "code": code, "message": message, "data": { "status": status.as_u16() } })
}

fn woo_error(status: StatusCode, code: &str, message: &str) -> Response {
    woo_json(status, &woo_error_body(status, code, message))
}

/// HTTP Basic with the consumer key and secret (or the `consumer_key`/`consumer_secret` query
/// parameters WooCommerce also accepts).
fn woo_auth(sb: &ShopSandbox, headers: &HeaderMap, q: &HashMap<String, String>) -> Result<(), Fail> {
    let cfg = sb.cfg();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let pair = match &basic {
        Some(b) => b.split_once(':').map(|(k, s)| (k.to_string(), s.to_string())),
        None => q.get("consumer_key").cloned().zip(q.get("consumer_secret").cloned()),
    };
    let ok = !cfg.woo_consumer_key.is_empty()
        && pair.is_some_and(|(k, s)| k == cfg.woo_consumer_key && s == cfg.woo_consumer_secret);
    if ok {
        Ok(())
    } else {
        Err(Fail::Woo(
            StatusCode::UNAUTHORIZED,
            woo_error_body(
                StatusCode::UNAUTHORIZED,
                "woocommerce_rest_cannot_view",
                "Sorry, you cannot list resources.",
            ),
        ))
    }
}

/// Checks WooCommerce REST auth before a handler runs; carries the query parameters.
struct WooAuth(HashMap<String, String>);

impl FromRequestParts<ShopSandbox> for WooAuth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sb: &ShopSandbox) -> Result<Self, Response> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, sb)
            .await
            .map_err(IntoResponse::into_response)?;
        woo_auth(sb, &parts.headers, &q).map_err(IntoResponse::into_response)?;
        Ok(Self(q))
    }
}

/// `GET /woo/wp-json/wc/v3/orders`: `modified_after`/`modified_before`/`after`/`before` (strictly
/// after/before; offset-less dates are site-local unless `dates_are_gmt=true`), `status`,
/// `orderby` date|id|modified, `order`, `per_page` (≤ 100), `page`; `X-WP-Total(Pages)` + `Link`.
async fn woo_orders(State(sb): State<ShopSandbox>, WooAuth(q): WooAuth) -> Response {
    let invalid = |param: &str, why: &str| {
        woo_json(
            StatusCode::BAD_REQUEST,
            &json!({
                "code": "rest_invalid_param",
                "message": format!("Invalid parameter(s): {param}"),
                "data": { "status": 400, "params": { param: why } },
            }),
        )
    };
    let gmt = q.get("dates_are_gmt").is_some_and(|v| v == "true" || v == "1");
    let zone = if gmt { UtcOffset::UTC } else { SHOP_OFFSET };
    let mut bounds = [None; 4];
    for (slot, key) in bounds.iter_mut().zip(["modified_after", "modified_before", "after", "before"]) {
        if let Some(s) = q.get(key).filter(|s| !s.trim().is_empty()) {
            match parse_time(s, zone) {
                Some(t) => *slot = Some(t),
                None => return invalid(key, "Invalid date."),
            }
        }
    }
    let [modified_after, modified_before, after, before] = bounds;
    let per_page = match q.get("per_page").map(|p| p.parse::<usize>()) {
        None => 10,
        Some(Ok(p @ 1..=100)) => p,
        _ => return invalid("per_page", "per_page must be between 1 (inclusive) and 100 (inclusive)"),
    };
    let page = match q.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(p @ 1..)) => p,
        _ => return invalid("page", "page must be greater than or equal to 1"),
    };
    let orderby = q.get("orderby").map(String::as_str).unwrap_or("date");
    if !matches!(orderby, "date" | "id" | "modified") {
        return invalid("orderby", "orderby is not one of date, id, modified.");
    }
    let desc = match q.get("order").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return invalid("order", "order is not one of asc, desc."),
    };
    let statuses: Vec<&str> = q.get("status").map(|s| s.split(',').map(str::trim).collect()).unwrap_or_default();
    let (total, items) = {
        let store = sb.store();
        let mut matched: Vec<&Order> = store
            .orders
            .iter()
            .filter(|o| o.platform == Platform::WooCommerce)
            .filter(|o| {
                statuses.is_empty()
                    || statuses.contains(&"any")
                    || o.body["status"].as_str().is_some_and(|s| statuses.contains(&s))
            })
            .filter(|o| modified_after.is_none_or(|t| o.updated > t))
            .filter(|o| modified_before.is_none_or(|t| o.updated < t))
            .filter(|o| after.is_none_or(|t| o.created > t))
            .filter(|o| before.is_none_or(|t| o.created < t))
            .collect();
        matched.sort_by_key(|o| match orderby {
            "modified" => (o.updated, o.id),
            "id" => (OffsetDateTime::UNIX_EPOCH, o.id),
            _ => (o.created, o.id),
        });
        if desc {
            matched.reverse();
        }
        let items: Vec<Value> =
            matched.iter().skip((page - 1) * per_page).take(per_page).map(|o| o.body.clone()).collect();
        (matched.len(), items)
    };
    let pages = total.div_ceil(per_page);
    let mut resp = woo_json(StatusCode::OK, &Value::Array(items));
    let h = resp.headers_mut();
    h.insert("X-WP-Total", HeaderValue::from(total));
    h.insert("X-WP-TotalPages", HeaderValue::from(pages));
    let link_to = |p: usize, rel: &str| {
        let mut params: Vec<(&String, String)> = q
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "page" | "consumer_key" | "consumer_secret"))
            .map(|(k, v)| (k, v.clone()))
            .collect();
        params.sort();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("page", &p.to_string());
        for (k, v) in params {
            query.append_pair(k, &v);
        }
        let query = query.finish();
        format!("<{}/wp-json/wc/v3/orders?{query}>; rel=\"{rel}\"", sb.store_url())
    };
    let mut links = Vec::new();
    if page > 1 && page <= pages + 1 {
        links.push(link_to(page - 1, "prev"));
    }
    if page < pages {
        links.push(link_to(page + 1, "next"));
    }
    if let Some(v) = (!links.is_empty()).then(|| links.join(", ")).and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LINK, v);
    }
    resp
}

/// `GET /woo/wp-json/wc/v3/orders/{id}`.
async fn woo_order(State(sb): State<ShopSandbox>, Path(id): Path<String>, _: WooAuth) -> Response {
    let id = id.parse::<u64>().ok();
    let order = sb
        .store()
        .orders
        .iter()
        .find(|o| o.platform == Platform::WooCommerce && Some(o.id) == id)
        .map(|o| o.body.clone());
    match order {
        Some(body) => woo_json(StatusCode::OK, &body),
        None => woo_error(StatusCode::NOT_FOUND, "woocommerce_rest_shop_order_invalid_id", "Invalid ID."),
    }
}

fn woo_webhook_json(s: &Subscription) -> Value {
    let (resource, event) = s.topic.split_once('.').unwrap_or((s.topic.as_str(), ""));
    json!({
        "id": s.id,
        "name": format!("Parley {}", s.topic),
        "status": if s.active { "active" } else { "disabled" },
        "topic": s.topic,
        "resource": resource,
        "event": event,
        "delivery_url": s.address,
        "date_created": woo_local(s.created),
        "date_created_gmt": woo_gmt(s.created),
        "date_modified": woo_local(s.updated),
        "date_modified_gmt": woo_gmt(s.updated),
    })
}

/// `GET /woo/wp-json/wc/v3/webhooks`: disabled hooks stay listed with `status: disabled`.
async fn woo_webhooks(State(sb): State<ShopSandbox>, WooAuth(q): WooAuth) -> Response {
    let status = q.get("status").filter(|s| s.as_str() != "all");
    let hooks: Vec<Value> = sb
        .store()
        .woo_hooks
        .iter()
        .map(woo_webhook_json)
        .filter(|w| status.is_none_or(|s| w["status"] == s.as_str()))
        .collect();
    let total = hooks.len();
    let mut resp = woo_json(StatusCode::OK, &Value::Array(hooks));
    resp.headers_mut().insert("X-WP-Total", HeaderValue::from(total));
    resp.headers_mut().insert("X-WP-TotalPages", HeaderValue::from(usize::from(total > 0)));
    resp
}

#[derive(Deserialize)]
struct UpdateWebhook {
    status: Option<String>,
    delivery_url: Option<String>,
}

/// `PUT /woo/wp-json/wc/v3/webhooks/{id}`: re-activates a disabled hook (reconciler repair).
async fn woo_update_webhook(
    State(sb): State<ShopSandbox>,
    Path(id): Path<String>,
    _: WooAuth,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<UpdateWebhook>(&body) else {
        return woo_error(StatusCode::BAD_REQUEST, "rest_invalid_json", "Invalid JSON body passed.");
    };
    let id = id.parse::<u64>().ok();
    let mut store = sb.store();
    let Some(sub) = store.woo_hooks.iter_mut().find(|s| Some(s.id) == id) else {
        return woo_error(StatusCode::NOT_FOUND, "woocommerce_rest_webhook_invalid_id", "Invalid ID.");
    };
    match req.status.as_deref() {
        None => {}
        Some("active") => sub.active = true,
        Some("paused" | "disabled") => sub.active = false,
        Some(_) => {
            return woo_error(StatusCode::BAD_REQUEST, "rest_invalid_param", "Invalid parameter(s): status");
        }
    }
    if let Some(url) = req.delivery_url.filter(|u| !u.trim().is_empty()) {
        sub.address = url;
    }
    sub.updated = now();
    woo_json(StatusCode::OK, &woo_webhook_json(sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_json_escapes_slashes_and_non_ascii() {
        let v = json!({ "a": "https://x/y", "b": "Straße €", "c": "😀", "d": "q\"\\/" });
        let out = String::from_utf8(php_json(&v)).unwrap();
        assert_eq!(out, r#"{"a":"https:\/\/x\/y","b":"Stra\u00dfe \u20ac","c":"\ud83d\ude00","d":"q\"\\\/"}"#);
        // Still the same JSON.
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), v);
    }

    #[test]
    fn prices_parse_to_minor_units() {
        assert_eq!(parse_price(&json!("19.90")), Some(1990));
        assert_eq!(parse_price(&json!("19.9")), Some(1990));
        assert_eq!(parse_price(&json!("19")), Some(1900));
        assert_eq!(parse_price(&json!(12.5)), Some(1250));
        assert_eq!(parse_price(&json!("1.234")), None);
        assert_eq!(parse_price(&json!("-1")), None);
        assert_eq!(parse_price(&json!("abc")), None);
        assert_eq!(money(1990), "19.90");
        assert_eq!(woo_price(1990), json!(19.9));
        assert_eq!(woo_price(300), json!(3));
    }

    #[test]
    fn times_in_platform_formats() {
        let t = OffsetDateTime::from_unix_timestamp(1_784_023_200).unwrap(); // 2026-07-14T10:00:00Z
        assert_eq!(shopify_time(t), "2026-07-14T12:00:00+02:00");
        assert_eq!(woo_local(t), "2026-07-14T12:00:00");
        assert_eq!(woo_gmt(t), "2026-07-14T10:00:00");
        assert_eq!(triggered_at(t), "2026-07-14T10:00:00.000000Z");
        assert_eq!(parse_time("2026-07-14T12:00:00+02:00", UtcOffset::UTC), Some(t));
        assert_eq!(parse_time("2026-07-14T10:00:00", UtcOffset::UTC), Some(t));
        assert_eq!(parse_time("2026-07-14T12:00:00", SHOP_OFFSET), Some(t));
    }
}

// ---------------------------------------------------------------------------------------------
// Demo data

/// The products `make dev` starts with (CONTRACT.md: in-stock `TSHIRT-M` and `TSHIRT-L`): the ones
/// README's "Selling in chat" conversation uses, so it works on a fresh system.
pub fn demo_catalog() -> Vec<Value> {
    vec![json!({
        "platform": "shopify", "title": "T-Shirt", "product_type": "Shirts",
        "variants": [{"sku": "TSHIRT-M", "title": "M", "price": "19.90", "inventory": 25},
                     {"sku": "TSHIRT-L", "title": "L", "price": "21.90", "inventory": 25}],
    })]
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the sandbox shop did not answer: {0}")]
    Unreachable(String),
    #[error("the sandbox shop refused a demo product ({0})")]
    Refused(u16),
    #[error("Parley answered the demo product's webhook with {0}")]
    Webhook(Value),
}

/// Fills the catalog the way a real shop does: each demo product is created in the sandbox shop
/// (`POST /sandbox/shop/products` on the running system at `base_url`), which posts the signed
/// product webhook to Parley. Returns the sandbox shop's answers (product and variant ids).
pub async fn seed_demo_catalog(base_url: &str, http: &reqwest::Client) -> Result<Vec<Value>, SeedError> {
    let mut created = Vec::new();
    for product in demo_catalog() {
        let url = format!("{}/sandbox/shop/products", base_url.trim_end_matches('/'));
        let r = http.post(url).json(&product).send().await.map_err(|e| SeedError::Unreachable(error_chain(&e)))?;
        if !r.status().is_success() {
            return Err(SeedError::Refused(r.status().as_u16()));
        }
        let answer: Value = r.json().await.map_err(|e| SeedError::Unreachable(error_chain(&e)))?;
        if answer["webhook_status"] != 200 {
            return Err(SeedError::Webhook(answer["webhook_status"].clone()));
        }
        created.push(answer);
    }
    Ok(created)
}
