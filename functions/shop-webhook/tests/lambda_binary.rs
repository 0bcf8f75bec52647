//! The shop-webhook binary under the Lambda Runtime API stand-in, with template.yaml's environment:
//! the signed Shopify and WooCommerce sample deliveries confirm the order in the chat.
use parley_tests::lambda::{sample, LambdaFunction};
use parley_tests::*;

const BIN: &str = env!("CARGO_BIN_EXE_shop-webhook");
/// The customer of the sample orders (`+4915123456789`).
const SAMPLE_CUSTOMER: &str = "4915123456789";

#[tokio::test]
async fn every_route_answers_through_the_runtime_api() {
    let sys = System::start().await;
    // The customer confirmed order updates in the chat (through the local system).
    sys.say("whatsapp", SAMPLE_CUSTOMER, "START").await;
    sys.wait_for_messages(SAMPLE_CUSTOMER, 1).await;
    sys.tap("whatsapp", SAMPLE_CUSTOMER, "consent:yes", "Ja").await;
    sys.wait_for_messages(SAMPLE_CUSTOMER, 2).await;
    let f = LambdaFunction::start(BIN, &sys).await;

    let shopify = sample("apigw/shopify_post_orders_create.json");
    let (status, _, body) = f.http(&shopify).await;
    assert_eq!(status, 200, "{body}");
    let got = sys.wait_for_messages(SAMPLE_CUSTOMER, 3).await;
    assert!(
        got[2]["text"].as_str().unwrap_or_default().contains("#1001"),
        "the Shopify order's confirmation: {got:#?}"
    );

    // The WooCommerce sample comes from the documented local store URL, as the binary's
    // template environment (with `.env.example`'s values) expects.
    let (status, _, body) = f.http(&sample("apigw/woocommerce_post_order_created.json")).await;
    assert_eq!(status, 200, "{body}");
    sys.wait_for_messages(SAMPLE_CUSTOMER, 4).await;

    // A body changed without re-signing is refused, and nothing more is sent.
    let mut forged = shopify.clone();
    forged["body"] = serde_json::json!(forged["body"].as_str().unwrap().replace("\"#1001\"", "\"#1002\""));
    forged["headers"]["x-shopify-webhook-id"] = serde_json::json!("forged-delivery");
    let (status, ..) = f.http(&forged).await;
    assert_eq!(status, 401);
    sys.assert_settles_at(SAMPLE_CUSTOMER, 4, std::time::Duration::from_millis(1500)).await;
    sys.stop().await;
}
