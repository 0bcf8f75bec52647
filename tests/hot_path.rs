//! The webhook's hot path, measured by what it asks of AWS: per inbound message at most two
//! sequential round trips (dedupe claim + contact touch concurrently, then one batched SQS send).
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use parley::channels::signature::{sign, Encoding};
use parley_tests::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
struct CallIndex(usize);
impl Storable for CallIndex {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Clone)]
struct Call {
    operation: String,
    start: Instant,
    end: Option<Instant>,
}

/// Records every AWS call's operation and when it started and finished.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Call>>>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "call-recorder"
    }

    fn read_before_execution(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut calls = self.0.lock().unwrap();
        calls.push(Call { operation: String::new(), start: Instant::now(), end: None });
        cfg.interceptor_state().store_put(CallIndex(calls.len() - 1));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        if let Some(CallIndex(i)) = cfg.load::<CallIndex>().cloned() {
            let call = &mut self.0.lock().unwrap()[i];
            call.end = Some(Instant::now());
            call.operation = operation;
        }
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The longest chain of calls where each starts after the previous one finished.
fn sequential_depth(calls: &[Call]) -> usize {
    let mut depth = vec![1usize; calls.len()];
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&i| calls[i].start);
    for (pos, &i) in order.iter().enumerate() {
        for &j in &order[..pos] {
            if calls[j].end.is_some_and(|end| end <= calls[i].start) {
                depth[i] = depth[i].max(depth[j] + 1);
            }
        }
    }
    depth.into_iter().max().unwrap_or(0)
}

#[tokio::test]
async fn one_inbound_message_costs_two_sequential_round_trips() {
    init_env();
    let recorder = Recorder::default();
    let conf = aws_config::load_from_env().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf).interceptor(recorder.clone()).build(),
    );
    let sqs =
        aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&conf).interceptor(recorder.clone()).build());
    let prefix = format!("hp{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let res = parley_local::provision::provision(template.as_ref(), &prefix, &ddb, &sqs).await.unwrap();
    let aws = parley::config::AwsSettings {
        table: res.table("Table").unwrap().into(),
        outbound_queue_url: res.queue("OutboundQueue").unwrap().into(),
        outbound_dlq_url: None,
        inbound_queue_url: None,
        inbound_dlq_url: None,
    };
    let app = parley::api::App::new(ddb, sqs, aws, parley::config::MetaSettings::from_env().unwrap()).unwrap();
    recorder.take();

    let body = wa_text(&customer(), &wamid(), "Lieferzeit");
    let req = http::Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(Encoding::PrefixedHex, APP_SECRET, body.as_bytes()))
        .body(bytes::Bytes::from(body))
        .unwrap();
    let response = parley::api::channel_webhook(&app, req).await;
    assert_eq!(response.status(), 200, "{}", response.body());

    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops.iter().filter(|o| **o == "SendMessageBatch").count(), 1, "{ops:?}");
    assert_eq!(calls.len(), 3, "claim, contact touch, one batched send: {ops:?}");
    assert!(calls.iter().all(|c| c.end.is_some()));
    assert_eq!(sequential_depth(&calls), 2, "{ops:?}");

    // A delivery with several messages still makes two sequential round trips.
    let t = now();
    let msgs: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({"from": customer(), "id": wamid(), "timestamp": (t + i).to_string(),
                               "type": "text", "text": {"body": "Rückgabe"}})
        })
        .collect();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
        "messages": msgs}}]}]})
    .to_string();
    let req = http::Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(Encoding::PrefixedHex, APP_SECRET, body.as_bytes()))
        .body(bytes::Bytes::from(body))
        .unwrap();
    assert_eq!(parley::api::channel_webhook(&app, req).await.status(), 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(calls.len(), 11, "5 claims, 5 touches, 1 batched send: {ops:?}");
    assert_eq!(sequential_depth(&calls), 2, "{ops:?}");
}

#[test]
fn depth_counts_only_calls_that_wait_for_each_other() {
    let t = Instant::now();
    let ms = |n: u64| t + std::time::Duration::from_millis(n);
    let call = |s, e| Call { operation: String::new(), start: ms(s), end: Some(ms(e)) };
    assert_eq!(sequential_depth(&[call(0, 10), call(1, 9), call(11, 20)]), 2);
    assert_eq!(sequential_depth(&[call(0, 10), call(11, 20), call(21, 30)]), 3);
    assert_eq!(sequential_depth(&[call(0, 10), call(5, 15)]), 1);
    assert_eq!(sequential_depth(&[]), 0);
}
