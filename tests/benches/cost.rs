//! Cost per journey step (not a test): `make bench-cost`, against the local endpoints (moto via
//! local/with-endpoints.sh). The figures are counts, so the dev profile gives the same ones.
//!
//! A whole local system runs (every function, the event-source pollers, the Meta sandbox) with
//! its DynamoDB and SQS endpoints pointed at a metering HTTP proxy in this process, so every AWS
//! request any function makes is seen as sent and as answered. Each step drives the system from
//! the outside (a signed webhook, an agent's or marketer's API call, a message on a queue) and
//! ends when no AWS request has been made for a while. Per step it prints:
//! - DynamoDB requests, write request units and read request units, computed with DynamoDB's
//!   billing rules from the items' sizes (moto's ConsumedCapacity is a constant, not a bill):
//!   a write is one unit per started KB of the item (the largest of the item before, as sent and
//!   as stored afterwards: the meter reads it before and after), plus on `gsi1` and `gsi2` what
//!   the write did there (an entry added or removed one write of its projected size, a changed
//!   index key two, a change to projected attributes one, nothing projected changed none); a
//!   failed conditional write costs the table's units; transactions twice; reads one unit per
//!   started 4 KB (half for eventually consistent ones);
//! - SQS requests (a batch is one) and billed SQS requests (one per 64 KB of payload); an empty
//!   receive of an idle poller is not counted (a fixed cost per queue, not per message);
//! - API Gateway requests and Lambda invocations (HTTP calls, and receives that returned
//!   messages), with GB-seconds at the template's MemorySize and the measured duration;
//! - CloudWatch log bytes: every JSON line the functions write (the production subscriber of
//!   `parley::observability`, fed from this process's tracing, inside the local runtime's
//!   invocation span with Lambda's request id and trace id) and every EMF metrics line.
//!
//! The price table is [`prices`].
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parley_tests::billing::{item_size, prices, value_size};
use parley_tests::relay::Relay;
use parley_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a step cost, as billed.
#[derive(Debug, Default, Clone)]
struct Cost {
    ddb_requests: u64,
    wru: f64,
    rru: f64,
    sqs_requests: u64,
    sqs_fifo_billed: u64,
    sqs_std_billed: u64,
    api_requests: u64,
    invocations: u64,
    gb_seconds: f64,
    log_bytes: u64,
    by_op: BTreeMap<String, u64>,
    /// The step's API Gateway requests are Meta webhooks.
    meta_webhook: bool,
}

impl Cost {
    fn dollars(&self) -> f64 {
        self.wru * prices::DYNAMODB_WRU
            + self.rru * prices::DYNAMODB_RRU
            + self.sqs_fifo_billed as f64 * prices::SQS_FIFO
            + self.sqs_std_billed as f64 * prices::SQS_STANDARD
            + self.api_requests as f64 * prices::HTTP_API_REQUEST
            + self.invocations as f64 * prices::LAMBDA_REQUEST
            + self.log_bytes as f64 / 1e9 * prices::LOGS_PER_GB
    }

    /// Lambda's duration charge at the durations measured here: bound by the local endpoints'
    /// latency (moto, a dev build, a shared machine), so reported apart from the total.
    fn duration_dollars(&self) -> f64 {
        self.gb_seconds * prices::LAMBDA_GB_SECOND
    }
}

/// A global secondary index of the table: its key attributes and its projection (`None` = ALL,
/// else the non-key attributes it carries besides the table's and the index's keys).
#[derive(Debug, Clone)]
struct Index {
    hash: &'static str,
    range: &'static str,
    projection: Option<Vec<String>>,
}

type Attrs = serde_json::Map<String, Value>;

