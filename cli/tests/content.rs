//! Brand content without a rebuild, black-box: the real `parley` binary validates and pushes a
//! content directory into the local content bucket, and the running functions answer with the
//! new text within the re-check interval; invalid content is refused by the CLI and, written
//! straight into the bucket, by the functions; an empty or unreachable bucket leaves the
//! embedded set.
use parley::content::s3::{Got, S3};
use parley::domain::content::Bundle;
use parley_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

const RECHECK: Duration = Duration::from_secs(1);
/// The functions that read content (template.yaml grants them s3:GetObject on the set's key).
const READERS: &[&str] = &[
    "channel-webhook",
    "consent-api",
    "shop-webhook",
    "agent-api",
    "campaign-api",
    "shop-reconciler",
    "cart-reminder",
    "outbound-sender",
    "inbound-worker",
    "campaign-dispatcher",
];

async fn system(function_endpoint: Option<&str>) -> System {
    let endpoint = function_endpoint.map(str::to_string);
    System::start_with(|o| {
        o.content = Some(parley_local::ContentOptions { recheck: RECHECK, function_endpoint: endpoint })
    })
    .await
}

fn bucket(sys: &System) -> String {
    sys.running.resources.bucket("ContentBucket").expect("the content bucket is created").to_string()
}

async fn parley(sys: &System, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .env("CONTENT_BUCKET", bucket(sys))
        .output()
        .await
        .expect("parley runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "parley failed: {}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// A copy of the repository's config/ with `edit` applied to flows/default.de.toml.
fn content_dir(edit: impl Fn(&str) -> String) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let dir = std::env::temp_dir().join(format!("parley-content-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    for sub in ["", "flows"] {
        for entry in std::fs::read_dir(src.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_owned();
                let mut body = std::fs::read_to_string(&path).unwrap();
                if sub == "flows" && name == "default.de.toml" {
                    body = edit(&body);
                }
                std::fs::write(dir.join(sub).join(name), body).unwrap();
            }
        }
    }
    dir
}

const DELIVERY_REPLY: &str = "🚚 Wir verschicken innerhalb von 1–2 Werktagen mit DHL.";

/// The text the bot answers "Lieferzeit" with, from a fresh customer.
async fn delivery_reply(sys: &System) -> String {
    let who = customer();
    assert_eq!(sys.post_meta(&wa_text(&who, &wamid(), "Lieferzeit")).await.status(), 200);
    sys.wait_for_messages(&who, 1).await[0]["text"].as_str().unwrap_or_default().to_string()
}

/// Asks until the reply starts with `want` or `within` passes; returns the last reply.
async fn reply_becomes(sys: &System, want: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = delivery_reply(sys).await;
        if got.starts_with(want) || start.elapsed() > within {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn operator_s3() -> S3 {
    S3::from_env(reqwest::Client::new()).await
}

#[tokio::test]
async fn a_pushed_reply_is_live_within_the_recheck_interval_and_invalid_content_never_is() {
    let sys = system(None).await;
    assert!(delivery_reply(&sys).await.starts_with(DELIVERY_REPLY), "the embedded set before any push");

    let new_reply = "🚚 Neu: Versand am selben Tag";
    let dir = content_dir(|s| s.replacen(DELIVERY_REPLY, new_reply, 1));
    let expected_version = Bundle::from_dir(&dir).unwrap().version();

    let validated = json_of(&parley(&sys, &["--json", "content", "validate", dir.to_str().unwrap()]).await);
    assert_eq!(validated["version"], expected_version.as_str());
    assert_eq!(validated["embedded"], false);

    let pushed = parley(&sys, &["content", "push", dir.to_str().unwrap()]).await;
    assert!(pushed.status.success(), "{}", text(&pushed));
    assert!(text(&pushed).contains(&format!("pushed: version {expected_version}")), "{}", text(&pushed));
    let pushed_at = Instant::now();
    let got = reply_becomes(&sys, new_reply, Duration::from_secs(15)).await;
    assert!(got.starts_with(new_reply), "the new reply within the re-check interval, got {got:?}");
    println!("live after {:?} (re-check every {RECHECK:?})", pushed_at.elapsed());

    let shown = json_of(&parley(&sys, &["--json", "content", "show"]).await);
    assert_eq!(shown["version"], expected_version.as_str());
    assert!(shown["files"].as_array().unwrap().iter().any(|f| f == "flows/default.de.toml"), "{shown}");

    // A button over WhatsApp's 20 characters: refused by push, with the file and the problem.
    let broken = content_dir(|s| s.replacen("title = \"Lieferzeit\"", "title = \"Lieferzeit und Versandkosten\"", 1));
    let refused = parley(&sys, &["content", "push", broken.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("flows/default.de.toml") && message.contains("20"), "{message}");
    let invalid_validate = parley(&sys, &["content", "validate", broken.to_str().unwrap()]).await;
    assert_eq!(invalid_validate.status.code(), Some(2), "{}", text(&invalid_validate));
    assert_eq!(json_of(&parley(&sys, &["--json", "content", "show"]).await)["version"], expected_version.as_str());

    // What a re-check costs when nothing changed: a 304 without a body.
    let s3 = operator_s3().await;
    let Got::Object { etag: Some(etag), .. } = s3.get_object(&bucket(&sys), parley::content::KEY, None).await.unwrap()
    else {
        panic!("the pushed set has an ETag")
    };
    assert_eq!(s3.get_object(&bucket(&sys), parley::content::KEY, Some(&etag)).await.unwrap(), Got::NotModified);

    // The same broken set written straight into the bucket (checksum intact): the functions
    // refuse it and keep the set in force.
    let stored = Bundle::from_dir(&broken).unwrap().to_stored();
    s3.put_object(&bucket(&sys), parley::content::KEY, "application/json", stored.into()).await.unwrap();
    tokio::time::sleep(RECHECK * 3).await;
    for _ in 0..3 {
        assert!(delivery_reply(&sys).await.starts_with(new_reply), "an invalid set is never served");
    }

    // Every function that reads content read exactly the set's key, nothing else.
    let ops = sys.running.aws_operations();
    for function in READERS {
        let s3_ops: Vec<_> = ops.iter().filter(|o| o.function == *function && o.action.starts_with("s3:")).collect();
        assert!(!s3_ops.is_empty(), "{function} loads the content set");
        for o in s3_ops {
            assert_eq!(
                (o.action.as_str(), o.resource.as_str()),
                ("s3:GetObject", "ContentBucket/content/current.json")
            );
        }
    }
    assert!(ops.iter().all(|o| o.function != "event-bridge" || !o.action.starts_with("s3:")));
    for d in [dir, broken] {
        let _ = std::fs::remove_dir_all(d);
    }
    sys.stop().await;
}

#[tokio::test]
async fn an_empty_bucket_or_an_unreachable_s3_leaves_the_embedded_set() {
    let sys = system(None).await;
    assert!(delivery_reply(&sys).await.starts_with(DELIVERY_REPLY));
    let shown = parley(&sys, &["content", "show"]).await;
    assert_eq!(shown.status.code(), Some(3), "nothing pushed yet: {}", text(&shown));
    // Not a content set at all.
    operator_s3()
        .await
        .put_object(&bucket(&sys), parley::content::KEY, "application/json", "{\"not\": 1}".into())
        .await
        .unwrap();
    tokio::time::sleep(RECHECK * 2).await;
    assert!(delivery_reply(&sys).await.starts_with(DELIVERY_REPLY));
    sys.stop().await;

    // Port 9 (discard) refuses connections: every load and re-check fails fast.
    let sys = system(Some("http://127.0.0.1:9")).await;
    assert!(delivery_reply(&sys).await.starts_with(DELIVERY_REPLY));
    tokio::time::sleep(RECHECK * 2).await;
    assert!(delivery_reply(&sys).await.starts_with(DELIVERY_REPLY));
    sys.stop().await;
}

#[tokio::test]
async fn the_repository_config_validates_as_the_embedded_set() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["--json", "content", "validate", concat!(env!("CARGO_MANIFEST_DIR"), "/../config")])
        .output()
        .await
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["version"], Bundle::embedded().version().as_str());
    assert_eq!(v["embedded"], true);
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["content", "validate", "/nonexistent-dir"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
