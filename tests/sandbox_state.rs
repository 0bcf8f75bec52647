//! The sandbox's state panel (`GET /sandbox/state`) against the whole local system: what it
//! shows is what the store holds, including a customer's message sent straight to the webhook.
use parley_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn state(sys: &System, channel: &str, address: &str) -> Value {
    let r = reqwest::get(sys.url(&format!("/sandbox/state?channel={channel}&address={address}"))).await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Polls the state until `done` holds (the functions work asynchronously behind the queues).
async fn state_until(sys: &System, address: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = state(sys, "whatsapp", address).await;
        if done(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "the state never showed {what}: {s:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_panel_shows_consent_window_cart_order_ticks_and_curl_messages() {
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    sys.seed_demo_catalog().await;
    let to = customer();

    // Unknown so far: an empty state, not an error.
    let s = state(&sys, "whatsapp", &to).await;
    assert_eq!(s["known"], false);
    assert_eq!(s["window"]["open"], false);
    assert_eq!(s["conversation"], json!([]));

    // A message straight to the webhook, as README's curl sends it: the store has it.
    let r = sys.post_meta(&wa_text(&to, &wamid(), "Wie lange ist die Lieferzeit?")).await;
    assert_eq!(r.status(), 200);
    let s = state_until(&sys, &to, "the curl message and its answer", |s| {
        s["conversation"].as_array().is_some_and(|c| c.len() >= 2)
    })
    .await;
    let first = &s["conversation"][0];
    assert_eq!((first["direction"].as_str(), first["via"].as_str()), (Some("in"), Some("webhook")), "{first:#}");
    assert_eq!(first["text"], "Wie lange ist die Lieferzeit?");
    let answer = &s["conversation"][1];
    assert_eq!(answer["direction"], "out");
    assert!(answer["shown"]["buttons"].as_array().is_some_and(|b| !b.is_empty()), "{answer:#}");
    assert_eq!(s["known"], true);
    assert_eq!(s["window"]["open"], true);
    let left = s["window"]["seconds_left"].as_i64().unwrap();
    assert!(left > 23 * 3600 && left <= 24 * 3600, "{left}");
    // The sandbox posts `sent` and `delivered` back: the answer's tick moves.
    state_until(&sys, &to, "the answer delivered", |s| s["conversation"][1]["status"] == "delivered").await;

    // Double opt-in in the chat: both purposes confirmed, each change audited.
    sys.say("whatsapp", &to, "START").await;
    sys.wait_for_messages(&to, 2).await;
    sys.tap("whatsapp", &to, "consent:yes", "Ja").await;
    let s = state_until(&sys, &to, "marketing consent", |s| s["consent"]["purposes"]["marketing"] == "confirmed").await;
    let events = s["consent"]["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["purpose"] == "marketing" && e["to"] == "confirmed" && e["source"] == "chat"));

    // Cart and checkout link.
    sys.say("whatsapp", &to, "add TSHIRT-M 2").await;
    let s = state_until(&sys, &to, "the cart", |s| s["cart"]["lines"].as_array().is_some_and(|l| !l.is_empty())).await;
    assert_eq!(s["cart"]["lines"][0]["sku"], "TSHIRT-M");
    assert_eq!(s["cart"]["lines"][0]["quantity"], 2);
    assert_eq!(s["cart"]["totals"][0]["minor"], 3980);
    sys.say("whatsapp", &to, "kasse").await;
    let s = state_until(&sys, &to, "the checkout link", |s| s["cart"]["checkout_url"].is_string()).await;
    let url = s["cart"]["checkout_url"].as_str().unwrap();
    let sent = sys.messages_to(&to).await;
    assert!(sent.iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains(url))), "{url} not in {sent:#?}");

    // The order through the shop's webhook: converted cart, confirmation in the order's timeline.
    let cart_id = s["cart"]["id"].as_str().unwrap().to_string();
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": format!("+{to}"), "attributes": {"parley_cart": cart_id},
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200);
    let s = state_until(&sys, &to, "the order confirmation delivered", |s| {
        s["orders"][0]["notifications"][0]["status"] == "delivered"
    })
    .await;
    assert_eq!(s["orders"][0]["name"], order["name"]);
    assert_eq!(s["orders"][0]["stage"], "confirmed");
    assert_eq!(s["cart"]["status"], "converted");

    // A failed status with Graph's code: the message shows it with a plain reason.
    let last_out =
        s["conversation"].as_array().unwrap().iter().rev().find(|m| m["direction"] == "out").unwrap().clone();
    let provider_id = last_out["shown"]["id"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(sys.url("/sandbox/status"))
        .json(&json!({"id": provider_id, "status": "failed", "code": 131026}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = state_until(&sys, &to, "the failed tick", |s| {
        s["conversation"].as_array().unwrap().iter().any(|m| m["id"] == last_out["id"] && m["status"] == "failed")
    })
    .await;
    let failed = s["conversation"].as_array().unwrap().iter().find(|m| m["id"] == last_out["id"]).unwrap();
    assert_eq!(failed["error"]["code"], 131026);
    assert!(failed["error"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{failed:#}");

    // Queue depths per queue and DLQ, and the metric totals the functions counted.
    let queues = s["queues"].as_array().expect("queue stats");
    for q in ["outbound", "inbound", "campaign", "bridge"] {
        assert!(queues.iter().any(|x| x["queue"] == q && x["dlq"] == false), "{q} missing: {queues:#?}");
    }
    assert!(queues.iter().any(|x| x["dlq"] == true));
    assert!(s["metrics"].as_object().is_some_and(|m| !m.is_empty()), "{:#}", s["metrics"]);
    sys.stop().await;
}

#[tokio::test]
async fn bad_addresses_are_refused_clearly() {
    let sys = System::start().await;
    for query in ["", "?channel=whatsapp", "?channel=telegram&address=491511", "?channel=whatsapp&address=12"] {
        let r = reqwest::get(sys.url(&format!("/sandbox/state{query}"))).await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}: {body}");
    }
    sys.stop().await;
}
