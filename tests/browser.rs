//! The agent console in real Chromium: `tests/browser/agent_console.mjs` (Playwright driving
//! Debian's chromium) against a fresh local system with the demo catalog. `make test` installs
//! what it needs first (`.ci/browser-deps.sh`: chromium from apt, `npm ci` in tests/browser).
//! Its steps, the measured live latency and the screenshots (target/screenshots/) are printed
//! as it goes.
use parley_tests::*;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_answers_a_waiting_customer_and_sends_a_cart_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let chromium = std::env::var("PARLEY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists() && root.join("tests/browser/node_modules/playwright-core").exists(),
        "the browser test needs {chromium} and tests/browser/node_modules: run .ci/browser-deps.sh (make test does)"
    );
    let sys = System::start().await;
    sys.seed_demo_catalog().await;

    let run = tokio::process::Command::new("node")
        .arg("tests/browser/agent_console.mjs")
        .arg(&sys.base)
        .current_dir(&root)
        .env("META_APP_SECRET", APP_SECRET)
        .env("WHATSAPP_PHONE_NUMBER_ID", WA_PHONE_NUMBER_ID)
        .env("PARLEY_CHROMIUM", &chromium)
        .env("PARLEY_SCREENSHOTS", root.join("target/screenshots"))
        .kill_on_drop(true)
        .status();
    // Two scenarios of a few seconds each; a hang fails instead of blocking `make test`.
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser scenario finished within 4 minutes")
        .expect("node runs");
    sys.stop().await;
    assert!(status.success(), "the browser scenario failed ({status}); its steps are printed above");
}
