//! The console through the agent-api binary under the Lambda Runtime API stand-in, from the sample
//! API Gateway events: `/agent/` (route `GET /agent`) and an asset, without any token, with the
//! headers a browser relies on, and 304 for a known ETag.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-api");

fn header(headers: &Value, name: &str) -> String {
    headers[name].as_str().unwrap_or_else(|| panic!("no {name} header in {headers}")).to_string()
}

#[tokio::test]
async fn the_console_is_served_without_a_token_and_revalidates_with_its_etag() {
    let sys = System::start().await;
    let f = LambdaFunction::start(BIN, &sys).await;

    // The page: no authorizer claims in the event (a public route).
    let page = sample("apigw/agent_console_get.json");
    assert!(page["requestContext"].get("authorizer").is_none());
    let (status, headers, body) = f.http(&page).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert!(header(&headers, "content-security-policy").starts_with("default-src 'none'; script-src 'self';"));
    assert!(body.contains("<title>Parley · Agent console</title>"));
    let version =
        body.split("console.js?v=").nth(1).and_then(|s| s.split('"').next()).expect("versioned script").to_string();

    let mut again = page.clone();
    again["headers"]["if-none-match"] = Value::from(header(&headers, "etag"));
    let (status, _, body) = f.http(&again).await;
    assert_eq!((status, body.as_str()), (304, ""));

    // The script, under the version the page names: cacheable for good.
    let mut asset = sample("apigw/agent_console_asset_get.json");
    asset["rawQueryString"] = Value::from(format!("v={version}"));
    let (status, headers, body) = f.http(&asset).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "text/javascript; charset=utf-8");
    assert_eq!(header(&headers, "cache-control"), "public, max-age=31536000, immutable");
    assert!(body.contains("/agent/conversations"));

    // Anything else under /agent/assets/ is not there.
    let mut missing = sample("apigw/agent_console_asset_get.json");
    missing["rawPath"] = Value::from("/agent/assets/secrets.txt");
    missing["requestContext"]["http"]["path"] = Value::from("/agent/assets/secrets.txt");
    let (status, _, _) = f.http(&missing).await;
    assert_eq!(status, 404);
    sys.stop().await;
}
