//! The sender against the sandbox Graph API: retries, permanent failures, pauses, delivery
//! statuses and the template fallback.
use parley::api::meta_webhook::reply_id;
use parley::domain::Channel;
use parley_tests::*;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

async fn outbound(sys: &System, inbound: &str) -> parley::store::outbound::OutboundRecord {
    let id = reply_id(Channel::WhatsApp, inbound, 0);
    sys.store().get_outbound(&id).await.unwrap().expect("outbound record exists")
}

async fn wait_for_status(sys: &System, inbound: &str, status: &str) -> parley::store::outbound::OutboundRecord {
    for _ in 0..100 {
        let id = reply_id(Channel::WhatsApp, inbound, 0);
        if let Some(r) = sys.store().get_outbound(&id).await.unwrap() {
            if r.status == status {
                return r;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("outbound for {inbound} never reached {status}: {:?}", outbound(sys, inbound).await);
}

#[tokio::test]
async fn throttled_three_times_then_sent_exactly_once() {
    let sys = System::start().await;
    sys.set_fault(429, 3).await;
    let to = customer();
    let id = wamid();
    assert_eq!(sys.post_meta(&wa_text(&to, &id, "Lieferzeit")).await.status(), 200);
    let got = sys.wait_for_messages_within(&to, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0]);
    sys.assert_settles_at(&to, 1, QUIET).await;
    let rec = outbound(&sys, &id).await;
    assert_eq!(rec.status, "sent");
    assert_eq!(rec.attempts, 4, "three throttled attempts, then the successful one");
    assert_eq!(rec.provider_id.as_deref(), got[0]["id"].as_str());
    assert_eq!(sys.faults_left().await, 0);
    sys.stop().await;
}

#[tokio::test]
async fn a_permanent_error_is_recorded_and_not_retried() {
    let sys = System::start().await;
    sys.set_fault(400, 5).await;
    let to = customer();
    let id = wamid();
    assert_eq!(sys.post_meta(&wa_text(&to, &id, "Lieferzeit")).await.status(), 200);
    let rec = wait_for_status(&sys, &id, "failed").await;
    assert_eq!(rec.error_code, Some(100));
    assert_eq!(rec.attempts, 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Exactly one call used up one fault: no retry storm.
    assert_eq!(sys.faults_left().await, 4);
    assert_eq!(outbound(&sys, &id).await.attempts, 1);
    sys.assert_settles_at(&to, 0, Duration::ZERO).await;
    sys.stop().await;
}

#[tokio::test]
async fn an_expired_token_pauses_sending_then_it_resumes() {
    let sys = System::start().await;
    sys.set_fault(401, 1).await;
    let to = customer();
    let id = wamid();
    assert_eq!(sys.post_meta(&wa_text(&to, &id, "Rückgabe")).await.status(), 200);
    let rec = wait_for_status(&sys, &id, "retry").await;
    assert_eq!(rec.error_code, Some(190));
    // The pause (2 s in tests) holds the message; afterwards it goes out once.
    let got = sys.wait_for_messages_within(&to, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("Rückgabe"), "de")[0]);
    sys.assert_settles_at(&to, 1, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn fifo_order_holds_per_contact_across_retries() {
    let sys = System::start().await;
    sys.set_fault(503, 1).await;
    let to = customer();
    let t = now();
    for (i, text) in ["Lieferzeit", "Rückgabe", "Öffnungszeiten"].iter().enumerate() {
        let body =
            wa_delivery(&to, &wamid(), t + i as i64, serde_json::json!({"type": "text", "text": {"body": text}}));
        assert_eq!(sys.post_meta(&body).await.status(), 200);
    }
    let got = sys.wait_for_messages_within(&to, 3, Duration::from_secs(30)).await;
    let texts: Vec<&str> = got.iter().map(|g| g["text"].as_str().unwrap()).collect();
    let expected: Vec<String> = ["Lieferzeit", "Rückgabe", "Öffnungszeiten"]
        .iter()
        .map(|t| expected_reply(&text_content(t), "de")[0].clone())
        .collect();
    assert_eq!(texts, expected);
    sys.stop().await;
}

#[tokio::test]
async fn statuses_only_move_forward() {
    let sys = System::start().await;
    let to = customer();
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    let got = sys.wait_for_messages(&to, 1).await;
    let pid = got[0]["id"].as_str().unwrap().to_string();
    for status in ["read", "delivered", "sent"] {
        assert_eq!(sys.post_meta(&wa_status(&pid, &to, status, None)).await.status(), 200);
    }
    let status = sys
        .store()
        .get_provider_status(&parley::domain::ProviderMessageId::parse(pid.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("read"));
    // `failed` is terminal and wins.
    assert_eq!(sys.post_meta(&wa_status(&pid, &to, "failed", Some(131026))).await.status(), 200);
    let status = sys
        .store()
        .get_provider_status(&parley::domain::ProviderMessageId::parse(pid.as_str()).unwrap())
        .await
        .unwrap();
    assert_eq!(status.as_deref(), Some("failed"));
    sys.assert_settles_at(&to, 1, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_late_window_closed_failure_resends_once_as_the_template() {
    let sys = System::start().await;
    let to = customer();
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    let got = sys.wait_for_messages(&to, 1).await;
    let pid = got[0]["id"].as_str().unwrap().to_string();
    let failed = wa_status(&pid, &to, "failed", Some(131047));
    assert_eq!(sys.post_meta(&failed).await.status(), 200);
    assert_eq!(sys.post_meta(&failed).await.status(), 200);
    let got = sys.assert_settles_at(&to, 2, QUIET).await;
    assert_eq!(got[1]["type"], "template");
    assert_eq!(got[1]["template"], "service_followup");
    sys.stop().await;
}

#[tokio::test]
async fn an_unreadable_envelope_goes_to_the_dlq_without_blocking_others() {
    let sys = System::start().await;
    let sqs = sys.running.app.producer.client().clone();
    let queue = sys.running.resources.queue("OutboundQueue").unwrap().to_string();
    sqs.send_message()
        .queue_url(&queue)
        .message_body("{\"v\":1,\"garbage\":true}")
        .message_group_id("whatsapp#491500000000")
        .message_deduplication_id("poison-1")
        .send()
        .await
        .unwrap();
    let to = customer();
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    sys.wait_for_messages(&to, 1).await;
    let bodies = sys.queue_bodies("OutboundDLQ", Duration::from_secs(50)).await;
    assert_eq!(bodies, vec!["{\"v\":1,\"garbage\":true}".to_string()]);
    sys.stop().await;
}
