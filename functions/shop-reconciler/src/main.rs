//! Lambda entry point for the scheduled shop reconciler (EventBridge Scheduler): wiring only.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("shop-reconciler");
    let (app, http) = parley::lambda_init::or_report(async {
        let app = parley::api::App::live_from_env().await?;
        // Connect and total timeouts from the function's budget (PARLEY_FUNCTION_TIMEOUT_SECONDS).
        let http = parley::budget::Budget::from_env()?.shop_http()?;
        Ok::<_, Error>((Arc::new(app), http))
    })
    .await?;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (app, http) = (Arc::clone(&app), http.clone());
        async move {
            let app = app.current().await;
            let reports = parley::reconciler::run(&app, &http).await;
            // A failed shop fails the invocation, so the schedule's retry policy runs it again.
            if let Some(failed) = reports.iter().find(|r| r.error.is_some()) {
                return Err(Error::from(format!(
                    "{} reconcile failed: {}",
                    failed.platform,
                    failed.error.clone().unwrap_or_default()
                )));
            }
            Ok::<_, Error>(serde_json::to_value(reports)?)
        }
    }))
    .await
}
