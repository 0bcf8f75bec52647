//! The message loop end to end: inbound delivery → conversation → SQS → sender → sandbox Graph API.
use parley::domain::InboundContent;
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn every_whatsapp_message_type_gets_the_right_reply() {
    let sys = System::start().await;
    let cases: Vec<(serde_json::Value, InboundContent)> = vec![
        (json!({"type": "text", "text": {"body": "Wie ist die Lieferzeit?"}}), text_content("Wie ist die Lieferzeit?")),
        (
            json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "returns", "title": "Rückgabe"}}}),
            InboundContent::Button { payload: "returns".into(), title: "Rückgabe".into() },
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "size_shoes", "title": "Schuhe", "description": "EU"}}}),
            InboundContent::ListReply {
                id: "size_shoes".into(),
                title: "Schuhe".into(),
                description: Some("EU".into()),
            },
        ),
        (
            json!({"type": "button", "button": {"payload": "hours", "text": "Öffnungszeiten"}, "context": {"from": "15550000001", "id": "wamid.ctx"}}),
            InboundContent::Button { payload: "hours".into(), title: "Öffnungszeiten".into() },
        ),
        (
            json!({"type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Berlin"}}),
            InboundContent::Location { latitude: 52.52, longitude: 13.405, name: None },
        ),
        (
            json!({"type": "image", "image": {"id": "1234", "mime_type": "image/jpeg", "sha256": "abc"}}),
            InboundContent::Media { media_kind: "image".into(), media_id: None, caption: None },
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "X"}}]}),
            InboundContent::Unsupported { type_name: "contacts".into() },
        ),
    ];
    let mut customers = Vec::new();
    for (msg, content) in &cases {
        let to = customer();
        let r = sys.post_meta(&wa_delivery(&to, &wamid(), now(), msg.clone())).await;
        assert_eq!(r.status(), 200, "{msg}");
        customers.push((to, content.clone(), msg.clone()));
    }
    for (to, content, msg) in &customers {
        let expected = expected_reply(content, "de");
        assert!(!expected.is_empty(), "the flows answer {msg}");
        let got = sys.assert_settles_at(to, expected.len(), Duration::from_millis(300)).await;
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g["text"], *e, "reply to {msg}");
            assert_eq!(g["channel"], "whatsapp");
            assert_eq!(g["to"], to.as_str());
            assert!(g["id"].as_str().unwrap().starts_with("wamid."));
        }
    }
    // A catalog order is answered by the cart (see tests/carts.rs); here: it is answered at all.
    let shopper = customer();
    let order = json!({"type": "order", "order": {"catalog_id": "194836987003835", "text": "", "product_items": [
        {"product_retailer_id": "SKU-1", "quantity": 2, "item_price": 19.99, "currency": "EUR"}]}});
    assert_eq!(sys.post_meta(&wa_delivery(&shopper, &wamid(), now(), order)).await.status(), 200);
    sys.assert_settles_at(&shopper, 1, Duration::from_millis(300)).await;

    // The delivery reply is the delivery flow, not the fallback.
    let fallback = expected_reply(&text_content("qwertzuiop"), "de");
    assert_ne!(sys.messages_to(&customers[0].0).await[0]["text"], fallback[0]);
    sys.stop().await;
}

