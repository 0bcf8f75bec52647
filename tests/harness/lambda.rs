//! The Lambda binaries themselves, run as Lambda runs them: a stand-in for the Lambda Runtime API
//! (the real wire protocol: `GET …/invocation/next` with the `Lambda-Runtime-*` headers,
//! `POST …/invocation/{id}/response|error`, `POST …/init/error`) on a free port, and the function's
//! process started with `AWS_LAMBDA_RUNTIME_API` pointing at it and the environment template.yaml
//! gives that function, resolved against a local [`System`]'s table and queues. This covers the
//! wiring the in-process local runtime bypasses: `main`, event decoding, the template's settings.
//!
//! ```ignore
//! let sys = System::start().await;
//! let f = LambdaFunction::start(env!("CARGO_BIN_EXE_outbound-sender"), &sys).await;
//! let response = f.invoke(&sqs_event(&records)).await.response();
//! ```
use crate::System;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};

const API: &str = "/2018-06-01/runtime";
/// How template.yaml names the HTTP API's URL.
const API_URL: &str = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
/// How long a test waits for a binary to start, answer or fail.
const WAIT: Duration = Duration::from_secs(30);

/// What the function posted for an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST …/invocation/{id}/response` with this body.
    Response(Value),
    /// `POST …/invocation/{id}/error` with the `Lambda-Runtime-Function-Error-Type` header and body.
    Error { error_type: Option<String>, body: Value },
}

impl Outcome {
    /// The response body; panics (with the error) if the invocation failed.
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            other => panic!("expected a response, the function reported {other:?}"),
        }
    }
}

/// What the function posted to `/runtime/init/error`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    pub error_type: Option<String>,
    pub body: Value,
}

struct Invocation {
    id: String,
    event: Vec<u8>,
    deadline_ms: u128,
    done: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    /// When the function first asked for an invocation: the end of its init.
    first_poll: std::sync::OnceLock<std::time::Instant>,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<InitError>>,
}

/// The Runtime API stand-in: one function instance polls it, the test invokes through it.
pub struct RuntimeApi {
    pub addr: SocketAddr,
    queue: mpsc::UnboundedSender<Invocation>,
    init_error: watch::Receiver<Option<InitError>>,
    server: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub async fn start(function_arn: &str) -> Self {
        let (queue, incoming) = mpsc::unbounded_channel();
        let (init_tx, init_error) = watch::channel(None);
        let shared = Arc::new(Shared {
            function_arn: function_arn.to_string(),
            first_poll: std::sync::OnceLock::new(),
            incoming: tokio::sync::Mutex::new(incoming),
            in_flight: Mutex::new(HashMap::new()),
            init_error: init_tx,
        });
        let router = Router::new()
            .route(&format!("{API}/invocation/next"), get(next))
            .route(&format!("{API}/invocation/{{id}}/response"), post(respond))
            .route(&format!("{API}/invocation/{{id}}/error"), post(fail))
            .route(&format!("{API}/init/error"), post(report_init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, queue, init_error, server, shared }
    }

    /// When the function first polled `/invocation/next` (its init was over), if it has.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        self.shared.first_poll.get().copied()
    }

