//! The real `parley` binary against a whole local system (tests/harness): queues, DLQ listing and
//! redrive, contact show/export/erase/release, webhook replay.
use parley::domain::{AccountId, ContactId, OutboundBody, OutboundId, Purpose};
use parley::queue::Envelope;
use parley_tests::*;
use serde_json::Value;
use std::process::Output;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

/// Runs `parley args…` with the system's resources in its environment (as `--local` would set).
async fn parley(sys: &System, args: &[&str]) -> Output {
    parley_stdin(sys, args, None).await
}

async fn parley_stdin(sys: &System, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"));
    cmd.args(args).env("PARLEY_TABLE", sys.store().table()).env("PARLEY_API_URL", &sys.base);
    for q in parley::ops::queues::QueueName::ALL {
        let (queue, dlq) = q.logical_ids();
        cmd.env(q.url_var(), sys.running.resources.queue(queue).unwrap());
        cmd.env(q.dlq_var(), sys.running.resources.queue(dlq).unwrap());
    }
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("parley runs");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "parley failed: {}", all_output(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn depth(stats: &Value, queue: &str, dlq: bool) -> (u64, u64, u64) {
    let s = stats.as_array().unwrap().iter().find(|s| s["queue"] == queue && s["dlq"] == dlq).expect("queue listed");
    (s["visible"].as_u64().unwrap(), s["in_flight"].as_u64().unwrap(), s["delayed"].as_u64().unwrap())
}

/// A text reply to `to`, as the bot would enqueue it.
fn reply(to: &str, id: &str, text: &str) -> Envelope {
    Envelope {
        v: 1,
        id: OutboundId::parse(id).unwrap(),
        account: AccountId::parse(WA_PHONE_NUMBER_ID).unwrap(),
        contact: ContactId::from_path("whatsapp", to).unwrap(),
        purpose: Purpose::Reply,
        body: OutboundBody::text(text),
        fallback: None,
        withheld: None,
        in_reply_to: None,
        created_at: now(),
        created_ms: None,
        campaign: None,
        author: None,
    }
}

/// Parks a message in a DLQ as SQS does after too many receives (same body and group).
async fn park(sys: &System, dlq: &str, body: &str, group: &str) {
    let url = sys.running.resources.queue(dlq).unwrap();
    sys.running
        .app
        .producer
        .client()
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn queues_shows_depths_and_a_dlq_is_listed_then_redriven_exactly_once() {
    let sys = System::start().await;
    let to = customer();
    // The customer writes (the window opens); the bot's answer is the first message.
    assert_eq!(sys.post_meta(&wa_text(&to, &wamid(), "Lieferzeit")).await.status(), 200);
    sys.wait_for_messages(&to, 1).await;

    // An unreadable inbound envelope naming a number: the worker moves it straight to its DLQ.
    let poison_digits = customer();
    let sqs = sys.running.app.producer.client().clone();
    sqs.send_message()
        .queue_url(sys.running.resources.queue("InboundQueue").unwrap())
        .message_body(format!("{{\"v\":1,\"to\":\"{poison_digits}\"}}"))
        .message_group_id(format!("whatsapp#{poison_digits}"))
        .message_deduplication_id("poison")
        .send()
        .await
        .unwrap();
    // Two replies parked after their receives ran out; a campaign job waits its pace.
    let (a, b) = (reply(&to, "r-cli-a", "Erste Antwort"), reply(&to, "r-cli-b", "Zweite Antwort"));
    park(&sys, "OutboundDLQ", &a.to_json(), &a.group_id()).await;
    park(&sys, "OutboundDLQ", &b.to_json(), &b.group_id()).await;
    sqs.send_message()
        .queue_url(sys.running.resources.queue("CampaignQueue").unwrap())
        .message_body(r#"{"campaign":"cmp-cli","shard":0}"#)
        .delay_seconds(900)
        .send()
        .await
        .unwrap();
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = json_of(&parley(&sys, &["--json", "queues"]).await);
        if depth(&stats, "outbound", true).0 == 2 && depth(&stats, "inbound", true).0 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(depth(&stats, "outbound", true), (2, 0, 0), "{stats:#}");
    assert_eq!(depth(&stats, "inbound", true), (1, 0, 0), "{stats:#}");
    assert_eq!(depth(&stats, "campaign", false).2, 1, "{stats:#}");
    assert_eq!(stats.as_array().unwrap().len(), 8, "every queue and DLQ: {stats:#}");
    let dlq = stats.as_array().unwrap().iter().find(|s| s["queue"] == "outbound" && s["dlq"] == true).unwrap();
    assert_eq!(dlq["oldest_age_source"], "peek");
    assert!(dlq["oldest_age_secs"].as_u64().unwrap() < 120, "{dlq}");
    let table = parley(&sys, &["queues"]).await;
    assert!(stdout(&table).contains("outbound DLQ"), "{}", stdout(&table));

    // Listed: kinds, ids, a pseudonym, the last error; never a number.
    let listed = parley(&sys, &["dlq", "list", "outbound"]).await;
    let text = all_output(&listed);
    assert!(listed.status.success(), "{text}");
    assert!(!text.contains(&to) && !text.contains(&poison_digits), "a number in the output: {text}");
    let list = json_of(&parley(&sys, &["--json", "dlq", "list", "outbound"]).await);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    let ids: Vec<_> = list.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"r-cli-a") && ids.contains(&"r-cli-b"), "{list:#?}");
    let parked = list.iter().find(|m| m["id"] == "r-cli-a").unwrap();
    assert_eq!(parked["kind"], "outbound:reply");
    assert!(parked["contact"].as_str().unwrap().starts_with("whatsapp:"));
    assert_eq!(parked["last_error"], "never attempted (no send record)");
    assert!(parked["receive_count"].as_u64().unwrap() >= 1);
    let inbound = parley(&sys, &["--json", "dlq", "list", "inbound"]).await;
    assert!(!all_output(&inbound).contains(&poison_digits), "{}", all_output(&inbound));
    let inbound = json_of(&inbound);
    assert_eq!(inbound[0]["kind"], "unreadable", "{inbound:#}");
    assert!(inbound[0]["last_error"].as_str().unwrap().starts_with("unreadable envelope"), "{inbound:#}");
    // Listing hid nothing for long: both still waiting.
    assert_eq!(depth(&json_of(&parley(&sys, &["--json", "queues"]).await), "outbound", true).0, 2);

    // A dry run moves nothing.
    let dry = json_of(&parley(&sys, &["--json", "dlq", "redrive", "outbound", "--dry-run"]).await);
    assert_eq!(dry["moved"], 2);
    assert_eq!(dry["dry_run"], true);
    sys.assert_settles_at(&to, 1, QUIET).await;
    assert_eq!(depth(&json_of(&parley(&sys, &["--json", "queues"]).await), "outbound", true).0, 2);

    // --max 1 moves one, then the rest go; each reply is sent exactly once.
    let one = json_of(&parley(&sys, &["--json", "dlq", "redrive", "outbound", "--max", "1"]).await);
    assert_eq!(one["moved"], 1, "{one:#}");
    assert_eq!(depth(&json_of(&parley(&sys, &["--json", "queues"]).await), "outbound", true).0, 1);
    let rest = parley(&sys, &["dlq", "redrive", "outbound"]).await;
    assert!(rest.status.success(), "{}", all_output(&rest));
    assert!(stdout(&rest).contains("moved 1 message(s)"), "{}", stdout(&rest));
    let msgs = sys.assert_settles_at(&to, 3, QUIET).await;
    let texts: Vec<_> = msgs.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"Erste Antwort") && texts.contains(&"Zweite Antwort"), "{texts:?}");

    // A reply that was in fact sent and is redriven again is not sent twice (the sender's claim).
    park(&sys, "OutboundDLQ", &a.to_json(), &a.group_id()).await;
    let again = json_of(&parley(&sys, &["--json", "dlq", "redrive", "outbound"]).await);
    assert_eq!(again["moved"], 1, "{again:#}");
    sys.assert_settles_at(&to, 3, QUIET).await;
    sys.stop().await;
}

