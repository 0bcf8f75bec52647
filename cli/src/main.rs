//! `parley`: the ops CLI. Parses arguments, finds the resources (env vars, or `--local` for
//! `make dev`), calls `parley::ops` and prints a table or `--json`. The logic lives in the
//! shared crate.
mod local;
mod output;

use clap::{Parser, Subcommand};
use parley::ops::contacts;
use parley::ops::queues::{QueueName, QueueUrls, Queues};
use parley::ops::replay::{BareOptions, Delivery, Platform};
use parley::ops::OpsError;
use std::process::ExitCode;

/// Exit codes (README "Operate"): 0 done, 1 failed (AWS or the webhook unreachable: retry),
/// 2 usage or configuration, 3 not found, 4 refused (the webhook's non-2xx), 5 cancelled.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Refused = 4,
    Cancelled = 5,
}

fn exit_for(e: &OpsError) -> Exit {
    match e {
        OpsError::NotConfigured(_) | OpsError::Invalid(_) => Exit::Usage,
        OpsError::NotFound(_) => Exit::NotFound,
        OpsError::Rejected { .. } => Exit::Refused,
        OpsError::Aws { .. } | OpsError::Store(_) | OpsError::Queue(_) | OpsError::Unreachable(_) => Exit::Failed,
    }
}

#[derive(Parser)]
#[command(name = "parley", version, about = "Operate Parley: queues and DLQs, contacts, webhook replay")]
struct Cli {
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Use the system `make dev` runs: read `target/dev.env` (written at its start) and the
    /// settings file (`.env`, else `.env.example`); variables already set win. `--local=FILE`
    /// reads another dev.env.
    #[arg(long, global = true, value_name = "DEV_ENV", num_args = 0..=1, require_equals = true,
          default_missing_value = local::DEFAULT_DEV_ENV)]
    local: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Depth, in flight, delayed and oldest age of every queue and DLQ.
    Queues,
    /// Inspect or redrive a dead-letter queue.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Look up, export, erase or release one contact.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Re-sign a saved webhook delivery with the configured secret and post it.
    Replay(ReplayArgs),
    /// Brand content (flows, templates, texts): validate a directory, push it live, show what is live.
    Content {
        #[command(subcommand)]
        command: ContentCommand,
    },
}

