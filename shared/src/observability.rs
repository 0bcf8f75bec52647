//! Logs and metrics. Logs are JSON with the request id (the Lambda runtime's span); metrics go
//! through the `metrics` facade into `metrics_cloudwatch_embedded`, which writes CloudWatch
//! Embedded Metric Format lines, flushed once per invocation (no API calls, no extra IAM).
use metrics_cloudwatch_embedded::Collector;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::filter::{LevelFilter, Targets};

/// CloudWatch namespace of every Parley metric (the alarms in template.yaml read it).
pub const NAMESPACE: &str = "Parley";

/// The process's EMF collector, once made (`None` if another recorder was installed first).
static COLLECTOR: OnceLock<Option<&'static Collector>> = OnceLock::new();
static COUNTERS: Mutex<Counters> = Mutex::new(Counters::new());
/// Bytes of the EMF lines flushed so far, written or not (the cost benchmark's log volume).
static EMF_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// The `service` of a process that runs every function (`make dev`, the tests, benchmarks).
const LOCAL_SERVICE: &str = "local";

/// Process totals and the counter handles, each registered once: registering takes the
/// collector's lock and builds the key and labels, and counts are made per message.
struct Counters {
    totals: BTreeMap<&'static str, u64>,
    own: BTreeMap<&'static str, metrics::Counter>,
    /// name → campaign id → handle (a function sees a handful of campaigns in its life).
    campaign: BTreeMap<&'static str, BTreeMap<String, metrics::Counter>>,
}

impl Counters {
    const fn new() -> Self {
        Counters { totals: BTreeMap::new(), own: BTreeMap::new(), campaign: BTreeMap::new() }
    }

    /// Describes `name` the first time either kind of count uses it: its EMF lines then
    /// carry `"Unit": "Count"`.
    fn describe_once(&self, name: &'static str) {
        if !self.own.contains_key(name) && !self.campaign.contains_key(name) {
            metrics::describe_counter!(name, metrics::Unit::Count, "");
        }
    }
}

fn counters() -> std::sync::MutexGuard<'static, Counters> {
    COUNTERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes (with newlines) of every EMF line [`flush`] has produced in this process; outside
/// Lambda the lines are not written, but they are counted as if they were.
pub fn emf_bytes() -> u64 {
    EMF_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

fn in_lambda() -> bool {
    static IN_LAMBDA: OnceLock<bool> = OnceLock::new();
    *IN_LAMBDA.get_or_init(|| std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some())
}

/// A function's observability at cold start: logs, and the EMF collector with the dimension
/// `service` = the function's name (the alarms select on it).
pub fn init(service: &'static str) {
    init_logging();
    install(service);
}

/// Makes the process's collector unless there is one (the first caller names the service).
fn install(service: &'static str) -> Option<&'static Collector> {
    *COLLECTOR.get_or_init(|| {
        let made = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension("service", service)
            .init();
        // Another recorder is installed (a test harness): our metrics go there instead.
        made.map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed")).ok()
    })
}

/// The collector; in a process that runs every function, made on first use.
fn collector() -> Option<&'static Collector> {
    install(LOCAL_SERVICE)
}

/// Counts `n` occurrences of `name` (flushed as an EMF metric, kept as a process total).
pub fn count(name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    // Before any handle is registered: a handle made without a recorder would count nowhere.
    collector();
    let mut counters = counters();
    *counters.totals.entry(name).or_default() += n;
    if let Some(counter) = counters.own.get(name) {
        counter.increment(n);
        return;
    }
    counters.describe_once(name);
    let counter = metrics::counter!(name);
    counter.increment(n);
    counters.own.insert(name, counter);
}

/// Counts `n` occurrences of `name` for one campaign (an EMF metric with the dimension
/// `Campaign` = its id, so CloudWatch graphs each campaign's sends, clicks and orders).
pub fn count_campaign(campaign: &str, name: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    collector();
    let mut counters = counters();
    if let Some(counter) = counters.campaign.get(name).and_then(|by_id| by_id.get(campaign)) {
        counter.increment(n);
        return;
    }
    counters.describe_once(name);
    let counter = metrics::counter!(name, "Campaign" => campaign.to_owned());
    counter.increment(n);
    counters.campaign.entry(name).or_default().insert(campaign.to_owned(), counter);
}

/// Process totals since start (the local runtime shows them on `/health`).
pub fn totals() -> BTreeMap<&'static str, u64> {
    counters().totals.clone()
}

