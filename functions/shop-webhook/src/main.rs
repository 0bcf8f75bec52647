//! Lambda entry point for `POST /webhooks/shopify` and `POST /webhooks/woocommerce`: wiring only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    parley::api::lambda::serve(parley::api::HttpFunction::ShopWebhook, parley::api::handlers::shop_webhook).await
}
