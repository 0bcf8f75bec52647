//! The bridge to an existing inbox, black-box: a system whose bridge posts to a receiver on a
//! free port (tests/harness/bridge_receiver.rs), which checks every Standard Webhooks signature
//! on its own, in constant time. Customer messages, handover requests and failed sends arrive as
//! signed events; a receiver that fails is retried with backoff under the same event id; one that
//! refuses is not retried; and nothing personal reaches a log line.
//!
//! Every test of this binary logs into one capture (the first one installs it), so the privacy
//! test also sees what the others logged.
use parley_tests::bridge_receiver::{verify, Receiver};
use parley_tests::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process's log lines, JSON at INFO as deployed (see `observability::init_logging`).
fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_target(false)
            .json()
            .with_current_span(true)
            .without_time()
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other subscriber (run without PARLEY_TEST_LOG)");
        capture
    })
}

const WAIT: Duration = Duration::from_secs(20);

fn about<'a>(address: &'a str, kind: &'static str) -> impl Fn(&Value) -> bool + 'a {
    move |p: &Value| p["type"] == kind && p["data"]["contact"]["address"] == address
}

#[tokio::test]
async fn a_customer_message_arrives_signed_once_with_what_an_inbox_needs() {
    logs();
    let inbox = Receiver::start().await;
    let sys = System::with_bridge_to(&inbox).await;
    let from = customer();
    let id = wamid();
    let delivery = wa_text(&from, &id, "Wann kommt mein Paket?");
    assert_eq!(sys.post_meta(&delivery).await.status(), 200);

    let got = inbox.wait_for(1, WAIT, about(&from, "message.received")).await;
    let a = &got[0];
    assert!(a.verified && a.answered == 200, "{a:#?}");
    assert!(a.id.starts_with("evt_") && !a.id.contains('.'), "{}", a.id);
    let p = a.payload();
    let data = &p["data"];
    assert_eq!(data["contact"]["channel"], "whatsapp");
    assert_eq!(data["contact"]["address_masked"], format!("***{}", &from[from.len() - 4..]));
    assert_eq!(data["contact"]["key"], format!("whatsapp#{from}"));
    assert_eq!(data["contact"]["name"], "Erika Muster");
    assert_eq!(data["contact"]["reply_path"], format!("/agent/conversations/whatsapp/{from}/messages"));
    assert_eq!(
        data["message"],
        json!({"id": id, "kind": "text", "text": "Wann kommt mein Paket?", "at": p["timestamp"]})
    );
    // The signature is exactly Standard Webhooks': another secret does not verify it.
    let other = parley::bridge::SigningSecret::generate();
    assert!(verify(&inbox.secret, &a.id, &a.timestamp, &a.signature, a.body.as_bytes()));
    assert!(!verify(&other, &a.id, &a.timestamp, &a.signature, a.body.as_bytes()));
    assert!(!verify(&inbox.secret, &a.id, &a.timestamp, &a.signature, a.body.replace("Paket", "Pakt").as_bytes()));

    // Meta delivers the same message again once it is answered (before that, its claim is still
    // held and the re-delivery is told to come back later): a duplicate, no second event.
    sys.wait_for_messages(&from, 1).await;
    assert_eq!(sys.post_meta(&delivery).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inbox.matching(about(&from, "message.received")).len(), 1, "{:#?}", inbox.attempts());
    sys.stop().await;
}

#[tokio::test]
async fn hilfe_is_a_handover_request() {
    logs();
    let inbox = Receiver::start().await;
    let sys = System::with_bridge_to(&inbox).await;
    let from = customer();
    let id = wamid();
    assert_eq!(sys.post_meta(&wa_text(&from, &id, "Hilfe")).await.status(), 200);

    let handover = inbox.wait_for(1, WAIT, about(&from, "conversation.handover_requested")).await;
    let h = handover[0].payload();
    assert!(handover[0].verified);
    assert_eq!(h["data"]["message"]["id"], id.as_str());
    assert_eq!(h["data"]["message"]["text"], "Hilfe");
    assert_eq!(h["data"]["contact"]["name"], "Erika Muster");
    // The message itself arrives too, as its own event.
    let received = inbox.wait_for(1, WAIT, about(&from, "message.received")).await;
    assert_ne!(received[0].id, handover[0].id);
    // A later message while a human has the chat: received, but no second request.
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Ist da jemand?")).await.status(), 200);
    inbox.wait_for(2, WAIT, about(&from, "message.received")).await;
    assert_eq!(inbox.matching(about(&from, "conversation.handover_requested")).len(), 1);
    sys.stop().await;
}

