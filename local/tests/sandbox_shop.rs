//! The shop sandbox over HTTP: signed Shopify and WooCommerce deliveries (checked over the raw
//! bytes like the real webhook handler must), fulfillments, redeliveries, subscriptions, and the
//! Shopify Admin / WooCommerce REST stand-ins the reconciler polls.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parley::channels::signature::{Encoding, Verifier};
use parley::config::Secret;
use parley::shops::{shopify, woocommerce, CheckoutSnapshot, ProductVariant, ShopEvent};
use parley_local::sandbox_shop::{ShopSandbox, ShopSandboxConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const SHOPIFY_SECRET: &str = "local-shopify-secret";
const WOO_SECRET: &str = "local-woocommerce-secret";
const SHOP_DOMAIN: &str = "parley-demo.myshopify.com";
const TOKEN: &str = "shpat_local_token";
const CK: &str = "ck_local";
const CS: &str = "cs_local";
const FIRST_SHOPIFY_ID: u64 = 820_982_911_946_154_508;

#[derive(Clone)]
struct Captured {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Hooks = Arc<Mutex<Vec<Captured>>>;

struct Harness {
    base: String,
    hooks: Hooks,
    http: reqwest::Client,
}

async fn capture(State((hooks, path)): State<(Hooks, &'static str)>, headers: HeaderMap, body: Bytes) -> StatusCode {
    hooks.lock().unwrap().push(Captured { path: path.to_string(), headers, body });
    StatusCode::OK
}

/// One server: the shop sandbox under `/sandbox` and the two webhook routes it posts to.
async fn start() -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shop = ShopSandbox::new(ShopSandboxConfig {
        webhook_base: base.clone(),
        shopify_domain: SHOP_DOMAIN.into(),
        shopify_secret: SHOPIFY_SECRET.into(),
        shopify_access_token: TOKEN.into(),
        woo_secret: WOO_SECRET.into(),
        woo_store_url: format!("{base}/sandbox/woo"),
        woo_consumer_key: CK.into(),
        woo_consumer_secret: CS.into(),
    });
    let hooks: Hooks = Arc::default();
    let router = Router::new()
        .route("/webhooks/shopify", post(capture).with_state((Arc::clone(&hooks), "/webhooks/shopify")))
        .route("/webhooks/woocommerce", post(capture).with_state((Arc::clone(&hooks), "/webhooks/woocommerce")))
        .nest("/sandbox", shop.router());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Harness { base, hooks, http: reqwest::Client::new() }
}

fn header<'a>(c: &'a Captured, name: &str) -> &'a str {
    c.headers.get(name).and_then(|h| h.to_str().ok()).unwrap_or_else(|| panic!("header {name} missing"))
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}/sandbox{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn order(&self, body: Value) -> Value {
        let (status, v) = self.post("/shop/orders", body).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    fn hooks(&self) -> Vec<Captured> {
        self.hooks.lock().unwrap().clone()
    }

    fn last_hook(&self) -> Captured {
        self.hooks().pop().expect("a webhook was delivered")
    }

    async fn shopify_get(&self, path: &str, token: Option<&str>) -> (u16, HeaderMap, String) {
        let mut req = self.http.get(self.url(&format!("/shopify/admin/api/2026-07{path}")));
        if let Some(t) = token {
            req = req.header("X-Shopify-Access-Token", t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.unwrap())
    }

    async fn woo_get(&self, path: &str, auth: Option<(&str, &str)>) -> (u16, HeaderMap, String) {
        let mut req = self.http.get(self.url(&format!("/woo/wp-json/wc/v3{path}")));
        if let Some((k, s)) = auth {
            req = req.basic_auth(k, Some(s));
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.unwrap())
    }
}

fn shopify_verifier() -> Verifier {
    Verifier::new(Encoding::Base64, Secret::from(SHOPIFY_SECRET), None)
}

fn woo_verifier() -> Verifier {
    Verifier::new(Encoding::Base64, Secret::from(WOO_SECRET), None)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn shopify_order_is_signed_with_exact_big_ids() {
    let h = start().await;
    let answer = h
        .order(json!({
            "platform": "shopify",
            "phone": "+4915123456789",
            "first_name": "Erika",
            "items": [{ "sku": "TSHIRT-M", "title": "T-Shirt M", "quantity": 2, "price": "19.90" }],
            "attributes": { "parley_cart": "cart-123" },
        }))
        .await;
    assert_eq!(answer["platform"], "shopify");
    assert_eq!(answer["order_id"].as_u64(), Some(FIRST_SHOPIFY_ID));
    assert_eq!(answer["order_id_str"], FIRST_SHOPIFY_ID.to_string());
    assert_eq!(answer["name"], "#1001");
    assert_eq!(answer["webhook_status"], 200);

    let hook = h.last_hook();
    assert_eq!(hook.path, "/webhooks/shopify");
    assert_eq!(header(&hook, "x-shopify-topic"), "orders/create");
    assert_eq!(header(&hook, "x-shopify-shop-domain"), SHOP_DOMAIN);
    assert_eq!(header(&hook, "x-shopify-api-version"), "2026-07");
    assert_eq!(header(&hook, "x-shopify-webhook-id"), answer["delivery_id"].as_str().unwrap());
    assert!(uuid::Uuid::parse_str(header(&hook, "x-shopify-webhook-id")).is_ok());
    assert!(uuid::Uuid::parse_str(header(&hook, "x-shopify-event-id")).is_ok());
    assert!(header(&hook, "x-shopify-triggered-at").ends_with('Z'));
    assert_eq!(header(&hook, "content-type"), "application/json");

    let sig = header(&hook, "x-shopify-hmac-sha256");
    assert!(shopify_verifier().verify(&hook.body, Some(sig)).is_ok());
    assert!(Verifier::new(Encoding::Base64, Secret::from("other"), None).verify(&hook.body, Some(sig)).is_err());

    // The id is beyond 2^53 and must survive as an exact integer.
    let text = std::str::from_utf8(&hook.body).unwrap();
    assert!(text.contains(&format!("\"id\":{FIRST_SHOPIFY_ID}")), "{text}");
    let order = json_of(&hook.body);
    const { assert!(FIRST_SHOPIFY_ID > 1 << 53) };
    assert_eq!(order["id"].as_u64(), Some(FIRST_SHOPIFY_ID));
    assert_eq!(order["admin_graphql_api_id"], format!("gid://shopify/Order/{FIRST_SHOPIFY_ID}"));
    assert_eq!(order["order_number"], 1001);
    assert_eq!(order["financial_status"], "paid");
    assert_eq!(order["total_price"], "39.80");
    assert_eq!(order["currency"], "EUR");
    assert_eq!(order["phone"], "+4915123456789");
    assert_eq!(order["customer"]["first_name"], "Erika");
    assert_eq!(order["billing_address"]["phone"], "+4915123456789");
    assert_eq!(order["shipping_address"]["country_code"], "DE");
    assert_eq!(order["line_items"][0]["price"], "19.90");
    assert_eq!(order["line_items"][0]["quantity"], 2);
    assert!(order["line_items"][0]["variant_id"].as_u64().is_some());
    assert!(order["line_items"][0]["id"].as_u64().unwrap() > 1 << 53);
    assert_eq!(order["note_attributes"], json!([{ "name": "parley_cart", "value": "cart-123" }]));
    for key in ["created_at", "updated_at"] {
        let t = order[key].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(), "{t}");
    }

    // The next order counts on.
    let second = h.order(json!({ "platform": "shopify" })).await;
    assert_eq!(second["order_id"].as_u64(), Some(FIRST_SHOPIFY_ID + 1));
    assert_eq!(second["name"], "#1002");
}

#[tokio::test]
async fn woocommerce_order_is_php_encoded_and_signed_over_the_raw_bytes() {
    let h = start().await;
    let answer = h
        .order(json!({
            "platform": "woocommerce",
            "phone": "+4915123456789",
            "items": [{ "sku": "TSHIRT-M", "title": "T-Shirt M", "quantity": 2, "price": "19.90" }],
            "attributes": { "parley_cart": "cart-9" },
        }))
        .await;
    assert_eq!(answer["order_id"], 1000);
    assert_eq!(answer["name"], "1000");
    assert_eq!(answer["webhook_status"], 200);

    let hook = h.last_hook();
    assert_eq!(hook.path, "/webhooks/woocommerce");
    assert_eq!(header(&hook, "x-wc-webhook-source"), format!("{}/sandbox/woo/", h.base));
    assert_eq!(header(&hook, "x-wc-webhook-topic"), "order.created");
    assert_eq!(header(&hook, "x-wc-webhook-resource"), "order");
    assert_eq!(header(&hook, "x-wc-webhook-event"), "created");
    assert!(header(&hook, "x-wc-webhook-id").parse::<u64>().is_ok());
    let delivery_id = header(&hook, "x-wc-webhook-delivery-id");
    assert_eq!(delivery_id, answer["delivery_id"].as_str().unwrap());
    assert!(delivery_id.len() == 32 && delivery_id.bytes().all(|b| b.is_ascii_hexdigit()), "{delivery_id}");

    let text = std::str::from_utf8(&hook.body).unwrap();
    assert!(text.contains(r"\/"), "PHP escapes slashes: {text}");
    assert!(text.contains(r"Musterstra\u00dfe"), "PHP escapes non-ASCII: {text}");
    assert!(text.is_ascii());
    let sig = header(&hook, "x-wc-webhook-signature");
    assert!(woo_verifier().verify(&hook.body, Some(sig)).is_ok());
    // Re-serialising changes the bytes, so only the raw body verifies.
    let reencoded = serde_json::to_vec(&json_of(&hook.body)).unwrap();
    assert!(woo_verifier().verify(&reencoded, Some(sig)).is_err());

    let order = json_of(&hook.body);
    assert_eq!(order["id"], 1000);
    assert_eq!(order["number"], "1000");
    assert_eq!(order["status"], "processing");
    assert_eq!(order["total"], "39.80");
    assert_eq!(order["billing"]["phone"], "+4915123456789");
    assert_eq!(order["shipping"]["country"], "DE");
    assert_eq!(order["line_items"][0]["price"], json!(19.9));
    assert!(order["line_items"][0]["price"].is_number());
    assert_eq!(order["meta_data"][0]["key"], "parley_cart");
    assert_eq!(order["meta_data"][0]["value"], "cart-9");
    assert!(order["date_created_gmt"].is_string() && order["date_modified_gmt"].is_string());
}

#[tokio::test]
async fn shopify_fulfill_twice_creates_then_updates_the_same_fulfillment() {
    let h = start().await;
    let order = h.order(json!({ "platform": "shopify" })).await;
    let id = order["order_id_str"].as_str().unwrap().to_string();

    let (status, first) = h
        .post(
            &format!("/shop/orders/{id}/fulfill"),
            json!({
                "tracking_company": "DHL",
                "tracking_number": "00340434161234567890",
                "shipment_status": "in_transit",
            }),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["topic"], "fulfillments/create");
    assert_eq!(first["webhook_status"], 200);
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "fulfillments/create");
    assert!(shopify_verifier()
        .verify(&hook.body, hook.headers.get("x-shopify-hmac-sha256").and_then(|v| v.to_str().ok()))
        .is_ok());
    let created = json_of(&hook.body);
    let fid = created["id"].as_u64().unwrap();
    assert_eq!(created["order_id"].as_u64(), Some(FIRST_SHOPIFY_ID));
    assert_eq!(created["status"], "success");
    assert_eq!(created["tracking_company"], "DHL");
    assert_eq!(created["tracking_number"], "00340434161234567890");
    assert_eq!(created["tracking_numbers"], json!(["00340434161234567890"]));
    assert!(created["tracking_url"].as_str().unwrap().contains("00340434161234567890"));
    assert_eq!(created["shipment_status"], "in_transit");
    assert_eq!(created["destination"]["phone"], "+4915123456789");
    assert!(created["updated_at"].is_string());

    // Tracking correction: a new number on the same fulfillment.
    let (_, second) =
        h.post(&format!("/shop/orders/{id}/fulfill"), json!({ "tracking_number": "00340434169999999999" })).await;
    assert_eq!(second["topic"], "fulfillments/update");
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "fulfillments/update");
    let updated = json_of(&hook.body);
    assert_eq!(updated["id"].as_u64(), Some(fid));
    assert_eq!(updated["tracking_number"], "00340434169999999999");
    assert_eq!(updated["tracking_numbers"], json!(["00340434169999999999"]));
    assert!(updated["tracking_url"].as_str().unwrap().contains("00340434169999999999"));
    assert_eq!(updated["shipment_status"], "in_transit", "an absent status is kept");

    let (_, third) = h.post(&format!("/shop/orders/{id}/fulfill"), json!({ "shipment_status": "delivered" })).await;
    assert_eq!(third["topic"], "fulfillments/update");
    let delivered = json_of(&h.last_hook().body);
    assert_eq!(delivered["id"].as_u64(), Some(fid));
    assert_eq!(delivered["shipment_status"], "delivered");
    assert_eq!(delivered["tracking_number"], "00340434169999999999");

    // The stored order carries the one fulfillment.
    let resp = h.http.get(h.url(&format!("/shop/orders/{id}"))).send().await.unwrap();
    let stored: Value = resp.json().await.unwrap();
    let fulfillments = stored["order"]["fulfillments"].as_array().unwrap();
    assert_eq!(fulfillments.len(), 1);
    assert_eq!(fulfillments[0]["id"].as_u64(), Some(fid));
    assert_eq!(stored["order"]["fulfillment_status"], "fulfilled");
}

