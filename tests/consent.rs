//! Double opt-in, STOP, the audit trail, export and erase — over HTTP against the local system.
use parley::domain::consent::ConsentReply;
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

fn national(digits: &str) -> String {
    // "49151…" → "0151 …": the form may give any common format.
    format!("0{} {}", &digits[2..5], &digits[5..])
}

#[tokio::test]
async fn web_opt_in_sends_the_template_and_yes_confirms_with_proof() {
    let sys = System::start().await;
    let to = customer();
    let r = sys
        .opt_in(json!({"channel": "whatsapp", "address": national(&to), "source": "checkout-form", "locale": "de"}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"state": "pending"}));

    let got = sys.wait_for_messages(&to, 1).await;
    assert_eq!(got[0]["type"], "template");
    assert_eq!(got[0]["template"], "consent_confirmation");
    assert_eq!(got[0]["button_ids"], json!(["consent:yes", "consent:no"]));

    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!(c["state"], "pending");
    assert_eq!(c["purposes"], json!({"order_updates": "pending", "marketing": "pending"}));
    let events = c["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("none"), Some("pending")));
        assert_eq!(e["source"], "web");
        assert_eq!(e["detail"], "checkout-form");
        assert_eq!(e["address"], to.as_str());
        assert!(e["policy_version"].is_string());
    }

    sys.tap("whatsapp", &to, "consent:yes", "JA").await;
    let got = sys.wait_for_messages(&to, 2).await;
    assert_eq!(got[1]["text"], consent_text(ConsentReply::Welcome, "de"));

    let c = sys.consent_of("whatsapp", &format!("+{to}")).await;
    assert_eq!(c["state"], "confirmed");
    assert_eq!(c["purposes"], json!({"order_updates": "confirmed", "marketing": "confirmed"}));
    let events = c["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    // Newest first: the confirmations, with the words and the message that carried them.
    for e in &events[..2] {
        assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some("pending"), Some("confirmed")));
        assert_eq!(e["source"], "chat");
        assert_eq!(e["words"], "consent:yes");
        assert!(e["message_id"].as_str().unwrap().starts_with("wamid."));
    }
    assert!(events[0]["at_ms"].as_i64() >= events[3]["at_ms"].as_i64());
    sys.stop().await;
}

#[tokio::test]
async fn repeated_web_opt_ins_send_one_message() {
    let sys = System::start().await;
    let to = customer();
    for addr in [format!("+{to}"), national(&to), format!("00{to}")] {
        let r = sys.opt_in(json!({"channel": "whatsapp", "address": addr, "source": "popup"})).await;
        assert_eq!(r.status(), 202);
    }
    sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(sys.consent_of("whatsapp", &to).await["events"].as_array().unwrap().len(), 2);
    sys.stop().await;
}

#[tokio::test]
async fn chat_opt_in_yes_and_no() {
    let sys = System::start().await;
    let yes = customer();
    sys.say("whatsapp", &yes, "START").await;
    let got = sys.wait_for_messages(&yes, 1).await;
    assert_eq!(got[0]["text"], consent_text(ConsentReply::Question, "de"));
    assert_eq!(got[0]["button_ids"], json!(["consent:yes", "consent:no"]));
    sys.say("whatsapp", &yes, "Ja 👍").await;
    let got = sys.wait_for_messages(&yes, 2).await;
    assert_eq!(got[1]["text"], consent_text(ConsentReply::Welcome, "de"));
    assert_eq!(sys.consent_of("whatsapp", &yes).await["state"], "confirmed");
    // Asking again when already subscribed says so.
    sys.say("whatsapp", &yes, "anmelden").await;
    let got = sys.wait_for_messages(&yes, 3).await;
    assert_eq!(got[2]["text"], consent_text(ConsentReply::AlreadyConfirmed, "de"));

    let no = customer();
    sys.say("whatsapp", &no, "Anmelden").await;
    sys.wait_for_messages(&no, 1).await;
    sys.tap("whatsapp", &no, "consent:no", "Nein").await;
    let got = sys.wait_for_messages(&no, 2).await;
    assert_eq!(got[1]["text"], consent_text(ConsentReply::Declined, "de"));
    let c = sys.consent_of("whatsapp", &no).await;
    assert_eq!(c["state"], "none");

    // YES without a pending opt-in is just a word: the normal conversation answers it.
    let plain = customer();
    sys.say("whatsapp", &plain, "ja").await;
    let got = sys.wait_for_messages(&plain, 1).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("ja"), "de")[0]);
    assert_eq!(sys.consent_of("whatsapp", &plain).await["state"], "none");
    sys.stop().await;
}

