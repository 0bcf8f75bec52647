//! The campaign-api binary under the Lambda Runtime API stand-in, with template.yaml's
//! environment: the tracked-link redirect from its sample API Gateway events.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_campaign-api");
/// The link the samples name: the example contact's, in the example campaign (openapi.yaml).
const SAMPLE_CUSTOMER: &str = "4915123456789";
const SAMPLE_CAMPAIGN: &str = "cmp-example";
const SAMPLE_URL: &str = "https://parley-demo.myshopify.com/collections/summer";

#[tokio::test]
async fn the_sample_link_redirects_and_counts_through_the_runtime_api() {
    let sys = System::start().await;
    let link = sys.track_link(SAMPLE_CAMPAIGN, SAMPLE_CUSTOMER, SAMPLE_URL).await;
    let get = sample("apigw/link_redirect_get.json");
    // `.env.example`'s PARLEY_LINK_KEY derives the samples' token for this link.
    assert_eq!(get["pathParameters"]["token"], link.token.as_str());
    let f = LambdaFunction::start(BIN, &sys).await;

    let (status, headers, body) = f.http(&get).await;
    assert_eq!(status, 302, "{body}");
    assert_eq!(headers["location"], link.url.as_str());
    assert!(link.url.starts_with(&format!("{SAMPLE_URL}?utm_source=whatsapp&utm_medium=chat&utm_campaign=")));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(body, "");

    let (status, headers, body) = f.http(&sample("apigw/link_redirect_head.json")).await;
    assert_eq!((status, body.as_str()), (302, ""));
    assert_eq!(headers["location"], link.url.as_str());
    // The GET was a click, the HEAD was not.
    let clicks = sys.store().campaign_clicks(SAMPLE_CAMPAIGN).await.unwrap();
    assert_eq!((clicks.total, clicks.unique), (1, 1));

    // An open-redirect attempt in the query changes nothing.
    let mut next = get.clone();
    next["rawQueryString"] = "next=https%3A%2F%2Fevil.example".into();
    next["queryStringParameters"] = serde_json::json!({"next": "https://evil.example"});
    let (status, headers, _) = f.http(&next).await;
    assert_eq!((status, headers["location"].as_str()), (302, Some(link.url.as_str())));

    // A token nobody was given: the page, no redirect.
    let mut unknown = get.clone();
    let other = parley::domain::links::LinkToken::derive(b"another-key", SAMPLE_CAMPAIGN, "x", SAMPLE_URL);
    unknown["rawPath"] = format!("/r/{other}").into();
    unknown["requestContext"]["http"]["path"] = format!("/r/{other}").into();
    unknown["pathParameters"]["token"] = other.as_str().into();
    let (status, headers, body) = f.http(&unknown).await;
    assert_eq!(status, 404, "{body}");
    assert!(headers.get("location").is_none(), "{headers}");
    assert!(body.contains("This link is not valid"), "{body}");
    sys.stop().await;
}

#[tokio::test]
async fn a_missing_link_key_is_reported_as_an_init_error() {
    let sys = System::start().await;
    let mut f = LambdaFunction::start_with(BIN, &sys, &[("PARLEY_LINK_KEY", None)]).await;
    let (err, status) = f.init_failure().await;
    assert_eq!(err.error_type.as_deref(), Some("Runtime.InitError"));
    let message = err.body["errorMessage"].as_str().unwrap();
    assert!(message.contains("PARLEY_LINK_KEY") && !message.contains("local-link-key"), "{:?}", err.body);
    assert!(!status.success());
    sys.stop().await;
}
