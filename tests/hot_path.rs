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
    /// The item a DynamoDB single-item write addressed (pk, sk).
    key: Option<(String, String)>,
}

/// The key a PutItem or UpdateItem writes.
fn written_key(ctx: &BeforeSerializationInterceptorContextRef<'_>) -> Option<(String, String)> {
    use aws_sdk_dynamodb::operation::{put_item::PutItemInput, update_item::UpdateItemInput};
    use aws_sdk_dynamodb::types::AttributeValue;
    type Item = std::collections::HashMap<String, AttributeValue>;
    let pair = |m: &Item| -> Option<(String, String)> {
        Some((m.get("pk")?.as_s().ok()?.clone(), m.get("sk")?.as_s().ok()?.clone()))
    };
    let input = ctx.input();
    if let Some(p) = input.downcast_ref::<PutItemInput>() {
        return pair(p.item.as_ref()?);
    }
    if let Some(u) = input.downcast_ref::<UpdateItemInput>() {
        return pair(u.key.as_ref()?);
    }
    None
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
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = written_key(ctx);
        let mut calls = self.0.lock().unwrap();
        calls.push(Call { operation: String::new(), start: Instant::now(), end: None, key });
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
    round_trips(calls).into_iter().max().unwrap_or(0)
}

/// Each call's place in that chain: 1 for a call that waited on none, n + 1 after one at n.
fn round_trips(calls: &[Call]) -> Vec<usize> {
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
    depth
}

#[tokio::test]
async fn one_inbound_message_costs_two_sequential_round_trips() {
    let (app, recorder) = recorded_app(|_| {}).await;

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

/// The most calls in flight at the same moment.
fn peak_in_flight(calls: &[Call]) -> usize {
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for c in calls {
        edges.push((c.start, 1));
        edges.push((c.end.unwrap_or(c.start), -1));
    }
    // Ends before starts at the same instant: touching calls do not overlap.
    edges.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut peak) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    peak as usize
}

/// A test App whose AWS calls are recorded, with `tune` applied to its settings.
async fn recorded_app(tune: impl FnOnce(&mut parley::config::LoopSettings)) -> (parley::api::App, Recorder) {
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
        inbound_queue_url: res.queue("InboundQueue").map(str::to_string),
        inbound_dlq_url: None,
        campaign_queue_url: res.queue("CampaignQueue").map(str::to_string),
        campaign_dlq_url: None,
    };
    let mut app = parley::api::App::new(ddb, sqs, aws, parley::config::MetaSettings::from_env().unwrap()).unwrap();
    tune(&mut app.settings);
    recorder.take();
    (app, recorder)
}

async fn post(app: &parley::api::App, body: String) -> u16 {
    let req = http::Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(Encoding::PrefixedHex, APP_SECRET, body.as_bytes()))
        .body(bytes::Bytes::from(body))
        .unwrap();
    parley::api::channel_webhook(app, req).await.status().as_u16()
}

/// One WhatsApp delivery with `n` text messages from `n` different contacts.
fn many(n: usize, text: &str) -> String {
    let t = now();
    let msgs: Vec<serde_json::Value> = (0..n)
        .map(|_| {
            serde_json::json!({"from": customer(), "id": wamid(), "timestamp": t.to_string(),
                               "type": "text", "text": {"body": text}})
        })
        .collect();
    serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "900000000000001",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000001", "phone_number_id": WA_PHONE_NUMBER_ID},
        "messages": msgs}}]}]})
    .to_string()
}

fn count(calls: &[Call], op: &str) -> usize {
    calls.iter().filter(|c| c.operation == op).count()
}

