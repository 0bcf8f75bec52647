//! Shop order events end to end: sandbox shop → signed webhook → Parley → WhatsApp messages.
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

fn texts(msgs: &[serde_json::Value]) -> Vec<String> {
    msgs.iter().map(|m| m["text"].as_str().unwrap_or_default().to_string()).collect()
}

async fn place(sys: &System, platform: &str, phone: &str, deliver: bool) -> serde_json::Value {
    sys.shop(
        "orders",
        json!({"platform": platform, "phone": format!("+{phone}"), "first_name": "Erika", "currency": "EUR",
               "country": "DE", "status": "paid", "deliver": deliver,
               "items": [{"sku": "TSHIRT-M", "title": "T-Shirt M", "quantity": 2, "price": "19.90"},
                         {"sku": "CAP", "title": "Cap", "quantity": 1, "price": "12.50"}]}),
    )
    .await
}

#[tokio::test]
async fn shopify_order_lifecycle_confirmation_shipping_correction_delivery() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    let order = place(&sys, "shopify", &to, true).await;
    assert_eq!(order["webhook_status"], 200);
    let name = order["name"].as_str().unwrap().to_string();
    let id = order["order_id"].as_u64().unwrap();
    let got = sys.wait_for_messages(&to, 3).await;
    let confirmation = &got[2]["text"].as_str().unwrap();
    assert!(confirmation.contains(&name), "{confirmation}");
    assert!(confirmation.contains("52,30"), "total in German format: {confirmation}");

    let ship = json!({"tracking_company": "DHL", "tracking_number": "00340434161234567890",
                      "tracking_url": "https://www.dhl.de/de/privatkunden/dhl-sendungsverfolgung.html?piececode=00340434161234567890"});
    assert_eq!(sys.shop(&format!("orders/{id}/fulfill"), ship).await["webhook_status"], 200);
    let got = sys.wait_for_messages(&to, 4).await;
    let shipped = got[3]["text"].as_str().unwrap();
    assert!(
        shipped.contains("DHL") && shipped.contains("00340434161234567890") && shipped.contains("https://www.dhl.de"),
        "{shipped}"
    );

    // The shop corrects the tracking number: one correction message.
    let fix = json!({"tracking_company": "DHL", "tracking_number": "00340434169999999999",
                     "tracking_url": "https://www.dhl.de/de/privatkunden/dhl-sendungsverfolgung.html?piececode=00340434169999999999"});
    sys.shop(&format!("orders/{id}/fulfill"), fix.clone()).await;
    let got = sys.wait_for_messages(&to, 5).await;
    assert!(got[4]["text"].as_str().unwrap().contains("00340434169999999999"));

    let delivered =
        json!({"tracking_company": "DHL", "tracking_number": "00340434169999999999", "shipment_status": "delivered"});
    sys.shop(&format!("orders/{id}/fulfill"), delivered.clone()).await;
    let got = sys.wait_for_messages(&to, 6).await;
    assert!(!texts(&got[..5]).contains(&got[5]["text"].as_str().unwrap().to_string()));
    // The same again (a retry, a late duplicate): nothing new.
    sys.shop(&format!("orders/{id}/fulfill"), delivered).await;
    sys.shop(&format!("orders/{id}/redeliver"), json!({"topic": "orders/create"})).await;
    sys.assert_settles_at(&to, 6, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn cancellation_is_announced_once_and_ends_the_order() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    let order = place(&sys, "shopify", &to, true).await;
    let id = order["order_id"].as_u64().unwrap();
    sys.wait_for_messages(&to, 3).await;
    // A parcel goes out, but its webhook is held back until after the cancellation.
    let ship = json!({"tracking_company": "DHL", "tracking_number": "1Z999", "deliver": false});
    sys.shop(&format!("orders/{id}/fulfill"), ship).await;
    sys.shop(&format!("orders/{id}/cancel"), json!({})).await;
    let got = sys.wait_for_messages(&to, 4).await;
    assert!(got[3]["text"].as_str().unwrap().contains(order["name"].as_str().unwrap()));
    // The late shipment and a repeated cancellation send nothing.
    sys.shop(&format!("orders/{id}/redeliver"), json!({"topic": "fulfillments/create"})).await;
    sys.shop(&format!("orders/{id}/redeliver"), json!({"topic": "orders/cancelled"})).await;
    sys.assert_settles_at(&to, 4, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_fulfillment_before_its_order_sends_only_the_shipping_message() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    // The order webhook is lost for now; the fulfillment arrives first.
    let order = place(&sys, "shopify", &to, false).await;
    let id = order["order_id"].as_u64().unwrap();
    sys.shop(&format!("orders/{id}/fulfill"), json!({"tracking_company": "UPS", "tracking_number": "1Z827WK74630"}))
        .await;
    sys.assert_settles_at(&to, 2, QUIET).await;
    // The late orders/create: Parley now knows whom to tell — the shipment, not a stale confirmation.
    sys.shop(&format!("orders/{id}/redeliver"), json!({"topic": "orders/create"})).await;
    let got = sys.assert_settles_at(&to, 3, QUIET).await;
    assert!(got[2]["text"].as_str().unwrap().contains("1Z827WK74630"), "{got:#?}");
    sys.stop().await;
}

#[tokio::test]
async fn woocommerce_order_and_completion_with_tracking() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    let order = place(&sys, "woocommerce", &to, true).await;
    assert_eq!(order["webhook_status"], 200);
    let id = order["order_id"].as_u64().unwrap();
    let got = sys.wait_for_messages(&to, 3).await;
    assert!(got[2]["text"].as_str().unwrap().contains(order["name"].as_str().unwrap()));
    sys.shop(&format!("orders/{id}/fulfill"), json!({"tracking_company": "DHL", "tracking_number": "JJD000390007"}))
        .await;
    let got = sys.wait_for_messages(&to, 4).await;
    assert!(got[3]["text"].as_str().unwrap().contains("JJD000390007"));
    sys.assert_settles_at(&to, 4, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_missed_woocommerce_delivery_is_recovered_by_the_reconciler_exactly_once() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    place(&sys, "woocommerce", &to, false).await;
    sys.assert_settles_at(&to, 2, QUIET).await;
    let report = sys.run_function("shop-reconciler").await;
    let woo = report["reports"].as_array().unwrap().iter().find(|r| r["platform"] == "woocommerce").unwrap().clone();
    assert!(woo["error"].is_null(), "{report}");
    assert!(woo["orders_seen"].as_u64().unwrap() >= 1);
    sys.wait_for_messages(&to, 3).await;
    // Running again, or the late webhook itself, changes nothing.
    sys.run_function("shop-reconciler").await;
    sys.assert_settles_at(&to, 3, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn the_reconciler_reports_a_removed_subscription() {
    let sys = System::start().await;
    sys.shop("webhooks/shopify/remove", json!({"topic": "orders/create"})).await;
    let report = sys.run_function("shop-reconciler").await;
    let shopify = report["reports"].as_array().unwrap().iter().find(|r| r["platform"] == "shopify").unwrap().clone();
    assert_eq!(shopify["missing_subscriptions"], json!(["orders/create"]), "{report}");
    let woo = report["reports"].as_array().unwrap().iter().find(|r| r["platform"] == "woocommerce").unwrap().clone();
    assert_eq!(woo["missing_subscriptions"], json!([]), "{report}");
    sys.stop().await;
}

#[tokio::test]
async fn the_reconciler_requires_the_product_and_checkout_topics() {
    // Without them a real shop gets no chat catalog and no abandoned-checkout reminders, and
    // nothing else would say so.
    let sys = System::start().await;
    let shopify = ["products/create", "products/update", "checkouts/create", "checkouts/update"];
    let woo = ["product.created", "product.updated"];
    for topic in shopify {
        sys.shop("webhooks/shopify/remove", json!({ "topic": topic })).await;
    }
    for topic in woo {
        sys.shop("webhooks/woocommerce/remove", json!({ "topic": topic })).await;
    }
    let report = sys.run_function("shop-reconciler").await;
    let of = |platform: &str| {
        report["reports"].as_array().unwrap().iter().find(|r| r["platform"] == platform).unwrap().clone()
    };
    assert_eq!(of("shopify")["missing_subscriptions"], json!(shopify), "{report}");
    assert_eq!(of("woocommerce")["missing_subscriptions"], json!(woo), "{report}");
    sys.stop().await;
}

#[tokio::test]
async fn orders_without_consent_or_usable_phone_send_nothing() {
    let sys = System::start().await;
    let stranger = customer();
    let order = place(&sys, "shopify", &stranger, true).await;
    assert_eq!(order["webhook_status"], 200);
    sys.assert_settles_at(&stranger, 0, QUIET).await;

    for file in ["shopify/orders_create_no_phone.json", "shopify/orders_create_invalid_phone.json"] {
        let r = sys.post_shopify("orders/create", &fixture(file), SHOPIFY_DOMAIN).await;
        assert_eq!(r.status(), 200, "{file}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn shop_webhook_front_door() {
    let sys = System::start().await;
    let body = fixture("shopify/orders_create.json");
    // Bad signature → 401, wrong shop → 403, unknown topic → 200, oversize → 413.
    let r = sys
        .http
        .post(sys.url("/webhooks/shopify"))
        .header("X-Shopify-Topic", "orders/create")
        .header("X-Shopify-Hmac-Sha256", "bm90IHRoZSByaWdodCBzaWduYXR1cmUgYXQgYWxsISE=")
        .header("X-Shopify-Shop-Domain", SHOPIFY_DOMAIN)
        .header("X-Shopify-Webhook-Id", "w-1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sys.post_shopify("orders/create", &body, "someone-else.myshopify.com").await.status(), 403);
    assert_eq!(sys.post_shopify("app/uninstalled", "{\"id\":1}", SHOPIFY_DOMAIN).await.status(), 200);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(6 * 1024 * 1024 + 10));
    assert_eq!(sys.post_shopify("orders/create", &big, SHOPIFY_DOMAIN).await.status(), 413);
    assert_eq!(sys.post_shopify("orders/create", "{\"id\":", SHOPIFY_DOMAIN).await.status(), 400);
    let no_topic = sys
        .http
        .post(sys.url("/webhooks/shopify"))
        .header(
            "X-Shopify-Hmac-Sha256",
            parley::channels::signature::sign(
                parley::channels::signature::Encoding::Base64,
                SHOPIFY_SECRET,
                body.as_bytes(),
            ),
        )
        .header("X-Shopify-Shop-Domain", SHOPIFY_DOMAIN)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_topic.status(), 400);

    // WooCommerce: the unsigned setup ping gets exactly 200; an unsigned order does not.
    let ping = sys
        .http
        .post(sys.url("/webhooks/woocommerce"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("webhook_id=3")
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let unsigned = sys
        .http
        .post(sys.url("/webhooks/woocommerce"))
        .body(fixture("woocommerce/order_created.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // PHP-escaped bodies (`\/`) verify on their raw bytes.
    let escaped = fixture("woocommerce/order_created_escaped.json");
    assert!(escaped.contains("\\/"));
    assert_eq!(sys.post_woo("order.created", &escaped).await.status(), 200);
    assert_eq!(sys.post_woo("coupon.created", "{\"id\":5}").await.status(), 200);
    sys.stop().await;
}

#[tokio::test]
async fn shop_consent_and_redaction() {
    let sys = System::start().await;
    // A confirmed (double) opt-in recorded by Shopify counts, with the shop as its source.
    let consent = fixture("shopify/customers_marketing_consent_update.json");
    let phone = serde_json::from_str::<serde_json::Value>(&consent).unwrap()["phone"].as_str().unwrap().to_string();
    let digits = phone.trim_start_matches('+').to_string();
    assert_eq!(sys.post_shopify("customers_marketing_consent/update", &consent, SHOPIFY_DOMAIN).await.status(), 200);
    let c = sys.consent_of("whatsapp", &digits).await;
    assert_eq!(c["state"], "confirmed", "{c}");
    assert_eq!(c["events"][0]["source"], "shop");

    // customers/redact erases the person.
    let redact = fixture("shopify/customers_redact.json");
    assert_eq!(sys.post_shopify("customers/redact", &redact, SHOPIFY_DOMAIN).await.status(), 200);
    let redacted_phone =
        serde_json::from_str::<serde_json::Value>(&redact).unwrap()["customer"]["phone"].as_str().unwrap().to_string();
    // The two fixtures name the same person: the consent just recorded is what must go.
    assert_eq!(redacted_phone.trim_start_matches('+'), digits);
    let c = sys.consent_of("whatsapp", &digits).await;
    assert_eq!((c["state"].as_str(), c["events"].as_array().unwrap().len()), (Some("none"), 0), "{c}");
    sys.stop().await;
}

/// 50 deliveries of one order at once, each with its own delivery id (Shopify sends
/// orders/create, orders/paid and orders/updated together; platforms retry): all accepted, one
/// confirmation — an unchanged order state is not rewritten, and a write conflict is retried
/// inside the request.
async fn fifty_concurrent_deliveries_of_one_order(platform: &str) {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    let (order, body) = sys.withheld_order(platform, &to).await;
    let posts = (0..50).map(|_| async {
        if platform == "shopify" {
            sys.post_shopify("orders/updated", &body, SHOPIFY_DOMAIN).await
        } else {
            sys.post_woo("order.updated", &body).await
        }
    });
    let statuses: Vec<u16> = futures::future::join_all(posts).await.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = sys.assert_settles_at(&to, 3, QUIET).await;
    assert!(got[2]["text"].as_str().unwrap().contains(order["name"].as_str().unwrap()), "{got:#?}");
    sys.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_shopify_order_give_one_confirmation_and_no_errors() {
    fifty_concurrent_deliveries_of_one_order("shopify").await;
}

#[tokio::test]
async fn fifty_concurrent_deliveries_of_one_woocommerce_order_give_one_confirmation_and_no_errors() {
    fifty_concurrent_deliveries_of_one_order("woocommerce").await;
}
