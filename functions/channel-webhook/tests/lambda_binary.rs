//! The channel-webhook binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment: every route's sample API Gateway event, the real responses and their effects.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_channel-webhook");
/// The sender of the samples in `events/apigw/`.
const SAMPLE_CUSTOMER: &str = "4915123456789";

#[tokio::test]
async fn every_route_answers_through_the_runtime_api() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;

    let (status, _, body) = f.http(&sample("apigw/meta_verify_get.json")).await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));

    let (status, ..) = f.http(&sample("apigw/meta_post_bad_signature.json")).await;
    assert_eq!(status, 401);

    let (status, _, body) = f.http(&sample("apigw/meta_post_whatsapp_text.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"], "accepted");
    // The binary enqueued on the template's queue; the reply reaches the Graph stand-in. The
    // sample's message is from 2025, so the window is closed and the reply goes as the template.
    let got = sys.assert_settles_at(SAMPLE_CUSTOMER, 1, std::time::Duration::from_millis(1500)).await;
    assert_eq!(got[0]["template"], "service_followup", "{got:#?}");

    let (status, _, body) = f.http(&sample("apigw/health_get.json")).await;
    assert_eq!(status, 200, "{body}");

    // The customer asks for a human (through the local system), the binary hands the chat back
    // and the bot says so.
    sys.say("whatsapp", SAMPLE_CUSTOMER, "Hilfe").await;
    let handed_over = wait_for_text(&sys, "Alles klar, ich gebe dich an unser Team weiter").await;
    let (status, _, body) = f.http(&sample("apigw/release_to_bot_post.json")).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["handover"].as_bool(), v["was_handover"].as_bool()), (Some(false), Some(true)), "{v}");
    let back = release_reply("de").into_iter().next().unwrap();
    assert_eq!(wait_for_text(&sys, &back).await, handed_over + 1);
    sys.stop().await;
}

/// Waits until a message to the sample customer starts with `text`; returns its index.
async fn wait_for_text(sys: &System, text: &str) -> usize {
    for _ in 0..200 {
        let msgs = sys.messages_to(SAMPLE_CUSTOMER).await;
        if let Some(i) = msgs.iter().position(|m| m["text"].as_str().is_some_and(|t| t.starts_with(text))) {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no message starting with {text:?}: {:#?}", sys.messages_to(SAMPLE_CUSTOMER).await);
}

#[tokio::test]
async fn a_missing_webhook_secret_is_reported_as_an_init_error() {
    let sys = System::start().await;
    let mut f = LambdaFunction::start_with(BIN, &sys, &[("META_APP_SECRET", None)]).await;
    let (err, status) = f.init_failure().await;
    assert_eq!(err.error_type.as_deref(), Some("Runtime.InitError"));
    assert_eq!(err.body["errorType"], "Runtime.InitError");
    assert!(err.body["errorMessage"].as_str().unwrap().contains("META_APP_SECRET"), "{:?}", err.body);
    assert!(!status.success());
    sys.stop().await;
}

/// The template's `Settings` parameter (`PARLEY_SETTINGS`) sets what has no parameter of its own.
#[tokio::test]
async fn a_setting_from_the_settings_parameter_applies() {
    let sys = System::start().await;
    let f =
        LambdaFunction::start_with(BIN, &sys, &[("PARLEY_SETTINGS", Some(r#"{"MAX_WEBHOOK_BODY_BYTES": 100}"#))]).await;
    let (status, _, body) = f.http(&sample("apigw/meta_post_whatsapp_text.json")).await;
    assert_eq!(status, 413, "{body}");
    let (status, _, body) = f.http(&sample("apigw/meta_verify_get.json")).await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
    sys.stop().await;
}

#[tokio::test]
async fn a_secret_in_the_settings_parameter_stops_the_function_without_showing_it() {
    let sys = System::start().await;
    let settings = r#"{"CART_MAX_LINES": 5, "META_ACCESS_TOKEN": "EAAG-not-for-logs"}"#;
    let mut f = LambdaFunction::start_with(BIN, &sys, &[("PARLEY_SETTINGS", Some(settings))]).await;
    let (err, status) = f.init_failure().await;
    assert_eq!(err.error_type.as_deref(), Some("Runtime.InitError"));
    let message = err.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("PARLEY_SETTINGS") && message.contains("META_ACCESS_TOKEN"), "{:?}", err.body);
    assert!(!status.success());
    assert!(!f.output().iter().any(|l| l.contains("EAAG-not-for-logs")), "{:#?}", f.output());
    assert!(!message.contains("EAAG-not-for-logs"));
    sys.stop().await;
}

/// Brand content in the real binary: template.yaml's CONTENT_BUCKET, loaded at init (the log
/// names the version in use); nothing stored yet → the embedded set, said so in the log.
#[tokio::test]
async fn the_binary_loads_the_pushed_content_set_at_init() {
    use parley::domain::content::Bundle;
    let sys = System::start_with(|o| {
        o.content =
            Some(parley_local::ContentOptions { recheck: std::time::Duration::from_secs(1), function_endpoint: None })
    })
    .await;
    let bucket = sys.running.resources.bucket("ContentBucket").unwrap().to_string();
    let f = LambdaFunction::start(BIN, &sys).await;
    let (status, ..) = f.http(&sample("apigw/health_get.json")).await;
    assert_eq!(status, 200);
    assert!(logged(&f, &["no set stored yet"]).await, "{:#?}", f.output());

    let files = Bundle::embedded()
        .files()
        .map(|(p, t)| (p.to_string(), t.replacen("Wir verschicken innerhalb von 1–2 Werktagen", "Versand heute", 1)))
        .collect::<Vec<_>>();
    let bundle = Bundle::from_files(files);
    assert_ne!(bundle, Bundle::embedded());
    let s3 = parley::content::s3::S3::from_env(reqwest::Client::new()).await;
    s3.put_object(&bucket, parley::content::KEY, "application/json", bundle.to_stored().into()).await.unwrap();

    let f = LambdaFunction::start(BIN, &sys).await;
    let (status, ..) = f.http(&sample("apigw/health_get.json")).await;
    assert_eq!(status, 200);
    let version = bundle.version();
    assert!(logged(&f, &["the stored set is in use", &version]).await, "{:#?}", f.output());
    sys.stop().await;
}

/// Whether a log line holds every one of `parts` (the binary's output is read as it comes).
async fn logged(f: &LambdaFunction, parts: &[&str]) -> bool {
    for _ in 0..50 {
        if f.output().iter().any(|l| parts.iter().all(|p| l.contains(p))) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}
