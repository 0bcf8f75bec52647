//! Lambda entry point for the scheduled cart reminder (EventBridge Scheduler): wiring only.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("cart-reminder");
    let app = Arc::new(parley::lambda_init::or_report(parley::api::App::live_from_env()).await?);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let app = Arc::clone(&app);
        async move {
            let app = app.current().await;
            let sent = parley::carts::send_reminders(&app).await.map_err(|e| Error::from(e.to_string()))?;
            Ok::<_, Error>(serde_json::json!({ "reminders_sent": sent }))
        }
    }))
    .await
}