#[tokio::test]
async fn contact_show_export_release_and_erase() {
    let sys = System::start().await;
    let to = customer();
    sys.say("whatsapp", &to, "Hallo").await;
    sys.wait_for_messages(&to, 1).await;
    // The customer asks for a person: handover.
    sys.say("whatsapp", &to, "Mensch").await;
    sys.wait_for_messages(&to, 2).await;

    let shown = json_of(&parley(&sys, &["--json", "contact", "show", "whatsapp", &to]).await);
    assert_eq!(shown["handover"], true, "{shown:#}");
    assert_eq!(shown["contact"], format!("whatsapp:{to}"));
    let table = parley(&sys, &["contact", "show", "whatsapp", &to]).await;
    assert!(stdout(&table).contains("handover       yes"), "{}", stdout(&table));

    let export = json_of(&parley(&sys, &["contact", "export", "whatsapp", &to]).await);
    assert!(export["profile"].is_object(), "{export:#}");
    assert!(export["history"].as_array().unwrap().len() >= 3, "{export:#}");

    // Released: the bot is back and says so.
    let released = json_of(&parley(&sys, &["--json", "contact", "release", "whatsapp", &to]).await);
    assert_eq!(released["was_handover"], true);
    let msgs = sys.wait_for_messages(&to, 3).await;
    assert_eq!(msgs[2]["text"].as_str().unwrap(), release_reply("de")[0]);
    let shown = json_of(&parley(&sys, &["--json", "contact", "show", "whatsapp", &to]).await);
    assert_eq!(shown["handover"], false);

    // Erase asks first: without a terminal it refuses, and nothing is erased.
    let refused = parley_stdin(&sys, &["contact", "erase", "whatsapp", &to], Some("yes\n")).await;
    assert_eq!(refused.status.code(), Some(5), "{}", all_output(&refused));
    assert!(sys.store().get_contact(&ContactId::from_path("whatsapp", &to).unwrap()).await.unwrap().is_some());
    sys.assert_settles_at(&to, 3, QUIET).await;
    let erased = json_of(&parley(&sys, &["--json", "contact", "erase", "whatsapp", &to, "--yes"]).await);
    assert!(erased["deleted"].as_u64().unwrap() >= 3, "{erased:#}");
    // Nothing names the person any more.
    let items = sys.store().client().scan().table_name(sys.store().table()).consistent_read(true).send().await.unwrap();
    let naming: Vec<_> = items.items().iter().filter(|i| format!("{i:?}").contains(&to)).collect();
    assert!(naming.is_empty(), "items still naming the person: {naming:#?}");
    let gone = parley(&sys, &["--json", "contact", "show", "whatsapp", &to]).await;
    assert_eq!(gone.status.code(), Some(3), "{}", all_output(&gone));
    assert!(!all_output(&gone).contains(&to), "the number in an error: {}", all_output(&gone));
    let bad = parley(&sys, &["contact", "show", "fax", &to]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(!all_output(&bad).contains(&to), "{}", all_output(&bad));
    sys.stop().await;
}

fn events(path: &str) -> String {
    format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn replay_resigns_saved_deliveries_and_reports_a_refusal() {
    let sys = System::start().await;
    // Saved deliveries re-signed with the configured secrets (the test process's settings).
    for file in
        ["apigw/meta_post_whatsapp_text.json", "meta/whatsapp_text.json", "apigw/shopify_post_orders_create.json"]
    {
        let out = json_of(&parley(&sys, &["--json", "replay", &events(file)]).await);
        assert_eq!(out["status"], 200, "{file}: {out:#}");
    }
    let woo_source = format!("{}/sandbox/woo", sys.base);
    let out = parley(
        &sys,
        &[
            "replay",
            &events("woocommerce/order_created.json"),
            "--platform",
            "woocommerce",
            "--topic",
            "order.created",
            "--woo-source",
            &woo_source,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(stdout(&out).contains("→ 200"), "{}", stdout(&out));

    // A tampered file sent with its recorded signature: the webhook's 401, exit 4.
    let original = std::fs::read_to_string(events("apigw/meta_post_whatsapp_text.json")).unwrap();
    let mut ev: Value = serde_json::from_str(&original).unwrap();
    let body = ev["body"].as_str().unwrap().replace("\"text\"", "\"text\" ");
    ev["body"] = Value::String(body);
    let dir = std::env::temp_dir().join(format!("parley-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tampered = dir.join("tampered.json");
    std::fs::write(&tampered, ev.to_string()).unwrap();
    let out = parley(&sys, &["replay", tampered.to_str().unwrap(), "--as-recorded"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", all_output(&out));
    assert!(stdout(&out).contains("→ 401"), "{}", all_output(&out));
    // Signed with the wrong secret: refused too.
    let out = parley(&sys, &["--json", "replay", &events("meta/whatsapp_text.json"), "--secret", "wrong"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", all_output(&out));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"], 401);
    let _ = std::fs::remove_dir_all(dir);
    sys.stop().await;
}
