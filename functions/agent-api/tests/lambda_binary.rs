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
