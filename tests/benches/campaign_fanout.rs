//! Campaign fan-out benchmark (not a test): `make bench-campaign` (`N=` recipients, default
//! 100000) against the local endpoints (moto via local/with-endpoints.sh).
//!
//! 1. Seeds N contacts with confirmed marketing consent into a fresh table: the items a shop's
//!    confirmed opt-in writes (`parley::consent::new_contact_items`: profile, marketing audience
//!    entry, audit event), loaded with BatchWriteItem, so the audience index is the real one.
//! 2. Creates and starts a campaign through the campaign service, at 1000 messages a second
//!    (the most Meta allows a number) with a daily cap above N.
//! 3. Drives the real dispatcher (`parley::campaigns::handle_jobs`) over the real campaign
//!    queue with up to 8 concurrent pollers (the event source's MaximumConcurrency) until every
//!    recipient is queued on the outbound queue. The sender does not run: what it costs per
//!    message is the sender's own (tests/hot_path.rs, tests/sender.rs).
//! 4. Prints, per audience shard (and the quiet-hours pass), the page jobs handled, those that
//!    failed and came back (batch item failures), redeliveries and the longest pause between two
//!    of its jobs: where a slowdown comes from.
//! 5. Prints recipients queued per second (wall clock), the AWS requests per recipient by
//!    operation (counted by an SDK interceptor on the dispatcher's clients: the cost bench's
//!    metering proxy reads back every item written, which would double the endpoints' load and
//!    halve the throughput measured here; both use `parley_tests::billing`), DynamoDB write and
//!    read request units per recipient (from the items' sizes, as DynamoDB bills them) and the
//!    $ per 1000 recipients at the list prices in [`prices`].
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use futures::StreamExt;
use parley::domain::campaign::Action;
use parley::domain::consent::{ConsentEvent, ConsentPolicy, ConsentPurpose};
use parley::domain::ContactId;
use parley_tests::billing::{item_size, prices};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one AWS call cost, as billed.
#[derive(Debug, Default, Clone)]
struct Cost {
    requests: u64,
    wru: f64,
    rru: f64,
    /// SQS requests as billed (one per 64 KB of payload).
    sqs_billed: u64,
}

#[derive(Debug, Clone)]
struct Pending(String, Cost);
impl Storable for Pending {
    type Storer = StoreReplace<Self>;
}

/// Counts every call of the clients it is on, by `service:Operation` (and queue kind for SQS).
#[derive(Debug, Clone, Default)]
struct Meter(Arc<Mutex<BTreeMap<String, Cost>>>);

impl Meter {
    fn take(&self) -> BTreeMap<String, Cost> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Meter {
    fn name(&self) -> &'static str {
        "bench-meter"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = ctx.request();
        let target = req.headers().get("x-amz-target").unwrap_or_default().to_string();
        let bytes = req.body().bytes().unwrap_or_default();
        let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let (service, op) = target.split_once('.').unwrap_or(("?", &target));
        let mut cost = Cost { requests: 1, ..Default::default() };
        let key = if service.starts_with("DynamoDB") {
            cost.wru = write_units(op, &body);
            format!("dynamodb:{op}")
        } else {
            let fifo = body["QueueUrl"].as_str().is_some_and(|u| u.ends_with(".fifo"));
            cost.sqs_billed = (bytes.len() as u64).div_ceil(64 * 1024).max(1);
            format!("sqs:{op} ({})", if fifo { "fifo" } else { "standard" })
        };
        cfg.interceptor_state().store_put(Pending(key, cost));
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Pending(key, mut cost)) = cfg.load::<Pending>().cloned() else { return Ok(()) };
        if let Some(op) = key.strip_prefix("dynamodb:") {
            let body: Value =
                ctx.response().body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
            cost.rru = read_units(op, &body);
        }
        let mut all = self.0.lock().unwrap();
        let sum = all.entry(key).or_default();
        sum.requests += cost.requests;
        sum.wru += cost.wru;
        sum.rru += cost.rru;
        sum.sqs_billed += cost.sqs_billed;
        Ok(())
    }
}

