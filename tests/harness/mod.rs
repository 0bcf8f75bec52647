//! Test harness: starts a fresh local Parley system (own table and queues, own port) against the
//! local AWS endpoints that `make test` starts, and talks to it over HTTP only.
pub mod billing;
pub mod bridge_receiver;
pub mod fault_proxy;
pub mod lambda;
pub mod relay;
pub mod tls_proxy;

use parley::channels::signature::{sign, Encoding};
use serde_json::{json, Value};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const APP_SECRET: &str = "local-meta-app-secret";
pub const PREVIOUS_APP_SECRET: &str = "previous-meta-app-secret";
pub const VERIFY_TOKEN: &str = "local-verify-token";
pub const ADMIN_KEY: &str = "local-admin-key";
/// `.env.example`'s `PARLEY_LINK_KEY`: tracked-link tokens of the tests are derived under it.
pub const LINK_KEY: &str = "local-link-key";
pub const WA_PHONE_NUMBER_ID: &str = "100000000000001";
pub const PAGE_ID: &str = "200000000000001";
pub const IG_ACCOUNT_ID: &str = "300000000000001";

static ENV: Once = Once::new();

/// Sets the environment every test system shares (once per test process).
pub fn init_env() {
    ENV.call_once(|| {
        assert!(
            std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
            "no local AWS endpoints: run the tests with `make test` (it starts them)"
        );
        // Set once, before any system reads them; every test system shares these settings.
        for (k, v) in [
            ("META_APP_SECRET", APP_SECRET),
            ("META_APP_SECRET_PREVIOUS", PREVIOUS_APP_SECRET),
            ("META_VERIFY_TOKEN", VERIFY_TOKEN),
            ("META_ACCESS_TOKEN", "local-access-token"),
            ("PARLEY_ADMIN_KEY", ADMIN_KEY),
            ("PARLEY_PSEUDONYM_KEY", "local-pseudonym-key"),
            ("PARLEY_LINK_KEY", LINK_KEY),
            ("DEFAULT_PHONE_REGION", "DE"),
            ("SHOPIFY_WEBHOOK_SECRET", "local-shopify-secret"),
            ("SHOPIFY_SHOP_DOMAIN", "parley-demo.myshopify.com"),
            ("SHOPIFY_ACCESS_TOKEN", "local-shopify-access-token"),
            ("WOOCOMMERCE_WEBHOOK_SECRET", "local-woocommerce-secret"),
            ("WOOCOMMERCE_STORE_URL", "http://127.0.0.1:3000/sandbox/woo"),
            ("WOOCOMMERCE_CONSUMER_KEY", "local-woo-consumer-key"),
            ("WOOCOMMERCE_CONSUMER_SECRET", "local-woo-consumer-secret"),
            ("WHATSAPP_PHONE_NUMBER_ID", WA_PHONE_NUMBER_ID),
            ("MESSENGER_PAGE_ID", PAGE_ID),
            ("INSTAGRAM_ACCOUNT_ID", IG_ACCOUNT_ID),
            ("DEFAULT_LOCALE", "de"),
            ("FALLBACK_TEMPLATE", "service_followup"),
            // Retries after 1 s each instead of 4^n s, so fault tests stay quick.
            ("SEND_RETRY_BASE_SECONDS", "1"),
            ("SEND_PAUSE_SECONDS", "2"),
            // Idle carts are due for their reminder at once (the test runs the reminder itself).
            ("CART_REMINDER_DELAY_MINUTES", "0"),
        ] {
            std::env::set_var(k, v);
        }
        std::env::remove_var("PARLEY_FLOWS_DIR");
        if std::env::var_os("PARLEY_TEST_LOG").is_some() {
            parley::observability::init_logging();
        }
        std::env::remove_var("GRAPH_API_BASE");
    });
}

/// A running system with its own fresh state.
pub struct System {
    pub running: parley_local::Running,
    pub base: String,
    pub http: reqwest::Client,
}

