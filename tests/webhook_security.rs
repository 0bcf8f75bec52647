//! The webhook's front door: handshake, signatures (with rotation), size limits, bad input.
use parley::channels::signature::{sign, Encoding};
use parley_tests::*;
use std::time::Duration;

#[tokio::test]
async fn verify_handshake_echoes_the_challenge_and_rejects_a_wrong_token() {
    let sys = System::start().await;
    let ok = sys
        .http
        .get(sys.url("/webhooks/meta"))
        .query(&[("hub.mode", "subscribe"), ("hub.verify_token", VERIFY_TOKEN), ("hub.challenge", "1158201444")])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(ok.text().await.unwrap(), "1158201444");

    let wrong = sys
        .http
        .get(sys.url("/webhooks/meta"))
        .query(&[("hub.mode", "subscribe"), ("hub.verify_token", "nope"), ("hub.challenge", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let no_mode = sys.http.get(sys.url("/webhooks/meta")).send().await.unwrap();
    assert_eq!(no_mode.status(), 400);
    sys.stop().await;
}

#[tokio::test]
async fn signatures_current_previous_missing_bad_and_malformed() {
    let sys = System::start().await;
    let to = customer();
    let current = wa_text(&to, &wamid(), "hallo");
    assert_eq!(sys.post_meta(&current).await.status(), 200);

    // During a rotation the previous secret still passes.
    let rotated = wa_text(&to, &wamid(), "hallo");
    let sig = sign(Encoding::PrefixedHex, PREVIOUS_APP_SECRET, rotated.as_bytes());
    assert_eq!(sys.post_meta_with(&rotated, Some(&sig)).await.status(), 200);

    let rejected = wa_text(&to, &wamid(), "hallo");
    let other = sign(Encoding::PrefixedHex, "some-other-secret", rejected.as_bytes());
    let good = sign(Encoding::PrefixedHex, APP_SECRET, rejected.as_bytes());
    for sig in [None, Some(other.as_str()), Some("sha256=deadbeef"), Some("sha1=abc"), Some(&good[7..]), Some("")] {
        let r = sys.post_meta_with(&rejected, sig).await;
        assert_eq!(r.status(), 401, "signature {sig:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "bad_signature");
    }
    // A signature over other bytes (one changed character) fails too.
    let tampered = rejected.replace("hallo", "hallO");
    assert_eq!(sys.post_meta_with(&tampered, Some(&good)).await.status(), 401);

    // Two accepted messages → two replies; the rejected ones stored and sent nothing.
    sys.assert_settles_at(&to, 2, Duration::from_millis(1500)).await;
    sys.stop().await;
}

#[tokio::test]
async fn escaped_unicode_and_emoji_are_verified_on_the_raw_bytes() {
    let sys = System::start().await;
    let to = customer();
    // Meta signs the escaped form; the raw bytes must be what is hashed.
    let body = wa_text(&to, &wamid(), "PLACEHOLDER")
        .replace("PLACEHOLDER", r"Lieferzeit? \u00e4\u00f6\u00fc \ud83d\ude9a a\/b");
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let msgs = sys.wait_for_messages(&to, 1).await;
    assert_eq!(msgs[0]["text"], expected_reply(&text_content("Lieferzeit? äöü 🚚 a/b"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413_and_non_json_gets_400() {
    let sys = System::start().await;
    let big = format!("{{\"object\":\"page\",\"pad\":\"{}\"}}", "x".repeat(6 * 1024 * 1024 + 10));
    let r = sys.post_meta(&big).await;
    assert_eq!(r.status(), 413);

    for body in ["not json", "{\"object\":\"whatsapp_business_account\",\"entry\":[", "[1,2]", ""] {
        let r = sys.post_meta(body).await;
        assert_eq!(r.status(), 400, "body {body:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "bad_request");
    }
    // Wrong method on the route.
    let r = sys.http.put(sys.url("/webhooks/meta")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = sys.http.get(sys.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    sys.stop().await;
}

#[tokio::test]
async fn unknown_account_is_acknowledged_and_changes_nothing() {
    let sys = System::start().await;
    let to = customer();
    let body = wa_text(&to, &wamid(), "hallo").replace(WA_PHONE_NUMBER_ID, "199999999999999");
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    sys.assert_settles_at(&to, 0, Duration::from_millis(1500)).await;
    let contact = parley::domain::ContactId::new(
        parley::domain::Channel::WhatsApp,
        parley::domain::Address::parse(to.as_str()).unwrap(),
    );
    assert!(sys.store().get_contact(&contact).await.unwrap().is_none());
    sys.stop().await;
}

#[tokio::test]
async fn health_reports_every_part() {
    let sys = System::start().await;
    let r = sys.http.get(sys.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["table"], "ok");
    assert_eq!(v["outbound_queue"], "ok");
    sys.stop().await;
}
