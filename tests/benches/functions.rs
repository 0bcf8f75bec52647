//! Per-function benchmark (not a test): `make bench-functions` builds every function with the
//! release profile `sam build` ships and runs each binary as Lambda runs it — under the Lambda
//! Runtime API stand-in (`parley_tests::lambda`), with template.yaml's environment, against the
//! local endpoints (moto) and the Graph stand-in — and prints, per function:
//!
//! - **binary**: the stripped release binary's size (the profile strips; the zip is smaller);
//! - **init**: exec → the first `GET /invocation/next`, as Lambda's `Init Duration` counts it,
//!   median of `PARLEY_BENCH_COLD` cold starts (default 5), with the CPU time and RSS it took;
//! - **first call**: the first invocation's wall time (connections to DynamoDB/SQS opened then,
//!   unless init warmed them);
//! - **warm**: `PARLEY_BENCH_INVOCATIONS` (default 200) invocations of the function's typical
//!   event, one after another: median and p90 wall time, and the process's CPU time per
//!   invocation (from `/proc/<pid>/schedstat`, so the local endpoints' own time is not in it);
//! - **peak RSS** after them (`VmHWM`);
//! - the same init and warm median under a **CPU quota like a 128 MB Lambda's** (128/1769 of a
//!   vCPU, a cgroup made for the run) where this machine lets the bench create a cgroup;
//! - then, in a second table, the calls **as in AWS, through TLS** (DynamoDB and SQS behind the
//!   loopback TLS front of `parley_tests::tls_proxy`, which keeps connections open as AWS's
//!   endpoints do — moto closes each after one answer): the first call with the connection
//!   opened during init, as the functions ship, and without (`INIT_WARM_UP=false`), with the
//!   handshakes each made; then warm calls with their CPU per call and handshakes.
//!
//! Wall times include the local endpoints' answers (moto on loopback, slower than DynamoDB);
//! the CPU column is the function's own work. `PARLEY_BENCH_BIN_DIR` picks the binaries
//! (default `target/release`; `target/debug` for a quick look — not representative).
use parley_tests::lambda::{sample, sqs_event, LambdaFunction};
use parley_tests::tls_proxy::TlsProxy;
use parley_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// One function and how to make its typical invocation.
struct Case {
    binary: &'static str,
    /// What the warm invocations do, for the table.
    what: &'static str,
    event: fn(&Ctx) -> Value,
}

/// What the events need from the run.
struct Ctx {
    bridge_url: String,
    bridge_secret: String,
    /// The sandbox's shop API stand-ins (`/sandbox/woo`, `/sandbox/shopify`).
    woo_url: String,
    shopify_url: String,
}

const CASES: &[Case] = &[
    Case { binary: "channel-webhook", what: "signed 1-message WhatsApp delivery, new contact", event: |_| webhook() },
    Case { binary: "inbound-worker", what: "SQS batch of 1 inbound text", event: |_| inbound() },
    Case { binary: "outbound-sender", what: "SQS batch of 1 reply", event: |_| outbound() },
    Case { binary: "consent-api", what: "GET /consent/status", event: |_| sample("apigw/consent_status_get.json") },
    Case {
        binary: "agent-api",
        what: "GET /agent/conversations",
        event: |_| sample("apigw/agent_conversations_get.json"),
    },
    Case { binary: "campaign-api", what: "GET /campaigns", event: |_| sample("apigw/campaigns_get.json") },
    Case {
        binary: "shop-webhook",
        what: "Shopify orders/create (repeats: the duplicate path)",
        event: |_| sample("apigw/shopify_post_orders_create.json"),
    },
    Case {
        binary: "campaign-dispatcher",
        what: "page job of a campaign that is gone (one read)",
        event: |_| dispatcher_job(),
    },
    Case { binary: "event-bridge", what: "the sample batch (3 events) delivered", event: bridge },
    Case {
        binary: "cart-reminder",
        what: "scheduled run, nothing due",
        event: |_| sample("scheduler/scheduled_event.json"),
    },
    Case {
        binary: "shop-reconciler",
        what: "scheduled run against the shop stand-ins",
        event: |_| sample("scheduler/scheduled_event.json"),
    },
];

