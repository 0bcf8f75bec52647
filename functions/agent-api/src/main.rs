//! Lambda entry point for the agent API and console (`/agent/…`): wiring only.
#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    parley::api::lambda::serve(parley::api::HttpFunction::AgentApi, parley::api::handlers::agent_api).await
}
