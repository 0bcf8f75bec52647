//! The outbound-sender binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment: an SQS batch (shaped like `events/sqs/outbound_batch.json`) with one record that
//! cannot go now; the response names exactly that record, the others are processed (one of them
//! the retry of a record whose earlier receive claimed it and lost the answer).
use parley_tests::lambda::{sample, sqs_event, LambdaFunction};
use parley_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_outbound-sender");

/// The sample record's envelope, for another contact and with a fresh id.
fn envelope_to(address: &str) -> String {
    let mut env: Value =
        serde_json::from_str(sample("sqs/outbound_batch.json")["Records"][0]["body"].as_str().unwrap()).unwrap();
    let inbound = wamid();
    env["id"] = json!(format!("reply:{inbound}:0"));
    env["in_reply_to"] = json!(inbound);
    env["contact"]["address"] = json!(address);
    env["created_at"] = json!(now());
    env.to_string()
}

#[tokio::test]
async fn a_batch_reports_exactly_its_failed_record() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;
    let (sent, held, retried) = (customer(), customer(), customer());
    let (to_sent, to_held, to_retried) = (envelope_to(&sent), envelope_to(&held), envelope_to(&retried));
    let unreadable = r#"{"v":1,"id":"reply:wamid.broken:0","body":"#;
    // Another invocation is sending `held` right now: it must come back later, not count as done.
    let claim = sys
        .store()
        .claim_send(&parley::queue::Envelope::parse(&to_held).unwrap(), "{}", now(), Duration::from_secs(300), None)
        .await
        .unwrap();
    assert!(matches!(claim, parley::store::outbound::SendClaim::Go { .. }), "{claim:?}");

    let arn = "arn:aws:sqs:eu-central-1:123456789012:parley-OutboundQueue.fifo";
    let (event, ids) = sqs_event(
        arn,
        &[
            (&format!("whatsapp#{sent}"), &to_sent),
            (&format!("whatsapp#{held}"), &to_held),
            ("whatsapp#x", unreadable),
            (&format!("whatsapp#{retried}"), &to_retried),
        ],
    );
    // This record's earlier receive claimed it, lost the claim's answer (timed out) and reported
    // it failed: its own claim must not hold it back for the lease.
    let own = sys
        .store()
        .claim_send(
            &parley::queue::Envelope::parse(&to_retried).unwrap(),
            "{}",
            now(),
            Duration::from_secs(300),
            Some(&ids[3]),
        )
        .await
        .unwrap();
    assert!(matches!(own, parley::store::outbound::SendClaim::Go { .. }), "{own:?}");
    let response = f.invoke(&event).await.response();
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": ids[1]}]}));

    // Processed: sent through the Graph stand-in (no conversation yet, so as the template) …
    let got = sys.assert_settles_at(&sent, 1, Duration::from_millis(1000)).await;
    assert_eq!(got[0]["template"], "service_followup", "{got:#?}");
    sys.assert_settles_at(&retried, 1, Duration::ZERO).await;
    sys.assert_settles_at(&held, 0, Duration::ZERO).await;
    // … and the unreadable envelope moved to the template's DLQ instead of blocking its group.
    assert_eq!(sys.queue_bodies("OutboundDLQ", Duration::from_secs(5)).await, vec![unreadable.to_string()]);

    // The invocation's counts reached stdout as one EMF line in the shape the alarms select on
    // (namespace Parley, dimension service = outbound-sender).
    let emf = emf_line_with(&f, "Sent").await;
    assert_eq!((emf["Sent"].as_u64(), emf["service"].as_str()), (Some(2), Some("outbound-sender")), "{emf}");
    assert_eq!(emf["SendInFlight"].as_u64(), Some(1), "only the record claimed by another message waits: {emf}");
    let cw = &emf["_aws"]["CloudWatchMetrics"][0];
    assert_eq!((cw["Namespace"].as_str(), &cw["Dimensions"]), (Some("Parley"), &json!([["service"]])), "{emf}");
    assert!(cw["Metrics"].as_array().unwrap().contains(&json!({"Name": "Sent", "Unit": "Count"})), "{emf}");
    sys.stop().await;
}

/// The first EMF line of the process's output that carries `metric` (waits briefly: the output
/// is read from the process's pipe).
async fn emf_line_with(f: &LambdaFunction, metric: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let found = f
            .output()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("_aws").is_some() && v.get(metric).is_some());
        match found {
            Some(v) => return v,
            None if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            None => panic!("no EMF line with {metric}; output:\n{}", f.output().join("\n")),
        }
    }
}
