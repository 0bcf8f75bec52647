//! The sample API Gateway events in `events/apigw/` decode with lambda_http and reach the same
//! handler the local runtime serves (these two need no AWS call: the handshake and a bad signature).
use parley::api::{lambda::to_http, App, HttpFunction};
use parley::config::{AwsSettings, MetaSettings};

fn app() -> App {
    // Only the event's own settings matter here; the clients are never called.
    for (k, v) in [("META_APP_SECRET", "local-meta-app-secret"), ("META_VERIFY_TOKEN", "local-verify-token")] {
        std::env::set_var(k, v);
    }
    let region = aws_sdk_dynamodb::config::Region::new("eu-central-1");
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder().behavior_version_latest().region(region.clone()).build(),
    );
    let sqs =
        aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::Config::builder().behavior_version_latest().region(region).build());
    let aws = AwsSettings {
        table: "t".into(),
        outbound_queue_url: "q".into(),
        outbound_dlq_url: None,
        inbound_queue_url: None,
        inbound_dlq_url: None,
        campaign_queue_url: None,
        campaign_dlq_url: None,
    };
    App::new(ddb, sqs, aws, MetaSettings::from_env().unwrap()).unwrap()
}

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/apigw/{name}", env!("CARGO_MANIFEST_DIR"));
    lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_verify_handshake_event_echoes_the_challenge() {
    let app = app();
    let response = HttpFunction::ChannelWebhook.handle(&app, to_http(event("meta_verify_get.json"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "1158201444");
}

#[tokio::test]
async fn the_bad_signature_event_is_refused_before_anything_is_stored() {
    let app = app();
    let response = HttpFunction::ChannelWebhook.handle(&app, to_http(event("meta_post_bad_signature.json"))).await;
    assert_eq!(response.status(), 401);
}
