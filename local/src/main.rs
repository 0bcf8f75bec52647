//! `make dev`: the whole system on 127.0.0.1:3000 (`PARLEY_PORT`) against local AWS endpoints.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    parley::observability::init_logging();
    match parley_local::start(parley_local::Options::from_env()).await {
        Ok(running) => {
            // The demo catalog README's conversation uses; `PARLEY_DEMO_CATALOG=off` starts empty.
            let demo = std::env::var("PARLEY_DEMO_CATALOG").unwrap_or_default();
            if !matches!(demo.trim().to_ascii_lowercase().as_str(), "off" | "false" | "0" | "no") {
                if let Err(e) =
                    parley_local::sandbox_shop::seed_demo_catalog(&running.base_url, &reqwest::Client::new()).await
                {
                    eprintln!("parley-local: demo catalog: {e}");
                    running.stop().await;
                    return std::process::ExitCode::FAILURE;
                }
            }
            let dev_env = parley_local::dev_env::write(&running);
            println!("Parley is running on {} — sandbox: {}/sandbox/", running.base_url, running.base_url);
            running.run_until_signal().await;
            if let Some(path) = dev_env {
                let _ = std::fs::remove_file(path);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parley-local: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