impl System {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A system with some options changed (endpoint overrides, a short claim lease).
    pub async fn start_with(change: impl FnOnce(&mut parley_local::Options)) -> Self {
        init_env();
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut opts = parley_local::Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            prefix,
            template: concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml").into(),
            graph_api_base: None,
            status_webhooks: false,
            dynamodb_endpoint: None,
            sqs_endpoint: None,
            claim_lease: None,
            service_window: None,
            bridge: None,
            marketing_messages_api: None,
            templates: None,
            public_base_url: None,
            content: None,
        };
        change(&mut opts);
        let running = parley_local::start(opts).await.expect("local system starts");
        let base = running.base_url.clone();
        // A redirect is an answer of the system under test (`GET /r/{token}`): never followed.
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { running, base, http }
    }

    /// A system whose bridge posts to `receiver` (retries after 1 s, then 4 s, …).
    pub async fn with_bridge_to(receiver: &bridge_receiver::Receiver) -> Self {
        let (url, secret) = (receiver.url.clone(), receiver.secret.clone());
        Self::start_with(|o| {
            o.bridge = Some(parley_local::BridgeOptions { url: Some(url), secret, retry_base_seconds: Some(1) })
        })
        .await
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn store(&self) -> &parley::store::Store {
        &self.running.app.store
    }

    /// Posts a Meta delivery signed with the current app secret.
    pub async fn post_meta(&self, body: &str) -> reqwest::Response {
        let sig = sign(Encoding::PrefixedHex, APP_SECRET, body.as_bytes());
        self.post_meta_with(body, Some(&sig)).await
    }

    pub async fn post_meta_with(&self, body: &str, signature: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(self.url("/webhooks/meta")).header("content-type", "application/json");
        if let Some(sig) = signature {
            req = req.header("X-Hub-Signature-256", sig);
        }
        req.body(body.to_string()).send().await.expect("request sent")
    }

    pub async fn messages_to(&self, address: &str) -> Vec<Value> {
        let r = self.http.get(self.url("/sandbox/messages")).query(&[("to", address)]).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Vec<Value>>().await.unwrap()
    }

    /// Waits until `address` has at least `n` messages, then returns them all.
    pub async fn wait_for_messages(&self, address: &str, n: usize) -> Vec<Value> {
        self.wait_for_messages_within(address, n, Duration::from_secs(20)).await
    }

    pub async fn wait_for_messages_within(&self, address: &str, n: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let msgs = self.messages_to(address).await;
            if msgs.len() >= n {
                return msgs;
            }
            if start.elapsed() > limit {
                panic!("expected {n} message(s) to {address} within {limit:?}, got {}: {msgs:#?}", msgs.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that `address` has exactly `n` messages and still has after `quiet` more time
    /// (no late duplicate arrives).
    pub async fn assert_settles_at(&self, address: &str, n: usize, quiet: Duration) -> Vec<Value> {
        let msgs = if n > 0 { self.wait_for_messages(address, n).await } else { vec![] };
        tokio::time::sleep(quiet).await;
        let after = self.messages_to(address).await;
        assert_eq!(after.len(), n, "messages to {address}: {after:#?}");
        if n > 0 {
            assert_eq!(after[..n], msgs[..n]);
        }
        after
    }

    pub async fn set_fault(&self, status: u16, count: u32) {
        let r = self
            .http
            .post(self.url("/sandbox/faults"))
            .json(&json!({"status": status, "count": count}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "fault set: {}", r.status());
    }

    /// How many injected faults are still to come.
    pub async fn faults_left(&self) -> u64 {
        let v: Value = self.http.get(self.url("/sandbox/faults")).send().await.unwrap().json().await.unwrap();
        v["remaining"].as_u64().unwrap_or(0)
    }
}

/// A fresh inbound message id.
pub fn wamid() -> String {
    format!("wamid.T{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, unique WhatsApp customer number (so tests never share a conversation).
pub fn customer() -> String {
    // A valid German mobile number: 49 151 and eight digits.
    let n = uuid::Uuid::new_v4().as_u128() % 100_000_000;
    format!("49151{n:08}")
}

pub fn now() -> i64 {
    parley::time_util::now_unix()
}

/// A WhatsApp delivery for one message object (`msg` without `from`/`id`/`timestamp`).
pub fn wa_delivery(from: &str, id: &str, timestamp: i64, msg: Value) -> String {
    let mut m = msg;
    m["from"] = json!(from);
    m["id"] = json!(id);
    m["timestamp"] = json!(timestamp.to_string());
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "900000000000001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
                    "contacts": [{"profile": {"name": "Erika Muster"}, "wa_id": from}],
                    "messages": [m]
                }
            }]
        }]
    })
    .to_string()
}