/// Write units of an item: one per KB; as many again in `gsi1` (all attributes), one in `gsi2`
/// (keys only) when the item is in them. (A put that takes an item out of `gsi2` costs that
/// index one more unit, not seen here: no recipient waits in this benchmark.)
fn put_units(item: &Value) -> f64 {
    let units = item_size(item).div_ceil(1024).max(1) as f64;
    let gsi1 = if item.get("gsi1pk").is_some() { units } else { 0.0 };
    let gsi2 = if item.get("gsi2pk").is_some() { 1.0 } else { 0.0 };
    units + gsi1 + gsi2
}

/// Write units of a request. An update is billed by the item's size, which the request does
/// not show: the items the fan-out updates (stats, profile, cursor, bucket) are all under 1 KB
/// (their keys and values are printed in the request), so one unit each.
fn write_units(op: &str, body: &Value) -> f64 {
    match op {
        "PutItem" => put_units(&body["Item"]),
        "UpdateItem" | "DeleteItem" => 1.0,
        "BatchWriteItem" => body["RequestItems"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|l| l.as_array().cloned().unwrap_or_default())
            .map(|r| if r.get("PutRequest").is_some() { put_units(&r["PutRequest"]["Item"]) } else { 1.0 })
            .sum(),
        // Transactions cost twice.
        "TransactWriteItems" => {
            body["TransactItems"].as_array().map_or(0.0, |l| {
                l.iter().map(|i| if i.get("Put").is_some() { put_units(&i["Put"]["Item"]) } else { 1.0 }).sum()
            }) * 2.0
        }
        _ => 0.0,
    }
}

