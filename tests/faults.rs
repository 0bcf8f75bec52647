//! Every outside call has a budget: with DynamoDB or SQS hung (a loopback proxy that accepts and
//! never answers), slow or resetting connections, the webhooks answer a retryable 5xx within 3 s
//! and `/health` a 503 within 3 s; once the dependency is back, the same delivery succeeds —
//! the failed attempt released its claims, so nothing is lost.
use parley_tests::fault_proxy::{Fault, FaultProxy};
use parley_tests::*;
use std::time::{Duration, Instant};

const ANSWER_WITHIN: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(1500);

struct Faulty {
    sys: System,
    ddb: FaultProxy,
    sqs: FaultProxy,
}

async fn faulty_system() -> Faulty {
    init_env();
    let upstream = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by make test"));
    let ddb = FaultProxy::start(&upstream("AWS_ENDPOINT_URL_DYNAMODB")).await;
    let sqs = FaultProxy::start(&upstream("AWS_ENDPOINT_URL_SQS")).await;
    let (d, q) = (ddb.url(), sqs.url());
    let sys = System::start_with(|o| {
        o.dynamodb_endpoint = Some(d);
        o.sqs_endpoint = Some(q);
    })
    .await;
    Faulty { sys, ddb, sqs }
}

/// Runs `call`, asserts it answered a retryable 5xx within the budget, and returns the answer.
async fn fails_fast<F: std::future::Future<Output = reqwest::Response>>(what: &str, call: F) -> reqwest::Response {
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), call).await.unwrap_or_else(|_| panic!("{what}: no answer"));
    let took = start.elapsed();
    assert!(took < ANSWER_WITHIN, "{what}: answered after {took:?}");
    assert!(
        matches!(r.status().as_u16(), 500 | 502 | 503 | 504),
        "{what}: expected a retryable 5xx, got {}",
        r.status()
    );
    r
}

async fn health(sys: &System) -> reqwest::Response {
    sys.http.get(sys.url("/health")).send().await.unwrap()
}

/// A Meta message, a Shopify and a WooCommerce order (for an opted-in customer), each with the
/// delivery id the platform keeps on its retries.
struct Deliveries {
    to: String,
    meta: String,
    shopify: (String, String),
    woo: (String, String),
}

async fn deliveries(sys: &System) -> Deliveries {
    let to = sys.opted_in_customer().await;
    let (_, shopify) = sys.withheld_order("shopify", &to).await;
    let (_, woo) = sys.withheld_order("woocommerce", &to).await;
    Deliveries {
        meta: wa_text(&to, &wamid(), "Rückgabe"),
        shopify: (shopify, uuid::Uuid::new_v4().to_string()),
        woo: (woo, uuid::Uuid::new_v4().simple().to_string()),
        to,
    }
}

impl Deliveries {
    async fn post_all(&self, sys: &System) -> [reqwest::Response; 3] {
        [
            sys.post_meta(&self.meta).await,
            sys.post_shopify_delivery("orders/create", &self.shopify.0, SHOPIFY_DOMAIN, &self.shopify.1).await,
            sys.post_woo_delivery("order.created", &self.woo.0, &self.woo.1).await,
        ]
    }

    async fn all_fail_fast(&self, sys: &System) {
        fails_fast("meta webhook", sys.post_meta(&self.meta)).await;
        fails_fast(
            "shopify webhook",
            sys.post_shopify_delivery("orders/create", &self.shopify.0, SHOPIFY_DOMAIN, &self.shopify.1),
        )
        .await;
        fails_fast("woocommerce webhook", sys.post_woo_delivery("order.created", &self.woo.0, &self.woo.1)).await;
        let h = fails_fast("health", health(sys)).await;
        assert_eq!(h.status(), 503);
    }

    /// After healing: the same three deliveries succeed, and each is answered exactly once
    /// (opt-in question + confirmation, the reply, two order confirmations).
    async fn all_succeed_once(&self, sys: &System) {
        for r in self.post_all(sys).await {
            assert_eq!(r.status(), 200, "after the dependency is back: {}", r.status());
        }
        let got = sys.assert_settles_at(&self.to, 5, QUIET).await;
        let reply = expected_reply(&text_content("Rückgabe"), "de")[0].clone();
        assert_eq!(got.iter().filter(|m| m["text"] == reply.as_str()).count(), 1, "{got:#?}");
        assert_eq!(health(sys).await.status(), 200);
    }
}

