//! Lambda entry point for the consent API (`/consent/…`, `/contacts/…`): wiring only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    parley::api::lambda::serve(parley::api::HttpFunction::ConsentApi, parley::api::handlers::consent_api).await
}
