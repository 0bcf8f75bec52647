//! Logs and metrics. Logs are JSON with the request id (the Lambda runtime's span); metrics are
//! CloudWatch Embedded Metric Format lines, flushed once per invocation (no API calls).
use std::collections::BTreeMap;
use std::sync::Mutex;

static PENDING: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static TOTALS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Counts `n` occurrences of `name` (flushed as an EMF metric, kept as a process total).
pub fn count(name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += n;
    *TOTALS.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += n;
}

/// Process totals since start (the local runtime shows them on `/health`).
pub fn totals() -> BTreeMap<&'static str, u64> {
    TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Writes the pending counters as one EMF line to stdout (CloudWatch turns it into metrics).
/// Outside Lambda the counters are only kept as totals.
pub fn flush(service: &str) {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    if pending.is_empty() || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    println!("{}", emf_line(service, &pending, crate::time_util::now_millis()));
}

fn emf_line(service: &str, metrics: &BTreeMap<&'static str, u64>, ts_ms: i64) -> String {
    let mut root = serde_json::Map::new();
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Parley",
                "Dimensions": [["service"]],
                "Metrics": metrics.keys().map(|k| serde_json::json!({"Name": k, "Unit": "Count"})).collect::<Vec<_>>(),
            }]
        }),
    );
    root.insert("service".into(), service.into());
    for (k, v) in metrics {
        root.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(root).to_string()
}

/// JSON logs for Lambda (honours `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`), readable text locally
/// unless `PARLEY_LOG_FORMAT=json`.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_lowercase());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_deref().unwrap_or("info")));
    let json = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("PARLEY_LOG_FORMAT").map(|f| f == "json").unwrap_or(false);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json { builder.json().with_current_span(true).without_time().try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_has_the_shape_cloudwatch_expects() {
        let mut m = BTreeMap::new();
        m.insert("Sent", 2u64);
        m.insert("SendRetried", 1u64);
        let v: serde_json::Value = serde_json::from_str(&emf_line("outbound-sender", &m, 1_700_000_000_000)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Parley");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(), 2);
        assert_eq!(v["Sent"], 2);
        assert_eq!(v["service"], "outbound-sender");
    }
}
