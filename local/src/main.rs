//! `make dev`: the whole system on 127.0.0.1:3000 (`PARLEY_PORT`) against local AWS endpoints.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    parley::observability::init_logging();
    match parley_local::start(parley_local::Options::from_env()).await {
        Ok(running) => {
            println!("Parley is running on {} — sandbox: {}/sandbox/", running.base_url, running.base_url);
            running.run_until_signal().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("parley-local: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