#[derive(Subcommand)]
enum ContentCommand {
    /// Check a content directory (like config/) with the functions' own validator; uploads nothing.
    Validate { dir: std::path::PathBuf },
    /// Validate, then upload the set to the content bucket; running functions pick it up within
    /// CONTENT_RECHECK_SECONDS (default 60).
    Push {
        dir: std::path::PathBuf,
        /// The stack's `ContentBucketName` output (default CONTENT_BUCKET; `--local`: make dev's).
        #[arg(long)]
        bucket: Option<String>,
    },
    /// The set stored in the bucket: version and files.
    Show {
        #[arg(long)]
        bucket: Option<String>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// The messages waiting in a queue's DLQ (nothing is deleted; they stay hidden for seconds).
    List {
        /// outbound, inbound, campaign or bridge
        queue: String,
        /// List at most this many.
        #[arg(long, default_value_t = 100)]
        max: usize,
    },
    /// Move a DLQ's messages back to their queue (the sender's claim keeps a sent one from
    /// being sent again).
    Redrive {
        /// outbound, inbound, campaign or bridge
        queue: String,
        /// Show what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move at most this many.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(clap::Args)]
struct ContactArgs {
    /// whatsapp, messenger or instagram
    channel: String,
    /// The address as the channel gives it (WhatsApp: the number, E.164 digits).
    address: String,
}

#[derive(Subcommand)]
enum ContactCommand {
    /// Profile, handover, inbox state and consent (no message texts).
    Show(ContactArgs),
    /// Everything stored about the person, as JSON (the admin export).
    Export(ContactArgs),
    /// Erase the person (the admin erase); asks first unless --yes.
    Erase {
        #[command(flatten)]
        contact: ContactArgs,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Hand the conversation back to the bot (the customer is told).
    Release(ContactArgs),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// A saved delivery: an API Gateway event (events/apigw/*_post.json) or a bare body.
    file: std::path::PathBuf,
    /// The API's base URL (default PARLEY_API_URL: the stack's `ApiUrl` output; `--local`: the
    /// system `make dev` runs).
    #[arg(long)]
    url: Option<String>,
    /// The secret to sign with (default: META_APP_SECRET, SHOPIFY_WEBHOOK_SECRET or
    /// WOOCOMMERCE_WEBHOOK_SECRET, by platform).
    #[arg(long)]
    secret: Option<String>,
    /// Send the signature saved in the file instead of signing again.
    #[arg(long, conflicts_with = "secret")]
    as_recorded: bool,
    /// For a bare body: meta, shopify or woocommerce (Meta bodies are recognised).
    #[arg(long)]
    platform: Option<String>,
    /// For a bare shop body: its topic (orders/create, order.created, …).
    #[arg(long)]
    topic: Option<String>,
    /// For a bare Shopify body: the shop (default SHOPIFY_SHOP_DOMAIN).
    #[arg(long)]
    shop_domain: Option<String>,
    /// For a bare WooCommerce body: the store URL (default WOOCOMMERCE_STORE_URL).
    #[arg(long)]
    woo_source: Option<String>,
    /// Set a header (NAME=VALUE), replacing the saved one; repeatable.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(Exit::Usage as u8) } else { ExitCode::SUCCESS };
        }
    };
    // Before the runtime starts its threads: the environment is only changed here.
    if let Some(path) = &cli.local {
        if let Err(e) = local::load(std::path::Path::new(path)) {
            eprintln!("parley: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("parley: cannot start: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let json = cli.json;
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Ops(e)) => {
            output::error(json, &e.to_string(), e.retryable());
            ExitCode::from(exit_for(&e) as u8)
        }
        Err(Failure::Cancelled) => {
            output::error(json, "cancelled", false);
            ExitCode::from(Exit::Cancelled as u8)
        }
    }
}

enum Failure {
    Ops(OpsError),
    Cancelled,
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        Failure::Ops(e)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn clients() -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    // The standard AWS config chain (profile, region, AWS_ENDPOINT_URL_* for local endpoints),
    // with the time budget of a 30 s function: a hung call fails instead of hanging the CLI.
    let budget = parley::budget::Budget::for_timeout(std::time::Duration::from_secs(30));
    parley::budget::aws_clients_with(&budget, &parley::budget::Endpoints::default()).await
}

fn store(ddb: aws_sdk_dynamodb::Client) -> Result<parley::store::Store, OpsError> {
    let table = env("PARLEY_TABLE").ok_or_else(|| OpsError::NotConfigured("PARLEY_TABLE (or --local)".into()))?;
    Ok(parley::store::Store::new(ddb, table))
}

fn contact_id(a: &ContactArgs) -> Result<parley::domain::ContactId, OpsError> {
    // The parser's messages name what is wrong, not the address (the API answers with them).
    parley::domain::ContactId::from_path(&a.channel, &a.address)
        .map_err(|e| OpsError::Invalid(format!("not a contact: {e}")))
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let json = cli.json;
    match cli.command {
        Command::Queues => {
            let (_, sqs) = clients().await;
            let stats = Queues::new(sqs, QueueUrls::from_lookup(env)).stats().await?;
            output::queues(json, &stats);
        }
        Command::Dlq { command } => {
            let (ddb, sqs) = clients().await;
            let queues = Queues::new(sqs, QueueUrls::from_lookup(env))
                .with_store(store(ddb).ok())
                .with_pseudonym_key(env("PARLEY_PSEUDONYM_KEY"));
            match command {
                DlqCommand::List { queue, max } => {
                    let q = QueueName::parse(&queue)?;
                    let list = queues.dlq_list(q, max).await?;
                    output::dlq_list(json, q, &list);
                }
                DlqCommand::Redrive { queue, dry_run, max } => {
                    let q = QueueName::parse(&queue)?;
                    let bar = output::progress(json || dry_run, max as u64);
                    let report = queues.redrive(q, max, dry_run, |n| bar.set_position(n)).await;
                    bar.finish_and_clear();
                    output::redrive(json, &report?);
                }
            }
        }
        Command::Contact { command } => {
            let (ddb, sqs) = clients().await;
            match command {
                ContactCommand::Show(a) => {
                    let summary = contacts::show(&store(ddb)?, &contact_id(&a)?).await?;
                    output::contact(json, &summary);
                }
                ContactCommand::Export(a) => {
                    let export = contacts::export(&store(ddb)?, &contact_id(&a)?).await?;
                    output::json_always(&export);
                }
                ContactCommand::Erase { contact, yes } => {
                    let id = contact_id(&contact)?;
                    let store = store(ddb)?;
                    let key = env("PARLEY_PSEUDONYM_KEY").unwrap_or_default();
                    if !yes
                        && !output::confirm(&format!(
                            "Erase everything stored about {}? This cannot be undone.",
                            id.redacted()
                        ))
                    {
                        return Err(Failure::Cancelled);
                    }
                    let report = contacts::erase(&store, &key, &id).await?;
                    output::erased(json, &report);
                }
                ContactCommand::Release(a) => {
                    let id = contact_id(&a)?;
                    // The release words come from the flows of the account the person wrote to:
                    // the same settings as the functions (accounts, flows, the outbound queue).
                    let aws =
                        parley::config::AwsSettings::from_env().map_err(|e| OpsError::NotConfigured(e.to_string()))?;
                    let meta =
                        parley::config::MetaSettings::from_env().map_err(|e| OpsError::NotConfigured(e.to_string()))?;
                    let app = parley::api::App::new(ddb, sqs, aws, meta)
                        .map_err(|e| OpsError::NotConfigured(e.to_string()))?;
                    // With CONTENT_BUCKET, the pushed set's release text, as the functions send it.
                    let app = parley::content::Live::from_env(app)
                        .await
                        .map_err(|e| OpsError::NotConfigured(e.to_string()))?
                        .now();
                    let released = contacts::release(&app, &id).await?;
                    output::released(json, &released);
                }
            }
        }
        Command::Replay(a) => replay(json, a).await?,
        Command::Content { command } => content(json, command).await?,
    }
    Ok(())
}

async fn content(json: bool, command: ContentCommand) -> Result<(), OpsError> {
    use parley::ops::content;
    let s3 = || async {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| OpsError::Unreachable(e.to_string()))?;
        Ok::<_, OpsError>(parley::content::s3::S3::from_env(http).await)
    };
    // Read here, not by clap: `--local` sets the environment after parsing.
    let bucket = |b: Option<String>| {
        b.or_else(|| env("CONTENT_BUCKET"))
            .ok_or_else(|| OpsError::NotConfigured("CONTENT_BUCKET (or --bucket)".into()))
    };
    match command {
        ContentCommand::Validate { dir } => output::content(json, "valid", &content::validate(&dir)?.1),
        ContentCommand::Push { dir, bucket: b } => {
            let bucket = bucket(b)?;
            output::content(json, "pushed", &content::push(&s3().await?, &bucket, &dir).await?)
        }
        ContentCommand::Show { bucket: b } => {
            let bucket = bucket(b)?;
            output::content(json, "stored", &content::show(&s3().await?, &bucket).await?)
        }
    }
    Ok(())
}

async fn replay(json: bool, a: ReplayArgs) -> Result<(), OpsError> {
    let file = std::fs::read(&a.file)
        .map_err(|e| OpsError::Invalid(format!("cannot read {}: {}", a.file.display(), e.kind())))?;
    let opts = BareOptions {
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
        topic: a.topic,
        // Read here, not by clap: `--local` sets the environment after parsing.
        shop_domain: a.shop_domain.or_else(|| env("SHOPIFY_SHOP_DOMAIN")),
        woo_source: a.woo_source.or_else(|| env("WOOCOMMERCE_STORE_URL")),
    };
    let mut delivery = Delivery::load(&file, &opts)?;
    for h in &a.headers {
        let (k, v) = h.split_once('=').ok_or_else(|| OpsError::Invalid(format!("--header {h:?}: NAME=VALUE")))?;
        delivery.set_header(k, v);
    }
    if a.as_recorded {
        if !delivery.signed() {
            return Err(OpsError::Invalid("--as-recorded: the file holds no signature".into()));
        }
    } else {
        let var = delivery.platform.secret_var();
        let secret =
            a.secret.or_else(|| env(var)).ok_or_else(|| OpsError::NotConfigured(format!("{var} (or --secret)")))?;
        delivery.sign(&secret);
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| OpsError::Unreachable(e.to_string()))?;
    let url = a
        .url
        .or_else(|| env("PARLEY_API_URL"))
        .ok_or_else(|| OpsError::NotConfigured("PARLEY_API_URL (or --url)".into()))?;
    let (outcome, refused) = parley::ops::replay::post(&http, &url, &delivery).await?;
    output::replayed(json, &outcome);
    match refused {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
