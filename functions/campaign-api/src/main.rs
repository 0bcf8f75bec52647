//! Lambda entry point for the campaign API and the tracked-link redirect (`/r/{token}`): wiring only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    parley::api::lambda::serve(parley::api::HttpFunction::CampaignApi, parley::api::handlers::campaign_api).await
}
