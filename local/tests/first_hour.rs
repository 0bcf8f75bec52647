//! A newcomer's first hour: `make dev`'s own binary, started fresh, answers README's "Selling in
//! chat" conversation (its demo catalog arrives through the sandbox shop's product webhooks), and
//! `PARLEY_DEMO_CATALOG=off` starts with an empty catalog.
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `target/debug/parley-local` on a free port with a fresh table and queues; returns its base URL.
async fn make_dev(demo_catalog: Option<&str>) -> (Child, String) {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_some(),
        "no local AWS endpoints: run the tests with `make test` (it starts them)"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley-local"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("PARLEY_PORT", "0")
        .env("PARLEY_LOCAL_PREFIX", format!("fh{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
        .env("SANDBOX_STATUS_WEBHOOKS", "false")
        .env("RUST_LOG", "warn")
        .env_remove("PARLEY_DEMO_CATALOG")
        .env_remove("GRAPH_API_BASE")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(v) = demo_catalog {
        cmd.env("PARLEY_DEMO_CATALOG", v);
    }
    let mut child = cmd.spawn().expect("parley-local starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Parley is running on ") {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("parley-local ended without saying where it runs");
    })
    .await
    .expect("parley-local is up within 60 s");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}

async fn say(http: &reqwest::Client, base: &str, from: &str, text: &str) {
    let r = http
        .post(format!("{base}/sandbox/chat"))
        .json(&json!({"channel": "whatsapp", "from": from, "text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 200, "webhook answered {v}");
}

async fn wait_for(http: &reqwest::Client, base: &str, to: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let msgs: Vec<Value> =
            http.get(format!("{base}/sandbox/messages?to={to}")).send().await.unwrap().json().await.unwrap();
        if msgs.len() >= n {
            return msgs;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "expected {n} message(s) to {to}, got {msgs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn customer() -> String {
    format!("49151{:08}", uuid::Uuid::new_v4().as_u128() % 100_000_000)
}

#[tokio::test]
async fn a_fresh_make_dev_answers_the_readme_conversation() {
    let (mut child, base) = make_dev(None).await;
    let http = reqwest::Client::new();
    let to = customer();

    say(&http, &base, &to, "katalog").await;
    let catalog = wait_for(&http, &base, &to, 1).await[0].clone();
    assert_eq!(catalog["type"], "interactive", "{catalog}");
    let shown = catalog.to_string();
    for row in ["T-Shirt – L", "T-Shirt – M"] {
        assert!(shown.contains(row), "README's catalog shows {row}: {catalog:#}");
    }

    say(&http, &base, &to, "add TSHIRT-M 2").await;
    let added = wait_for(&http, &base, &to, 2).await[1].clone();
    let text = added["text"].as_str().unwrap_or_default();
    assert!(text.contains("T-Shirt – M ist jetzt 2× in deinem Warenkorb"), "{added:#}");
    assert!(text.contains("Summe: 39,80 €"), "{added:#}");

    say(&http, &base, &to, "1x tshirt-l").await;
    let added = wait_for(&http, &base, &to, 3).await[2].clone();
    assert!(added["text"].as_str().unwrap_or_default().contains("Summe: 61,70 €"), "{added:#}");

    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_demo_catalog_can_be_switched_off_for_an_empty_start() {
    let (mut child, base) = make_dev(Some("off")).await;
    let http = reqwest::Client::new();
    let to = customer();
    say(&http, &base, &to, "add TSHIRT-M 2").await;
    let answer = wait_for(&http, &base, &to, 1).await[0].clone();
    let text = answer["text"].as_str().unwrap_or_default();
    assert!(text.contains("einen Artikel „TSHIRT-M“ finde ich nicht"), "an unknown SKU: {answer:#}");
    child.kill().await.unwrap();
}
