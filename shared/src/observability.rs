//! Logs and metrics. Logs are JSON with the request id (the Lambda runtime's span); metrics go
//! through the `metrics` facade into `metrics_cloudwatch_embedded`, which writes CloudWatch
//! Embedded Metric Format lines, flushed once per invocation (no API calls, no extra IAM).
use metrics_cloudwatch_embedded::Collector;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// CloudWatch namespace of every Parley metric (the alarms in template.yaml read it).
pub const NAMESPACE: &str = "Parley";

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();
static TOTALS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// A function's observability at cold start: logs, and under Lambda the EMF collector with the
/// dimension `service` = the function's name (the alarms select on it). Outside Lambda (`make
/// dev`, where all functions share one process) metrics are only kept as process totals.
pub fn init(service: &'static str) {
    init_logging();
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        install(service);
    }
}

fn install(service: &'static str) {
    if COLLECTOR.get().is_some() {
        return;
    }
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension("service", service)
        .init()
    {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
        }
        // Another recorder is installed (a test harness): our metrics go there instead.
        Err(e) => tracing::warn!(error = %e, "metrics recorder not installed"),
    }
}

/// Counts `n` occurrences of `name` (flushed as an EMF metric, kept as a process total).
pub fn count(name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    let first = {
        let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
        let first = !totals.contains_key(name);
        *totals.entry(name).or_default() += n;
        first
    };
    if first {
        // Once per name: the EMF line then carries `"Unit": "Count"`.
        metrics::describe_counter!(name, metrics::Unit::Count, "");
    }
    metrics::counter!(name).increment(n);
}

/// Counts `n` occurrences of `name` for one campaign (an EMF metric with the dimension
/// `Campaign` = its id, so CloudWatch graphs each campaign's sends, clicks and orders).
pub fn count_campaign(campaign: &str, name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    metrics::describe_counter!(name, metrics::Unit::Count, "");
    metrics::counter!(name, "Campaign" => campaign.to_owned()).increment(n);
}

/// Process totals since start (the local runtime shows them on `/health`).
pub fn totals() -> BTreeMap<&'static str, u64> {
    TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Writes the counts since the last flush to stdout, one EMF line per dimension set (the
/// function's own, and one per campaign); CloudWatch turns them into metrics. Only under Lambda.
pub fn flush() {
    if let Some(collector) = COLLECTOR.get() {
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "metrics not written");
        }
    }
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

    /// The one test that installs the process-wide collector (other unit tests' counts may land
    /// in it too: only this test's own metric names are asserted).
    #[test]
    fn counts_become_emf_lines_with_the_service_and_campaign_dimensions() {
        install("outbound-sender");
        let collector = COLLECTOR.get().expect("installed");
        count("ObservabilityTestSent", 2);
        count("ObservabilityTestSent", 1);
        count_campaign("c1", "ObservabilityTestCampaignSent", 3);
        count_campaign("c2", "ObservabilityTestCampaignSent", 5);
        let mut out = Vec::new();
        collector.flush(&mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();

        let own = lines.iter().find(|v| v.get("ObservabilityTestSent").is_some()).expect("the function's line");
        assert_eq!(own["ObservabilityTestSent"], 3);
        assert_eq!(own["service"], "outbound-sender");
        let cw = &own["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Parley");
        assert_eq!(cw["Dimensions"], serde_json::json!([["service"]]));
        let metric = cw["Metrics"].as_array().unwrap().iter().find(|m| m["Name"] == "ObservabilityTestSent").unwrap();
        assert_eq!(metric["Unit"], "Count");
        assert!(own["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);

        let campaign = |id: &str| {
            lines.iter().find(|v| v["Campaign"] == id && v.get("ObservabilityTestCampaignSent").is_some()).unwrap()
        };
        assert_eq!(campaign("c1")["ObservabilityTestCampaignSent"], 3);
        assert_eq!(campaign("c2")["ObservabilityTestCampaignSent"], 5);
        assert_eq!(
            campaign("c1")["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["service", "Campaign"]])
        );
        assert_eq!(totals().get("ObservabilityTestSent"), Some(&3));

        // A flush writes counts since the last one: nothing new, no line for these metrics.
        let mut again = Vec::new();
        collector.flush(&mut again).unwrap();
        assert!(!String::from_utf8(again).unwrap().contains("ObservabilityTest"));
    }
}
