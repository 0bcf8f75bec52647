//! Logs and metrics. Logs are JSON with the request id (the Lambda runtime's span); metrics are
//! CloudWatch Embedded Metric Format lines, flushed once per invocation (no API calls).
use std::collections::BTreeMap;
use std::sync::Mutex;

static PENDING: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static TOTALS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
/// Bytes of the EMF lines flushed so far, written or not (the cost benchmark's log volume).
static EMF_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes (with newlines) of every EMF line [`flush`] has produced in this process; outside
/// Lambda the lines are not written, but they are counted as if they were.
pub fn emf_bytes() -> u64 {
    EMF_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts `n` occurrences of `name` (flushed as an EMF metric, kept as a process total).
pub fn count(name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += n;
    *TOTALS.lock().unwrap_or_else(|e| e.into_inner()).entry(name).or_default() += n;
}

/// Per-campaign counters: (campaign id, metric) → n, flushed with a `Campaign` dimension.
static PENDING_CAMPAIGN: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());

/// Counts `n` occurrences of `name` for one campaign (an EMF metric with the dimension
/// `Campaign` = its id, so CloudWatch graphs each campaign's sends, clicks and orders).
pub fn count_campaign(campaign: &str, name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    *PENDING_CAMPAIGN.lock().unwrap_or_else(|e| e.into_inner()).entry((campaign.to_string(), name)).or_default() += n;
}

/// Process totals since start (the local runtime shows them on `/health`).
pub fn totals() -> BTreeMap<&'static str, u64> {
    TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Writes the pending counters as one EMF line to stdout (CloudWatch turns it into metrics).
/// Outside Lambda the counters are only kept as totals.
pub fn flush(service: &str) {
    let pending = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    let per_campaign = std::mem::take(&mut *PENDING_CAMPAIGN.lock().unwrap_or_else(|e| e.into_inner()));
    let now = crate::time_util::now_millis();
    let lines = (!pending.is_empty()).then(|| emf_line(service, &pending, now)).into_iter().chain(campaign_lines(
        service,
        &per_campaign,
        now,
    ));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    for line in lines {
        EMF_BYTES.fetch_add(line.len() as u64 + 1, std::sync::atomic::Ordering::Relaxed);
        if in_lambda {
            println!("{line}");
        }
    }
}

/// One EMF line per campaign, its metrics under the dimension `Campaign`.
fn campaign_lines(service: &str, pending: &BTreeMap<(String, &'static str), u64>, ts_ms: i64) -> Vec<String> {
    let mut by_campaign: BTreeMap<&str, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for ((campaign, name), v) in pending {
        by_campaign.entry(campaign).or_default().insert(name, *v);
    }
    by_campaign
        .into_iter()
        .map(|(campaign, metrics)| emf(&[("service", service), ("Campaign", campaign)], &metrics, ts_ms))
        .collect()
}

fn emf_line(service: &str, metrics: &BTreeMap<&'static str, u64>, ts_ms: i64) -> String {
    emf(&[("service", service)], metrics, ts_ms)
}

fn emf(dimensions: &[(&str, &str)], metrics: &BTreeMap<&'static str, u64>, ts_ms: i64) -> String {
    let mut root = serde_json::Map::new();
    let names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": ts_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Parley",
                "Dimensions": [names],
                "Metrics": metrics.keys().map(|k| serde_json::json!({"Name": k, "Unit": "Count"})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), (*v).into());
    }
    for (k, v) in metrics {
        root.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(root).to_string()
}

/// JSON logs for Lambda (honours `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`), readable text locally
/// unless `PARLEY_LOG_FORMAT=json`.
pub fn init_logging() {
    use tracing_subscriber::util::SubscriberInitExt;
    let json = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("PARLEY_LOG_FORMAT").map(|f| f == "json").unwrap_or(false);
    if json {
        let _ = json_subscriber(log_filter(), std::io::stdout).try_init();
    } else {
        let _ = tracing_subscriber::fmt().with_env_filter(log_filter()).with_target(false).try_init();
    }
}

/// The level filter of the functions' logs: `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else info.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_lowercase());
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_deref().unwrap_or("info")))
}

/// The JSON lines the functions write in Lambda, to `writer` (stdout there; the cost benchmark
/// counts their bytes). No time (CloudWatch stamps every line). The invocation's span (request id,
/// trace id) once as `span`: the span list would repeat the same fields, which only nested spans
/// would make worth their bytes, and doubled each line's size.
pub fn json_subscriber<W>(filter: tracing_subscriber::EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .finish()
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

    #[test]
    fn campaign_metrics_carry_the_campaign_dimension() {
        let mut m = BTreeMap::new();
        m.insert(("c1".to_string(), "CampaignSent"), 3u64);
        m.insert(("c1".to_string(), "CampaignClicks"), 1u64);
        m.insert(("c2".to_string(), "CampaignSent"), 5u64);
        let lines = campaign_lines("outbound-sender", &m, 1_700_000_000_000);
        assert_eq!(lines.len(), 2, "one line per campaign");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["service", "Campaign"]]));
        assert_eq!(
            (v["Campaign"].as_str(), v["CampaignSent"].as_u64(), v["CampaignClicks"].as_u64()),
            (Some("c1"), Some(3), Some(1))
        );
        let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!((v["Campaign"].as_str(), v["CampaignSent"].as_u64()), (Some("c2"), Some(5)));
    }
}