#[tokio::test]
async fn failed_sends_are_reported_with_the_graph_code_and_a_plain_reason() {
    logs();
    let inbox = Receiver::start().await;
    let sys = System::with_bridge_to(&inbox).await;

    // The send itself fails for good (Graph 131026: not a WhatsApp user).
    let from = customer();
    let r = sys
        .http
        .post(sys.url("/sandbox/faults"))
        .json(&json!({"status": 400, "count": 1, "code": 131026}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Lieferzeit")).await.status(), 200);
    let failed = inbox.wait_for(1, WAIT, about(&from, "message.failed")).await;
    let f = failed[0].payload();
    assert!(failed[0].verified);
    assert_eq!(f["data"]["error"]["code"], 131026);
    assert_eq!(f["data"]["error"]["reason"], parley::domain::failure::failure_reason(Some(131026)));
    let ours = f["data"]["message"]["id"].as_str().expect("our id").to_string();
    let record = sys.store().get_outbound(&parley::domain::OutboundId::parse(ours.clone()).unwrap()).await.unwrap();
    assert_eq!(record.expect("the reply's record").status, "failed");

    // Sent, then reported failed by a status webhook (and Meta delivers that status twice).
    let to = customer();
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    let sent = sys.wait_for_messages(&to, 1).await;
    let provider_id = sent[0]["id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let r = sys
            .http
            .post(sys.url("/sandbox/status"))
            .json(&json!({"id": provider_id, "status": "failed", "code": 131049}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let failed = inbox.wait_for(2, WAIT, about(&to, "message.failed")).await;
    let f = failed[0].payload();
    assert_eq!(f["data"]["error"]["code"], 131049);
    assert_eq!(f["data"]["message"]["provider_id"], provider_id.as_str());
    assert!(f["data"]["message"]["id"].as_str().is_some_and(|id| id.starts_with("r-")), "{f}");
    // The re-delivered status is the same event: the same id, for the receiver to drop.
    assert_eq!(failed[0].id, failed[1].id);
    sys.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_with_backoff_until_it_takes_it() {
    logs();
    let inbox = Receiver::start().await;
    inbox.answer(&[500, 503]);
    let sys = System::with_bridge_to(&inbox).await;
    let from = customer();
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Öffnungszeiten?")).await.status(), 200);

    let attempts = inbox.wait_for(3, WAIT, about(&from, "message.received")).await;
    assert_eq!(attempts.iter().map(|a| a.answered).collect::<Vec<_>>(), vec![500, 503, 200]);
    assert!(attempts.iter().all(|a| a.verified), "{attempts:#?}");
    // One event: the same id and the same bytes on every attempt, each signed for its own time.
    assert!(attempts.iter().all(|a| a.id == attempts[0].id && a.body == attempts[0].body));
    // Backoff: 1 s, then 4 s (BRIDGE_RETRY_BASE_SECONDS=1 here), not the queue's 6 minutes.
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[0] >= Duration::from_millis(900), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(3500) && gaps[1] > gaps[0], "{gaps:?}");
    // Delivered once: nothing more comes after the 200.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.matching(about(&from, "message.received")).len(), 3);
    sys.stop().await;
}

#[tokio::test]
async fn a_refusing_receiver_is_not_asked_again_and_the_event_waits_in_the_dlq() {
    logs();
    let inbox = Receiver::start().await;
    inbox.always(400);
    let sys = System::with_bridge_to(&inbox).await;
    let before = parley::observability::totals().get("BridgeDeliveryRejected").copied().unwrap_or(0);
    let from = customer();
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Rückgabe")).await.status(), 200);

    let attempts = inbox.wait_for(1, WAIT, about(&from, "message.received")).await;
    assert_eq!(attempts[0].answered, 400);
    let dlq = sys.queue_bodies("BridgeDLQ", Duration::from_secs(10)).await;
    let parked: Vec<parley::bridge::BridgeEvent> =
        dlq.iter().map(|b| parley::bridge::BridgeEvent::parse(b).unwrap()).collect();
    assert!(parked.iter().any(|e| e.id == attempts[0].id && e.payload == attempts[0].body), "{dlq:#?}");
    assert!(parley::observability::totals()["BridgeDeliveryRejected"] > before);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(inbox.matching(about(&from, "message.received")).len(), 1, "not retried");
    sys.stop().await;
}

#[tokio::test]
async fn big_deliveries_reach_the_bridge_through_the_inbound_worker() {
    logs();
    let inbox = Receiver::start().await;
    let sys = System::with_bridge_to(&inbox).await;
    let from = customer();
    let id = wamid();
    // An event of a big delivery, as channel-webhook hands it to the inbound queue.
    let event = parley::domain::InboundEvent::Message(parley::domain::InboundMessage {
        id: parley::domain::InboundMessageId::parse(id.clone()).unwrap(),
        account: parley::domain::AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: parley::domain::ContactId::new(
            parley::domain::Channel::WhatsApp,
            parley::domain::Address::parse(from.clone()).unwrap(),
        ),
        profile_name: None,
        phone: None,
        timestamp: now(),
        content: text_content("Größentabelle"),
    });
    let queue = parley::queue::Producer::new(
        sys.running.app.producer.client().clone(),
        sys.running.resources.queue("InboundQueue").unwrap(),
    );
    assert_eq!(parley::inbound::hand_off(&queue, vec![event]).await.unwrap(), 1);
    let got = inbox.wait_for(1, WAIT, about(&from, "message.received")).await;
    assert_eq!(got[0].payload()["data"]["message"]["id"], id.as_str());
    assert!(got[0].verified);
    sys.stop().await;
}

#[tokio::test]
async fn the_sandbox_receiver_shows_the_events_and_refuses_bad_signatures() {
    logs();
    let secret = parley::bridge::SigningSecret::generate();
    let s = secret.clone();
    // No URL: the system's own sandbox receiver, whatever port it got.
    let sys = System::start_with(|o| {
        o.bridge = Some(parley_local::BridgeOptions { url: None, secret: s, retry_base_seconds: Some(1) })
    })
    .await;
    let from = customer();
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Hallo")).await.status(), 200);
    let mut listed = Vec::new();
    for _ in 0..200 {
        let all: Vec<Value> = sys.http.get(sys.url("/sandbox/bridge")).send().await.unwrap().json().await.unwrap();
        listed = all.into_iter().filter(|d| d["payload"]["data"]["contact"]["address"] == from.as_str()).collect();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["type"], "message.received");
    assert_eq!(listed[0]["duplicate"], false);

    // Signed with another secret, or not signed: 401, nothing recorded.
    let body = r#"{"type":"message.received","timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
    let signer = parley::bridge::Signer::new(
        &parley::bridge::SigningSecret::parse(&parley::bridge::SigningSecret::generate()).unwrap(),
    );
    let mut req = sys.http.post(sys.url("/sandbox/bridge")).body(body);
    for (k, v) in signer.headers("evt_forged", now(), body) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 401);
    assert_eq!(sys.http.post(sys.url("/sandbox/bridge")).body(body).send().await.unwrap().status(), 401);
    // Signed with the bridge's secret: recorded.
    let good = parley::bridge::Signer::new(&parley::bridge::SigningSecret::parse(&secret).unwrap());
    let mut req = sys.http.post(sys.url("/sandbox/bridge")).body(body);
    for (k, v) in good.headers("evt_manual", now(), body) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 204);
    let all: Vec<Value> = sys.http.get(sys.url("/sandbox/bridge")).send().await.unwrap().json().await.unwrap();
    assert!(all.iter().any(|d| d["id"] == "evt_manual") && !all.iter().any(|d| d["id"] == "evt_forged"));
    sys.stop().await;

    // With the bridge off there is nothing to verify with.
    let off = System::start().await;
    let r = off.http.post(off.url("/sandbox/bridge")).body(body).send().await.unwrap();
    assert_eq!(r.status(), 404);
    off.stop().await;
}

#[tokio::test]
async fn with_the_bridge_off_nothing_is_queued_for_it() {
    logs();
    let sys = System::start().await;
    let from = customer();
    assert_eq!(sys.post_meta(&wa_text(&from, &wamid(), "Hilfe")).await.status(), 200);
    sys.wait_for_messages(&from, 1).await;
    // No function touched the bridge queue.
    let ops = sys.running.aws_operations();
    assert!(ops.iter().all(|o| !o.resource.starts_with("Bridge")), "{ops:#?}");
    assert!(sys.queue_bodies("BridgeQueue", Duration::ZERO).await.is_empty());
    sys.stop().await;
}

#[tokio::test]
async fn no_log_line_holds_the_events_personal_data_or_the_receivers_url() {
    let capture = logs();
    let inbox = Receiver::start().await;
    inbox.answer(&[500]);
    let sys = System::with_bridge_to(&inbox).await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (from, name) = (customer(), format!("Hildegard{tag} Pfefferkorn{tag}"));
    let text = format!("Hier ist Hildegard{tag}, bitte ruf mich an");
    let r = sys
        .http
        .post(sys.url("/sandbox/faults"))
        .json(&json!({"status": 400, "count": 1, "code": 131026}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for t in [text.as_str(), "Hilfe"] {
        let body = wa_text(&from, &wamid(), t).replace("Erika Muster", &name);
        assert_eq!(sys.post_meta(&body).await.status(), 200);
    }
    // Everything arrived: the message (after one retry), the handover, the failed reply.
    inbox.wait_for(2, WAIT, about(&from, "message.received")).await;
    inbox.wait_for(1, WAIT, about(&from, "conversation.handover_requested")).await;
    inbox.wait_for(1, WAIT, about(&from, "message.failed")).await;
    assert!(inbox.matching(about(&from, "message.received"))[0].body.contains(&name), "the event has the name");
    sys.stop().await;

    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("bridge event delivered"), "the bridge logged nothing?");
    let key = inbox.url.split("key=").nth(1).unwrap();
    for needle in [&from[2..], &format!("Hildegard{tag}"), &format!("Pfefferkorn{tag}"), key] {
        let hit = logged.lines().find(|l| l.contains(needle));
        assert!(hit.is_none(), "a log line holds {needle:?}: {}", hit.unwrap_or_default());
    }
}
