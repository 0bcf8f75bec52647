//! The agent console and the sandbox page in real Chromium: `tests/browser/agent_console.mjs` and
//! `tests/browser/sandbox.mjs` (Playwright driving Debian's chromium) against a fresh local
//! system with the demo catalog. `make test` installs
//! what it needs first (`.ci/browser-deps.sh`: chromium from apt, `npm ci` in tests/browser).
//! Its steps, the measured live latency and the screenshots (target/screenshots/) are printed
//! as it goes.
use parley_tests::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One Chromium at a time: the scenarios time what they see, and two browsers on a small
/// machine would slow each other down.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the console script's `mode` against `sys`; a hang after `limit` fails instead of blocking `make test`.
async fn run_scenarios(sys: &System, mode: &str, limit: Duration) -> std::process::ExitStatus {
    run_script(sys, "tests/browser/agent_console.mjs", mode, limit).await
}

async fn run_script(sys: &System, script: &str, mode: &str, limit: Duration) -> std::process::ExitStatus {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let chromium = std::env::var("PARLEY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists() && root.join("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs {chromium} and tests/browser/node_modules: run .ci/browser-deps.sh (make test does)"
    );
    let run = tokio::process::Command::new("node")
        .arg(script)
        .arg(&sys.base)
        .arg(mode)
        .current_dir(&root)
        .env("META_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_PHONE_NUMBER_ID", WA_PHONE_NUMBER_ID)
        .env("PARLEY_ADMIN_KEY", ADMIN_KEY)
        .env("PARLEY_CHROMIUM", &chromium)
        .env("PARLEY_SCREENSHOTS", root.join("target/screenshots"))
        .kill_on_drop(true)
        .status();
    tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| panic!("the browser scenarios ({mode}) finished within {limit:?}"))
        .expect("node runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_answers_a_waiting_customer_and_sends_a_cart_in_chromium() {
    let _browser = ONE_BROWSER.lock().await;
    let sys = System::start().await;
    sys.seed_demo_catalog().await;
    // Three scenarios of a few seconds each.
    let status = run_scenarios(&sys, "inbox", Duration::from_secs(240)).await;
    sys.stop().await;
    assert!(status.success(), "the browser scenario failed ({status}); its steps are printed above");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_runs_a_campaign_from_the_console_and_reads_its_report_in_chromium() {
    let _browser = ONE_BROWSER.lock().await;
    // Status webhooks on: the report's delivered count and the recipients' ticks move as in AWS.
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    // Two scenarios; each campaign is done in seconds, its waits allow minutes on a loaded machine.
    let status = run_scenarios(&sys, "campaigns", Duration::from_secs(420)).await;
    sys.stop().await;
    assert!(status.success(), "the campaign scenario failed ({status}); its steps are printed above");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_plays_the_readme_journey_in_the_sandbox_and_the_panel_follows_in_chromium() {
    let _browser = ONE_BROWSER.lock().await;
    // Status webhooks on, as in `make dev`: the ticks move by themselves.
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    sys.seed_demo_catalog().await;
    // Two runs (desktop, phone) of about twenty steps; the waits allow for a loaded machine.
    let status = run_script(&sys, "tests/browser/sandbox.mjs", "journey", Duration::from_secs(420)).await;
    sys.stop().await;
    assert!(status.success(), "the sandbox journey failed ({status}); its steps are printed above");
}