    /// Hands `event` to the function (as the next invocation) and waits for its outcome.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Outcome {
        let (done, outcome) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        let deadline_ms = (std::time::SystemTime::now() + timeout).duration_since(std::time::UNIX_EPOCH).unwrap();
        let inv = Invocation {
            id: id.clone(),
            event: event.to_string().into_bytes(),
            deadline_ms: deadline_ms.as_millis(),
            done,
        };
        self.queue.send(inv).expect("the stand-in is running");
        match tokio::time::timeout(timeout + Duration::from_secs(5), outcome).await {
            Ok(Ok(o)) => o,
            Ok(Err(_)) => panic!("invocation {id}: the stand-in dropped it"),
            Err(_) => panic!("invocation {id}: no response or error within the function's timeout"),
        }
    }

    /// The init error the function reported, waiting up to `within` for one.
    pub async fn init_error(&self, within: Duration) -> Option<InitError> {
        let mut rx = self.init_error.clone();
        let found = tokio::time::timeout(within, rx.wait_for(Option::is_some)).await;
        found.ok().and_then(|r| r.ok().and_then(|v| v.clone()))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_poll.get_or_init(std::time::Instant::now);
    // Long poll, like Lambda: the function waits here until there is an event.
    let Some(inv) = s.incoming.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    s.in_flight.lock().unwrap().insert(inv.id.clone(), inv.done);
    let mut headers = HeaderMap::new();
    let h = |v: &str| HeaderValue::from_str(v).unwrap();
    headers.insert("Lambda-Runtime-Aws-Request-Id", h(&inv.id));
    headers.insert("Lambda-Runtime-Deadline-Ms", h(&inv.deadline_ms.to_string()));
    headers.insert("Lambda-Runtime-Invoked-Function-Arn", h(&s.function_arn));
    let trace = format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        inv.deadline_ms / 1000,
        &inv.id.replace('-', "")[..24],
        &inv.id.replace('-', "")[..16]
    );
    headers.insert("Lambda-Runtime-Trace-Id", h(&trace));
    headers.insert("Content-Type", h("application/json"));
    (StatusCode::OK, headers, inv.event).into_response()
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn finish(s: &Shared, id: &str, outcome: Outcome) -> Response {
    let Some(done) = s.in_flight.lock().unwrap().remove(id) else {
        // What Lambda answers for an unknown or already answered request id.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})),
        )
            .into_response();
    };
    let _ = done.send(outcome);
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

async fn respond(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    finish(&s, &id, Outcome::Response(parse(&body)))
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers.get("Lambda-Runtime-Function-Error-Type").and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn fail(State(s): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    finish(&s, &id, Outcome::Error { error_type: error_type(&headers), body: parse(&body) })
}

async fn report_init_error(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    s.init_error.send_replace(Some(InitError { error_type: error_type(&headers), body: parse(&body) }));
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

// ---------------------------------------------------------------------------------------------
// The function process

/// A function binary running against its own [`RuntimeApi`].
pub struct LambdaFunction {
    /// The template's logical id, e.g. `OutboundSenderFunction`.
    pub logical_id: String,
    /// The environment the process was started with.
    pub env: BTreeMap<String, String>,
    /// The function's `Timeout` from the template.
    pub timeout: Duration,
    api: RuntimeApi,
    child: tokio::process::Child,
    output: Arc<Mutex<Vec<String>>>,
    spawned_at: std::time::Instant,
}

impl LambdaFunction {
    /// Starts `binary` (`env!("CARGO_BIN_EXE_<name>")`) as the template function built from it.
    pub async fn start(binary: &str, sys: &System) -> Self {
        Self::start_with(binary, sys, &[]).await
    }

    /// Like [`start`](Self::start), with settings changed on top of the template's: `Some(v)` sets
    /// a variable, `None` removes it (e.g. to provoke an init failure).
    pub async fn start_with(binary: &str, sys: &System, changes: &[(&str, Option<&str>)]) -> Self {
        crate::init_env();
        let name = std::path::Path::new(binary).file_stem().unwrap().to_string_lossy().into_owned();
        let tpl = Template::load();
        let (logical_id, function) = tpl.function_built_from(&name);
        let timeout = Duration::from_secs(tpl.setting(function, "Timeout").and_then(|v| v.as_u64()).unwrap_or(3));
        let memory = tpl.setting(function, "MemorySize").and_then(|v| v.as_u64()).unwrap_or(128);

        let mut env = tpl.environment(function, sys);
        // Local stand-ins for the outside HTTP APIs (not template settings: they default to the
        // real services).
        env.insert("GRAPH_API_BASE".into(), format!("{}/sandbox/graph", sys.base));
        for (k, v) in changes {
            match v {
                Some(v) => env.insert(k.to_string(), v.to_string()),
                None => env.remove(*k),
            };
        }

        let function_name = format!("parley-{logical_id}");
        let arn = format!("arn:aws:lambda:eu-central-1:123456789012:function:{function_name}");
        let api = RuntimeApi::start(&arn).await;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .envs(&env)
            // What Lambda sets for every function (the reserved variables).
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string())
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/parley/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/01/01/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
            .env("_HANDLER", "bootstrap")
            .env("TZ", ":UTC")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The credentials, region and local endpoints of the test process (Lambda gives the
        // role's credentials and the region), unless the caller changes them (a TLS front).
        let changed = |k: &str| changes.iter().any(|(c, _)| *c == k);
        for (k, v) in
            std::env::vars().filter(|(k, _)| k.starts_with("AWS_") && !k.starts_with("AWS_LAMBDA") && !changed(k))
        {
            cmd.env(k, v);
        }
        let spawned_at = std::time::Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{binary} does not start: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var_os("PARLEY_TEST_LOG").is_some();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            let tag = name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[{tag}] {line}");
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }
        Self { logical_id: logical_id.to_string(), env, timeout, api, child, output, spawned_at }
    }

    /// The process id (for reading its CPU time and memory from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Init as Lambda counts it: from exec to the first `GET /invocation/next`; waits for it.
    pub async fn init_duration(&self) -> Duration {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(t) = self.api.first_poll() {
                return t - self.spawned_at;
            }
            assert!(std::time::Instant::now() < deadline, "{} never polled for an invocation", self.logical_id);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// One invocation with `event`; waits at most the function's timeout.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        self.api.invoke(event, self.timeout).await
    }

    /// An API Gateway (HTTP API, payload 2.0) invocation; returns `(statusCode, headers, body)`.
    pub async fn http(&self, event: &Value) -> (u16, Value, String) {
        let r = self.invoke(event).await.response();
        let status = r["statusCode"].as_u64().unwrap_or_else(|| panic!("no statusCode in {r}")) as u16;
        let body = r["body"].as_str().unwrap_or_default().to_string();
        let body = if r["isBase64Encoded"] == true {
            use base64::Engine;
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).unwrap()).unwrap()
        } else {
            body
        };
        (status, r["headers"].clone(), body)
    }

    /// Waits for the function to report an init error and exit.
    pub async fn init_failure(&mut self) -> (InitError, ExitStatus) {
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("the process exits").unwrap();
        // A runtime reports before it exits; a moment's grace for the stand-in to record it.
        let err = self.api.init_error(Duration::from_millis(500)).await.unwrap_or_else(|| {
            panic!("exited ({status}) without reporting an init error; output:\n{}", self.output().join("\n"));
        });
        (err, status)
    }

    /// Everything the process wrote so far (stdout and stderr lines: logs and EMF metrics).
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }
}