#[tokio::test]
async fn dynamodb_hung_answers_fast_and_nothing_is_lost() {
    let Faulty { sys, ddb, sqs: _sqs } = faulty_system().await;
    let d = deliveries(&sys).await;
    ddb.set(Fault::Stall);
    d.all_fail_fast(&sys).await;
    ddb.set(Fault::Pass);
    d.all_succeed_once(&sys).await;
    sys.stop().await;
}

#[tokio::test]
async fn sqs_hung_answers_fast_and_releases_the_claims() {
    let Faulty { sys, ddb: _ddb, sqs } = faulty_system().await;
    let d = deliveries(&sys).await;
    sqs.set(Fault::Stall);
    // DynamoDB works: the claims are taken, the enqueue hangs, the claims are given back.
    d.all_fail_fast(&sys).await;
    sqs.set(Fault::Pass);
    d.all_succeed_once(&sys).await;
    sys.stop().await;
}

#[tokio::test]
async fn reset_connections_fail_fast_and_recover() {
    let Faulty { sys, ddb, sqs } = faulty_system().await;
    let d = deliveries(&sys).await;
    ddb.set(Fault::Reset);
    sqs.set(Fault::Reset);
    d.all_fail_fast(&sys).await;
    ddb.set(Fault::Pass);
    sqs.set(Fault::Pass);
    d.all_succeed_once(&sys).await;
    sys.stop().await;
}

#[tokio::test]
async fn a_slow_but_answering_dependency_is_waited_for() {
    let Faulty { sys, ddb, sqs } = faulty_system().await;
    let d = deliveries(&sys).await;
    // Well inside one attempt's budget: slower answers, no failures.
    ddb.set(Fault::Delay(Duration::from_millis(150)));
    sqs.set(Fault::Delay(Duration::from_millis(150)));
    d.all_succeed_once(&sys).await;
    sys.stop().await;
}

/// A claim whose answer came too late (DynamoDB applied it; the answer missed the call's
/// budget) is taken back on the error path — only our own, by its owner token — so Meta's
/// retry is processed at once instead of being answered "held" until the claim's lease
/// (`INBOUND_CLAIM_LEASE_SECONDS`, 30 s) runs out.
#[tokio::test]
async fn a_claim_whose_answer_came_too_late_does_not_hold_the_retry() {
    let Faulty { sys, ddb, sqs: _sqs } = faulty_system().await;
    let to = customer();
    let body = wa_text(&to, &wamid(), "Rückgabe");
    ddb.set(Fault::Delay(Duration::from_millis(2500)));
    fails_fast("meta webhook", sys.post_meta(&body)).await;
    ddb.set(Fault::Pass);
    let retry = sys.post_meta(&body).await;
    assert_eq!(retry.status(), 200, "the retry was held: {:?}", retry.headers().get("retry-after"));
    let got = sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(got[0]["text"], expected_reply(&text_content("Rückgabe"), "de")[0].as_str(), "{got:#?}");
    sys.stop().await;
}

/// What makes a retry after a lost answer safe (the proxy's `DroppedAfter`): DynamoDB applies a
/// TransactWriteItems once per ClientRequestToken (the SDK fills it in and keeps it on its
/// retries), and answers the repeat with success, not with its own failed condition.
#[tokio::test]
async fn a_transaction_repeated_with_its_token_applies_once_and_succeeds() {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    let sys = System::start().await;
    let (ddb, table) = (sys.store().client().clone(), sys.store().table().to_string());
    let pk = format!("TEST#{}", uuid::Uuid::new_v4());
    let put = |v: &str| {
        let put = Put::builder()
            .table_name(&table)
            .item("pk", AttributeValue::S(pk.clone()))
            .item("sk", AttributeValue::S("X".into()))
            .item("v", AttributeValue::S(v.into()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    let token = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let sent = ddb.transact_write_items().transact_items(put("a")).client_request_token(&token).send().await;
        assert!(sent.is_ok(), "{sent:?}");
    }
    // Other parameters under the same token are refused; a new token meets the condition.
    let other = ddb.transact_write_items().transact_items(put("b")).client_request_token(&token).send().await;
    let code = other.unwrap_err().into_service_error().meta().code().map(str::to_string);
    assert_eq!(code.as_deref(), Some("IdempotentParameterMismatchException"));
    let fresh = ddb.transact_write_items().transact_items(put("a")).send().await;
    assert!(fresh.unwrap_err().into_service_error().is_transaction_canceled_exception());
    sys.stop().await;
}