pub fn wa_text(from: &str, id: &str, text: &str) -> String {
    wa_delivery(from, id, now(), json!({"type": "text", "text": {"body": text}}))
}

/// A WhatsApp status delivery.
pub fn wa_status(provider_id: &str, recipient: &str, status: &str, error_code: Option<i64>) -> String {
    let mut st =
        json!({"id": provider_id, "status": status, "timestamp": now().to_string(), "recipient_id": recipient});
    if let Some(code) = error_code {
        st["errors"] = json!([{"code": code, "title": "error"}]);
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "900000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
            "statuses": [st]
        }}]}]
    })
    .to_string()
}

/// A Messenger (`page`) or Instagram (`instagram`) delivery with one messaging event.
pub fn fb_delivery(object: &str, account: &str, event: Value) -> String {
    json!({"object": object, "entry": [{"id": account, "time": now() * 1000, "messaging": [event]}]}).to_string()
}

pub fn fb_text(object: &str, account: &str, sender: &str, mid: &str, text: &str) -> String {
    fb_delivery(
        object,
        account,
        json!({"sender": {"id": sender}, "recipient": {"id": account}, "timestamp": now() * 1000,
               "message": {"mid": mid, "text": text}}),
    )
}

/// A fresh Messenger/Instagram scoped user id.
pub fn psid() -> String {
    format!("71{:014}", uuid::Uuid::new_v4().as_u128() % 100_000_000_000_000)
}

/// What the configured flows answer to `content` for a contact in `locale` (the oracle for
/// reply assertions, so brand edits to the flow files don't break the tests).
pub fn expected_reply(content: &parley::domain::InboundContent, locale: &str) -> Vec<String> {
    use parley::domain::conversation::{decide, ContactView};
    let flows = parley::domain::flows::Flows::embedded().unwrap();
    let decision = decide(flows.for_locale("default", locale), &ContactView::new(locale, false), content);
    decision.replies.iter().map(body_text).collect()
}

/// The text the sandbox shows for a body.
pub fn body_text(body: &parley::domain::OutboundBody) -> String {
    use parley::domain::OutboundBody;
    match body {
        OutboundBody::Text { text } | OutboundBody::Buttons { text, .. } | OutboundBody::List { text, .. } => {
            text.clone()
        }
        OutboundBody::Template { template } => template.name.clone(),
    }
}

pub fn text_content(s: &str) -> parley::domain::InboundContent {
    parley::domain::InboundContent::Text { body: s.to_string() }
}

pub fn release_reply(locale: &str) -> Vec<String> {
    let flows = parley::domain::flows::Flows::embedded().unwrap();
    parley::domain::conversation::release(flows.for_locale("default", locale)).replies.iter().map(body_text).collect()
}

/// The consent text the flows define for `reply` in `locale`.
pub fn consent_text(reply: parley::domain::consent::ConsentReply, locale: &str) -> String {
    let flows = parley::domain::flows::Flows::embedded().unwrap();
    body_text(flows.for_locale("default", locale).consent().reply(reply))
}

impl System {
    /// `GET /consent/{channel}/{address}` with the admin key.
    pub async fn consent_of(&self, channel: &str, address: &str) -> Value {
        let r = self
            .http
            .get(self.url(&format!("/consent/{channel}/{address}")))
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// The customer taps a button (or list row) through the sandbox, as WhatsApp would send it.
    pub async fn tap(&self, channel: &str, from: &str, payload: &str, title: &str) {
        self.chat(json!({"channel": channel, "from": from, "payload": payload, "title": title})).await;
    }

    /// The customer types `text` through the sandbox.
    pub async fn say(&self, channel: &str, from: &str, text: &str) {
        self.chat(json!({"channel": channel, "from": from, "text": text})).await;
    }

    /// Posts to `/sandbox/chat`, which signs a real webhook and asserts Parley accepted it.
    async fn chat(&self, body: Value) {
        let r = self.http.post(self.url("/sandbox/chat")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], 200, "webhook answered {v}");
    }

    pub async fn opt_in(&self, body: Value) -> reqwest::Response {
        self.http.post(self.url("/consent/optin")).json(&body).send().await.unwrap()
    }
}

pub const SHOPIFY_SECRET: &str = "local-shopify-secret";
pub const SHOPIFY_DOMAIN: &str = "parley-demo.myshopify.com";
pub const WOO_SECRET: &str = "local-woocommerce-secret";

