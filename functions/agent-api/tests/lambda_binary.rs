//! The agent-api binary under the Lambda Runtime API stand-in, with template.yaml's environment:
//! the identity comes from the claims API Gateway's JWT authorizer put into the request context.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-api");

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_authorizers_claims_are_the_agent() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;

    let (status, _, body) = f.http(&sample("apigw/agent_me_get.json")).await;
    assert_eq!((status, json(&body)), (200, serde_json::json!({"id": "anna@example.com", "role": "agent"})));

    // The same route without the authorizer's claims (a misconfigured route) is refused.
    let mut unauthorized = sample("apigw/agent_me_get.json");
    unauthorized["requestContext"].as_object_mut().unwrap().remove("authorizer");
    let (status, _, body) = f.http(&unauthorized).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(json(&body)["error"], "unauthorized");

    let (status, _, body) = f.http(&sample("apigw/agent_config_get.json")).await;
    assert_eq!((status, json(&body)["auth"].clone()), (200, Value::from("sandbox")), "{body}");
    sys.stop().await;
}

#[tokio::test]
async fn in_aws_the_console_is_told_the_hosted_ui_and_groups_arrive_flattened() {
    let sys = System::start().await;
    // What template.yaml sets from the user pool's domain and the console client in AWS.
    let domain = "parley-123456789012-0a1b2c3d.auth.eu-central-1.amazoncognito.com";
    let f = LambdaFunction::start_with(
        BIN,
        &sys,
        &[("AGENT_AUTH_DOMAIN", Some(domain)), ("AGENT_AUTH_CLIENT_ID", Some("sampleclientid"))],
    )
    .await;
    let (status, _, body) = f.http(&sample("apigw/agent_config_get.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({"auth": "cognito", "cognito": {"domain": domain, "client_id": "sampleclientid"},
                           "shop_currency": {"code": "EUR", "exponent": 2}})
    );

    // API Gateway flattens cognito:groups to "[agents admins]"; either group list is read.
    let mut admin = sample("apigw/agent_me_get.json");
    admin["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = "[agents admins]".into();
    let (status, _, body) = f.http(&admin).await;
    assert_eq!((status, json(&body)), (200, serde_json::json!({"id": "anna@example.com", "role": "admin"})));
    let mut outsider = sample("apigw/agent_me_get.json");
    outsider["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:groups"] = "[customers]".into();
    let (status, _, _) = f.http(&outsider).await;
    assert_eq!(status, 403);
    sys.stop().await;
}
