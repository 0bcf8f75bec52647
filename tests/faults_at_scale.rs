//! Faults at scale (issue 11 item 5): a loopback proxy between the system and the local
//! DynamoDB and SQS fails 10% of the calls the way the services do — throttling, 500s, dropped
//! connections — while hundreds of messages and orders arrive; every one is answered exactly
//! once or parked in a DLQ. Its own test binary: its load on the local endpoints would make the
//! timing tests of `tests/faults.rs` miss their budgets if they ran beside it.
use parley_tests::fault_proxy::FaultProxy;
use parley_tests::*;
use std::time::{Duration, Instant};

/// After the last expected answer, how long no further answer may arrive.
const QUIET: Duration = Duration::from_millis(1500);

/// How many of each: the numbers times `PARLEY_FAULTS_SCALE`. The default 0.3 keeps the
/// test near a minute in `make test`; the local DynamoDB serves one request at a time, and at
/// the full numbers (`PARLEY_FAULTS_SCALE=1`, about 3 minutes on a quiet 2-core machine) its
/// answers start to outlast the 2 s operation budget while the rest of the suite runs beside it.
fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("PARLEY_FAULTS_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(0.3);
    ((n as f64 * scale).round() as usize).max(1)
}

/// Posts like the platform does: a 5xx is retried with the same delivery id until it is
/// accepted, backing off to 1 s. A failed attempt that could not give its claim back leaves it
/// leased ([`CLAIM_LEASE`]): its retries are told 503 until then, so this waits longer than that.
async fn deliver<F, Fut>(what: &str, post: F) -> u32
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let give_up = Instant::now() + CLAIM_LEASE * 9;
    let mut statuses = Vec::new();
    for attempt in 1.. {
        let status = post().await.status().as_u16();
        match status {
            200 => return attempt,
            500..=599 if Instant::now() < give_up => {
                statuses.push(status);
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await
            }
            other => panic!("{what}: answered {other} after {statuses:?}"),
        }
    }
    unreachable!()
}

/// Deliveries in flight at once: the local DynamoDB handles one request at a time, and more
/// than this pushes its answers past the 2 s an operation may take on a loaded 2-core machine.
const CONCURRENCY: usize = 6;

/// Shorter than the default 30 s so that a claim stranded by a lost answer frees in test time.
const CLAIM_LEASE: Duration = Duration::from_secs(10);

fn consent_yes(from: &str) -> String {
    let tap = serde_json::json!({"type": "interactive", "interactive": {"type": "button_reply",
        "button_reply": {"id": "consent:yes", "title": "Ja"}}});
    wa_delivery(from, &wamid(), now(), tap)
}

