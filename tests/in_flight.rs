//! In flight is not done: a delivery (or a send) whose claim an invocation still holds — or held
//! when it was killed — is answered "retry later", never as a finished duplicate; once the lease
//! has run out the retry takes the claim over and is processed exactly once.
use parley::domain::{Channel, InboundMessageId};
use parley::store::keys;
use parley_tests::*;
use std::time::Duration;

/// Each test system's claims last this long (instead of the 30 s default).
const LEASE: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(1500);

async fn system() -> System {
    System::start_with(|o| o.claim_lease = Some(LEASE)).await
}

/// Sleeps until the unix second `t` has passed.
async fn sleep_past(t: i64) {
    while now() <= t {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_retry_later(r: &reqwest::Response) {
    assert_eq!(r.status(), 503, "a live claim must be answered with a retryable status");
    let after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=LEASE.as_secs() + 1).contains(&after), "Retry-After {after}");
}

#[tokio::test]
async fn a_meta_message_held_by_a_killed_invocation_is_retried_not_dropped() {
    let sys = system().await;
    let to = customer();
    let id = wamid();
    let lease_until = now() + LEASE.as_secs() as i64;
    sys.plant_claim(&keys::inbound_pk(Channel::WhatsApp, &InboundMessageId::parse(id.clone()).unwrap()), lease_until)
        .await;
    let body = wa_text(&to, &id, "Rückgabe");

    // Inside the lease: not a 200 (Meta would never retry that), and nothing is sent.
    assert_retry_later(&sys.post_meta(&body).await);
    sys.assert_settles_at(&to, 0, Duration::from_millis(500)).await;

    // After the lease: Meta's retry takes the claim over and is answered once.
    sleep_past(lease_until).await;
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let got = sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("Rückgabe"), "de")[0]);
    // Once done, a further copy is the plain duplicate it now is.
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    sys.assert_settles_at(&to, 1, QUIET).await;
    sys.stop().await;
}

async fn shop_delivery_held_then_taken_over(platform: &str) {
    let sys = system().await;
    let to = sys.opted_in_customer().await;
    let (order, body) = sys.withheld_order(platform, &to).await;
    let delivery_id = uuid::Uuid::new_v4().simple().to_string();
    let shops = &sys.running.app.shops;
    let shop = if platform == "shopify" { shops.shopify_domain.clone() } else { shops.woo_host() };
    let lease_until = now() + LEASE.as_secs() as i64;
    sys.plant_claim(&keys::shop_delivery_pk(platform, &shop, &delivery_id), lease_until).await;
    let post = || async {
        if platform == "shopify" {
            sys.post_shopify_delivery("orders/create", &body, SHOPIFY_DOMAIN, &delivery_id).await
        } else {
            sys.post_woo_delivery("order.created", &body, &delivery_id).await
        }
    };

    assert_retry_later(&post().await);
    // The opt-in conversation's two messages, and no confirmation yet.
    sys.assert_settles_at(&to, 2, Duration::from_millis(500)).await;

    sleep_past(lease_until).await;
    assert_eq!(post().await.status(), 200);
    let got = sys.assert_settles_at(&to, 3, QUIET).await;
    assert!(got[2]["text"].as_str().unwrap().contains(order["name"].as_str().unwrap()), "{got:#?}");
    // Finished now: the platform's next retry is a 200 duplicate and sends nothing.
    assert_eq!(post().await.status(), 200);
    sys.assert_settles_at(&to, 3, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_shopify_delivery_held_by_a_killed_invocation_is_retried_not_dropped() {
    shop_delivery_held_then_taken_over("shopify").await;
}

#[tokio::test]
async fn a_woocommerce_delivery_held_by_a_killed_invocation_is_retried_not_dropped() {
    shop_delivery_held_then_taken_over("woocommerce").await;
}

#[tokio::test]
async fn a_send_held_by_a_killed_sender_is_redelivered_not_deleted() {
    let sys = system().await;
    let to = customer();
    let id = wamid();
    // The reply's send record as a sender killed mid-send leaves it: `sending`, lease running.
    let reply = parley::api::meta_webhook::reply_id(Channel::WhatsApp, &id, 0);
    let lease_until = now() + LEASE.as_secs() as i64;
    {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        sys.store()
            .client()
            .put_item()
            .table_name(sys.store().table())
            .item("pk", S(keys::outbound_pk(&reply)))
            .item("sk", S("OUT".into()))
            .item("status", S("sending".into()))
            .item("lease_until", N(lease_until.to_string()))
            .item("attempts", N("1".into()))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(sys.post_meta(&wa_text(&to, &id, "Rückgabe")).await.status(), 200);
    // The queued reply meets the live claim: reported failed (kept in the queue), not sent.
    let start = std::time::Instant::now();
    while now() < lease_until {
        assert!(sys.messages_to(&to).await.is_empty(), "sent while another send held the claim");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(start.elapsed() >= Duration::from_secs(1));
    // SQS brings it back after the lease: sent exactly once.
    let got = sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("Rückgabe"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn a_failed_part_sends_nothing_so_the_retry_keeps_the_contacts_order() {
    let sys = system().await;
    let to = customer();
    let (first, second) = (wamid(), wamid());
    let lease_until = now() + LEASE.as_secs() as i64;
    sys.plant_claim(
        &keys::inbound_pk(Channel::WhatsApp, &InboundMessageId::parse(first.clone()).unwrap()),
        lease_until,
    )
    .await;
    // One delivery, two messages of one contact: the first is still held by a killed invocation.
    let t = now();
    let msg = |id: &str, ts: i64, text: &str| serde_json::json!({"from": to, "id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": text}});
    let mut delivery: serde_json::Value =
        serde_json::from_str(&wa_delivery(&to, &first, t, serde_json::json!({"type": "text", "text": {"body": "x"}})))
            .unwrap();
    delivery["entry"][0]["changes"][0]["value"]["messages"] =
        serde_json::json!([msg(&first, t, "Lieferzeit"), msg(&second, t + 1, "Rückgabe")]);
    let body = delivery.to_string();

    // The delivery fails as a whole: the second message's reply must not go out ahead of the first.
    assert_retry_later(&sys.post_meta(&body).await);
    sys.assert_settles_at(&to, 0, QUIET).await;

    sleep_past(lease_until).await;
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let got = sys.assert_settles_at(&to, 2, QUIET).await;
    let texts: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
    let want: Vec<String> =
        ["Lieferzeit", "Rückgabe"].iter().map(|t| expected_reply(&text_content(t), "de")[0].clone()).collect();
    assert_eq!(texts, want);
    sys.stop().await;
}
