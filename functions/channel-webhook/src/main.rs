//! Lambda entry point for `/webhooks/meta`, the agent release route and `/health`: wiring only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    parley::api::lambda::serve(parley::api::HttpFunction::ChannelWebhook, parley::api::handlers::channel_webhook).await
}
