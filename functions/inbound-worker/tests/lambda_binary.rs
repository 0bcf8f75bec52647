//! The inbound-worker binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment: a batch of inbound envelopes from two contacts and one unreadable record. Both
//! contacts are answered, the unreadable record goes to the inbound DLQ, nothing is reported failed.
use parley::domain::{AccountId, Address, Channel, ContactId, InboundContent, InboundEvent, InboundMessage};
use parley::queue::InboundEnvelope;
use parley_tests::lambda::{sqs_event, LambdaFunction};
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_inbound-worker");

fn envelope(from: &str, text: &str) -> String {
    InboundEnvelope::new(InboundEvent::Message(InboundMessage {
        id: parley::domain::InboundMessageId::parse(wamid()).unwrap(),
        account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: ContactId::new(Channel::WhatsApp, Address::parse(from).unwrap()),
        profile_name: None,
        phone: None,
        timestamp: now(),
        content: InboundContent::Text { body: text.into() },
    }))
    .to_message()
    .body
}

#[tokio::test]
async fn a_batch_is_handled_and_an_unreadable_record_goes_to_the_dlq() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;
    let (a, b) = (customer(), customer());
    let arn = "arn:aws:sqs:eu-central-1:123456789012:parley-InboundQueue.fifo";
    let (ga, gb) = (format!("whatsapp#{a}"), format!("whatsapp#{b}"));
    let (ea, eb) = (envelope(&a, "Lieferzeit"), envelope(&b, "Rückgabe"));
    let (event, _) = sqs_event(arn, &[(&ga, &ea), (&gb, &eb), ("whatsapp#x", r#"{"v":1,"event":"#)]);
    assert_eq!(f.invoke(&event).await.response(), json!({"batchItemFailures": []}));

    let want_a = expected_reply(&text_content("Lieferzeit"), "de");
    let got = sys.assert_settles_at(&a, 1, Duration::from_millis(500)).await;
    assert_eq!(got[0]["text"], want_a[0]);
    sys.assert_settles_at(&b, 1, Duration::ZERO).await;
    let bodies = sys.queue_bodies("InboundDLQ", Duration::from_secs(5)).await;
    assert_eq!(bodies, vec![r#"{"v":1,"event":"#.to_string()], "the unreadable record is in the DLQ");
    sys.stop().await;
}
