//! Init failures reach Lambda through the Runtime API. `lambda_runtime` reports errors of
//! invocations, but a function whose own init fails (a required setting missing) would just exit,
//! and Lambda would record a bare "Runtime exited" with no reason. Posting the error to
//! `/runtime/init/error` first puts the reason (`Runtime.InitError`, the message) in the init
//! report and the function's logs, as AWS's own runtimes do.
use std::future::Future;
use std::time::Duration;

/// The error type Lambda shows for a failed init.
pub const INIT_ERROR_TYPE: &str = "Runtime.InitError";

/// Runs a function's init; on failure logs it, reports it to the Runtime API and returns it, so
/// `main` ends with the error.
pub async fn or_report<T, E, F>(init: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let result = init.await;
    if let Err(e) = &result {
        // Settings errors name the setting, never its value (config::ConfigError).
        tracing::error!(error = %e, "init failed");
        report(&e.to_string()).await;
    }
    result
}

/// `POST /2018-06-01/runtime/init/error` with Lambda's error body. Outside Lambda (no
/// `AWS_LAMBDA_RUNTIME_API`) there is no one to tell.
async fn report(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else { return };
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": INIT_ERROR_TYPE,
        "stackTrace": [],
    });
    let sent = async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?
            .post(format!("http://{api}/2018-06-01/runtime/init/error"))
            .header("Lambda-Runtime-Function-Error-Type", INIT_ERROR_TYPE)
            .json(&body)
            .send()
            .await?
            .error_for_status()
    }
    .await;
    if let Err(e) = sent {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}
