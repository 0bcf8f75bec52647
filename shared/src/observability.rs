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
/// counts their bytes): one object per line with the level, the event's fields at the top level
/// and the invocation's `requestId`. No time (CloudWatch stamps every line), and nothing else of
/// Lambda's invocation span: its trace id is X-Ray's and its name is the same on every line;
/// the stock JSON format wrote the span twice (as `span` and in `spans`) and the fields nested
/// under `fields`, more than half of a line's bytes.
pub fn json_subscriber<W>(filter: tracing_subscriber::EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(LambdaJson)
        .finish()
}

/// The span `lambda_runtime` opens around each invocation, and its request id field.
const INVOKE_SPAN: &str = "Lambda runtime invoke";
const REQUEST_ID: &str = "requestId";

/// [`json_subscriber`]'s line format.
struct LambdaJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for LambdaJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        event.record(&mut JsonVisitor(&mut line));
        // The span's fields as the subscriber recorded them (JSON, by `JsonFields`).
        let request_id =
            ctx.event_scope().into_iter().flatten().find(|span| span.name() == INVOKE_SPAN).and_then(|span| {
                let ext = span.extensions();
                let fields = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>()?;
                let v: serde_json::Value = serde_json::from_str(fields).ok()?;
                v.get(REQUEST_ID).cloned()
            });
        if let Some(id) = request_id {
            line.insert(REQUEST_ID.into(), id);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields as JSON values.
struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
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

    #[test]
    fn a_json_line_has_the_level_the_fields_and_the_request_id_once() {
        use tracing_subscriber::fmt::MakeWriter;
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'w> MakeWriter<'w> for Buf {
            type Writer = Buf;
            fn make_writer(&'w self) -> Buf {
                self.clone()
            }
        }
        let buf = Buf::default();
        let subscriber = json_subscriber(tracing_subscriber::EnvFilter::new("info"), buf.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(replies = 2, contact = "whatsapp:***1234", "handled");
            let span = tracing::info_span!(
                "Lambda runtime invoke",
                requestId = "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                xrayTraceId = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
            );
            let _in = span.enter();
            tracing::warn!(error = %std::io::Error::other("boom"), "send failed");
            tracing::debug!("not at info");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            lines[0],
            serde_json::json!({"level": "INFO", "message": "handled", "replies": 2, "contact": "whatsapp:***1234"})
        );
        assert_eq!(
            lines[1],
            serde_json::json!({"level": "WARN", "message": "send failed", "error": "boom",
                               "requestId": "8476a536-e9f4-11e8-9739-2dfe598c3fcd"})
        );
        assert!(!out.contains("Root=1-"), "the trace id stays out: {out}");
    }
}