/// Issue 11 item 5: 500 inbound messages and 100 orders (scaled, see [`scaled`]) while 10% of DynamoDB and SQS calls are
/// throttled, fail with a 500, or lose their connection (before or after the endpoint did the
/// work). Every message is answered exactly once, or parked in a DLQ; none lost, none doubled.
///
/// The messages: 100 customers opt in (START, then the "yes" button: 200 messages, one answer
/// each) and 300 others ask one question each; then each opted-in customer's order arrives
/// (half Shopify, half WooCommerce), which is confirmed once. Each customer is its own
/// conversation, so what the Graph stand-in received for them counts per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_percent_injected_faults_lose_and_double_nothing() {
    use parley_tests::fault_proxy::Service;
    init_env();
    let upstream = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by make test"));
    let seed: u64 = std::env::var("PARLEY_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let ddb =
        FaultProxy::start_injecting(&upstream("AWS_ENDPOINT_URL_DYNAMODB"), Service::DynamoDb, 0.10, seed, &[]).await;
    // The local pollers stand in for Lambda's event source mapping, whose receives and deletes
    // happen inside AWS, not on the function's connections: those pass. (A receive whose answer
    // is lost hides its messages for the queue's whole visibility timeout, 180 s — on AWS too.)
    const EVENT_SOURCE_MAPPING: &[&str] = &["AmazonSQS.ReceiveMessage", "AmazonSQS.DeleteMessageBatch"];
    let sqs = FaultProxy::start_injecting(
        &upstream("AWS_ENDPOINT_URL_SQS"),
        Service::Sqs,
        0.10,
        seed + 1,
        EVENT_SOURCE_MAPPING,
    )
    .await;
    let (d, q) = (ddb.url(), sqs.url());
    let system = System::start_with(|o| {
        o.dynamodb_endpoint = Some(d);
        o.sqs_endpoint = Some(q);
        o.claim_lease = Some(CLAIM_LEASE);
    })
    .await;
    let started = Instant::now();
    let (shoppers, askers) = (scaled(100), scaled(300));
    let shoppers: Vec<String> = (0..shoppers).map(|_| customer()).collect();
    let askers: Vec<String> = (0..askers).map(|_| customer()).collect();
    let sys = &system;
    use futures::StreamExt;

    // START from every shopper and a question from every asker, a few deliveries at a time.
    let start_and_ask = shoppers
        .iter()
        .map(|to| (to.clone(), wa_text(to, &wamid(), "START")))
        .chain(askers.iter().map(|to| (to.clone(), wa_text(to, &wamid(), "Lieferzeit"))));
    let attempts: Vec<u32> = futures::stream::iter(start_and_ask)
        .map(|(to, body)| async move { deliver(&format!("message from {to}"), || sys.post_meta(&body)).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // Each shopper taps "yes" once the question is there.
    let taps: Vec<u32> = futures::stream::iter(&shoppers)
        .map(|to| async move {
            sys.wait_for_messages_within(to, 1, Duration::from_secs(120)).await;
            let body = consent_yes(to);
            deliver(&format!("consent of {to}"), || sys.post_meta(&body)).await
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // Then each shopper's order, once the confirmation of the opt-in is there.
    let orders: Vec<u32> = futures::stream::iter(shoppers.iter().enumerate())
        .map(|(i, to)| async move {
            sys.wait_for_messages_within(to, 2, Duration::from_secs(120)).await;
            let platform = if i % 2 == 0 { "shopify" } else { "woocommerce" };
            let (_, body) = sys.withheld_order(platform, to).await;
            let delivery_id = uuid::Uuid::new_v4().simple().to_string();
            if platform == "shopify" {
                let post = || sys.post_shopify_delivery("orders/create", &body, SHOPIFY_DOMAIN, &delivery_id);
                deliver(&format!("shopify order for {to}"), post).await
            } else {
                deliver(&format!("woocommerce order for {to}"), || {
                    sys.post_woo_delivery("order.created", &body, &delivery_id)
                })
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    // What each customer got: shoppers 3 (question, confirmation, order), askers 1. Waited for
    // in parallel, then a quiet spell for late duplicates.
    let expected: Vec<(&String, usize)> =
        shoppers.iter().map(|s| (s, 3)).chain(askers.iter().map(|a| (a, 1))).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counts = futures::future::join_all(expected.iter().map(|(to, _)| sys.messages_to(to))).await;
        let short = expected.iter().zip(&counts).filter(|((_, n), got)| got.len() < *n).count();
        if short == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(QUIET).await;
    let counts = futures::future::join_all(expected.iter().map(|(to, _)| sys.messages_to(to))).await;

    // Whatever was parked, with its reason: which DLQ (read with the system's own client, past
    // the proxy). A message is parked after its queue's MaxReceiveCount failed receives.
    let direct = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
            .endpoint_url(upstream("AWS_ENDPOINT_URL_SQS"))
            .build(),
    );
    let mut parked = Vec::new();
    for dlq in ["InboundDLQ", "OutboundDLQ"] {
        let url = sys.running.resources.queue(dlq).expect("a queue of the template").to_string();
        loop {
            let got = direct.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
            let bodies: Vec<String> = got.messages().iter().filter_map(|m| m.body().map(str::to_string)).collect();
            if bodies.is_empty() {
                break;
            }
            parked.extend(bodies.into_iter().map(|b| format!("{dlq}: {b}")));
        }
    }
    let (ddb_report, sqs_report) = (ddb.report(), sqs.report());
    eprintln!(
        "faults at scale: {} messages, {} orders in {:?}; webhook attempts {} (messages), {} (taps), {} (orders); \
         DynamoDB {} requests, {} faults {:?}; SQS {} requests, {} faults {:?}; parked {}",
        attempts.len() + taps.len(),
        orders.len(),
        started.elapsed(),
        attempts.iter().sum::<u32>(),
        taps.iter().sum::<u32>(),
        orders.iter().sum::<u32>(),
        ddb_report.requests,
        ddb_report.total(),
        ddb_report.injected,
        sqs_report.requests,
        sqs_report.total(),
        sqs_report.injected,
        parked.len(),
    );
    let mut lost = Vec::new();
    let mut doubled = Vec::new();
    for ((to, want), got) in expected.iter().zip(&counts) {
        if got.len() > *want {
            doubled.push(format!("{to}: {} of {want}: {got:#?}", got.len()));
        } else if got.len() < *want && !parked.iter().any(|p| p.contains(to.as_str())) {
            lost.push(format!("{to}: {} of {want}: {got:#?}", got.len()));
        }
    }
    assert!(doubled.is_empty(), "answered more than once:\n{}", doubled.join("\n"));
    assert!(lost.is_empty(), "lost (neither answered nor parked):\n{}", lost.join("\n"));
    for p in &parked {
        eprintln!("parked: {p}");
    }
    // The faults did happen, in both services and of every kind.
    for report in [&ddb_report, &sqs_report] {
        assert!(report.total() * 20 >= report.requests, "fewer than 5% faults: {report:?}");
        assert!(report.injected.iter().all(|(_, n)| *n > 0), "a kind never injected: {report:?}");
    }
    system.stop().await;
}