impl Index {
    /// `gsi1` as template.yaml declares it.
    fn gsi1_from_template() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml");
        // CloudFormation tags (!Ref, !Sub …) are not plain YAML: read the table's block only.
        let start = text.find("\n  Table:\n").expect("the Table resource");
        let end = text[start + 1..].find("\n  # ---").map_or(text.len(), |e| start + 1 + e);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text[start..end]).expect("the Table block parses");
        let p = &doc["Table"]["Properties"]["GlobalSecondaryIndexes"][0]["Projection"];
        let projection = match p["ProjectionType"].as_str() {
            Some("ALL") => None,
            Some("KEYS_ONLY") => Some(Vec::new()),
            Some("INCLUDE") => Some(
                p["NonKeyAttributes"]
                    .as_sequence()
                    .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            ),
            other => panic!("gsi1 ProjectionType {other:?}"),
        };
        Self { hash: "gsi1pk", range: "gsi1sk", projection }
    }

    /// `gsi2`, the campaigns' due-time index: keys only (`.ci/check-template.sh` holds it so).
    fn gsi2() -> Self {
        Self { hash: "gsi2pk", range: "gsi2sk", projection: Some(Vec::new()) }
    }

    fn describe(&self) -> String {
        match &self.projection {
            None => "ALL".into(),
            Some(l) if l.is_empty() => "KEYS_ONLY".into(),
            Some(l) => format!("INCLUDE {}", l.join(", ")),
        }
    }

    /// The index's copy of `item` (DynamoDB JSON), when the item is in the index.
    fn copy(&self, item: &Value) -> Option<Attrs> {
        let m = item.as_object()?;
        if !(m.contains_key(self.hash) && m.contains_key(self.range)) {
            return None;
        }
        let carried = |k: &str| match &self.projection {
            None => true,
            Some(extra) => ["pk", "sk", self.hash, self.range].contains(&k) || extra.iter().any(|e| e == k),
        };
        Some(m.iter().filter(|(k, _)| carried(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// Write units on this index of a write that turned `before` into `after`, by DynamoDB's
    /// rules: an entry added or removed is one write, a changed index key two (the old entry
    /// deleted, the new one put), a change to projected attributes one, and a write that
    /// changes nothing the index carries none.
    fn write_units(&self, before: Option<&Value>, after: Option<&Value>) -> f64 {
        let size = |m: &Attrs| m.iter().map(|(k, v)| k.len() + value_size(v)).sum::<usize>();
        match (before.and_then(|i| self.copy(i)), after.and_then(|i| self.copy(i))) {
            (None, None) => 0.0,
            (Some(one), None) | (None, Some(one)) => kb(size(&one)),
            (Some(b), Some(a)) if b.get(self.hash) != a.get(self.hash) || b.get(self.range) != a.get(self.range) => {
                kb(size(&b)) + kb(size(&a))
            }
            (Some(b), Some(a)) if b == a => 0.0,
            (Some(b), Some(a)) => kb(size(&b).max(size(&a))),
        }
    }
}

fn kb(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

fn four_kb(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

/// The metering proxy: forwards each request to the real endpoint and books its cost.
struct Meter {
    ddb_upstream: Relay,
    sqs_upstream: Relay,
    /// Reads items before and after a write (to bill their sizes and the index changes), around
    /// the meter.
    ddb: aws_sdk_dynamodb::Client,
    /// `gsi1` and `gsi2`.
    indexes: Vec<Index>,
    cost: Mutex<Cost>,
    /// When an AWS request other than an empty receive was last answered.
    last: Mutex<Instant>,
    /// Queue URL → when receives that returned messages were answered (the invocation runs
    /// from then until the poller deletes what it handled).
    open: Mutex<HashMap<String, Vec<Instant>>>,
}

const MEMORY_GB: f64 = 0.5;

impl Meter {
    fn take(&self) -> Cost {
        std::mem::take(&mut *self.cost.lock().unwrap())
    }

    fn touch(&self) {
        *self.last.lock().unwrap() = Instant::now();
    }

    async fn quiet_for(&self, d: Duration, limit: Duration) {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.last.lock().unwrap().elapsed() >= d || start.elapsed() > limit {
                return;
            }
        }
    }

    /// The item `key` of `table` as stored now (DynamoDB JSON).
    async fn stored(&self, table: &str, key: &Value) -> Option<Value> {
        let key: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> = key
            .as_object()?
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), aws_sdk_dynamodb::types::AttributeValue::S(v["S"].as_str()?.into()))))
            .collect();
        let out = self.ddb.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await.ok()?;
        let item = out.item?;
        Some(Value::Object(
            item.into_iter().map(|(k, v)| (k, attr_json(&v))).collect::<serde_json::Map<String, Value>>(),
        ))
    }

    /// Write units of one item's write: on the table the larger of the item before, as sent and
    /// as stored after; on each index what the change did there ([`Index::write_units`]). A
    /// write refused by its condition costs the table's units only (nothing changed).
    async fn item_write(&self, table: &str, key: &Value, sent: Option<&Value>, refused: bool, before: &Before) -> f64 {
        let before = before.get(&before_key(table, key)).cloned().flatten();
        let after = self.stored(table, key).await;
        let size = [before.as_ref(), sent, after.as_ref()].into_iter().flatten().map(item_size).max().unwrap_or(0);
        let index: f64 = if refused {
            0.0
        } else {
            self.indexes.iter().map(|i| i.write_units(before.as_ref(), after.as_ref())).sum()
        };
        let units = kb(size) + index;
        if std::env::var_os("COST_SHOW_WRITES").is_some() {
            let sk = key["sk"]["S"].as_str().unwrap_or_default();
            let pk = key["pk"]["S"].as_str().unwrap_or_default().split('#').next().unwrap_or_default();
            eprintln!("  write {pk}/{sk}: {size} B, indexes {index} WRU -> {units} WRU");
        }
        units
    }

    /// The items a write request names, read before it is forwarded.
    async fn before(&self, op: &str, req: &Value) -> Before {
        let mut out = Before::new();
        for (table, key) in written_keys(op, req) {
            let item = self.stored(&table, &key).await;
            out.insert(before_key(&table, &key), item);
        }
        out
    }

    async fn dynamodb(&self, op: &str, req: &Value, resp: &Value, before: &Before) -> (f64, f64) {
        let key_of = |item: &Value| json!({"pk": item["pk"], "sk": item["sk"]});
        let table = req["TableName"].as_str().unwrap_or_default();
        let consistent = |r: &Value| if r["ConsistentRead"].as_bool() == Some(true) { 1.0 } else { 0.5 };
        // `ConditionalCheckFailedException`, or a transaction cancelled by a condition.
        let refused = resp["__type"]
            .as_str()
            .is_some_and(|t| t.contains("ConditionalCheckFailed") || t.contains("TransactionCanceled"));
        match op {
            "PutItem" => {
                (self.item_write(table, &key_of(&req["Item"]), Some(&req["Item"]), refused, before).await, 0.0)
            }
            "UpdateItem" | "DeleteItem" => (self.item_write(table, &req["Key"], None, refused, before).await, 0.0),
            "BatchWriteItem" => {
                let mut w = 0.0;
                for (t, reqs) in req["RequestItems"].as_object().into_iter().flatten() {
                    for r in reqs.as_array().into_iter().flatten() {
                        w += match (r.get("PutRequest"), r.get("DeleteRequest")) {
                            (Some(p), _) => {
                                self.item_write(t, &key_of(&p["Item"]), Some(&p["Item"]), false, before).await
                            }
                            (None, Some(d)) => self.item_write(t, &d["Key"], None, false, before).await,
                            (None, None) => 1.0,
                        };
                    }
                }
                (w, 0.0)
            }
            "TransactWriteItems" => {
                let mut w = 0.0;
                for i in req["TransactItems"].as_array().into_iter().flatten() {
                    w += if let Some(p) = i.get("Put") {
                        self.item_write(
                            p["TableName"].as_str().unwrap_or_default(),
                            &key_of(&p["Item"]),
                            Some(&p["Item"]),
                            refused,
                            before,
                        )
                        .await
                    } else if let Some(u) =
                        i.get("Update").or_else(|| i.get("Delete")).or_else(|| i.get("ConditionCheck"))
                    {
                        self.item_write(u["TableName"].as_str().unwrap_or_default(), &u["Key"], None, refused, before)
                            .await
                    } else {
                        1.0
                    };
                }
                (2.0 * w, 0.0)
            }
            "GetItem" => (0.0, four_kb(item_size(&resp["Item"])) * consistent(req)),
            "Query" | "Scan" => {
                let bytes = resp["Items"].as_array().map_or(0, |l| l.iter().map(item_size).sum());
                (0.0, four_kb(bytes) * consistent(req))
            }
            "BatchGetItem" => {
                let mut r = 0.0;
                for (t, items) in resp["Responses"].as_object().into_iter().flatten() {
                    let c = consistent(&req["RequestItems"][t]);
                    r += items.as_array().into_iter().flatten().map(|i| four_kb(item_size(i)) * c).sum::<f64>();
                }
                (0.0, r)
            }
            "TransactGetItems" => {
                let r: f64 =
                    resp["Responses"].as_array().into_iter().flatten().map(|i| four_kb(item_size(&i["Item"]))).sum();
                (0.0, 2.0 * r)
            }
            _ => (0.0, 0.0),
        }
    }
}