#[tokio::test]
async fn woocommerce_fulfill_adds_a_shipment_tracking_item_and_completes() {
    let h = start().await;
    let order = h.order(json!({ "platform": "woocommerce" })).await;
    let id = order["order_id"].as_u64().unwrap();
    let (status, answer) = h
        .post(
            &format!("/shop/orders/{id}/fulfill"),
            json!({ "tracking_company": "DHL", "tracking_number": "00340434161234567890" }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["topic"], "order.updated");
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-wc-webhook-topic"), "order.updated");
    assert_eq!(header(&hook, "x-wc-webhook-event"), "updated");
    assert!(woo_verifier()
        .verify(&hook.body, hook.headers.get("x-wc-webhook-signature").and_then(|v| v.to_str().ok()))
        .is_ok());
    let body = json_of(&hook.body);
    assert_eq!(body["status"], "completed");
    assert!(body["date_completed_gmt"].is_string());
    let meta = body["meta_data"].as_array().unwrap();
    let tracking = meta.iter().find(|m| m["key"] == "_wc_shipment_tracking_items").unwrap();
    let item = &tracking["value"][0];
    assert_eq!(item["tracking_number"], "00340434161234567890");
    assert_eq!(item["tracking_provider"], "dhl");
    assert!(item["custom_tracking_link"].as_str().unwrap().contains("00340434161234567890"));
    assert!(item["date_shipped"].as_str().unwrap().parse::<i64>().is_ok());
    assert_eq!(item["tracking_id"].as_str().unwrap().len(), 32);

    // "Delivered" without a number adds no second parcel.
    let (_, again) = h.post(&format!("/shop/orders/{id}/fulfill"), json!({ "shipment_status": "delivered" })).await;
    assert_eq!(again["tracking_number"], "00340434161234567890");
    let body = json_of(&h.last_hook().body);
    let meta = body["meta_data"].as_array().unwrap();
    let tracking = meta.iter().find(|m| m["key"] == "_wc_shipment_tracking_items").unwrap();
    assert_eq!(tracking["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cancel_and_pay_post_the_platform_topics() {
    let h = start().await;
    let shopify = h.order(json!({ "platform": "shopify", "status": "pending" })).await;
    let sid = shopify["order_id_str"].as_str().unwrap().to_string();
    let (_, paid) = h.post(&format!("/shop/orders/{sid}/pay"), json!({})).await;
    assert_eq!(paid["topic"], "orders/paid");
    assert_eq!(json_of(&h.last_hook().body)["financial_status"], "paid");
    let (_, cancelled) = h.post(&format!("/shop/orders/{sid}/cancel"), json!({})).await;
    assert_eq!(cancelled["topic"], "orders/cancelled");
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "orders/cancelled");
    let body = json_of(&hook.body);
    assert!(body["cancelled_at"].is_string());
    assert_eq!(body["cancel_reason"], "customer");
    // Again (a late duplicate): posted again, the first cancellation kept.
    let (status, again) = h.post(&format!("/shop/orders/{sid}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(json_of(&h.last_hook().body)["cancelled_at"], body["cancelled_at"]);
    // A late shipment after the cancellation still produces its webhook.
    let (status, late) = h.post(&format!("/shop/orders/{sid}/fulfill"), json!({})).await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["topic"], "fulfillments/create");

    let woo = h.order(json!({ "platform": "woocommerce", "status": "pending" })).await;
    assert_eq!(json_of(&h.last_hook().body)["status"], "pending");
    let wid = woo["order_id"].as_u64().unwrap();
    let (status, cancelled) = h.post(&format!("/shop/orders/{wid}/cancel"), Value::Null).await;
    assert_eq!(status, 200, "{cancelled}");
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-wc-webhook-topic"), "order.updated");
    assert_eq!(json_of(&hook.body)["status"], "cancelled");

    let (status, _) = h.post("/shop/orders/42/cancel", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = h.post("/shop/orders", json!({ "platform": "magento" })).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn redeliver_repeats_the_same_bytes_and_delivery_id() {
    let h = start().await;
    let shopify = h.order(json!({ "platform": "shopify" })).await;
    let sid = shopify["order_id_str"].as_str().unwrap().to_string();
    let first = h.last_hook();
    let (status, again) = h.post(&format!("/shop/orders/{sid}/redeliver"), json!({ "topic": "orders/create" })).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["delivery_id"], shopify["delivery_id"]);
    assert_eq!(again["redelivery"], true);
    let retry = h.last_hook();
    for name in ["x-shopify-webhook-id", "x-shopify-event-id", "x-shopify-hmac-sha256", "x-shopify-triggered-at"] {
        assert_eq!(header(&retry, name), header(&first, name), "{name}");
    }
    assert_eq!(retry.body, first.body);

    let woo = h.order(json!({ "platform": "woocommerce" })).await;
    let wid = woo["order_id"].as_u64().unwrap();
    let first = h.last_hook();
    let (_, again) = h.post(&format!("/shop/orders/{wid}/redeliver"), json!({})).await;
    assert_eq!(again["delivery_id"], woo["delivery_id"]);
    let retry = h.last_hook();
    assert_eq!(header(&retry, "x-wc-webhook-delivery-id"), header(&first, "x-wc-webhook-delivery-id"));
    assert_eq!(retry.body, first.body);

    let (status, _) = h.post(&format!("/shop/orders/{wid}/redeliver"), json!({ "topic": "order.deleted" })).await;
    assert_eq!(status, 404);

    let deliveries: Vec<Value> = h.http.get(h.url("/shop/deliveries")).send().await.unwrap().json().await.unwrap();
    assert_eq!(deliveries.len(), 4);
    let ids: Vec<&str> = deliveries.iter().map(|d| d["delivery_id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
    assert_eq!(deliveries[1]["redelivery"], true);
    assert_eq!(deliveries[0]["platform"], "shopify");
    assert_eq!(deliveries[0]["topic"], "orders/create");
    assert_eq!(deliveries[0]["status"], 200);
    assert_eq!(deliveries[2]["platform"], "woocommerce");
    let only_woo: Vec<Value> =
        h.http.get(h.url(&format!("/shop/deliveries?order_id={wid}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(only_woo.len(), 2);
}

#[tokio::test]
async fn a_withheld_webhook_goes_out_late_on_redeliver() {
    let h = start().await;
    let order = h.order(json!({ "platform": "shopify", "deliver": false })).await;
    let sid = order["order_id_str"].as_str().unwrap().to_string();
    assert!(h.hooks().is_empty());
    // The fulfillment arrives first…
    h.post(
        &format!("/shop/orders/{sid}/fulfill"),
        json!({ "tracking_number": "1Z827WK74630", "tracking_company": "UPS" }),
    )
    .await;
    assert_eq!(header(&h.last_hook(), "x-shopify-topic"), "fulfillments/create");
    // …then the lost orders/create, with the payload and id it had when the order was placed.
    let (status, late) = h.post(&format!("/shop/orders/{sid}/redeliver"), json!({ "topic": "orders/create" })).await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["webhook_status"], 200);
    assert_eq!(late["redelivery"], false);
    assert_eq!(late["delivery_id"], order["delivery_id"]);
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "orders/create");
    assert_eq!(header(&hook, "x-shopify-webhook-id"), order["delivery_id"].as_str().unwrap());
    assert_eq!(json_of(&hook.body)["fulfillments"], json!([]));
    let (_, again) = h.post(&format!("/shop/orders/{sid}/redeliver"), json!({ "topic": "orders/create" })).await;
    assert_eq!(again["redelivery"], true);
    assert_eq!(again["delivery_id"], order["delivery_id"]);
}

#[tokio::test]
async fn shopify_orders_json_needs_the_token_and_filters_by_updated_at_min() {
    let h = start().await;
    let (status, _, body) = h.shopify_get("/orders.json?status=any", None).await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" })
    );
    let (status, _, _) = h.shopify_get("/orders.json?status=any", Some("wrong")).await;
    assert_eq!(status, 401);

    // An old order placed while webhooks were lost, then two recent ones.
    let old = h.order(json!({ "platform": "shopify", "created_at": "2026-01-10T08:00:00Z", "deliver": false })).await;
    assert_eq!(old["webhook_status"], Value::Null);
    assert_eq!(old["webhook_withheld"], true);
    assert!(h.hooks().is_empty(), "deliver:false posts nothing");
    h.order(json!({ "platform": "shopify", "created_at": "2026-03-01T10:00:00+01:00" })).await;
    h.order(json!({ "platform": "shopify" })).await;
    h.order(json!({ "platform": "woocommerce" })).await;

    let (status, headers, body) = h.shopify_get("/orders.json?status=any&limit=50", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-shopify-api-version").unwrap(), "2026-07");
    assert!(body.contains(&format!("\"id\":{FIRST_SHOPIFY_ID}")), "exact ids");
    let all: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<u64> = all["orders"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [FIRST_SHOPIFY_ID, FIRST_SHOPIFY_ID + 1, FIRST_SHOPIFY_ID + 2], "oldest first, Shopify only");

    let min = "2026-02-01T00:00:00%2B01:00";
    let (_, _, body) = h.shopify_get(&format!("/orders.json?updated_at_min={min}&status=any"), Some(TOKEN)).await;
    let recent: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<u64> = recent["orders"].as_array().unwrap().iter().map(|o| o["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [FIRST_SHOPIFY_ID + 1, FIRST_SHOPIFY_ID + 2]);

    // Inclusive at the boundary.
    let (_, _, body) = h.shopify_get("/orders.json?updated_at_min=2026-03-01T09:00:00Z&status=any", Some(TOKEN)).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["orders"].as_array().unwrap().len(), 2);

    // An unencoded '+' arrives as a space: refused, not silently misread.
    let (status, _, _) =
        h.shopify_get("/orders.json?updated_at_min=2026-02-01T00:00:00+01:00&status=any", Some(TOKEN)).await;
    assert_eq!(status, 400);

    // Cursor pagination through the Link header.
    let (_, headers, body) = h.shopify_get("/orders.json?status=any&limit=2", Some(TOKEN)).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["orders"].as_array().unwrap().len(), 2);
    let link = headers.get("link").unwrap().to_str().unwrap();
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    assert!(link.ends_with("rel=\"next\""), "{link}");
    let resp = h.http.get(next).header("X-Shopify-Access-Token", TOKEN).send().await.unwrap();
    assert!(resp.headers().get("link").is_none());
    let page2: Value = resp.json().await.unwrap();
    assert_eq!(page2["orders"][0]["id"].as_u64(), Some(FIRST_SHOPIFY_ID + 2));

    // Cancelled orders are not "open" (Shopify's default status).
    let sid = FIRST_SHOPIFY_ID + 1;
    h.post(&format!("/shop/orders/{sid}/cancel"), json!({ "deliver": false })).await;
    let (_, _, body) = h.shopify_get("/orders.json", Some(TOKEN)).await;
    let open: Value = serde_json::from_str(&body).unwrap();
    assert!(open["orders"].as_array().unwrap().iter().all(|o| o["id"].as_u64() != Some(sid)));

    let (status, _, body) = h.shopify_get(&format!("/orders/{FIRST_SHOPIFY_ID}.json"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("\"id\":{FIRST_SHOPIFY_ID}")));
}

#[tokio::test]
async fn woocommerce_orders_need_basic_auth_and_paginate() {
    let h = start().await;
    let (status, _, body) = h.woo_get("/orders", None).await;
    assert_eq!(status, 401);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["code"], "woocommerce_rest_cannot_view");
    assert_eq!(err["data"]["status"], 401);
    let (status, _, _) = h.woo_get("/orders", Some((CK, "wrong"))).await;
    assert_eq!(status, 401);

    h.order(json!({ "platform": "woocommerce", "created_at": "2026-01-10T08:00:00Z" })).await;
    h.order(json!({ "platform": "woocommerce", "created_at": "2026-03-01T08:00:00Z" })).await;
    h.order(json!({ "platform": "woocommerce" })).await;
    h.order(json!({ "platform": "shopify" })).await;

    let query = "/orders?orderby=modified&order=asc&per_page=2";
    let (status, headers, body) = h.woo_get(&format!("{query}&page=1"), Some((CK, CS))).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("x-wp-total").unwrap(), "3");
    assert_eq!(headers.get("x-wp-totalpages").unwrap(), "2");
    assert!(body.contains(r"\/wp-json\/wc\/v3\/orders"), "WordPress encodes responses PHP-style too");
    let page1: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(page1.iter().map(|o| o["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1000, 1001]);
    let link = headers.get("link").unwrap().to_str().unwrap();
    assert!(link.contains("page=2") && link.contains("rel=\"next\""), "{link}");

    let (_, headers, body) = h.woo_get(&format!("{query}&page=2"), Some((CK, CS))).await;
    let page2: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(page2.iter().map(|o| o["id"].as_u64().unwrap()).collect::<Vec<_>>(), [1002]);
    assert_eq!(headers.get("x-wp-totalpages").unwrap(), "2");

    // modified_after: strictly after; an explicit offset (or dates_are_gmt) pins the zone.
    let (_, headers, body) =
        h.woo_get("/orders?modified_after=2026-03-01T08:00:00Z&orderby=modified&order=asc", Some((CK, CS))).await;
    assert_eq!(headers.get("x-wp-total").unwrap(), "1");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()[0]["id"], 1002);
    let (_, headers, _) =
        h.woo_get("/orders?modified_after=2026-02-01T00:00:00&dates_are_gmt=true&per_page=100", Some((CK, CS))).await;
    assert_eq!(headers.get("x-wp-total").unwrap(), "2");

    // Default order: newest first.
    let (_, _, body) = h.woo_get("/orders", Some((CK, CS))).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()[0]["id"], 1002);

    let (status, _, _) = h.woo_get("/orders?per_page=101", Some((CK, CS))).await;
    assert_eq!(status, 400);
    let (status, _, body) = h.woo_get("/orders/1001", Some((CK, CS))).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], 1001);
}

#[tokio::test]
async fn removed_subscriptions_disappear_or_show_disabled_and_stop_deliveries() {
    let h = start().await;
    let (status, _, body) = h.shopify_get("/webhooks.json", Some(TOKEN)).await;
    assert_eq!(status, 200);
    let hooks: Value = serde_json::from_str(&body).unwrap();
    let topics: Vec<&str> =
        hooks["webhooks"].as_array().unwrap().iter().map(|w| w["topic"].as_str().unwrap()).collect();
    assert_eq!(topics.len(), 10);
    assert!(topics.contains(&"orders/create") && topics.contains(&"customers/redact"));
    let first = &hooks["webhooks"][0];
    assert_eq!(first["format"], "json");
    assert_eq!(first["api_version"], "2026-07");
    assert_eq!(first["address"], format!("{}/webhooks/shopify", h.base));
    assert!(first["id"].as_u64().is_some());
    let (status, _, _) = h.shopify_get("/webhooks.json", None).await;
    assert_eq!(status, 401);

    let (status, removed) = h.post("/shop/webhooks/shopify/remove", json!({ "topic": "orders/create" })).await;
    assert_eq!(status, 200, "{removed}");
    let (_, _, body) = h.shopify_get("/webhooks.json", Some(TOKEN)).await;
    let hooks: Value = serde_json::from_str(&body).unwrap();
    let topics: Vec<&str> =
        hooks["webhooks"].as_array().unwrap().iter().map(|w| w["topic"].as_str().unwrap()).collect();
    assert_eq!(topics.len(), 9);
    assert!(!topics.contains(&"orders/create"));
    // No subscription, no delivery — but the order exists for the reconciler to find.
    let order = h.order(json!({ "platform": "shopify" })).await;
    assert_eq!(order["webhook_status"], Value::Null);
    assert!(order["webhook_error"].as_str().unwrap().contains("removed"));
    assert!(h.hooks().is_empty());
    let (_, _, body) = h.shopify_get("/orders.json?status=any", Some(TOKEN)).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["orders"].as_array().unwrap().len(), 1);

    // A reconciler can subscribe again.
    let address = format!("{}/webhooks/shopify", h.base);
    let resp = h
        .http
        .post(h.url("/shopify/admin/api/2026-07/webhooks.json"))
        .header("X-Shopify-Access-Token", TOKEN)
        .json(&json!({ "webhook": { "topic": "orders/create", "address": address, "format": "json" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(h.order(json!({ "platform": "shopify" })).await["webhook_status"], 200);

    let (status, _) = h.post("/shop/webhooks/woocommerce/remove", json!({ "topic": "order.created" })).await;
    assert_eq!(status, 200);
    let (status, _, body) = h.woo_get("/webhooks", Some((CK, CS))).await;
    assert_eq!(status, 200);
    let hooks: Vec<Value> = serde_json::from_str(&body).unwrap();
    let created = hooks.iter().find(|w| w["topic"] == "order.created").unwrap();
    assert_eq!(created["status"], "disabled");
    assert_eq!(created["delivery_url"], format!("{}/webhooks/woocommerce", h.base));
    assert!(hooks.iter().filter(|w| w["topic"] != "order.created").all(|w| w["status"] == "active"));
    let (status, _, _) = h.woo_get("/webhooks", None).await;
    assert_eq!(status, 401);
    let before = h.hooks().len();
    let order = h.order(json!({ "platform": "woocommerce" })).await;
    assert_eq!(order["webhook_status"], Value::Null);
    assert_eq!(h.hooks().len(), before);

    let (status, _) = h.post("/shop/webhooks/shopify/remove", json!({ "topic": "orders/unknown" })).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn woocommerce_setup_ping_is_unsigned_and_form_encoded() {
    let h = start().await;
    let (status, answer) = h.post("/shop/webhooks/woocommerce/ping", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_status"], 200);
    let hook = h.last_hook();
    assert_eq!(hook.body, Bytes::from(format!("webhook_id={}", answer["webhook_id"])));
    assert!(hook.headers.get("x-wc-webhook-signature").is_none());
}

#[tokio::test]
async fn the_page_has_the_shop_panel() {
    // The markup and its script (served beside it, no inline script under the page's CSP).
    let page = [include_str!("../sandbox/index.html"), include_str!("../sandbox/sandbox.js")].concat();
    for needle in [
        "/sandbox/shop/orders",
        "/sandbox/shop/products",
        "/sandbox/shop/checkouts",
        "/sandbox/run/",
        "orderPath(\"fulfill\")",
        "orderPath(\"cancel\")",
        "/sandbox/shop/deliveries",
        "order_id_str",
    ] {
        assert!(page.contains(needle), "{needle}");
    }
}

fn eur() -> parley::domain::Currency {
    parley::domain::Currency::parse("EUR").unwrap()
}

fn products_of(event: ShopEvent) -> (Vec<ProductVariant>, bool) {
    match event {
        ShopEvent::Products { items, deleted, .. } => (items, deleted),
        other => panic!("expected products, got {other:?}"),
    }
}

fn checkout_of(event: ShopEvent) -> CheckoutSnapshot {
    match event {
        ShopEvent::Checkout(c) => c,
        other => panic!("expected a checkout, got {other:?}"),
    }
}

#[tokio::test]
async fn shopify_product_create_and_sold_out_parse_as_products() {
    let h = start().await;
    let (status, answer) = h
        .post(
            "/shop/products",
            json!({
                "platform": "shopify", "title": "T-Shirt", "product_type": "Shirts",
                "variants": [
                    { "sku": "TSHIRT-M", "title": "M", "price": "19.90", "inventory": 5 },
                    { "sku": "TSHIRT-L", "title": "L", "price": "19.90", "inventory": 2 },
                ],
                "deliver": true,
            }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["platform"].as_str(), answer["webhook_status"].as_u64()), (Some("shopify"), Some(200)));
    let product_id = answer["product_id"].as_u64().unwrap();
    let variant_ids: Vec<u64> =
        answer["variants"].as_array().unwrap().iter().map(|v| v["variant_id"].as_u64().unwrap()).collect();
    assert_eq!(answer["variants"][1]["sku"], "TSHIRT-L");

    let hook = h.last_hook();
    assert_eq!(hook.path, "/webhooks/shopify");
    assert_eq!(header(&hook, "x-shopify-topic"), "products/create");
    assert!(shopify_verifier().verify(&hook.body, Some(header(&hook, "x-shopify-hmac-sha256"))).is_ok());
    let event = shopify::parse_webhook_with_currency("products/create", SHOP_DOMAIN, &hook.body, Some(eur())).unwrap();
    let (items, deleted) = products_of(event);
    assert!(!deleted);
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().map(|v| v.variant_id).collect::<Vec<_>>(), variant_ids);
    assert!(items.iter().all(|v| v.product_id == product_id && v.available));
    assert_eq!((items[0].sku.as_deref(), items[0].title.as_str()), (Some("TSHIRT-M"), "T-Shirt – M"));
    assert_eq!((items[0].price.minor, items[0].category.as_deref()), (1990, Some("Shirts")));

    // Orders for the same SKU carry the same variant id.
    h.order(json!({ "platform": "shopify", "items": [{ "sku": "TSHIRT-M", "price": "19.90" }] })).await;
    assert_eq!(json_of(&h.last_hook().body)["line_items"][0]["variant_id"].as_u64(), Some(variant_ids[0]));

    let (status, sold) = h.post(&format!("/shop/products/{product_id}/soldout"), json!({})).await;
    assert_eq!(status, 200, "{sold}");
    assert_eq!((sold["topic"].as_str(), sold["webhook_status"].as_u64()), (Some("products/update"), Some(200)));
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "products/update");
    assert!(shopify_verifier().verify(&hook.body, Some(header(&hook, "x-shopify-hmac-sha256"))).is_ok());
    assert_eq!(json_of(&hook.body)["variants"][1]["old_inventory_quantity"], 2);
    let event = shopify::parse_webhook_with_currency("products/update", SHOP_DOMAIN, &hook.body, Some(eur())).unwrap();
    let (items, _) = products_of(event);
    assert!(items.len() == 2 && items.iter().all(|v| !v.available));

    // A new price: every variant, as Parley's parser reads it.
    let (status, repriced) = h.post(&format!("/shop/products/{product_id}/price"), json!({ "price": "17.50" })).await;
    assert_eq!(status, 200, "{repriced}");
    assert_eq!(repriced["topic"], "products/update");
    let hook = h.last_hook();
    assert!(shopify_verifier().verify(&hook.body, Some(header(&hook, "x-shopify-hmac-sha256"))).is_ok());
    let event = shopify::parse_webhook_with_currency("products/update", SHOP_DOMAIN, &hook.body, Some(eur())).unwrap();
    let (items, _) = products_of(event);
    assert!(items.len() == 2 && items.iter().all(|v| v.price.minor == 1750), "{items:?}");
    for bad in [json!({ "price": "0" }), json!({ "price": "1,50" }), json!({})] {
        let (status, _) = h.post(&format!("/shop/products/{product_id}/price"), bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
    }
    // The list the page picks products from.
    let listed: Vec<Value> =
        reqwest::get(format!("{}/sandbox/shop/products", h.base)).await.unwrap().json().await.unwrap();
    assert!(
        listed.iter().any(|p| p["product_id"].as_u64() == Some(product_id) && p["title"] == "T-Shirt"),
        "{listed:?}"
    );

    let (status, _) = h.post("/shop/products/1/soldout", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = h.post("/shop/products/1/price", json!({ "price": "1.00" })).await;
    assert_eq!(status, 404);
    let (status, _) = h.post("/shop/products", json!({ "platform": "shopify", "variants": [] })).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn woocommerce_products_are_php_encoded_signed_and_parse() {
    let h = start().await;
    let (status, answer) = h
        .post(
            "/shop/products",
            json!({ "platform": "woocommerce", "title": "Baseball Cap", "product_type": "Caps",
                    "variants": [{ "sku": "CAP", "price": "12.50", "inventory": 3 }] }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let product_id = answer["product_id"].as_u64().unwrap();
    assert_eq!(answer["variants"], json!([{ "sku": "CAP", "variant_id": product_id }]));

    let hook = h.last_hook();
    assert_eq!(hook.path, "/webhooks/woocommerce");
    assert_eq!(header(&hook, "x-wc-webhook-topic"), "product.created");
    assert_eq!(header(&hook, "x-wc-webhook-resource"), "product");
    assert!(std::str::from_utf8(&hook.body).unwrap().contains(r"\/"), "PHP escapes slashes");
    assert!(woo_verifier().verify(&hook.body, Some(header(&hook, "x-wc-webhook-signature"))).is_ok());
    let event =
        woocommerce::parse_webhook_with_currency("product.created", "127.0.0.1", &hook.body, Some(eur())).unwrap();
    let (items, _) = products_of(event);
    assert_eq!(items.len(), 1);
    let cap = &items[0];
    assert_eq!((cap.product_id, cap.variant_id, cap.sku.as_deref()), (product_id, 0, Some("CAP")));
    assert_eq!((cap.title.as_str(), cap.price.minor, cap.category.as_deref()), ("Baseball Cap", 1250, Some("Caps")));
    assert!(cap.available);

    h.post(&format!("/shop/products/{product_id}/soldout"), json!(null)).await;
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-wc-webhook-topic"), "product.updated");
    assert!(woo_verifier().verify(&hook.body, Some(header(&hook, "x-wc-webhook-signature"))).is_ok());
    let event =
        woocommerce::parse_webhook_with_currency("product.updated", "127.0.0.1", &hook.body, Some(eur())).unwrap();
    assert!(!products_of(event).0[0].available);

    // Several variants: a variable parent listing its variations; the webhook maps it as one item.
    let (_, answer) = h
        .post(
            "/shop/products",
            json!({ "platform": "woocommerce", "title": "Hoodie",
                    "variants": [{ "sku": "HOODIE-M", "title": "M", "price": "45" }, { "sku": "HOODIE-L", "title": "L", "price": "49" }] }),
        )
        .await;
    let parent = answer["product_id"].as_u64().unwrap();
    let body = json_of(&h.last_hook().body);
    assert_eq!(body["type"], "variable");
    let variations: Vec<u64> =
        answer["variants"].as_array().unwrap().iter().map(|v| v["variant_id"].as_u64().unwrap()).collect();
    assert_eq!(body["variations"], json!(variations));
    let event =
        woocommerce::parse_webhook_with_currency("product.created", "127.0.0.1", &h.last_hook().body, Some(eur()))
            .unwrap();
    let (items, _) = products_of(event);
    assert_eq!((items.len(), items[0].product_id, items[0].variant_id, items[0].price.minor), (1, parent, 0, 4500));
}

#[tokio::test]
async fn shopify_checkout_create_then_complete() {
    let h = start().await;
    let (_, product) = h
        .post(
            "/shop/products",
            json!({ "platform": "shopify", "title": "T-Shirt", "variants": [{ "sku": "TSHIRT-M", "title": "M", "price": "19.90" }] }),
        )
        .await;
    let variant_id = product["variants"][0]["variant_id"].as_u64().unwrap();
    let (status, answer) = h
        .post(
            "/shop/checkouts",
            json!({
                "phone": "+4915123456789",
                "items": [{ "sku": "TSHIRT-M", "variant_id": variant_id, "title": "T-Shirt", "quantity": 2, "price": "19.90" }],
                "attributes": { "parley_cart": "cart-5" },
                "deliver": true,
            }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["topic"].as_str(), answer["webhook_status"].as_u64()), (Some("checkouts/create"), Some(200)));
    let checkout_id = answer["checkout_id"].as_u64().unwrap();
    let token = answer["token"].as_str().unwrap().to_string();
    let url = format!("https://{SHOP_DOMAIN}/checkouts/{token}/recover");
    assert_eq!(answer["abandoned_checkout_url"], url);

    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "checkouts/create");
    assert!(shopify_verifier().verify(&hook.body, Some(header(&hook, "x-shopify-hmac-sha256"))).is_ok());
    let c = checkout_of(shopify::parse_webhook("checkouts/create", SHOP_DOMAIN, &hook.body).unwrap());
    assert_eq!(
        (c.checkout_id, c.token.as_deref(), c.abandoned_checkout_url.as_deref()),
        (checkout_id, Some(token.as_str()), Some(url.as_str()))
    );
    assert_eq!(c.completed_at, None);
    assert_eq!(c.phones, vec!["+4915123456789"]);
    assert_eq!((c.currency.as_str(), c.total.minor, c.country.as_deref()), ("EUR", 3980, Some("DE")));
    assert_eq!(c.items.len(), 1);
    assert_eq!((c.items[0].variant_id, c.items[0].product_id), (Some(variant_id), product["product_id"].as_u64()));
    assert_eq!((c.items[0].quantity, c.items[0].sku.as_deref()), (2, Some("TSHIRT-M")));
    assert_eq!(c.attributes, vec![("parley_cart".to_string(), "cart-5".to_string())]);
    assert!(c.buyer_accepts_sms_marketing && c.updated_at.is_some());

    let (status, done) = h.post(&format!("/shop/checkouts/{checkout_id}/complete"), json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert!(done["completed_at"].is_string());
    let hook = h.last_hook();
    assert_eq!(header(&hook, "x-shopify-topic"), "checkouts/update");
    assert!(shopify_verifier().verify(&hook.body, Some(header(&hook, "x-shopify-hmac-sha256"))).is_ok());
    let c = checkout_of(shopify::parse_webhook("checkouts/update", SHOP_DOMAIN, &hook.body).unwrap());
    assert_eq!(c.checkout_id, checkout_id);
    assert!(c.completed_at.is_some());

    let (status, _) = h.post("/shop/checkouts/1/complete", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = h.post("/shop/checkouts", json!({ "platform": "woocommerce" })).await;
    assert_eq!(status, 400);
    // Withheld: recorded, not posted.
    let before = h.hooks().len();
    let (_, withheld) = h.post("/shop/checkouts", json!({ "deliver": false })).await;
    assert_eq!((withheld["webhook_withheld"].as_bool(), h.hooks().len()), (Some(true), before));
}
