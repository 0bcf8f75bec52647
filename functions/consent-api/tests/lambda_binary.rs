//! The consent-api binary under the Lambda Runtime API stand-in, with template.yaml's environment:
//! opt-in, status, export and erase from their sample API Gateway events.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_consent-api");
/// The number of the samples in `events/apigw/` (`0151 23456789` in the opt-in form).
const SAMPLE_CUSTOMER: &str = "4915123456789";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn every_route_answers_through_the_runtime_api() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;

    let (status, _, body) = f.http(&sample("apigw/consent_optin_post.json")).await;
    assert_eq!((status, json(&body)), (202, serde_json::json!({"state": "pending"})));
    // The confirmation request reaches the Graph stand-in as the approved template.
    let got = sys.wait_for_messages(SAMPLE_CUSTOMER, 1).await;
    assert_eq!(got[0]["template"], "consent_confirmation", "{got:#?}");

    let (status, _, body) = f.http(&sample("apigw/consent_status_get.json")).await;
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["state"], "pending", "{v}");
    assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");

    let (status, _, body) = f.http(&sample("apigw/contact_export_get.json")).await;
    assert_eq!(status, 200, "{body}");
    assert!(!json(&body)["consent_events"].as_array().unwrap().is_empty(), "{body}");

    let (status, _, body) = f.http(&sample("apigw/contact_erase_delete.json")).await;
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = f.http(&sample("apigw/consent_status_get.json")).await;
    assert_eq!((status, json(&body)["state"].clone()), (200, Value::from("none")), "{body}");
    sys.stop().await;
}

#[tokio::test]
async fn a_missing_table_setting_is_reported_as_an_init_error() {
    let sys = System::start().await;
    let mut f = LambdaFunction::start_with(BIN, &sys, &[("PARLEY_TABLE", None)]).await;
    let (err, status) = f.init_failure().await;
    assert_eq!(err.error_type.as_deref(), Some("Runtime.InitError"));
    assert!(err.body["errorMessage"].as_str().unwrap().contains("PARLEY_TABLE"), "{:?}", err.body);
    assert!(!status.success());
    sys.stop().await;
}
