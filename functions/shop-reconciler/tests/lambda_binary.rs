//! The shop-reconciler binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment, invoked with the EventBridge Scheduler sample: a missed delivery is recovered once,
//! and a shop that cannot be polled fails the invocation (so the schedule's retry policy runs it).
use parley_tests::lambda::{sample, LambdaFunction, Outcome};
use parley_tests::*;
use serde_json::{json, Value};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_shop-reconciler");

fn report<'a>(reports: &'a Value, platform: &str) -> &'a Value {
    reports.as_array().unwrap().iter().find(|r| r["platform"] == platform).unwrap_or_else(|| panic!("{reports}"))
}

#[tokio::test]
async fn a_scheduled_run_recovers_a_missed_delivery_once() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    // WooCommerce never retries: this order's webhook never arrives.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "woocommerce", "phone": format!("+{to}"), "status": "paid", "deliver": false,
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt M", "quantity": 1, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_withheld"], true, "{order}");
    sys.assert_settles_at(&to, 2, Duration::from_millis(1000)).await;

    // The shops' APIs are the sandbox's stand-ins (make dev's SHOPIFY_ADMIN_BASE and store URL).
    let (woo, shopify) = (sys.url("/sandbox/woo"), sys.url("/sandbox/shopify"));
    let f = LambdaFunction::start_with(
        BIN,
        &sys,
        &[("WOOCOMMERCE_STORE_URL", Some(&woo)), ("SHOPIFY_ADMIN_BASE", Some(&shopify))],
    )
    .await;
    let reports = f.invoke(&sample("scheduler/scheduled_event.json")).await.response();
    for platform in ["shopify", "woocommerce"] {
        let r = report(&reports, platform);
        assert!(r["error"].is_null() && r["missing_subscriptions"] == json!([]), "{reports}");
    }
    assert_eq!(report(&reports, "woocommerce")["messages_enqueued"], 1, "{reports}");
    sys.wait_for_messages(&to, 3).await;

    // The next run finds the order again and sends nothing twice.
    let reports = f.invoke(&sample("scheduler/scheduled_event.json")).await.response();
    assert_eq!(report(&reports, "woocommerce")["messages_enqueued"], 0, "{reports}");
    sys.assert_settles_at(&to, 3, Duration::from_millis(1000)).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_shop_that_cannot_be_polled_fails_the_invocation() {
    let sys = System::start().await;
    let woo = sys.url("/sandbox/woo");
    // Nothing listens on the discard port: the Shopify Admin API is down.
    let f = LambdaFunction::start_with(
        BIN,
        &sys,
        &[("WOOCOMMERCE_STORE_URL", Some(&woo)), ("SHOPIFY_ADMIN_BASE", Some("http://127.0.0.1:9"))],
    )
    .await;
    match f.invoke(&sample("scheduler/scheduled_event.json")).await {
        Outcome::Error { body, .. } => {
            assert!(body["errorMessage"].as_str().unwrap().starts_with("shopify reconcile failed"), "{body}")
        }
        other => panic!("expected the invocation to fail, got {other:?}"),
    }
    sys.stop().await;
}