#[tokio::test]
async fn messenger_contacts_opt_in_in_the_chat() {
    let sys = System::start().await;
    let m = psid();
    sys.say("messenger", &m, "start").await;
    sys.wait_for_messages(&m, 1).await;
    sys.tap("messenger", &m, "consent:yes", "Ja").await;
    sys.wait_for_messages(&m, 2).await;
    assert_eq!(sys.consent_of("messenger", &m).await["state"], "confirmed");
    sys.stop().await;
}

#[tokio::test]
async fn a_confirmation_after_the_validity_has_expired_does_not_count() {
    let sys = System::start().await;
    let to = customer();
    // The START was written 49 hours ago (Meta re-delivered it late); the JA comes now.
    let old = wa_delivery(&to, &wamid(), now() - 49 * 3600, json!({"type": "text", "text": {"body": "START"}}));
    assert_eq!(sys.post_meta(&old).await.status(), 200);
    sys.wait_for_messages(&to, 1).await;
    assert_eq!(sys.consent_of("whatsapp", &to).await["state"], "pending");
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "JA")).await.status(), 200);
    let got = sys.wait_for_messages(&to, 2).await;
    assert_eq!(got.last().unwrap()["text"], consent_text(ConsentReply::Expired, "de"));
    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!(c["state"], "none");
    assert!(c["events"].as_array().unwrap().iter().all(|e| e["to"] != "confirmed"));
    sys.stop().await;
}

async fn confirmed_contact(sys: &System) -> String {
    let to = customer();
    sys.say("whatsapp", &to, "START").await;
    sys.wait_for_messages(&to, 1).await;
    sys.tap("whatsapp", &to, "consent:yes", "Ja").await;
    sys.wait_for_messages(&to, 2).await;
    assert_eq!(sys.consent_of("whatsapp", &to).await["state"], "confirmed");
    to
}

#[tokio::test]
async fn stop_wins_over_a_notification_already_in_the_queue() {
    use parley::domain::*;
    let sys = System::start().await;
    let to = confirmed_contact(&sys).await;
    // The next send is throttled, so the notification is still queued when STOP arrives.
    sys.set_fault(429, 1).await;
    let notification = parley::queue::Envelope {
        v: 1,
        id: OutboundId::parse(format!("n-{}", uuid::Uuid::new_v4().simple())).unwrap(),
        account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: ContactId::new(Channel::WhatsApp, Address::parse(to.as_str()).unwrap()),
        purpose: Purpose::OrderUpdate,
        body: OutboundBody::text("Deine Bestellung #1001 ist unterwegs."),
        fallback: None,
        withheld: None,
        in_reply_to: None,
        created_at: now(),
        created_ms: None,
        campaign: None,
        author: None,
    };
    sys.running.app.producer.send(std::slice::from_ref(&notification)).await.unwrap();
    sys.say("whatsapp", &to, "STOP 🛑").await;
    let got = sys.wait_for_messages_within(&to, 3, Duration::from_secs(20)).await;
    assert_eq!(got[2]["text"], consent_text(ConsentReply::StopAck, "de"));
    // A second STOP is not acknowledged again.
    sys.say("whatsapp", &to, "abmelden").await;
    let got = sys.assert_settles_at(&to, 3, QUIET).await;
    assert!(got.iter().all(|m| m["text"] != "Deine Bestellung #1001 ist unterwegs."), "{got:#?}");
    let rec = sys.store().get_outbound(&notification.id).await.unwrap().unwrap();
    assert_eq!(rec.status, "dropped");
    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!(c["state"], "revoked");
    assert_eq!(c["purposes"], json!({"order_updates": "revoked", "marketing": "revoked"}));
    sys.stop().await;
}

#[tokio::test]
async fn stopping_marketing_in_whatsapp_revokes_only_marketing() {
    let sys = System::start().await;
    let to = confirmed_contact(&sys).await;
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001", "changes": [{
        "field": "user_preferences",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
                  "contacts": [{"wa_id": to, "profile": {"name": "Erika"}}],
                  "user_preferences": [{"wa_id": to, "detail": "User requested to stop marketing messages",
                                        "category": "marketing_messages", "value": "stop", "timestamp": now()}]}}]}]})
    .to_string();
    assert_eq!(sys.post_meta(&body).await.status(), 200);
    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!(c["purposes"], json!({"order_updates": "confirmed", "marketing": "revoked"}));
    assert_eq!(c["state"], "confirmed");
    assert_eq!(c["events"][0]["source"], "whatsapp_preferences");
    sys.stop().await;
}