/// A sample event from `events/` as JSON.
pub fn sample(path: &str) -> Value {
    serde_json::from_str(&crate::fixture(path)).unwrap_or_else(|e| panic!("events/{path}: {e}"))
}

/// An SQS event as the event source mapping delivers it, one record per `(group, body)`, shaped
/// like `events/sqs/outbound_batch.json`. Returns the event and the records' message ids.
pub fn sqs_event(queue_arn: &str, messages: &[(&str, &str)]) -> (Value, Vec<String>) {
    let template = sample("sqs/outbound_batch.json")["Records"][0].clone();
    let now = crate::now() * 1000;
    let mut ids = Vec::new();
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (group, body))| {
            let id = uuid::Uuid::new_v4().to_string();
            ids.push(id.clone());
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["receiptHandle"] = json!(format!("AQEB{}", uuid::Uuid::new_v4().simple()));
            r["body"] = json!(body);
            // No reader of ours checks it, and a wrong digest would be worse than none.
            r.as_object_mut().unwrap().remove("md5OfBody");
            r["attributes"]["MessageGroupId"] = json!(group);
            r["attributes"]["MessageDeduplicationId"] = json!(format!("dedupe-{i}-{id}"));
            r["attributes"]["SentTimestamp"] = json!(now.to_string());
            r["attributes"]["ApproximateFirstReceiveTimestamp"] = json!((now + 10).to_string());
            r["attributes"]["SequenceNumber"] = json!(format!("{:020}", 18_899_000_000_000_000_000u128 + i as u128));
            r["eventSourceARN"] = json!(queue_arn);
            r
        })
        .collect();
    (json!({ "Records": records }), ids)
}

// ---------------------------------------------------------------------------------------------
// template.yaml

struct Template {
    doc: Yaml,
    /// `.env.example`: the documented local defaults (secrets included).
    local: HashMap<String, String>,
}

