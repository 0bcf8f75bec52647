//! The cart-reminder binary under the Lambda Runtime API stand-in, with template.yaml's environment
//! (the default 120-minute delay), invoked with the EventBridge Scheduler sample: an abandoned shop
//! checkout gets exactly one reminder with its recovery link.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cart-reminder");
/// The customer of `events/shopify/checkouts_create.json`.
const SAMPLE_CUSTOMER: &str = "4915123456789";

#[tokio::test]
async fn a_scheduled_run_reminds_an_abandoned_checkout_once() {
    let sys = System::start().await;
    sys.say("whatsapp", SAMPLE_CUSTOMER, "START").await;
    sys.wait_for_messages(SAMPLE_CUSTOMER, 1).await;
    sys.tap("whatsapp", SAMPLE_CUSTOMER, "consent:yes", "Ja").await;
    sys.wait_for_messages(SAMPLE_CUSTOMER, 2).await;

    // The sample checkout, last touched three hours ago and never completed.
    let mut checkout: Value = serde_json::from_str(&fixture("shopify/checkouts_create.json")).unwrap();
    let idle_since = parley::time_util::rfc3339(now() - 3 * 3600);
    checkout["created_at"] = json!(idle_since);
    checkout["updated_at"] = json!(idle_since);
    assert!(checkout["completed_at"].is_null());
    let recovery = checkout["abandoned_checkout_url"].as_str().unwrap().to_string();
    let r = sys.post_shopify("checkouts/create", &checkout.to_string(), SHOPIFY_DOMAIN).await;
    assert_eq!(r.status(), 200);

    let f = LambdaFunction::start(BIN, &sys).await;
    assert_eq!(f.env["CART_REMINDER_DELAY_MINUTES"], "120", "the template's default");
    let response = f.invoke(&sample("scheduler/scheduled_event.json")).await.response();
    assert_eq!(response, json!({"reminders_sent": 1}));
    let got = sys.wait_for_messages(SAMPLE_CUSTOMER, 3).await;
    assert!(got[2].to_string().contains(&recovery), "the reminder carries the recovery link: {got:#?}");

    let response = f.invoke(&sample("scheduler/scheduled_event.json")).await.response();
    assert_eq!(response, json!({"reminders_sent": 0}));
    sys.assert_settles_at(SAMPLE_CUSTOMER, 3, Duration::from_millis(1000)).await;
    sys.stop().await;
}