fn webhook() -> Value {
    let body = wa_text(&customer(), &wamid(), "Hallo");
    let mut e = sample("apigw/meta_post_whatsapp_text.json");
    e["headers"]["x-hub-signature-256"] = json!(parley::channels::signature::sign(
        parley::channels::signature::Encoding::PrefixedHex,
        APP_SECRET,
        body.as_bytes()
    ));
    e["body"] = json!(body);
    e
}

fn inbound() -> Value {
    use parley::domain::{AccountId, Address, Channel, ContactId, InboundContent, InboundEvent, InboundMessage};
    let from = customer();
    let body = parley::queue::InboundEnvelope::new(InboundEvent::Message(InboundMessage {
        id: parley::domain::InboundMessageId::parse(wamid()).unwrap(),
        account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: ContactId::new(Channel::WhatsApp, Address::parse(&from).unwrap()),
        profile_name: None,
        phone: None,
        timestamp: now(),
        content: InboundContent::Text { body: "Lieferzeit".into() },
    }))
    .to_message()
    .body;
    let arn = "arn:aws:sqs:eu-central-1:123456789012:parley-InboundQueue.fifo";
    sqs_event(arn, &[(&format!("whatsapp#{from}"), &body)]).0
}

fn outbound() -> Value {
    let mut env: Value =
        serde_json::from_str(sample("sqs/outbound_batch.json")["Records"][0]["body"].as_str().unwrap()).unwrap();
    let (to, inbound) = (customer(), wamid());
    env["id"] = json!(format!("reply:{inbound}:0"));
    env["in_reply_to"] = json!(inbound);
    env["contact"]["address"] = json!(to);
    env["created_at"] = json!(now());
    let arn = "arn:aws:sqs:eu-central-1:123456789012:parley-OutboundQueue.fifo";
    sqs_event(arn, &[(&format!("whatsapp#{to}"), &env.to_string())]).0
}

fn dispatcher_job() -> Value {
    let job = json!({"campaign": format!("gone-{}", uuid::Uuid::new_v4()), "shard": 0}).to_string();
    let mut e = sqs_event("arn:aws:sqs:eu-central-1:123456789012:parley-CampaignQueue", &[("x", &job)]).0;
    // A standard queue's record has no group id.
    e["Records"][0]["attributes"].as_object_mut().map(|a| a.remove("MessageGroupId"));
    e
}

fn bridge(_: &Ctx) -> Value {
    let mut event = sample("sqs/bridge_batch.json");
    for r in event["Records"].as_array_mut().unwrap() {
        r["messageId"] = json!(uuid::Uuid::new_v4().to_string());
    }
    event
}

/// CPU time of a process so far (ns), from `/proc/<pid>/schedstat` (run time on the CPU).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A `/proc/<pid>/status` field in kB (`VmHWM`: peak RSS, `VmRSS`: now).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    binary_mb: f64,
    init_ms: f64,
    init_cpu_ms: f64,
    init_rss_mb: f64,
    first_ms: f64,
    warm_median_ms: f64,
    warm_p90_ms: f64,
    cpu_per_call_ms: f64,
    peak_rss_mb: f64,
    failures: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Starts the function with the settings the case needs, and `extra`.
async fn start(bin: &Path, sys: &System, ctx: &Ctx, case: &Case, extra: &[(&str, Option<&str>)]) -> LambdaFunction {
    // (`bin` may be a quota wrapper: it has the binary's name, the harness reads it from there.)
    let bin = bin.to_str().unwrap();
    let mut settings = extra.to_vec();
    if case.binary == "event-bridge" {
        settings.push(("BRIDGE_WEBHOOK_URL", Some(ctx.bridge_url.as_str())));
        settings.push(("BRIDGE_WEBHOOK_SECRET", Some(ctx.bridge_secret.as_str())));
    } else if case.binary == "shop-reconciler" {
        settings.push(("WOOCOMMERCE_STORE_URL", Some(ctx.woo_url.as_str())));
        settings.push(("SHOPIFY_ADMIN_BASE", Some(ctx.shopify_url.as_str())));
    }
    LambdaFunction::start_with(bin, sys, &settings).await
}