/// An SDK attribute value as DynamoDB JSON (for sizing).
fn attr_json(v: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => json!({"S": s}),
        A::N(n) => json!({"N": n}),
        A::B(b) => json!({"B": "x".repeat(b.as_ref().len() * 4 / 3)}),
        A::Bool(b) => json!({"BOOL": b}),
        A::Null(_) => json!({"NULL": true}),
        A::Ss(l) => json!({"SS": l}),
        A::Ns(l) => json!({"NS": l}),
        A::L(l) => json!({"L": l.iter().map(attr_json).collect::<Vec<_>>()}),
        A::M(m) => json!({"M": m.iter().map(|(k, v)| (k.clone(), attr_json(v))).collect::<serde_json::Map<_, _>>()}),
        _ => Value::Null,
    }
}

/// Items as they were before a write, by [`before_key`] (`None`: there was none).
type Before = HashMap<String, Option<Value>>;

fn before_key(table: &str, key: &Value) -> String {
    format!("{table}|{}|{}", key["pk"]["S"].as_str().unwrap_or_default(), key["sk"]["S"].as_str().unwrap_or_default())
}

/// The (table, key) of every item a DynamoDB write request writes.
fn written_keys(op: &str, req: &Value) -> Vec<(String, Value)> {
    let key_of = |item: &Value| json!({"pk": item["pk"], "sk": item["sk"]});
    let table = req["TableName"].as_str().unwrap_or_default().to_string();
    match op {
        "PutItem" => vec![(table, key_of(&req["Item"]))],
        "UpdateItem" | "DeleteItem" => vec![(table, req["Key"].clone())],
        "BatchWriteItem" => req["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(t, reqs)| {
                reqs.as_array().into_iter().flatten().filter_map(move |r| {
                    let key = r
                        .get("PutRequest")
                        .map(|p| key_of(&p["Item"]))
                        .or_else(|| r["DeleteRequest"].get("Key").cloned())?;
                    Some((t.clone(), key))
                })
            })
            .collect(),
        "TransactWriteItems" => req["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                if let Some(p) = i.get("Put") {
                    return Some((p["TableName"].as_str()?.to_string(), key_of(&p["Item"])));
                }
                let u = i.get("Update").or_else(|| i.get("Delete")).or_else(|| i.get("ConditionCheck"))?;
                Some((u["TableName"].as_str()?.to_string(), u["Key"].clone()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn forward(
    State((meter, service)): State<(Arc<Meter>, &'static str)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let upstream = if service == "dynamodb" { &meter.ddb_upstream } else { &meter.sqs_upstream };
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let op = target.rsplit('.').next().unwrap_or_default().to_string();
    let req_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let before = if service == "dynamodb" { meter.before(&op, &req_json).await } else { Before::new() };
    let request_bytes = body.len();
    let Some(answer) = upstream.send(method, &uri, &headers, body).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let (status, resp_body) = (answer.status, &answer.body);

    let resp_json: Value = serde_json::from_slice(resp_body).unwrap_or(Value::Null);
    let idle_receive =
        op == "ReceiveMessage" && resp_json["Messages"].as_array().is_none_or(|l| l.is_empty()) && status.is_success();
    if !idle_receive {
        if service == "dynamodb" {
            let (w, r) = meter.dynamodb(&op, &req_json, &resp_json, &before).await;
            let mut c = meter.cost.lock().unwrap();
            c.ddb_requests += 1;
            c.wru += w;
            c.rru += r;
            *c.by_op.entry(format!("dynamodb:{op}")).or_default() += 1;
        } else {
            let queue = req_json["QueueUrl"].as_str().unwrap_or_default().to_string();
            let billed = (request_bytes.max(resp_body.len()) as u64).div_ceil(64 * 1024).max(1);
            let mut c = meter.cost.lock().unwrap();
            c.sqs_requests += 1;
            if queue.ends_with(".fifo") {
                c.sqs_fifo_billed += billed;
            } else {
                c.sqs_std_billed += billed;
            }
            *c.by_op.entry(format!("sqs:{op}")).or_default() += 1;
            if op == "ReceiveMessage" {
                c.invocations += 1;
                meter.open.lock().unwrap().entry(queue).or_default().push(Instant::now());
            } else if op.starts_with("DeleteMessage") {
                let mut open = meter.open.lock().unwrap();
                if let Some(started) = open.get_mut(&queue).filter(|l| !l.is_empty()).map(|l| l.remove(0)) {
                    c.gb_seconds += started.elapsed().as_secs_f64() * MEMORY_GB;
                }
            }
        }
        meter.touch();
    }
    answer.into_response()
}

async fn proxy(meter: Arc<Meter>, service: &'static str) -> String {
    let app = axum::Router::new().fallback(forward).with_state((meter, service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Counts the bytes of the log lines written through it.
#[derive(Clone, Default)]
struct LogBytes(Arc<AtomicU64>);

impl std::io::Write for LogBytes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if std::env::var_os("COST_SHOW_LOGS").is_some() {
            eprint!("{}", String::from_utf8_lossy(buf));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogBytes {
    type Writer = LogBytes;
    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

struct Bench {
    sys: System,
    meter: Arc<Meter>,
    logs: LogBytes,
    rows: Vec<(String, f64, Cost)>,
    /// The step being measured posted to the Meta webhook.
    meta_step: bool,
}

impl Bench {
    /// Discards what was booked so far (setup).
    async fn reset(&self) {
        self.meter.quiet_for(Duration::from_millis(1500), Duration::from_secs(30)).await;
        self.meter.take();
        self.logs.0.store(0, Ordering::Relaxed);
        EMF0.store(parley::observability::emf_bytes(), Ordering::Relaxed);
    }

    /// Books what happened since the last reset as `name`, per `per` units of work.
    async fn book(&mut self, name: &str, per: f64, api: u64, http_secs: f64) {
        self.meter.quiet_for(Duration::from_millis(1500), Duration::from_secs(60)).await;
        let mut c = self.meter.take();
        c.meta_webhook = self.meta_step;
        self.meta_step = false;
        c.api_requests += api;
        c.invocations += api;
        c.gb_seconds += http_secs * MEMORY_GB;
        let emf = parley::observability::emf_bytes() - EMF0.load(Ordering::Relaxed);
        c.log_bytes = self.logs.0.swap(0, Ordering::Relaxed) + emf;
        self.rows.push((name.to_string(), per, c));
        self.reset().await;
    }

    /// Sends an HTTP request to the system (API Gateway in front of a function), timed.
    async fn timed(&self, req: reqwest::RequestBuilder) -> (u16, f64) {
        let t = Instant::now();
        let r = req.send().await.expect("the system answers");
        (r.status().as_u16(), t.elapsed().as_secs_f64())
    }

    fn meta(&mut self, body: &str) -> reqwest::RequestBuilder {
        use parley::channels::signature::{sign, Encoding};
        self.meta_step = true;
        self.sys
            .http
            .post(self.sys.url("/webhooks/meta"))
            .header("x-hub-signature-256", sign(Encoding::PrefixedHex, APP_SECRET, body.as_bytes()))
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.sys.http.request(method, self.sys.url(path)).header("x-api-key", ADMIN_KEY)
    }
}

static EMF0: AtomicU64 = AtomicU64::new(0);

/// One WhatsApp delivery with one text from each of `from`.
fn delivery(from: &[String], text: &str) -> String {
    let t = now();
    let msgs: Vec<Value> = from
        .iter()
        .map(|f| json!({"from": f, "id": wamid(), "timestamp": t.to_string(), "type": "text", "text": {"body": text}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
        "contacts": from.iter().map(|f| json!({"profile": {"name": "Erika"}, "wa_id": f})).collect::<Vec<_>>(),
        "messages": msgs}}]}]})
    .to_string()
}

/// A bot reply to `to` as the webhook enqueues it (the sender-only steps put these on the queue).
fn reply(to: &str, text: &str) -> parley::queue::Envelope {
    use parley::domain::{AccountId, ContactId, OutboundBody, OutboundId, Purpose, TemplateRef};
    let t = now();
    parley::queue::Envelope {
        v: parley::queue::ENVELOPE_VERSION,
        id: OutboundId::parse(format!("r-{}", uuid::Uuid::new_v4().simple())).unwrap(),
        account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: ContactId::from_path("whatsapp", to).unwrap(),
        purpose: Purpose::Reply,
        body: OutboundBody::text(text),
        fallback: Some(TemplateRef::new("service_followup", "de", vec![])),
        withheld: None,
        in_reply_to: None,
        created_at: t,
        created_ms: Some(t * 1000),
        campaign: None,
        author: None,
    }
}

#[tokio::main]
async fn main() {
    init_env();
    let logs = LogBytes::default();
    {
        use tracing_subscriber::util::SubscriberInitExt;
        // The functions' lines only: the local runtime's own (sandbox, pollers) are no
        // function's output.
        let filter = "info,parley_local=off,parley_tests=off".parse().expect("a Targets filter");
        parley::observability::json_subscriber(filter, logs.clone()).try_init().expect("the only subscriber");
    }
    let ddb_upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("local endpoints");
    let sqs_upstream = std::env::var("AWS_ENDPOINT_URL_SQS").unwrap_or_else(|_| ddb_upstream.clone());
    let conf = aws_config::load_from_env().await;
    let gsi1 = Index::gsi1_from_template();
    let meter = Arc::new(Meter {
        ddb_upstream: Relay::new(&ddb_upstream),
        sqs_upstream: Relay::new(&sqs_upstream),
        ddb: aws_sdk_dynamodb::Client::new(&conf),
        indexes: vec![gsi1.clone(), Index::gsi2()],
        cost: Mutex::default(),
        last: Mutex::new(Instant::now()),
        open: Mutex::default(),
    });
    let ddb_proxy = proxy(Arc::clone(&meter), "dynamodb").await;
    let sqs_proxy = proxy(Arc::clone(&meter), "sqs").await;
    let sys = System::start_with(|o| {
        o.dynamodb_endpoint = Some(ddb_proxy);
        o.sqs_endpoint = Some(sqs_proxy);
    })
    .await;
    let mut b = Bench { sys, meter, logs, rows: Vec::new(), meta_step: false };
    // The sender's queue, written to around the meter for the sender-only steps.
    let outbound = b.sys.running.resources.queue("OutboundQueue").expect("outbound queue").to_string();
    let plain_sqs = aws_sdk_sqs::Client::new(&conf);
    b.sys.seed_demo_catalog().await;
    b.reset().await;

    // 1. An inbound text with one reply: webhook, then the sender.
    let to = customer();
    let first = delivery(std::slice::from_ref(&to), "Lieferzeit");
    let req = b.meta(&first);
    let (status, secs) = b.timed(req).await;
    assert_eq!(status, 200);
    let sent = b.sys.wait_for_messages(&to, 1).await;
    b.book("inbound text + 1 reply (webhook, sender)", 1.0, 1, secs).await;

    // 2. Meta delivers the same message again.
    let req = b.meta(&first);
    let (status, secs) = b.timed(req).await;
    assert_eq!(status, 200);
    b.book("duplicate delivery", 1.0, 1, secs).await;

    // 3. A cart command (add a product; the cart is the reply).
    let req = b.meta(&delivery(std::slice::from_ref(&to), "add TSHIRT-M 2"));
    let (status, secs) = b.timed(req).await;
    assert_eq!(status, 200);
    b.sys.wait_for_messages(&to, 2).await;
    b.book("cart command + reply", 1.0, 1, secs).await;

    // 4. A delivery status for the reply.
    let pid = sent[0]["id"].as_str().expect("the sandbox's message id").to_string();
    let req = b.meta(&wa_status(&pid, &to, "delivered", None));
    let (status, secs) = b.timed(req).await;
    assert_eq!(status, 200);
    b.book("status update", 1.0, 1, secs).await;

    // 5. Ten texts from ten contacts in one delivery: full batches all the way.
    let ten: Vec<String> = (0..10).map(|_| customer()).collect();
    let req = b.meta(&delivery(&ten, "Lieferzeit"));
    let (status, secs) = b.timed(req).await;
    assert_eq!(status, 200, "a 503 is the webhook's time budget running out: the endpoints are overloaded, run again");
    for c in &ten {
        b.sys.wait_for_messages(c, 1).await;
    }
    b.book("10 inbound texts in one delivery + 10 replies, per message", 10.0, 1, secs).await;

    // 6. The sender alone: a batch of 1 and a batch of 10 replies, put on its queue.
    let enqueue = |envs: Vec<parley::queue::Envelope>| {
        let (sqs, url) = (plain_sqs.clone(), outbound.clone());
        async move {
            let entries: Vec<_> = envs
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(e.to_json())
                        .message_group_id(e.group_id())
                        .message_deduplication_id(e.id.as_str())
                        .build()
                        .unwrap()
                })
                .collect();
            sqs.send_message_batch().queue_url(url).set_entries(Some(entries)).send().await.expect("enqueued");
        }
    };
    enqueue(vec![reply(&to, "Gern geschehen!")]).await;
    b.sys.wait_for_messages(&to, 3).await;
    b.book("sender, batch of 1", 1.0, 0, 0.0).await;
    enqueue(ten.iter().map(|c| reply(c, "Gern geschehen!")).collect()).await;
    for c in &ten {
        b.sys.wait_for_messages(c, 2).await;
    }
    b.book("sender, batch of 10, per message", 10.0, 0, 0.0).await;

    // 7. An order webhook: the confirmation to a customer who opted in.
    let buyer = b.sys.opted_in_customer().await;
    let (_, order) = b.sys.withheld_order("shopify", &buyer).await;
    let before = b.sys.messages_to(&buyer).await.len();
    b.reset().await;
    let (status, secs) = b
        .timed({
            use base64::Engine;
            use hmac::{KeyInit, Mac};
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"local-shopify-secret").unwrap();
            mac.update(order.as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            b.sys
                .http
                .post(b.sys.url("/webhooks/shopify"))
                .header("X-Shopify-Topic", "orders/create")
                .header("X-Shopify-Hmac-Sha256", sig)
                .header("X-Shopify-Shop-Domain", "parley-demo.myshopify.com")
                .header("X-Shopify-Webhook-Id", uuid::Uuid::new_v4().to_string())
                .header("content-type", "application/json")
                .body(order.clone())
        })
        .await;
    assert_eq!(status, 200, "order webhook");
    b.sys.wait_for_messages(&buyer, before + 1).await;
    b.book("order webhook + confirmation", 1.0, 1, secs).await;

    // 8. An agent's reply in a handed-over chat.
    let anna = b.sys.agent_token("anna@example.com", "agent").await;
    b.sys.say("whatsapp", &to, "Hilfe").await;
    let n = b.sys.wait_for_messages(&to, 4).await.len();
    let thread = format!("/agent/conversations/whatsapp/{to}");
    assert_eq!(b.sys.agent_post(&anna, &format!("{thread}/claim"), json!({})).await.status(), 200);
    b.reset().await;
    let (status, secs) = b
        .timed(
            b.sys
                .http
                .post(b.sys.url(&format!("{thread}/messages")))
                .bearer_auth(&anna)
                .json(&json!({"text": "Hallo, ich bin Anna!"})),
        )
        .await;
    assert!(status < 300, "agent reply: {status}");
    b.sys.wait_for_messages(&to, n + 1).await;
    b.book("agent reply", 1.0, 1, secs).await;

    // 9. A campaign to ten opted-in contacts: start, fan-out, sends; per recipient.
    let mut audience = Vec::new();
    for _ in 0..10 {
        audience.push(b.sys.opted_in_customer().await);
    }
    let spec = json!({"name": "Cost", "template": {"name": "newsletter", "language": "de",
        "parameters": ["{{contact.first_name|du}}", "sommer"]}, "segment": {}, "rate_per_second": 80,
        "quiet_hours": {"start": "00:00", "end": "23:59", "sundays": true}});
    let r = b.admin(reqwest::Method::POST, "/campaigns").json(&spec).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().expect("campaign id").to_string();
    b.reset().await;
    let (status, secs) = b.timed(b.admin(reqwest::Method::POST, &format!("/campaigns/{id}/start"))).await;
    assert_eq!(status, 200);
    for c in &audience {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !b.sys.messages_to(c).await.iter().any(|m| m["template"] == "newsletter") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    b.meter.quiet_for(Duration::from_millis(1500), Duration::from_secs(60)).await;
    // Everyone with marketing consent in this system got it: the buyer of step 7 too.
    let mut recipients = 0;
    for c in audience.iter().chain([&buyer]) {
        recipients += b.sys.messages_to(c).await.iter().filter(|m| m["template"] == "newsletter").count();
    }
    b.book(&format!("campaign recipient ({recipients} recipients, per recipient)"), recipients.max(1) as f64, 1, secs)
        .await;

    print_table(&b.rows, &gsi1);
    b.sys.stop().await;
}

fn print_table(rows: &[(String, f64, Cost)], gsi1: &Index) {
    println!("\nCost per journey step (gsi1 projection: {}; prices: us-east-1 list, 2026-12-02)\n", gsi1.describe());
    println!(
        "| step | DynamoDB requests | WRU | RRU | SQS requests (billed) | API GW | Lambda invocations | log bytes | $ per million | $ per million, Meta webhook by function URL | GB-s here (its $ per million) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, per, c) in rows {
        let p = |x: f64| x / per;
        println!(
            "| {name} | {:.1} | {:.1} | {:.2} | {:.1} ({:.1}) | {:.1} | {:.1} | {:.0} | {:.2} | {} | {:.3} ({:.2}) |",
            p(c.ddb_requests as f64),
            p(c.wru),
            p(c.rru),
            p(c.sqs_requests as f64),
            p((c.sqs_fifo_billed + c.sqs_std_billed) as f64),
            p(c.api_requests as f64),
            p(c.invocations as f64),
            p(c.log_bytes as f64),
            p(c.dollars()) * 1e6,
            // Only the Meta webhook can move to the function URL (MetaWebhookFunctionUrl).
            if c.meta_webhook {
                format!("{:.2}", p(c.dollars() - c.api_requests as f64 * prices::HTTP_API_REQUEST) * 1e6)
            } else {
                "–".to_string()
            },
            p(c.gb_seconds),
            p(c.duration_dollars()) * 1e6,
        );
    }
    println!("\nRequests by operation, per unit of each step:");
    for (name, per, c) in rows {
        let ops: Vec<String> = c.by_op.iter().map(|(k, v)| format!("{k} {:.1}", *v as f64 / per)).collect();
        println!("- {name}: {}", ops.join(", "));
    }
    println!("\n$ per million by service, per unit of each step (DynamoDB, SQS, API GW, Lambda requests, Logs):");
    for (name, per, c) in rows {
        let d = c.wru * prices::DYNAMODB_WRU + c.rru * prices::DYNAMODB_RRU;
        let q = c.sqs_fifo_billed as f64 * prices::SQS_FIFO + c.sqs_std_billed as f64 * prices::SQS_STANDARD;
        let a = c.api_requests as f64 * prices::HTTP_API_REQUEST;
        let l = c.invocations as f64 * prices::LAMBDA_REQUEST;
        let g = c.log_bytes as f64 / 1e9 * prices::LOGS_PER_GB;
        let m = |x: f64| x / per * 1e6;
        println!("- {name}: {:.2}, {:.2}, {:.2}, {:.2}, {:.2}", m(d), m(q), m(a), m(l), m(g));
    }
}