#[tokio::test]
async fn more_than_ten_replies_still_take_two_round_trips() {
    let (app, recorder) = recorded_app(|_| {}).await;
    // 15 messages: 30 DynamoDB requests, within the default bound of 32 in flight.
    assert_eq!(post(&app, many(15, "Lieferzeit")).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    // 15 replies to 15 contacts: two batch calls, sent at once instead of one after another.
    assert_eq!(count(&calls, "SendMessageBatch"), 2, "{ops:?}");
    assert_eq!(calls.len(), 15 * 2 + 2, "{ops:?}");
    assert_eq!(sequential_depth(&calls), 2, "{ops:?}");
}

#[tokio::test]
async fn dynamodb_concurrency_per_invocation_is_bounded() {
    let (app, recorder) = recorded_app(|s| s.max_concurrency = 4).await;
    assert_eq!(post(&app, many(40, "Lieferzeit")).await, 200);
    let calls = recorder.take();
    let ddb: Vec<Call> = calls.into_iter().filter(|c| c.operation != "SendMessageBatch").collect();
    assert_eq!(ddb.len(), 80);
    assert_eq!(peak_in_flight(&ddb), 4, "at most INBOUND_MAX_CONCURRENCY DynamoDB requests at once");

    let (app, recorder) = recorded_app(|_| {}).await;
    assert_eq!(post(&app, many(40, "Lieferzeit")).await, 200);
    let ddb: Vec<Call> = recorder.take().into_iter().filter(|c| c.operation != "SendMessageBatch").collect();
    let peak = peak_in_flight(&ddb);
    assert!(peak > 4 && peak <= 32, "default bound 32, and really concurrent: {peak}");
}

#[tokio::test]
async fn the_inbound_worker_shares_one_dynamodb_bound_across_the_contacts_of_a_batch() {
    use parley::domain::{AccountId, Address, Channel, ContactId, InboundContent, InboundEvent, InboundMessage};
    let (app, recorder) = recorded_app(|s| s.max_concurrency = 4).await;
    let bodies: Vec<(String, String)> = (0..10)
        .map(|_| {
            let contact = ContactId::new(Channel::WhatsApp, Address::parse(customer()).unwrap());
            let env = parley::queue::InboundEnvelope::new(InboundEvent::Message(InboundMessage {
                id: parley::domain::InboundMessageId::parse(wamid()).unwrap(),
                account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
                contact: contact.clone(),
                profile_name: None,
                phone: None,
                timestamp: now(),
                content: InboundContent::Text { body: "Lieferzeit".into() },
            }));
            (contact.key(), env.to_message().body)
        })
        .collect();
    let records: Vec<(&str, &str)> = bodies.iter().map(|(g, b)| (g.as_str(), b.as_str())).collect();
    let (event, _) = parley_tests::lambda::sqs_event("arn:aws:sqs:eu-central-1:123456789012:q.fifo", &records);
    let response = parley::inbound::handle(&app, serde_json::from_value(event).unwrap()).await;
    assert!(response.batch_item_failures.is_empty());
    let ddb: Vec<Call> = recorder.take().into_iter().filter(|c| c.operation != "SendMessageBatch").collect();
    assert_eq!(ddb.len(), 20, "claim and contact touch for each of the 10 contacts");
    assert_eq!(peak_in_flight(&ddb), 4, "10 contacts handled at once, yet at most 4 DynamoDB requests");
}

#[tokio::test]
async fn a_big_delivery_is_one_round_of_concurrent_sqs_calls_and_no_dynamodb() {
    let (app, recorder) = recorded_app(|_| {}).await;
    assert_eq!(post(&app, many(60, "Lieferzeit")).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops, vec!["SendMessageBatch"; 6], "60 events, ten to a call");
    assert_eq!(sequential_depth(&calls), 1, "{ops:?}");
}

#[tokio::test]
async fn a_status_update_is_one_round_trip_and_a_cart_command_three() {
    let (app, recorder) = recorded_app(|_| {}).await;
    assert_eq!(post(&app, wa_status(&wamid(), &customer(), "delivered", None)).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(sequential_depth(&calls), 1, "one conditional update of the message record: {ops:?}");

    let to = customer();
    assert_eq!(post(&app, wa_text(&to, &wamid(), "warenkorb")).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    // claim + touch, read the cart, then the batched send.
    assert_eq!(sequential_depth(&calls), 3, "{ops:?}");
    assert_eq!(count(&calls, "SendMessageBatch"), 1, "{ops:?}");
}

#[test]
fn depth_counts_only_calls_that_wait_for_each_other() {
    let t = Instant::now();
    let ms = |n: u64| t + std::time::Duration::from_millis(n);
    let call = |s, e| Call { operation: String::new(), start: ms(s), end: Some(ms(e)), key: None };
    assert_eq!(sequential_depth(&[call(0, 10), call(1, 9), call(11, 20)]), 2);
    assert_eq!(sequential_depth(&[call(0, 10), call(11, 20), call(21, 30)]), 3);
    assert_eq!(sequential_depth(&[call(0, 10), call(5, 15)]), 1);
    assert_eq!(sequential_depth(&[]), 0);
    assert_eq!(peak_in_flight(&[call(0, 10), call(1, 9), call(11, 20)]), 2);
    assert_eq!(peak_in_flight(&[call(0, 10), call(10, 20)]), 1);
}

/// DynamoDB's item size: attribute names plus values (strings and binaries by length, numbers
/// about one byte per two digits plus one, maps and lists 3 bytes plus one per element).
fn item_size(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    fn value(v: &A) -> usize {
        match v {
            A::S(s) => s.len(),
            A::N(n) => n.trim_start_matches('-').replace('.', "").trim_start_matches('0').len().div_ceil(2) + 1,
            A::B(b) => b.as_ref().len(),
            A::Bool(_) | A::Null(_) => 1,
            A::L(l) => 3 + l.iter().map(|e| value(e) + 1).sum::<usize>(),
            A::M(m) => 3 + m.iter().map(|(k, e)| k.len() + value(e) + 1).sum::<usize>(),
            A::Ss(v) => v.iter().map(String::len).sum(),
            A::Ns(v) => v.iter().map(|n| n.len() / 2 + 1).sum(),
            A::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// Write units of the writes in `calls`, on the item as it stands now: one unit per started KB
/// on the table, and the same again on `gsi1` (it projects all attributes) when the item is in it.
async fn write_units(app: &parley::api::App, calls: &[Call]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (pk, sk) in calls.iter().filter_map(|c| c.key.clone()) {
        let got = app
            .store
            .client()
            .get_item()
            .table_name(app.store.table())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.clone()))
            .send()
            .await
            .unwrap();
        let item = got.item.expect("the written item exists");
        let units = item_size(&item).div_ceil(1024).max(1);
        let indexed = if item.contains_key("gsi1pk") { units } else { 0 };
        out.push((format!("{}/{sk}", pk.split('#').next().unwrap_or_default()), units + indexed));
    }
    out
}

#[tokio::test]
async fn history_adds_no_write_to_the_hot_path_and_write_units_are_counted() {
    let (app, recorder) = recorded_app(|_| {}).await;
    let to = customer();
    assert_eq!(post(&app, wa_text(&to, &wamid(), "Lieferzeit")).await, 200);
    let calls = recorder.take();
    let writes: Vec<&Call> = calls.iter().filter(|c| c.key.is_some()).collect();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    // The claim (which is also the history entry) and the contact touch: no third write.
    assert_eq!(writes.len(), 2, "{ops:?}");
    let units = write_units(&app, &calls).await;
    recorder.take();
    let total: usize = units.iter().map(|(_, u)| u).sum();
    println!("write units per inbound text message on the webhook path: {total} {units:?}");
    // Claim 1 KB + its history entry in gsi1 1 KB + the profile 1 KB (a bot conversation is
    // not in the inbox index, so its touch writes no index entry).
    assert_eq!(total, 3, "{units:?}");

    // The history reads back from those same records.
    let contact = parley::domain::ContactId::from_path("whatsapp", &to).unwrap();
    let page = app.store.history(&contact, None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].text, "Lieferzeit");

    // A long text stays within a few units: history keeps at most 1000 characters.
    let long = "Ich habe eine Frage zu meiner Bestellung. ".repeat(100);
    assert_eq!(post(&app, wa_text(&customer(), &wamid(), &long)).await, 200);
    let calls = recorder.take();
    let units = write_units(&app, &calls).await;
    let total: usize = units.iter().map(|(_, u)| u).sum();
    println!("write units for a 4 KB text: {total} {units:?}");
    assert!(total <= 7, "{units:?}");
}

#[tokio::test]
async fn with_the_bridge_on_its_events_go_out_beside_the_replies_still_two_round_trips() {
    let (mut app, recorder) = recorded_app(|_| {}).await;
    let bridge_queue = app.producer.queue_url().replace("-OutboundQueue.fifo", "-BridgeQueue");
    app.bridge = Some(parley::bridge::Publisher::new(app.producer.client().clone(), bridge_queue));
    // A question: the reply and its event (the message) in round trip 2, two batches at once.
    assert_eq!(post(&app, wa_text(&customer(), &wamid(), "Lieferzeit")).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(count(&calls, "SendMessageBatch"), 2, "replies and bridge events: {ops:?}");
    assert_eq!(sequential_depth(&calls), 2, "the events travel in round trip 2: {ops:?}");

    // "Hilfe": the reply and two events (the message, the handover request) in round trip 2; the
    // handover flag is written once they are queued, a third round trip only a handover pays
    // (written beside a failed enqueue, it would leave Meta's retry unanswered: the bot is
    // silent during a handover).
    assert_eq!(post(&app, wa_text(&customer(), &wamid(), "Hilfe")).await, 200);
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    let trips = round_trips(&calls);
    let batches: Vec<usize> =
        calls.iter().zip(&trips).filter(|(c, _)| c.operation == "SendMessageBatch").map(|(_, t)| *t).collect();
    assert_eq!(batches, [2, 2], "replies and bridge events in round trip 2: {ops:?} {trips:?}");
    assert_eq!((ops.last(), trips.iter().max()), (Some(&"UpdateItem"), Some(&3)), "{ops:?} {trips:?}");
}

/// Contacts who confirmed marketing (through the consent service, as the shop's double opt-in
/// leaves them), all in one audience shard, so one page job reads them all.
async fn marketing_audience(app: &parley::api::App, n: usize) -> (u8, Vec<parley::domain::ContactId>) {
    use parley::domain::consent::{ConsentEvent, ConsentPolicy, ConsentPurpose};
    use parley::store::campaigns::audience_shard;
    let wa = |d: &str| parley::domain::ContactId::from_path("whatsapp", d).unwrap();
    let shard = audience_shard(&wa(&customer()));
    let mut out = Vec::new();
    while out.len() < n {
        let digits = customer();
        let contact = wa(&digits);
        if audience_shard(&contact) != shard {
            continue;
        }
        let seed = parley::store::consent::ProfileSeed {
            account: Some(WA_PHONE_NUMBER_ID.to_string()),
            locale: Some("de".into()),
            phone: parley::domain::E164Phone::from_digits(&digits),
        };
        let event = ConsentEvent::ShopConfirmed { purposes: vec![ConsentPurpose::Marketing] };
        let ctx = parley::consent::AuditContext { source: "shop", ..Default::default() };
        parley::consent::change_consent(&app.store, &contact, &event, now(), &ctx, &ConsentPolicy::default(), &seed)
            .await
            .unwrap();
        out.push(contact);
    }
    (shard, out)
}

#[tokio::test]
async fn a_campaign_page_reads_its_contacts_once_and_the_frequency_cap_costs_no_request_per_recipient() {
    use parley::campaigns::{Job, Spec};
    use parley::domain::campaign::Action;
    // AWS's default (.env.example lowers it for the serial local DynamoDB).
    let (app, recorder) = recorded_app(|s| s.campaign_page_concurrency = 16).await;
    const N: usize = 10;
    let (shard, contacts) = marketing_audience(&app, N).await;
    // One contact still carries a send mark from over a month ago: the fan-out drops it.
    app.store
        .client()
        .update_item()
        .table_name(app.store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(parley::store::keys::contact_pk(&contacts[0])))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(parley::store::keys::PROFILE.to_string()))
        .update_expression("ADD marketing_sends :old")
        .expression_attribute_values(":old", aws_sdk_dynamodb::types::AttributeValue::Ss(vec!["0000000001#old".into()]))
        .send()
        .await
        .unwrap();
    let campaigns = app.campaigns().unwrap();
    let spec: Spec = serde_json::from_value(serde_json::json!({"name": "Page cost",
        "template": {"name": "newsletter", "language": "de", "parameters": ["{{contact.first_name|du}}", "sommer"]},
        "quiet_hours": {"start": "00:00", "end": "23:59", "sundays": true}}))
    .unwrap();
    let id = campaigns.create(spec, now()).await.unwrap().id;
    campaigns.act(&id, Action::Start, now()).await.unwrap();
    let started = app.store.get_campaign(&id).await.unwrap().unwrap().started_at;
    assert!(started.is_some_and(|t| t >= now() - 60), "the start is recorded: {started:?}");
    recorder.take();

    // One page job: every contact of the shard is a recipient.
    campaigns.dispatch(&Job { campaign: id.clone(), shard: Some(shard) }, "hot-path-job", now() * 1000).await.unwrap();
    let calls = recorder.take();
    let mut by_op = std::collections::BTreeMap::<&str, usize>::new();
    for c in &calls {
        *by_op.entry(c.operation.as_str()).or_default() += 1;
    }
    println!("one campaign page of {N} recipients: {} AWS requests {by_op:?}", calls.len());
    let counts = app.store.campaign_counts(&id).await.unwrap();
    assert_eq!(counts.get("queued"), Some(&(N as i64)), "{counts:?}");
    assert_eq!(count(&calls, "BatchGetItem"), 1, "the page's contacts, read once: {by_op:?}");
    // One Query, the audience page: the frequency cap reads the send marks on the profiles.
    assert_eq!(count(&calls, "Query"), 1, "{by_op:?}");
    // Per recipient: its record, and one write of the send mark onto the profile (plus one that
    // drops the expired mark); then the cursor with the page's counts, and the page's unused
    // send slots given back to the daily cap (it took a whole page's worth for 10 recipients).
    assert_eq!(count(&calls, "PutItem"), N + 1, "recipients and the rate bucket: {by_op:?}");
    assert_eq!(count(&calls, "UpdateItem"), N + 1 + 2, "{by_op:?}");
    assert_eq!(count(&calls, "SendMessageBatch"), 1, "{by_op:?}");
    // Besides: the campaign, the rate bucket, the campaign again at the end (GetItem: whether
    // every shard is read now; its counters are read only then, and this campaign has other
    // shards to go), the bucket's and each recipient's conditional write, one BatchGetItem, one
    // Query, one SendMessageBatch, the slots given back: two requests per recipient and 10 per
    // page (51 for 10 recipients before the marks moved onto the profile).
    assert_eq!(calls.len(), 2 * N + 10, "{by_op:?}");
    // The recipients' own writes (their records, then their send marks) run side by side: the
    // page takes at most 13 round trips whatever its size — campaign, bucket read and write,
    // audience query, batch read, the records, the marks (and the expired mark's removal), the
    // batched send, the slots given back, the cursor with the counts, then the campaign (and its
    // counters on the last shard) — where one recipient after the other took 2 per recipient
    // more (32 for these 10).
    let depth = sequential_depth(&calls);
    assert!(depth <= 13, "sequential round trips of one page of {N}: {depth} ({by_op:?})");
    // The quiet-hours pass while nobody waits: the campaign, one Query of the due-time index
    // (empty: no recipient's item is read), and itself again in 30 s.
    recorder.take();
    campaigns.dispatch(&Job { campaign: id.clone(), shard: None }, "hot-path-waiting", now() * 1000).await.unwrap();
    let calls = recorder.take();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops, vec!["GetItem", "Query", "SendMessage"], "{ops:?}");
    for (i, c) in contacts.iter().enumerate() {
        let profile = app.store.get_contact(c).await.unwrap().unwrap();
        let sends = parley::store::campaigns::sends_since(&profile, 0);
        assert_eq!(sends.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(), vec![id.as_str()], "contact {i}");
    }
}

/// The day's sends so far on the number's bucket (`today`; 0 if none yet).
async fn sent_today(app: &parley::api::App) -> i64 {
    let item = app
        .store
        .client()
        .get_item()
        .table_name(app.store.table())
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("RATE#{WA_PHONE_NUMBER_ID}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("RATE".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item;
    item.and_then(|i| i.get("today")?.as_n().ok()?.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_page_that_fails_gives_its_send_slots_back_to_the_daily_cap() {
    use parley::campaigns::{Job, Spec};
    use parley::domain::campaign::Action;
    let (app, _recorder) = recorded_app(|_| {}).await;
    // Eight recipients, five a second, a daily cap of exactly eight.
    let (shard, _) = marketing_audience(&app, 8).await;
    let campaigns = app.campaigns().unwrap();
    let spec: Spec = serde_json::from_value(serde_json::json!({"name": "Cap",
        "template": {"name": "newsletter", "language": "de", "parameters": ["{{contact.first_name|du}}", "sommer"]},
        "quiet_hours": {"start": "00:00", "end": "23:59", "sundays": true},
        "rate_per_second": 5, "daily_cap": 8}))
    .unwrap();
    let id = campaigns.create(spec, now()).await.unwrap().id;
    campaigns.act(&id, Action::Start, now()).await.unwrap();
    let job = Job { campaign: id.clone(), shard: Some(shard) };
    let t0 = now() * 1000;

    // The first page: five slots taken and used.
    campaigns.dispatch(&job, "page-1", t0).await.unwrap();
    assert_eq!(sent_today(&app).await, 5);
    // The second page takes the last three slots of the day, records its three recipients, and
    // fails to enqueue them (the outbound queue is gone): all three slots go back.
    let mut broken = app.clone();
    broken.producer = parley::queue::Producer::new(
        app.producer.client().clone(),
        format!("{}-missing.fifo", app.producer.queue_url().trim_end_matches(".fifo")),
    );
    let failed = broken.campaigns().unwrap().dispatch(&job, "page-2", t0 + 1000).await;
    assert!(failed.as_ref().is_err_and(|e| e.retryable()), "{failed:?}");
    assert_eq!(sent_today(&app).await, 5, "the failed page's three slots are back");
    // Its retry takes them again and sends: the cap is reached exactly, not overshot by the
    // failed attempt (without the give-back the day would be used up at 8 with 5 sent).
    campaigns.dispatch(&job, "page-2", t0 + 2000).await.unwrap();
    assert_eq!(sent_today(&app).await, 8);
    let counts = app.store.campaign_counts(&id).await.unwrap();
    assert_eq!((counts.get("recipients"), counts.get("queued")), (Some(&8), Some(&8)), "{counts:?}");
    let on_queue = app
        .producer
        .client()
        .get_queue_attributes()
        .queue_url(app.producer.queue_url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .cloned();
    assert_eq!(on_queue.as_deref(), Some("8"), "each recipient enqueued once");
    // The day is used up: a further take gets nothing and waits for the next day.
    let (granted, wait_ms) = app.store.take_send_slots(WA_PHONE_NUMBER_ID, 5, 8, 5, t0 + 3000).await.unwrap();
    assert_eq!(granted, 0);
    assert!(wait_ms > 0 && wait_ms <= 86_400_000, "{wait_ms}");
}