/// Cold starts with DynamoDB and SQS behind the TLS front: the init and the first invocation
/// (medians of `colds`), and the TLS handshakes made in each (the last start's).
struct TlsRow {
    init_ms: f64,
    first_ms: f64,
    handshakes_init: u64,
    handshakes_first: u64,
    /// Then `calls` warm invocations of the last start: wall median, CPU per call, handshakes.
    warm: Option<(f64, f64, u64)>,
}

/// A TLS run: warm the connection in init or not, how many cold starts, then how many warm calls.
#[derive(Clone, Copy)]
struct TlsPlan {
    warm: bool,
    colds: usize,
    calls: usize,
}

async fn measure_tls(bin: &Path, sys: &System, ctx: &Ctx, case: &Case, tls: &TlsProxy, plan: TlsPlan) -> TlsRow {
    let TlsPlan { warm, colds, calls } = plan;
    let ca = tls.ca_file.to_str().unwrap();
    let extra = [
        ("AWS_ENDPOINT_URL_DYNAMODB", Some(tls.url.as_str())),
        ("AWS_ENDPOINT_URL_SQS", Some(tls.url.as_str())),
        ("SSL_CERT_FILE", Some(ca)),
        ("INIT_WARM_UP", Some(if warm { "true" } else { "false" })),
    ];
    let (mut inits, mut firsts, mut hs, mut last) = (Vec::new(), Vec::new(), (0, 0), None);
    for _ in 0..colds {
        let before = tls.handshakes();
        let f = start(bin, sys, ctx, case, &extra).await;
        inits.push(ms(f.init_duration().await));
        let after_init = tls.handshakes();
        let event = (case.event)(ctx);
        let t = Instant::now();
        f.invoke(&event).await;
        firsts.push(ms(t.elapsed()));
        hs = (after_init - before, tls.handshakes() - after_init);
        last = Some(f);
    }
    let warm = match (last, calls) {
        (Some(f), 1..) => {
            let pid = f.pid().expect("running");
            let events: Vec<Value> = (0..calls).map(|_| (case.event)(ctx)).collect();
            let (cpu_before, handshakes_before) = (cpu_ns(pid), tls.handshakes());
            let mut walls = Vec::with_capacity(calls);
            for event in &events {
                let t = Instant::now();
                f.invoke(event).await;
                walls.push(ms(t.elapsed()));
            }
            let cpu = (cpu_ns(pid) - cpu_before) as f64 / 1e6 / calls as f64;
            Some((median(&mut walls), cpu, tls.handshakes() - handshakes_before))
        }
        _ => None,
    };
    TlsRow {
        init_ms: median(&mut inits),
        first_ms: median(&mut firsts),
        handshakes_init: hs.0,
        handshakes_first: hs.1,
        warm,
    }
}