/// Writes the counts since the last flush, one EMF line per dimension set (the function's own,
/// and one per campaign): under Lambda to stdout, where CloudWatch turns them into metrics;
/// elsewhere nowhere, but their bytes are counted ([`emf_bytes`]).
pub fn flush() {
    let Some(collector) = collector() else { return };
    let mut out = CountingWriter { stdout: in_lambda().then(std::io::stdout), bytes: 0 };
    if let Err(e) = collector.flush(&mut out) {
        tracing::warn!(error = %e, "metrics not written");
    }
    EMF_BYTES.fetch_add(out.bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Stdout (or nothing), counting what passes.
struct CountingWriter {
    stdout: Option<std::io::Stdout>,
    bytes: u64,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.stdout {
            Some(out) => std::io::Write::write(out, buf)?,
            None => buf.len(),
        };
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stdout.as_mut().map_or(Ok(()), std::io::Write::flush)
    }
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
        use tracing_subscriber::layer::SubscriberExt;
        let text = tracing_subscriber::fmt().with_max_level(LevelFilter::TRACE).with_target(false).finish();
        let _ = text.with(log_filter()).try_init();
    }
}

/// The level filter of the functions' logs: `RUST_LOG` (`warn`, `info,parley=debug`, … — a
/// level per target), else `AWS_LAMBDA_LOG_LEVEL`, else info. A `Targets` filter rather than an
/// `EnvFilter`, whose span and field directives would link the regex engine into every binary.
pub fn log_filter() -> Targets {
    filter_from(std::env::var("RUST_LOG").ok(), std::env::var("AWS_LAMBDA_LOG_LEVEL").ok())
}

/// [`log_filter`] from the two variables' values: the first that parses wins.
fn filter_from(rust_log: Option<String>, lambda_level: Option<String>) -> Targets {
    let parse = |v: String| v.to_lowercase().parse::<Targets>().ok();
    rust_log
        .and_then(parse)
        .or_else(|| lambda_level.and_then(parse))
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The JSON lines the functions write in Lambda, to `writer` (stdout there; the cost benchmark
/// counts their bytes): one object per line with the level, the event's fields at the top level
/// and the invocation's `requestId`. No time (CloudWatch stamps every line), and nothing else of
/// Lambda's invocation span: its trace id is X-Ray's and its name is the same on every line;
/// the stock JSON format wrote the span twice (as `span` and in `spans`) and the fields nested
/// under `fields`, more than half of a line's bytes.
pub fn json_subscriber<W>(filter: Targets, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::fmt()
        // Everything reaches the filter layer, which decides per target.
        .with_max_level(LevelFilter::TRACE)
        .with_writer(writer)
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(LambdaJson)
        .finish()
        .with(filter)
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
    fn the_log_filter_takes_a_level_per_target_and_falls_back_in_order() {
        let on = |f: &Targets, target: &str, level: tracing::Level| f.would_enable(target, &level);
        let per_target = filter_from(Some("warn,parley=debug".into()), Some("ERROR".into()));
        assert!(on(&per_target, "parley::api", tracing::Level::DEBUG));
        assert!(!on(&per_target, "hyper", tracing::Level::INFO));
        assert!(on(&per_target, "hyper", tracing::Level::WARN));
        // An unreadable RUST_LOG gives way to Lambda's level (written in capitals by Lambda).
        let lambda = filter_from(Some("parley=loud".into()), Some("ERROR".into()));
        assert!(!on(&lambda, "parley", tracing::Level::WARN));
        assert!(on(&lambda, "parley", tracing::Level::ERROR));
        let default = filter_from(None, None);
        assert!(on(&default, "parley", tracing::Level::INFO));
        assert!(!on(&default, "parley", tracing::Level::DEBUG));
    }

    /// The one test that installs the process-wide collector (other unit tests' counts may land
    /// in it too: only this test's own metric names are asserted).
    #[test]
    fn counts_become_emf_lines_with_the_service_and_campaign_dimensions() {
        // (Another unit test may have made it first, as `local`.)
        let collector = install("outbound-sender").expect("installed");
        count("ObservabilityTestSent", 2);
        count("ObservabilityTestSent", 1);
        count_campaign("c1", "ObservabilityTestCampaignSent", 1);
        count_campaign("c2", "ObservabilityTestCampaignSent", 5);
        count_campaign("c1", "ObservabilityTestCampaignSent", 2);
        // One registered handle per name and per campaign, reused by later counts.
        assert!(counters().own.contains_key("ObservabilityTestSent"));
        assert_eq!(counters().campaign["ObservabilityTestCampaignSent"].len(), 2);
        let mut out = Vec::new();
        collector.flush(&mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();

        let own = lines.iter().find(|v| v.get("ObservabilityTestSent").is_some()).expect("the function's line");
        assert_eq!(own["ObservabilityTestSent"], 3);
        assert!(["outbound-sender", "local"].contains(&own["service"].as_str().unwrap()), "{own}");
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
        let subscriber = json_subscriber(Targets::new().with_default(LevelFilter::INFO), buf.clone());
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