impl System {
    /// Posts a Shopify delivery signed like Shopify (base64 HMAC of the raw body).
    pub async fn post_shopify(&self, topic: &str, body: &str, domain: &str) -> reqwest::Response {
        self.post_shopify_delivery(topic, body, domain, &uuid::Uuid::new_v4().to_string()).await
    }

    /// [`Self::post_shopify`] with a given `X-Shopify-Webhook-Id` (a retry keeps it).
    pub async fn post_shopify_delivery(
        &self,
        topic: &str,
        body: &str,
        domain: &str,
        webhook_id: &str,
    ) -> reqwest::Response {
        let sig = sign(Encoding::Base64, SHOPIFY_SECRET, body.as_bytes());
        self.http
            .post(self.url("/webhooks/shopify"))
            .header("content-type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Hmac-Sha256", sig)
            .header("X-Shopify-Shop-Domain", domain)
            .header("X-Shopify-Webhook-Id", webhook_id)
            .header("X-Shopify-Event-Id", uuid::Uuid::new_v4().to_string())
            .header("X-Shopify-API-Version", "2026-07")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Posts a WooCommerce delivery signed like WooCommerce.
    pub async fn post_woo(&self, topic: &str, body: &str) -> reqwest::Response {
        self.post_woo_delivery(topic, body, &uuid::Uuid::new_v4().simple().to_string()).await
    }

    /// [`Self::post_woo`] with a given `X-WC-Webhook-Delivery-ID` (a retry keeps it).
    pub async fn post_woo_delivery(&self, topic: &str, body: &str, delivery_id: &str) -> reqwest::Response {
        let sig = sign(Encoding::Base64, WOO_SECRET, body.as_bytes());
        let (resource, event) = topic.split_once('.').unwrap_or((topic, ""));
        self.http
            .post(self.url("/webhooks/woocommerce"))
            .header("content-type", "application/json")
            .header("X-WC-Webhook-Source", format!("{}/sandbox/woo/", self.base))
            .header("X-WC-Webhook-Topic", topic)
            .header("X-WC-Webhook-Resource", resource)
            .header("X-WC-Webhook-Event", event)
            .header("X-WC-Webhook-Signature", sig)
            .header("X-WC-Webhook-ID", "3")
            .header("X-WC-Webhook-Delivery-ID", delivery_id)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Drives the sandbox shop (`/sandbox/shop/…`) and returns its JSON answer.
    pub async fn shop(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(self.url(&format!("/sandbox/shop/{path}"))).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "sandbox shop {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn run_function(&self, name: &str) -> Value {
        let r = self.http.post(self.url(&format!("/sandbox/run/{name}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// A WhatsApp customer who confirmed the double opt-in in the chat; returns the number.
    pub async fn opted_in_customer(&self) -> String {
        let to = customer();
        self.say("whatsapp", &to, "START").await;
        self.wait_for_messages(&to, 1).await;
        self.tap("whatsapp", &to, "consent:yes", "Ja").await;
        self.wait_for_messages(&to, 2).await;
        to
    }
}

impl System {
    /// The demo catalog `make dev` starts with (T-Shirt `TSHIRT-M` / `TSHIRT-L`), created in the
    /// sandbox shop and so, by its signed product webhook, in Parley's catalog.
    pub async fn seed_demo_catalog(&self) {
        parley_local::sandbox_shop::seed_demo_catalog(&self.base, &self.http).await.expect("demo catalog seeded");
    }

    /// Creates the template's tables and queues again where a test deleted them (the
    /// provisioner reuses what exists and recreates what is missing, under the same names).
    pub async fn reprovision(&self) -> parley_local::provision::Provisioned {
        let table = self.running.resources.table("Table").unwrap();
        let prefix = table.strip_suffix("-Table").expect("local table names are <prefix>-Table");
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let (ddb, sqs) = (self.store().client().clone(), self.running.app.producer.client().clone());
        parley_local::provision::provision(template.as_ref(), prefix, &ddb, &sqs).await.unwrap()
    }

    /// The bodies in the template queue `logical` (e.g. `OutboundDLQ`): polls until at least one
    /// arrives or `limit` has passed, then returns what one receive got (possibly nothing).
    pub async fn queue_bodies(&self, logical: &str, limit: Duration) -> Vec<String> {
        let url = self.running.resources.queue(logical).expect("a queue of the template").to_string();
        let sqs = self.running.app.producer.client();
        let start = Instant::now();
        loop {
            let got = sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send();
            let bodies: Vec<String> =
                got.await.unwrap().messages().iter().filter_map(|m| m.body().map(str::to_string)).collect();
            if !bodies.is_empty() || start.elapsed() >= limit {
                return bodies;
            }
        }
    }
}

/// A repository fixture from `events/`.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

impl System {
    /// An order in the sandbox shop whose webhook was held back, and its webhook body (the
    /// order as the platform sends it), for posting it by hand.
    pub async fn withheld_order(&self, platform: &str, phone: &str) -> (serde_json::Value, String) {
        let order = self
            .shop(
                "orders",
                json!({"platform": platform, "phone": format!("+{phone}"), "first_name": "Erika", "currency": "EUR",
                       "country": "DE", "status": "paid", "deliver": false,
                       "items": [{"sku": "TSHIRT-M", "title": "T-Shirt M", "quantity": 2, "price": "19.90"}]}),
            )
            .await;
        let id = order["order_id"].as_u64().expect("order id");
        let r = self.http.get(self.url(&format!("/sandbox/shop/orders/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (order, v["order"].to_string())
    }

    /// Writes an inbound/delivery claim exactly as an invocation that was killed mid-work leaves
    /// it: `claimed`, lease until `lease_until`, never finished nor released.
    pub async fn plant_claim(&self, pk: &str, lease_until: i64) {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        self.store()
            .client()
            .put_item()
            .table_name(self.store().table())
            .item("pk", S(pk.to_string()))
            .item("sk", S("IN".into()))
            .item("status", S("claimed".into()))
            .item("lease_until", N(lease_until.to_string()))
            .item("claimed_at", N(now().to_string()))
            .item("ttl", N((now() + 86_400).to_string()))
            .send()
            .await
            .expect("claim planted");
    }
}

/// The agent API with sign-in, as the console and the team use it. Tokens come from the sandbox's
/// stand-in for Cognito; every `/agent/` route except the console and `/agent/config` needs one
/// (the local runtime checks it as API Gateway's JWT authorizer does).
///
/// ```ignore
/// let anna = sys.agent_token("anna@example.com", "agent").await;
/// let r = sys.agent_get(&anna, "/agent/conversations?state=waiting").await;
/// let r = sys.agent_post(&anna, "/agent/conversations/whatsapp/4915123456789/claim", json!({})).await;
/// ```
impl System {
    /// A bearer token for `agent` (an e-mail) in `role` (`"agent"` or `"admin"`), from
    /// `POST /sandbox/agent-token` — an ID token as Cognito issues it after sign-in, valid 1 h.
    pub async fn agent_token(&self, agent: &str, role: &str) -> String {
        let r = self
            .http
            .post(self.url("/sandbox/agent-token"))
            .json(&json!({"agent": agent, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "agent token for role {role}");
        let v: Value = r.json().await.unwrap();
        v["token"].as_str().expect("a token").to_string()
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn agent_get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    /// `POST path` with a JSON body and `Authorization: Bearer <token>`.
    pub async fn agent_post(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }
}

/// Tracked links, made as a campaign's fan-out makes them: by the link service over the store.
impl System {
    fn whatsapp(digits: &str) -> parley::domain::ContactId {
        parley::domain::ContactId::from_path("whatsapp", digits).expect("a WhatsApp number")
    }

    /// The tracked link of `url` for the WhatsApp contact `digits` in `campaign` (whose
    /// `utm_campaign` is the campaign id itself).
    pub async fn track_link(&self, campaign: &str, digits: &str, url: &str) -> parley::links::TrackedLink {
        let links = self.running.app.links().expect("PARLEY_LINK_KEY and the public URL are set");
        let campaign = parley::links::LinkCampaign { id: campaign, utm_campaign: campaign };
        links.track_url(campaign, &Self::whatsapp(digits), url, now()).await.expect("a trackable URL")
    }

    /// `text` with its URLs tracked for the WhatsApp contact `digits` in `campaign`.
    pub async fn track_text(&self, campaign: &str, digits: &str, text: &str) -> String {
        let links = self.running.app.links().expect("PARLEY_LINK_KEY and the public URL are set");
        let campaign = parley::links::LinkCampaign { id: campaign, utm_campaign: campaign };
        links.track(campaign, &Self::whatsapp(digits), text, now()).await.expect("the links are stored")
    }
}
