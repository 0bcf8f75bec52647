//! Big Meta deliveries (Meta batches up to 1000 messages in one webhook) stay within the Lambda
//! budget: answered at once, every message handled exactly once, each contact in order.
use parley_tests::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The tests of this file take turns: the 1000-message one keeps the local DynamoDB (one request
/// at a time, unlike DynamoDB) busy for a minute and more, and beside it the others would measure
/// that queue rather than Parley.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One signed WhatsApp delivery carrying `msgs` (objects with from/id/timestamp/type/text).
fn delivery(msgs: Vec<Value>) -> String {
    let mut seen = std::collections::HashSet::new();
    let contacts: Vec<Value> = msgs
        .iter()
        .filter_map(|m| {
            let from = m["from"].as_str().unwrap().to_string();
            seen.insert(from.clone()).then(|| json!({"profile": {"name": "Kundin"}, "wa_id": from}))
        })
        .collect();
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "900000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
            "contacts": contacts,
            "messages": msgs
        }}]}]
    })
    .to_string()
}

fn text_msg(from: &str, ts: i64, text: &str) -> Value {
    json!({"from": from, "id": wamid(), "timestamp": ts.to_string(), "type": "text", "text": {"body": text}})
}

/// Every message the sandbox received, grouped by recipient.
async fn sent_by_recipient(sys: &System) -> HashMap<String, Vec<Value>> {
    let all: Vec<Value> = sys.http.get(sys.url("/sandbox/messages")).send().await.unwrap().json().await.unwrap();
    let mut by: HashMap<String, Vec<Value>> = HashMap::new();
    for m in all {
        by.entry(m["to"].as_str().unwrap_or_default().to_string()).or_default().push(m);
    }
    by
}