#[tokio::test]
async fn reaction_gets_no_reply_and_unknown_text_gets_the_fallback() {
    let sys = System::start().await;
    let a = customer();
    let reaction = json!({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}});
    assert_eq!(sys.post_meta(&wa_delivery(&a, &wamid(), now(), reaction)).await.status(), 200);
    sys.assert_settles_at(&a, 0, QUIET).await;

    let b = customer();
    assert_eq!(sys.post_meta(&wa_text(&b, &wamid(), "qwertzuiop")).await.status(), 200);
    let got = sys.wait_for_messages(&b, 1).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("qwertzuiop"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn a_redelivered_message_is_answered_once() {
    let sys = System::start().await;
    let to = customer();
    let body = wa_text(&to, &wamid(), "Lieferzeit");
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    // Until the sender has taken the reply, the claim is live: a copy is told to retry (503),
    // never answered 200 for work that is not done yet.
    for _ in 0..2 {
        let status = sys.post_meta(&body).await.status();
        assert!(status == 200 || status == 503, "{status}");
    }
    sys.assert_settles_at(&to, 1, QUIET).await;
    // Done now: a redelivery is the duplicate it is.
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    sys.assert_settles_at(&to, 1, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_copies_give_exactly_one_reply() {
    let sys = System::start().await;
    let to = customer();
    let body = wa_text(&to, &wamid(), "Rückgabe");
    let posts = (0..20).map(|_| sys.post_meta(&body));
    let statuses: Vec<u16> = futures::future::join_all(posts).await.iter().map(|r| r.status().as_u16()).collect();
    // One copy is processed; a copy that meets its still-live claim is told to retry (503), never
    // a 200 for work not done yet.
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    sys.assert_settles_at(&to, 1, QUIET).await;
    // Meta's retries of the 503s: the message is done by now, so they are duplicates.
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    sys.assert_settles_at(&to, 1, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_batch_with_several_contacts_answers_each_in_order() {
    let sys = System::start().await;
    let (a, b) = (customer(), customer());
    let t = now();
    let msg = |from: &str, id: &str, ts: i64, text: &str| json!({"from": from, "id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": text}});
    // Out of order inside the delivery: a's second message is listed first.
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "900000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "A"}, "wa_id": a}, {"profile": {"name": "B"}, "wa_id": b}],
            "messages": [msg(&a, &wamid(), t, "Rückgabe"), msg(&b, &wamid(), t, "Öffnungszeiten"), msg(&a, &wamid(), t - 5, "Lieferzeit")]
        }}]},
        {"id": "900000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
            "statuses": [{"id": "wamid.unknown", "status": "delivered", "timestamp": t.to_string(), "recipient_id": b}]
        }}]}
    ]})
    .to_string();
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let got_a = sys.assert_settles_at(&a, 2, QUIET).await;
    assert_eq!(got_a[0]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0]);
    assert_eq!(got_a[1]["text"], expected_reply(&text_content("Rückgabe"), "de")[0]);
    let got_b = sys.assert_settles_at(&b, 1, Duration::ZERO).await;
    assert_eq!(got_b[0]["text"], expected_reply(&text_content("Öffnungszeiten"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn messenger_and_instagram_text_quick_replies_and_postbacks() {
    let sys = System::start().await;
    let m = psid();
    assert_eq!(
        sys.post_meta(&fb_text("page", PAGE_ID, &m, &format!("m_{}", uuid::Uuid::new_v4().simple()), "Lieferzeit"))
            .await
            .status(),
        200
    );
    let qr = fb_delivery(
        "page",
        PAGE_ID,
        json!({"sender": {"id": m}, "recipient": {"id": PAGE_ID}, "timestamp": now() * 1000,
        "message": {"mid": format!("m_{}", uuid::Uuid::new_v4().simple()), "text": "Rückgabe", "quick_reply": {"payload": "returns"}}}),
    );
    assert_eq!(sys.post_meta(&qr).await.status(), 200);
    let pb = fb_delivery(
        "page",
        PAGE_ID,
        json!({"sender": {"id": m}, "recipient": {"id": PAGE_ID}, "timestamp": now() * 1000,
        "postback": {"mid": format!("m_{}", uuid::Uuid::new_v4().simple()), "title": "Öffnungszeiten", "payload": "hours"}}),
    );
    assert_eq!(sys.post_meta(&pb).await.status(), 200);
    let got = sys.assert_settles_at(&m, 3, QUIET).await;
    assert!(got.iter().all(|g| g["channel"] == "messenger"));
    let texts: Vec<&str> = got.iter().map(|g| g["text"].as_str().unwrap()).collect();
    for content in [
        text_content("Lieferzeit"),
        InboundContent::Button { payload: "returns".into(), title: "Rückgabe".into() },
        InboundContent::Button { payload: "hours".into(), title: "Öffnungszeiten".into() },
    ] {
        assert!(texts.contains(&expected_reply(&content, "de")[0].as_str()), "{content:?} in {texts:?}");
    }

    let ig = psid();
    let mid = format!("aWdfZA{}", uuid::Uuid::new_v4().simple());
    assert_eq!(sys.post_meta(&fb_text("instagram", IG_ACCOUNT_ID, &ig, &mid, "Größe")).await.status(), 200);
    let got = sys.assert_settles_at(&ig, 1, QUIET).await;
    assert_eq!(got[0]["channel"], "instagram");
    assert_eq!(got[0]["text"], expected_reply(&text_content("Größe"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn echoes_of_our_own_messages_are_ignored() {
    let sys = System::start().await;
    let m = psid();
    let echo = fb_delivery(
        "page",
        PAGE_ID,
        json!({"sender": {"id": PAGE_ID}, "recipient": {"id": m}, "timestamp": now() * 1000,
        "message": {"mid": format!("m_{}", uuid::Uuid::new_v4().simple()), "is_echo": true, "app_id": 1517776481860111u64, "text": "Hallo!"}}),
    );
    assert_eq!(sys.post_meta(&echo).await.status(), 200);
    sys.assert_settles_at(&m, 0, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn help_hands_over_to_a_human_until_released() {
    let sys = System::start().await;
    let to = customer();
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "HILFE")).await.status(), 200);
    let got = sys.wait_for_messages(&to, 1).await;
    let handover_reply = got[0]["text"].as_str().unwrap().to_string();
    assert_ne!(handover_reply, expected_reply(&text_content("qwertzuiop"), "de")[0]);

    // While a human has the chat, the bot stays silent.
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    sys.assert_settles_at(&to, 1, QUIET).await;

    // Releasing needs the admin key.
    let url = sys.url(&format!("/contacts/whatsapp/{to}/release-to-bot"));
    assert_eq!(sys.http.post(&url).send().await.unwrap().status(), 401);
    let r = sys.http.post(&url).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let released = sys.wait_for_messages(&to, 2).await;
    assert_eq!(released[1]["text"], release_reply("de")[0]);

    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    let got = sys.wait_for_messages(&to, 3).await;
    assert_eq!(got[2]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0]);

    let unknown = sys.url("/contacts/whatsapp/4900000000000/release-to-bot");
    assert_eq!(sys.http.post(&unknown).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 404);
    sys.stop().await;
}

#[tokio::test]
async fn an_agent_writing_hash_bot_hands_a_messenger_chat_back() {
    let sys = System::start().await;
    let m = psid();
    let mid = || format!("m_{}", uuid::Uuid::new_v4().simple());
    assert_eq!(sys.post_meta(&fb_text("page", PAGE_ID, &m, &mid(), "agent")).await.status(), 200);
    sys.wait_for_messages(&m, 1).await;
    assert_eq!(sys.post_meta(&fb_text("page", PAGE_ID, &m, &mid(), "Lieferzeit")).await.status(), 200);
    sys.assert_settles_at(&m, 1, QUIET).await;
    let echo = fb_delivery(
        "page",
        PAGE_ID,
        json!({"sender": {"id": PAGE_ID}, "recipient": {"id": m}, "timestamp": now() * 1000,
        "message": {"mid": mid(), "is_echo": true, "text": " #BOT "}}),
    );
    assert_eq!(sys.post_meta(&echo).await.status(), 200);
    sys.wait_for_messages(&m, 2).await;
    assert_eq!(sys.post_meta(&fb_text("page", PAGE_ID, &m, &mid(), "Lieferzeit")).await.status(), 200);
    let got = sys.wait_for_messages(&m, 3).await;
    assert_eq!(got[2]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0]);
    sys.stop().await;
}

#[tokio::test]
async fn outside_the_service_window_the_reply_is_the_template() {
    let sys = System::start().await;
    let to = customer();
    // Meta re-delivered a message written two days ago: the 24-hour window is closed.
    let body = wa_delivery(&to, &wamid(), now() - 2 * 86_400, json!({"type": "text", "text": {"body": "Lieferzeit"}}));
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let got = sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(got[0]["type"], "template");
    assert_eq!(got[0]["template"], "service_followup");
    assert_eq!(got[0]["button_ids"][0], parley::domain::CONTINUE_PAYLOAD);

    // The customer taps the template's button: the held-back reply arrives, nothing else.
    let tap = sys
        .http
        .post(sys.url("/sandbox/chat"))
        .json(
            &json!({"channel": "whatsapp", "from": to, "payload": parley::domain::CONTINUE_PAYLOAD, "title": "Weiter"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tap.status(), 200);
    let got = sys.assert_settles_at(&to, 2, QUIET).await;
    assert_eq!(got[1]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0]);

    // Delivered once: the next message gets only its own answer.
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Rückgabe")).await.status(), 200);
    let got = sys.assert_settles_at(&to, 3, QUIET).await;
    assert_eq!(got[2]["text"], expected_reply(&text_content("Rückgabe"), "de")[0]);
    sys.stop().await;
}
