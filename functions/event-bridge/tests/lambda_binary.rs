//! The event-bridge binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment (the bridge's URL and secret set as a deployment would): the sample batch
//! (`events/sqs/bridge_batch.json`) plus an unreadable record. The events reach the receiver
//! signed, the unreadable record goes to the template's bridge DLQ, nothing is reported failed;
//! a receiver answering 503 gets its record reported failed (to come back after the backoff).
use parley_tests::bridge_receiver::Receiver;
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_event-bridge");

/// The sample batch with fresh message ids, plus `extra` bodies as further records.
fn batch(extra: &[&str]) -> (Value, Vec<String>) {
    let mut event = sample("sqs/bridge_batch.json");
    let template = event["Records"][0].clone();
    let records = event["Records"].as_array_mut().unwrap();
    for body in extra {
        let mut r = template.clone();
        r["body"] = json!(body);
        records.push(r);
    }
    let ids: Vec<String> = records
        .iter_mut()
        .map(|r| {
            let id = uuid::Uuid::new_v4().to_string();
            r["messageId"] = json!(id);
            id
        })
        .collect();
    (event, ids)
}

#[tokio::test]
async fn the_sample_batch_is_delivered_signed_and_an_unreadable_record_goes_to_the_dlq() {
    let sys = System::start().await;
    let inbox = Receiver::start().await;
    let settings =
        [("BRIDGE_WEBHOOK_URL", Some(inbox.url.as_str())), ("BRIDGE_WEBHOOK_SECRET", Some(inbox.secret.as_str()))];
    let f = LambdaFunction::start_with(BIN, &sys, &settings).await;
    assert_eq!(f.env["PARLEY_BRIDGE_QUEUE_URL"], sys.running.resources.queue("BridgeQueue").unwrap());

    let unreadable = r#"{"v":1,"id":"evt_broken","payload":"#;
    let (event, _) = batch(&[unreadable]);
    assert_eq!(f.invoke(&event).await.response(), json!({"batchItemFailures": []}));
    let got = inbox.attempts();
    let mut kinds: Vec<String> = got.iter().map(|a| a.kind()).collect();
    kinds.sort();
    assert_eq!(kinds, vec!["conversation.handover_requested", "message.received"]);
    assert!(got.iter().all(|a| a.verified && a.answered == 200), "{got:#?}");
    let sample_ids: Vec<String> = sample("sqs/bridge_batch.json")["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r["body"].as_str().unwrap()).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(got.iter().all(|a| sample_ids.contains(&a.id)), "webhook-id is the event's id");
    assert_eq!(sys.queue_bodies("BridgeDLQ", Duration::from_secs(5)).await, vec![unreadable.to_string()]);
    // Counted as EMF metrics under the function's service name.
    let metrics = f.output().into_iter().find(|l| l.contains("\"BridgeDelivered\"")).expect("an EMF line");
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!((metrics["service"].as_str(), metrics["BridgeDelivered"].as_u64()), (Some("event-bridge"), Some(2)));
    sys.stop().await;
}

#[tokio::test]
async fn a_record_the_receiver_cannot_take_now_is_reported_failed() {
    let sys = System::start().await;
    let inbox = Receiver::start().await;
    inbox.always(503);
    let settings =
        [("BRIDGE_WEBHOOK_URL", Some(inbox.url.as_str())), ("BRIDGE_WEBHOOK_SECRET", Some(inbox.secret.as_str()))];
    let f = LambdaFunction::start_with(BIN, &sys, &settings).await;
    let (event, ids) = batch(&[]);
    let response = f.invoke(&event).await.response();
    let mut failed: Vec<String> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    failed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(failed, want);
    assert_eq!(inbox.attempts().len(), 2);
    sys.stop().await;
}

#[tokio::test]
async fn without_its_secret_the_function_reports_an_init_error() {
    let sys = System::start().await;
    let inbox = Receiver::start().await;
    let settings = [("BRIDGE_WEBHOOK_URL", Some(inbox.url.as_str())), ("BRIDGE_WEBHOOK_SECRET", None)];
    let mut f = LambdaFunction::start_with(BIN, &sys, &settings).await;
    let (err, status) = f.init_failure().await;
    assert!(!status.success());
    assert_eq!(err.error_type.as_deref(), Some("Runtime.InitError"));
    let message = err.body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("BRIDGE_WEBHOOK_SECRET"), "{message}");
    assert!(!message.contains("relay-"), "the URL's key must not show: {message}");
    sys.stop().await;
}