async fn measure(bin: &Path, sys: &System, ctx: &Ctx, case: &Case, colds: usize, calls: usize) -> Row {
    // Cold starts: each a new process, measured up to its first poll.
    let (mut inits, mut init_cpu, mut init_rss) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..colds {
        let f = start(bin, sys, ctx, case, &[]).await;
        inits.push(ms(f.init_duration().await));
        let pid = f.pid().expect("running");
        init_cpu.push(cpu_ns(pid) as f64 / 1e6);
        init_rss.push(status_kb(pid, "VmHWM:") as f64 / 1024.0);
    }

    let f = start(bin, sys, ctx, case, &[]).await;
    f.init_duration().await;
    let pid = f.pid().expect("running");
    let mut failures = 0;
    let mut call = |outcome: parley_tests::lambda::Outcome| {
        let failed = match &outcome {
            parley_tests::lambda::Outcome::Error { .. } => true,
            parley_tests::lambda::Outcome::Response(v) => {
                v["statusCode"].as_u64().is_some_and(|s| s >= 400)
                    || v["batchItemFailures"].as_array().is_some_and(|a| !a.is_empty())
            }
        };
        if failed {
            failures += 1;
        }
    };
    let event = (case.event)(ctx);
    let t = Instant::now();
    call(f.invoke(&event).await);
    let first_ms = ms(t.elapsed());

    let events: Vec<Value> = (0..calls).map(|_| (case.event)(ctx)).collect();
    let cpu_before = cpu_ns(pid);
    let mut walls = Vec::with_capacity(calls);
    for event in &events {
        let t = Instant::now();
        call(f.invoke(event).await);
        walls.push(ms(t.elapsed()));
    }
    let cpu_per_call_ms = (cpu_ns(pid) - cpu_before) as f64 / 1e6 / calls as f64;
    Row {
        binary_mb: std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        init_ms: median(&mut inits),
        init_cpu_ms: median(&mut init_cpu),
        init_rss_mb: median(&mut init_rss),
        first_ms,
        warm_median_ms: median(&mut walls),
        warm_p90_ms: p90(&mut walls),
        cpu_per_call_ms,
        peak_rss_mb: status_kb(pid, "VmHWM:") as f64 / 1024.0,
        failures,
    }
}

#[tokio::main]
async fn main() {
    // Relative to the workspace root (cargo runs a bench in its package's folder).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(std::env::var("PARLEY_BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into()));
    let colds = env_usize("PARLEY_BENCH_COLD", 5).max(1);
    let calls = env_usize("PARLEY_BENCH_INVOCATIONS", 200).max(1);
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let sys = System::start().await;
    sys.seed_demo_catalog().await;
    let receiver = parley_tests::bridge_receiver::Receiver::start().await;
    let ctx = Ctx {
        bridge_url: receiver.url.clone(),
        bridge_secret: receiver.secret.clone(),
        woo_url: sys.url("/sandbox/woo"),
        shopify_url: sys.url("/sandbox/shopify"),
    };

    println!(
        "Binaries: `{}`; {colds} cold starts, {calls} warm invocations each.\n",
        std::env::var("PARLEY_BENCH_BIN_DIR").unwrap_or_else(|_| "target/release".into())
    );
    let quota = Quota::create();
    match &quota {
        Some(q) => println!("CPU quota like a 128 MB Lambda: {} µs per {PERIOD_US} µs ({}).\n", QUOTA_US, q.kind),
        None => println!("No writable cgroup here: the 128 MB columns are left empty.\n"),
    }
    println!(
        "| function | warm invocation | binary MB | init ms (CPU ms, RSS MB) | first call ms | warm median ms (p90) | CPU ms / call | peak RSS MB | 128 MB: init ms | 128 MB: warm median ms |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for case in CASES.iter().filter(|c| only.as_deref().is_none_or(|o| o == c.binary)) {
        let bin = dir.join(case.binary);
        if !bin.exists() {
            println!("| {} | — | not built | | | | | | | |", case.binary);
            continue;
        }
        let r = measure(&bin, &sys, &ctx, case, colds, calls).await;
        let throttled = match &quota {
            Some(q) => {
                let t = measure(&q.wrap(&bin), &sys, &ctx, case, colds, calls.min(50)).await;
                format!("{:.1} | {:.2}", t.init_ms, t.warm_median_ms)
            }
            None => " | ".to_string(),
        };
        let failed = if r.failures > 0 { format!(" ({} failed!)", r.failures) } else { String::new() };
        println!(
            "| {} | {}{failed} | {:.2} | {:.1} ({:.1}, {:.1}) | {:.1} | {:.2} ({:.2}) | {:.3} | {:.1} | {throttled} |",
            case.binary,
            case.what,
            r.binary_mb,
            r.init_ms,
            r.init_cpu_ms,
            r.init_rss_mb,
            r.first_ms,
            r.warm_median_ms,
            r.warm_p90_ms,
            r.cpu_per_call_ms,
            r.peak_rss_mb
        );
    }
    drop(quota);

    // The first call as in AWS: through TLS, with the connection opened during init (as the
    // functions ship) and without (`INIT_WARM_UP=false`).
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("the local endpoints (make bench-functions)");
    let tls = TlsProxy::start(&upstream).await;
    println!(
        "\nAs in AWS, through TLS: DynamoDB and SQS behind a loopback TLS 1.3 front (P-256 certificate, \
         `SSL_CERT_FILE`) that keeps connections open as AWS's endpoints do (the local endpoints close theirs \
         after every answer, so the table above pays a TCP connect per AWS call), S3 and the Graph stand-in \
         plain HTTP as above; the first call's medians of {colds} cold starts, then {calls} warm calls of the \
         last start.\n"
    );
    println!("| function | warmed in init: init ms | first call ms | not warmed: init ms | first call ms | handshakes in init / first call (warmed; not warmed) | then {calls} warm calls: median ms | CPU ms / call | handshakes |");
    println!("|---|---:|---:|---:|---:|---|---:|---:|---:|");
    for case in CASES.iter().filter(|c| only.as_deref().is_none_or(|o| o == c.binary)) {
        let bin = dir.join(case.binary);
        if !bin.exists() {
            continue;
        }
        let w = measure_tls(&bin, &sys, &ctx, case, &tls, TlsPlan { warm: true, colds, calls }).await;
        let c = measure_tls(&bin, &sys, &ctx, case, &tls, TlsPlan { warm: false, colds, calls: 0 }).await;
        let (warm_ms, warm_cpu, warm_handshakes) = w.warm.unwrap_or_default();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {} / {}; {} / {} | {warm_ms:.2} | {warm_cpu:.3} | {warm_handshakes} |",
            case.binary,
            w.init_ms,
            w.first_ms,
            c.init_ms,
            c.first_ms,
            w.handshakes_init,
            w.handshakes_first,
            c.handshakes_init,
            c.handshakes_first
        );
    }
    sys.stop().await;
}