#[tokio::test]
async fn a_131050_failure_revokes_marketing() {
    let sys = System::start().await;
    let to = confirmed_contact(&sys).await;
    let pid = sys.messages_to(&to).await[1]["id"].as_str().unwrap().to_string();
    assert_eq!(sys.post_meta(&wa_status(&pid, &to, "failed", Some(131050))).await.status(), 200);
    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!(c["purposes"]["marketing"], "revoked");
    assert_eq!(c["purposes"]["order_updates"], "confirmed");
    assert_eq!(c["events"][0]["source"], "send_failure");
    sys.stop().await;
}

#[tokio::test]
async fn erase_leaves_only_pseudonymised_proof_and_is_idempotent() {
    let sys = System::start().await;
    let to = confirmed_contact(&sys).await;
    sys.say("whatsapp", &to, "Lieferzeit").await;
    sys.wait_for_messages(&to, 3).await;
    let export = |sys: &System, to: String| {
        let req = sys.http.get(sys.url(&format!("/contacts/whatsapp/{to}/export"))).header("x-api-key", ADMIN_KEY);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let before = export(&sys, to.clone()).await;
    assert_eq!(before["profile"]["address"], to.as_str());
    assert_eq!(before["consent_events"].as_array().unwrap().len(), 4);
    assert!(before["messages"].as_array().unwrap().len() >= 3, "{before:#}");
    assert!(before.to_string().contains("Lieferzeit") || before.to_string().contains("envelope"));

    let url = sys.url(&format!("/contacts/whatsapp/{to}"));
    for _ in 0..2 {
        let r = sys.http.delete(&url).header("x-api-key", ADMIN_KEY).send().await.unwrap();
        assert_eq!(r.status(), 204);
    }
    let after = export(&sys, to.clone()).await;
    assert_eq!(after, json!({"profile": null, "consent_events": [], "messages": [], "history": [], "other": []}));
    assert!(!after.to_string().contains(&to));
    let c = sys.consent_of("whatsapp", &to).await;
    assert_eq!((c["state"].as_str(), c["events"].as_array().unwrap().len()), (Some("none"), 0));

    // The proof stays, under a keyed hash, without the number.
    let contact = parley::domain::ContactId::new(
        parley::domain::Channel::WhatsApp,
        parley::domain::Address::parse(to.as_str()).unwrap(),
    );
    let pseudonym = parley::privacy::contact_pseudonym("local-pseudonym-key", &contact);
    let kept = sys.store().pseudonymised_events(&pseudonym).await.unwrap();
    assert_eq!(kept.len(), 4);
    assert!(kept.iter().all(|e| e.address.is_none()));
    assert!(kept.iter().any(|e| e.to == parley::domain::consent::ConsentState::Confirmed));
    sys.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let sys = System::start().await;
    let post = |body: &str| {
        sys.http
            .post(sys.url("/consent/optin"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = post(r#"{"channel":"sms","address":"+4915123456789"}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("unknown channel (expected whatsapp"));
    let r = post(r#"{"channel":"whatsapp","address":"call me maybe"}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("is not a phone number"));
    let r = post(r#"{"channel":"whatsapp","address":"+49 151 2"}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = post(r#"{"channel":"whatsapp","address":"+4915123456789","purposes":["spam"]}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("purposes[0] is an unknown purpose"));
    let r = post(r#"{"channel":"whatsapp","address":"+4915123456789","locale":"fr"}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = post(r#"{"channel":"messenger","address":"7100000000000001"}"#).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = post(r#"{"channel":"whatsapp""#).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post(r#"{"channel":"whatsapp","address":"+4915123456789","extra":1}"#).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = sys.http.put(sys.url("/consent/optin")).send().await.unwrap();
    assert_eq!(r.status(), 405);

    let status = sys.url("/consent/whatsapp/4915123456789");
    assert_eq!(sys.http.get(&status).send().await.unwrap().status(), 401);
    assert_eq!(sys.http.get(&status).header("x-api-key", "wrong").send().await.unwrap().status(), 401);
    let r = sys.http.get(sys.url("/consent/sms/123")).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(sys.http.post(&status).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 405);
    let erase = sys.url("/contacts/whatsapp/4915123456789");
    assert_eq!(sys.http.delete(&erase).send().await.unwrap().status(), 401);
    assert_eq!(sys.http.get(&erase).header("x-api-key", ADMIN_KEY).send().await.unwrap().status(), 405);
    // An unknown contact simply has no consent.
    let c = sys.consent_of("whatsapp", &format!("+{}", customer())).await;
    assert_eq!(c["state"], "none");
    sys.stop().await;
}