async fn wait_for_total(sys: &System, n: usize, limit: Duration) -> HashMap<String, Vec<Value>> {
    let start = Instant::now();
    loop {
        let by = sent_by_recipient(sys).await;
        let total: usize = by.values().map(Vec::len).sum();
        if total >= n {
            return by;
        }
        assert!(start.elapsed() < limit, "{total} of {n} replies after {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_1000_message_delivery_is_answered_within_5_s_and_every_contact_gets_one_reply() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sys = System::start().await;
    let t = now();
    let contacts: Vec<String> = (0..1000).map(|_| customer()).collect();
    let msgs = contacts.iter().enumerate().map(|(i, c)| text_msg(c, t - 1000 + i as i64, "Lieferzeit")).collect();
    let body = delivery(msgs);
    assert!(body.len() > 150_000, "a realistic big delivery: {} bytes", body.len());

    let started = Instant::now();
    let r = sys.post_meta(&body).await;
    let took = started.elapsed();
    let status = r.status();
    eprintln!("1000-message delivery ({} bytes) answered {status} in {took:?}", body.len());
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
    assert!(took < Duration::from_secs(5), "answered after {took:?}");

    let expected = expected_reply(&text_content("Lieferzeit"), "de");
    let by = wait_for_total(&sys, 1000, Duration::from_secs(240)).await;
    eprintln!("all 1000 replies sent {:?} after the delivery", started.elapsed());
    for c in &contacts {
        let got = by.get(c).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got.len(), 1, "replies to {c}: {got:#?}");
        assert_eq!(got[0]["text"], expected[0]);
    }

    // Meta redelivers the same batch (e.g. our 200 was lost): nothing new goes out.
    let r = sys.post_meta(&body).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let by = sent_by_recipient(&sys).await;
    assert_eq!(by.values().map(Vec::len).sum::<usize>(), 1000);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_contact_of_a_handed_over_delivery_is_answered_in_timestamp_order() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sys = System::start().await;
    let t = now();
    let texts = ["Lieferzeit", "Rückgabe", "danke"];
    let contacts: Vec<String> = (0..25).map(|_| customer()).collect();
    // 75 messages (more than the 50 handled inline), listed newest first: Meta promises no order.
    let mut msgs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        for c in &contacts {
            msgs.push(text_msg(c, t - 100 + i as i64 * 10, text));
        }
    }
    msgs.reverse();
    let r = sys.post_meta(&delivery(msgs)).await;
    assert_eq!(r.status(), 200);
    let want: Vec<String> = texts.iter().map(|t| expected_reply(&text_content(t), "de")[0].clone()).collect();
    let by = wait_for_total(&sys, 75, Duration::from_secs(60)).await;
    for c in &contacts {
        let got: Vec<&str> = by[c].iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(got, want, "replies to {c}");
    }
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handed_over_cart_commands_survive_an_outbound_queue_outage_and_run_exactly_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sys = System::start().await;
    sys.seed_demo_catalog().await;
    let sqs = sys.running.app.producer.client().clone();
    let outbound = sys.running.resources.queue("OutboundQueue").unwrap().to_string();
    sqs.delete_queue().queue_url(&outbound).send().await.expect("outbound queue deleted");

    // 60 contacts (handed over): cart adds, catalog browsing and questions.
    let t = now();
    let contacts: Vec<String> = (0..60).map(|_| customer()).collect();
    let text = |i: usize| match i % 3 {
        0 => "add TSHIRT-M 2",
        1 => "katalog",
        _ => "Lieferzeit",
    };
    let msgs = contacts.iter().enumerate().map(|(i, c)| text_msg(c, t, text(i))).collect();
    let r = sys.post_meta(&delivery(msgs)).await;
    assert_eq!(r.status(), 200, "the events are safe in the inbound queue");

    // The worker cannot enqueue replies: it gives the claims back and the events come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(sent_by_recipient(&sys).await.is_empty());
    sys.reprovision().await;

    let by = wait_for_total(&sys, 60, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let by_after = sent_by_recipient(&sys).await;
    assert_eq!(by_after.values().map(Vec::len).sum::<usize>(), 60, "one reply each, no late duplicates");
    for (i, c) in contacts.iter().enumerate() {
        assert_eq!(by[c].len(), 1, "replies to {c}");
        if i % 3 == 0 {
            let contact = parley::domain::ContactId::new(
                parley::domain::Channel::WhatsApp,
                parley::domain::Address::parse(c).unwrap(),
            );
            let cart = sys.store().get_cart(&contact).await.unwrap().expect("a cart").cart;
            assert_eq!(cart.lines.len(), 1);
            assert_eq!(cart.lines[0].quantity, 2, "added once, though processed twice");
        }
    }
    sys.stop().await;
}

#[tokio::test]
async fn an_unreadable_inbound_envelope_goes_to_the_dlq_without_blocking_its_contact() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sys = System::start().await;
    let sqs = sys.running.app.producer.client().clone();
    let inbound = sys.running.resources.queue("InboundQueue").unwrap().to_string();
    let to = customer();
    sqs.send_message()
        .queue_url(&inbound)
        .message_body(r#"{"v":1,"event":"not an event"}"#)
        .message_group_id(format!("whatsapp#{to}"))
        .message_deduplication_id("garbage-1")
        .send()
        .await
        .unwrap();
    // The same contact's next big delivery is handled, not stuck behind the bad one (which would
    // hold the group for the queue's 180 s visibility timeout on every receive). Generous limits:
    // other tests load the serial local DynamoDB at the same time.
    let t = now();
    let mut msgs = vec![text_msg(&to, t, "Lieferzeit")];
    msgs.extend((0..55).map(|_| text_msg(&customer(), t, "Lieferzeit")));
    assert_eq!(sys.post_meta(&delivery(msgs)).await.status(), 200);
    sys.wait_for_messages_within(&to, 1, Duration::from_secs(120)).await;

    let bodies = sys.queue_bodies("InboundDLQ", Duration::from_secs(60)).await;
    assert_eq!(bodies, vec![r#"{"v":1,"event":"not an event"}"#.to_string()]);
    sys.stop().await;
}