/// A 128 MB Lambda gets 128/1769 of a vCPU (a full vCPU at 1769 MB).
const PERIOD_US: u64 = 100_000;
const QUOTA_US: u64 = PERIOD_US * 128 / 1769;

/// A CPU cgroup with that quota (cgroup v1 `cpu` or v2 `cpu.max`), where this machine lets us
/// make one; removed on drop.
struct Quota {
    kind: &'static str,
    dir: std::path::PathBuf,
    wrappers: std::path::PathBuf,
}

impl Quota {
    fn create() -> Option<Self> {
        let name = format!("parley-bench-{}", std::process::id());
        let wrappers = std::env::temp_dir().join(&name);
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let (kind, dir) = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir(&dir).ok()?;
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string()).ok()?;
            std::fs::write(dir.join("cpu.cfs_quota_us"), QUOTA_US.to_string()).ok()?;
            ("cgroup v1", dir)
        } else {
            let dir = Path::new("/sys/fs/cgroup").join(&name);
            std::fs::create_dir(&dir).ok()?;
            std::fs::write(dir.join("cpu.max"), format!("{QUOTA_US} {PERIOD_US}")).ok()?;
            ("cgroup v2", dir)
        };
        std::fs::create_dir_all(&wrappers).ok()?;
        Some(Self { kind, dir, wrappers })
    }

    /// A script with the binary's name that moves itself into the group, then execs the binary
    /// (so init is throttled from the start; the shell adds about a millisecond).
    fn wrap(&self, bin: &Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = self.wrappers.join(bin.file_name().unwrap());
        let procs = self.dir.join("cgroup.procs");
        std::fs::write(&script, format!("#!/bin/sh\necho $$ > '{}'\nexec '{}'\n", procs.display(), bin.display()))
            .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.wrappers);
        // Empty once its processes are gone (each function is killed when dropped).
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