impl Template {
    fn load() -> Self {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let src = std::fs::read_to_string(format!("{root}/template.yaml")).unwrap();
        let doc: Yaml = serde_yaml_ng::from_str(&src).unwrap();
        let local = std::fs::read_to_string(format!("{root}/.env.example"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Self { doc, local }
    }

    /// The `AWS::Serverless::Function` whose `Metadata.BuildProperties.Binary` is `binary`.
    fn function_built_from(&self, binary: &str) -> (&str, &Yaml) {
        let resources = self.doc["Resources"].as_mapping().unwrap();
        resources
            .iter()
            .find(|(_, r)| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary))
            .map(|(k, r)| (k.as_str().unwrap(), r))
            .unwrap_or_else(|| panic!("template.yaml builds no function from the binary {binary}"))
    }

    /// A function property, else the Globals' value.
    fn setting<'a>(&'a self, function: &'a Yaml, key: &str) -> Option<&'a Yaml> {
        function["Properties"].get(key).or_else(|| self.doc["Globals"]["Function"].get(key))
    }

    /// Globals' variables, then the function's, with `!Ref`s resolved: resources to what `sys`
    /// provisioned, parameters to the local default for that variable (`.env.example`), else the
    /// parameter's `Default`; the HTTP API's URL to the local system's. Variables naming the
    /// Cognito user pool's resources stay unset: the local world has no user pool, agents sign in
    /// through the sandbox (as under `make dev`).
    fn environment(&self, function: &Yaml, sys: &System) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for vars in [&self.doc["Globals"]["Function"], &function["Properties"]] {
            let Some(vars) = vars["Environment"]["Variables"].as_mapping() else { continue };
            for (k, v) in vars {
                let name = k.as_str().unwrap().to_string();
                if self.names_cognito(v) {
                    continue;
                }
                // The content bucket exists locally only when a test turns content on; without
                // it the function runs as without CONTENT_BUCKET (the embedded set).
                if self.names_missing_bucket(v, sys) {
                    continue;
                }
                let value = self.resolve(&name, v, sys);
                env.insert(name, value);
            }
        }
        env
    }

    /// Whether a `!Ref X` or `!Sub "…${X}…"` names an `AWS::Cognito::*` resource.
    fn names_cognito(&self, v: &Yaml) -> bool {
        let Yaml::Tagged(t) = v else { return false };
        let Some(text) = t.value.as_str() else { return false };
        let names: Vec<&str> = match t.tag.to_string().trim_start_matches('!') {
            "Ref" => vec![text],
            "Sub" => text.split("${").skip(1).filter_map(|s| s.split('}').next()).collect(),
            _ => vec![],
        };
        names.iter().any(|n| {
            let logical = n.split('.').next().unwrap_or(n);
            self.doc["Resources"][logical]["Type"].as_str().is_some_and(|t| t.starts_with("AWS::Cognito::"))
        })
    }

    /// Whether a `!Ref X` names an `AWS::S3::Bucket` this system did not create.
    fn names_missing_bucket(&self, v: &Yaml, sys: &System) -> bool {
        let Yaml::Tagged(t) = v else { return false };
        let Some(logical) = t.value.as_str() else { return false };
        t.tag.to_string().trim_start_matches('!') == "Ref"
            && self.doc["Resources"][logical]["Type"].as_str() == Some("AWS::S3::Bucket")
            && sys.running.resources.bucket(logical).is_none()
    }

    fn resolve(&self, name: &str, v: &Yaml, sys: &System) -> String {
        let scalar = |v: &Yaml| match v {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Number(n) => Some(n.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        if let Some(s) = scalar(v) {
            return s;
        }
        let Yaml::Tagged(t) = v else { panic!("{name}: cannot resolve {v:?}") };
        let target = scalar(&t.value).unwrap_or_else(|| panic!("{name}: {v:?}"));
        // The HTTP API's own URL (the `ApiUrl` output) is, locally, the local system's.
        if t.tag.to_string().trim_start_matches('!') == "Sub" && target == API_URL {
            return sys.base.clone();
        }
        assert_eq!(t.tag.to_string().trim_start_matches('!'), "Ref", "{name}: only !Ref is resolved locally");
        let resources = &sys.running.resources;
        if let Some(table) = resources.table(&target) {
            return table.to_string();
        }
        if let Some(queue) = resources.queue(&target) {
            return queue.to_string();
        }
        if let Some(bucket) = resources.bucket(&target) {
            return bucket.to_string();
        }
        let param = &self.doc["Parameters"][target.as_str()];
        assert!(!param.is_null(), "{name}: !Ref {target} is neither a provisioned resource nor a parameter");
        self.local
            .get(name)
            .cloned()
            .or_else(|| param.get("Default").and_then(scalar))
            .unwrap_or_else(|| panic!("{name}: parameter {target} has no default and .env.example no local value"))
    }
}