/// Read units of a response: 4 KB units, half for eventually consistent reads (queries and
/// batch reads); every GetItem counts as strongly consistent (the bucket's and the counters'
/// are), which rounds the campaign's own reads up.
fn read_units(op: &str, body: &Value) -> f64 {
    let units = |bytes: usize| bytes.div_ceil(4096).max(1) as f64;
    match op {
        "GetItem" => units(item_size(&body["Item"])),
        "Query" => units(body["Items"].as_array().map_or(0, |l| l.iter().map(item_size).sum())) * 0.5,
        "BatchGetItem" => {
            body["Responses"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                .map(|i| units(item_size(&i)))
                .sum::<f64>()
                * 0.5
        }
        _ => 0.0,
    }
}

/// Distinct German mobile numbers (+49 151 …), the same for a given `i`.
fn number(i: usize) -> String {
    format!("49151{i:08}")
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

#[tokio::main]
async fn main() {
    parley_tests::init_env();
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let pollers: usize = std::env::var("POLLERS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let meter = Meter::default();
    // The dispatcher's clients, with its function's budget (Timeout 30 in template.yaml).
    let budget = parley::budget::Budget::for_timeout(Duration::from_secs(30));
    let (ddb, sqs) = parley::budget::aws_clients_with(&budget, &Default::default()).await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(ddb.config().to_builder().interceptor(meter.clone()).build());
    let sqs = aws_sdk_sqs::Client::from_conf(sqs.config().to_builder().interceptor(meter.clone()).build());
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let res = parley_local::provision::provision(template.as_ref(), &prefix, &ddb, &sqs).await.expect("provision");
    let aws = parley::config::AwsSettings {
        table: res.table("Table").unwrap().into(),
        outbound_queue_url: res.queue("OutboundQueue").unwrap().into(),
        outbound_dlq_url: None,
        inbound_queue_url: None,
        inbound_dlq_url: None,
        campaign_queue_url: Some(res.queue("CampaignQueue").unwrap().into()),
        campaign_dlq_url: res.queue("CampaignDLQ").map(str::to_string),
    };
    let meta = parley::config::MetaSettings::from_env().expect("meta settings");
    let app = Arc::new(parley::api::App::new(ddb.clone(), sqs.clone(), aws.clone(), meta).expect("app"));
    // The benchmark's own reads (progress) go around the meter.
    let (plain_ddb, plain_sqs) = parley::budget::aws_clients_with(&budget, &Default::default()).await;
    let watch = parley::store::Store::new(plain_ddb, aws.table.clone());

    // 1. Seed.
    let started = Instant::now();
    let now_ms = parley::time_util::now_millis();
    let policy = ConsentPolicy::default();
    let ctx = parley::consent::AuditContext { source: "shop", ..Default::default() };
    let confirmed = ConsentEvent::ShopConfirmed { purposes: vec![ConsentPurpose::Marketing] };
    let mut items = Vec::with_capacity(n * 3);
    for i in 0..n {
        let digits = number(i);
        let contact = ContactId::from_path("whatsapp", &digits).expect("a valid address");
        let seed = parley::store::consent::ProfileSeed {
            account: Some(parley_tests::WA_PHONE_NUMBER_ID.to_string()),
            locale: Some("de".into()),
            phone: parley::domain::E164Phone::from_digits(&digits),
        };
        items.extend(
            parley::consent::new_contact_items(&contact, &confirmed, now_ms, &ctx, &policy, &seed).expect("items"),
        );
    }
    let item_count = items.len();
    // Chunks of 250 items (10 BatchWriteItem), 8 at a time. Puts are idempotent: a chunk whose
    // load timed out (a busy endpoint) is loaded again, so a slow endpoint costs time, not the run.
    let loads = items.chunks(250).map(|c| {
        let app = Arc::clone(&app);
        async move {
            let mut tries = 0;
            loop {
                match app.store.batch_put(c.to_vec()).await {
                    Err(e) if tries < 20 => {
                        tries += 1;
                        eprintln!("seeding a chunk again after: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    done => break done,
                }
            }
        }
    });
    let loaded: Vec<_> = futures::stream::iter(loads).buffer_unordered(8).collect().await;
    for load in loaded {
        load.expect("seed");
    }
    let seeded = meter.take();
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {n} contacts ({item_count} items, {} BatchWriteItem) in {seed_secs:.1} s: {:.0} contacts/s",
        seeded.get("dynamodb:BatchWriteItem").map_or(0, |c| c.requests),
        n as f64 / seed_secs
    );

    // 2. The campaign: everyone with confirmed marketing consent, as fast as Meta allows, a
    // daily cap above N (the default, 1000, is Meta's first tier: it would stop there).
    let campaigns = app.campaigns().expect("campaign service");
    let spec: parley::campaigns::Spec = serde_json::from_value(serde_json::json!({
        "name": "Benchmark",
        "template": {"name": "newsletter", "language": "de", "parameters": ["{{contact.first_name|du}}", "sommer"]},
        "segment": {},
        "rate_per_second": parley::domain::campaign::MAX_RATE,
        "daily_cap": n + 1000,
        "quiet_hours": {"start": "00:00", "end": "23:59", "sundays": true},
    }))
    .expect("spec");
    let now = parley::time_util::now_unix();
    let rec = campaigns.create(spec, now).await.expect("create");
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    campaigns.act(&rec.id, Action::Start, now).await.expect("start");

    // 3. The dispatcher, polled as the event source does, until everyone is queued; each
    // batch's jobs are tallied by shard.
    let chains = Chains::default();
    let handler: parley_local::poller::SqsHandler = {
        let (app, chains) = (Arc::clone(&app), chains.clone());
        Arc::new(move |event| {
            let (app, chains) = (Arc::clone(&app), chains.clone());
            Box::pin(async move {
                let began = Instant::now();
                let jobs: Vec<(String, Option<String>, bool)> = event
                    .records
                    .iter()
                    .map(|r| {
                        let again = r.attributes.get("ApproximateReceiveCount").is_some_and(|c| c != "1");
                        (r.message_id.clone().unwrap_or_default(), r.body.clone(), again)
                    })
                    .collect();
                let response = parley::campaigns::handle_jobs(&app, event).await;
                let failed: Vec<&str> =
                    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                chains.record(&jobs, &failed, began);
                response
            })
        })
    };
    let queue_url = aws.campaign_queue_url.clone().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..pollers)
        .map(|_| {
            let (handler, sqs, url, mut stop) = (Arc::clone(&handler), sqs.clone(), queue_url.clone(), stop_rx.clone());
            tokio::spawn(async move {
                // Long polls of up to 20 s, as Lambda's event source does: a receive that a
                // busy endpoint answers late is waited for instead of hiding its messages for
                // the queue's visibility timeout.
                loop {
                    tokio::select! {
                        _ = parley_local::poller::poll_once(&handler, &sqs, &url, 20) => {},
                        _ = stop.changed() => break,
                    }
                }
            })
        })
        .collect();
    let depth = || async {
        plain_sqs
            .get_queue_attributes()
            .queue_url(&aws.outbound_queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.attributes?.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).cloned()
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let mut last_print = Instant::now();
    let mut last_depth = Instant::now();
    let mut last_progress = (0i64, Instant::now());
    let queued = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Read outside the meter: the benchmark's own polling is no cost of the fan-out.
        let Ok(counts) = watch.campaign_counts(&rec.id).await else { continue };
        let queued = counts.get("queued").copied().unwrap_or(0);
        if queued != last_progress.0 {
            last_progress = (queued, Instant::now());
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("  {queued} of {n} queued after {:.0} s; {}", start.elapsed().as_secs_f64(), chains.summary());
            last_print = Instant::now();
        }
        // The counters can drift under timeouts (README "Throughput and cost"): the outbound
        // queue holding everyone ends the run too.
        if queued as usize >= n
            || (last_depth.elapsed() > Duration::from_secs(2) && {
                last_depth = Instant::now();
                depth().await >= n
            })
        {
            break queued;
        }
        if last_progress.1.elapsed() > Duration::from_secs(300) {
            eprintln!("stalled: {queued} of {n} queued, nothing new for five minutes; counts: {counts:?}");
            std::process::exit(1);
        }
    };
    // The counters move before a page's SendMessageBatch: the finish line is the outbound queue
    // holding every message, with the pollers still running (stopping them earlier would cancel
    // the last pages mid-enqueue).
    let settle = Instant::now();
    while depth().await < n && settle.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let fanout = meter.take();
    let outbound = depth().await.to_string();
    report(n, queued, wall, cpu, &outbound, &fanout);
    chains.print();
}

/// One chain's page jobs: handled, failed (retried by SQS), redelivered, the slowest batch and
/// the longest pause between two of its jobs.
#[derive(Debug, Default, Clone)]
struct Chain {
    jobs: u64,
    failed: u64,
    redelivered: u64,
    slowest: Duration,
    last: Option<Instant>,
    longest_pause: Duration,
}

/// The chains by name: audience shard `0`…`7`, `waiting` (the quiet-hours pass).
#[derive(Debug, Default, Clone)]
struct Chains(Arc<Mutex<BTreeMap<String, Chain>>>);

impl Chains {
    /// One batch: its jobs (message id, body, redelivered) and the ids that failed.
    fn record(&self, jobs: &[(String, Option<String>, bool)], failed: &[&str], began: Instant) {
        let now = Instant::now();
        let mut all = self.0.lock().unwrap();
        for (id, body, again) in jobs {
            let job: Option<parley::campaigns::Job> = body.as_deref().and_then(|b| serde_json::from_str(b).ok());
            let name = match job.map(|j| j.shard) {
                Some(Some(shard)) => shard.to_string(),
                Some(None) => "waiting".into(),
                None => "unreadable".into(),
            };
            let chain = all.entry(name).or_default();
            chain.jobs += 1;
            if failed.contains(&id.as_str()) {
                chain.failed += 1;
            }
            if *again {
                chain.redelivered += 1;
            }
            chain.slowest = chain.slowest.max(now - began);
            if let Some(last) = chain.last {
                chain.longest_pause = chain.longest_pause.max(began.saturating_duration_since(last));
            }
            chain.last = Some(now);
        }
    }

    fn summary(&self) -> String {
        let all = self.0.lock().unwrap();
        let sum = |f: fn(&Chain) -> u64| all.values().map(f).sum::<u64>();
        format!("{} jobs, {} failed, {} redelivered", sum(|c| c.jobs), sum(|c| c.failed), sum(|c| c.redelivered))
    }

    fn print(&self) {
        println!("  page jobs by chain (shard, or the quiet-hours pass):");
        println!(
            "    {:<10} {:>6} {:>7} {:>12} {:>14} {:>16}",
            "chain", "jobs", "failed", "redelivered", "slowest batch", "longest pause"
        );
        for (name, c) in self.0.lock().unwrap().iter() {
            println!(
                "    {name:<10} {:>6} {:>7} {:>12} {:>12.1} s {:>14.1} s",
                c.jobs,
                c.failed,
                c.redelivered,
                c.slowest.as_secs_f64(),
                c.longest_pause.as_secs_f64()
            );
        }
        let totals = parley::observability::totals();
        println!(
            "  dispatcher counters: CampaignJobRetried {}, CampaignJobFailed {}, CampaignJobDeadLettered {}",
            totals.get("CampaignJobRetried").unwrap_or(&0),
            totals.get("CampaignJobFailed").unwrap_or(&0),
            totals.get("CampaignJobDeadLettered").unwrap_or(&0)
        );
    }
}

fn report(n: usize, queued: i64, wall: f64, cpu: f64, outbound: &str, calls: &BTreeMap<String, Cost>) {
    let per = |x: f64| x / n as f64;
    println!("\ncampaign fan-out of {n} recipients (rate 1000/s, daily cap {}):", n + 1000);
    println!("  queued {queued} (outbound queue holds {outbound}) in {wall:.1} s: {:.0} recipients/s", n as f64 / wall);
    println!("  benchmark process CPU {cpu:.1} s of {wall:.1} s wall (the rest is waiting on the endpoints)");
    println!("  AWS requests per recipient by operation:");
    let (mut wru, mut rru, mut ddb_req, mut sqs_req, mut sqs_std, mut sqs_fifo) = (0.0, 0.0, 0u64, 0u64, 0u64, 0u64);
    for (op, c) in calls {
        println!("    {op:<42} {:>8.4}  ({} requests)", per(c.requests as f64), c.requests);
        wru += c.wru;
        rru += c.rru;
        if op.starts_with("dynamodb:") {
            ddb_req += c.requests;
        } else {
            sqs_req += c.requests;
            if op.ends_with("(fifo)") {
                sqs_fifo += c.sqs_billed;
            } else {
                sqs_std += c.sqs_billed;
            }
        }
    }
    println!(
        "  DynamoDB requests per recipient {:.3}, SQS requests per recipient {:.3}",
        per(ddb_req as f64),
        per(sqs_req as f64)
    );
    println!("  DynamoDB write units per recipient {:.3}, read units per recipient {:.3}", per(wru), per(rru));
    let dollars = wru * prices::DYNAMODB_WRU
        + rru * prices::DYNAMODB_RRU
        + sqs_std as f64 * prices::SQS_STANDARD
        + sqs_fifo as f64 * prices::SQS_FIFO;
    println!(
        "  $ per 1000 recipients (us-east-1 on-demand list prices, 2026-12-02; DynamoDB + SQS, no Lambda, no Meta fee): {:.5}",
        dollars / n as f64 * 1000.0
    );
}
