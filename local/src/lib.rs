//! Parley's local runtime: every function in one process, served over HTTP exactly as API
//! Gateway and the SQS event source would drive them, plus the channel sandbox.
//!
//! The same handlers run here and under Lambda: `parley::api::*` for HTTP routes,
//! `parley::sender::Sender` and `parley::inbound::handle` for SQS batches (polled here like
//! Lambda's event source mapping; `parley::bridge::Deliverer` for the bridge queue when the
//! bridge is on). As in Lambda, each function has its own AWS clients; they
//! record its calls ([`iam`]) so the tests can hold them against the function's policy in
//! template.yaml. The agent API's sign-in runs on the same bearer-token path as in AWS
//! ([`agent_auth`]: a token issuer standing in for Cognito, an authorizer for API Gateway's).
pub mod agent_auth;
pub mod dev_env;
pub mod iam;
pub mod poller;
pub mod provision;
pub mod sandbox;
pub mod sandbox_bridge;
pub mod sandbox_shop;
pub mod sandbox_state;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use parley::api::App;
use parley::config::ExposeSecret;
use parley::config::{AwsSettings, MetaSettings};
use parley::content::{ContentSource, Live};
use parley::sender::Sender;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error("configuration: {0}")]
    Config(#[from] parley::config::ConfigError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("template.yaml has no {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Issuer(#[from] agent_auth::IssuerError),
}

/// How to run the local system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free one (tests).
    pub addr: SocketAddr,
    /// Prefix of the local table and queue names; a fresh prefix is a fresh system.
    pub prefix: String,
    /// The SAM template the table and queues are created from.
    pub template: PathBuf,
    /// Where the sender sends; `None` = this process's sandbox Graph API.
    pub graph_api_base: Option<String>,
    /// The sandbox posts `sent`/`delivered` statuses back like Meta does.
    pub status_webhooks: bool,
    /// Where this system's SDK clients connect instead of `AWS_ENDPOINT_URL_DYNAMODB` /
    /// `AWS_ENDPOINT_URL_SQS` (tests put a fault proxy in between); `None` = the environment.
    pub dynamodb_endpoint: Option<String>,
    pub sqs_endpoint: Option<String>,
    /// This system's claim lease (inbound, shop delivery and send claims) instead of
    /// `INBOUND_CLAIM_LEASE_SECONDS` / `SEND_LEASE_SECONDS`; tests shorten it.
    pub claim_lease: Option<std::time::Duration>,
    /// This system's customer-service window instead of `SERVICE_WINDOW_HOURS` (tests let it
    /// close in seconds).
    pub service_window: Option<std::time::Duration>,
    /// The bridge to a brand's inbox (`None`: off, as without `BRIDGE_WEBHOOK_URL`).
    pub bridge: Option<BridgeOptions>,
    /// This system's `WHATSAPP_MARKETING_MESSAGES_API` (`None`: the environment's).
    pub marketing_messages_api: Option<bool>,
    /// The approved templates instead of `config/templates.toml` (tests add their own).
    pub templates: Option<parley::domain::templates::Templates>,
    /// Where tracked links point (`PARLEY_PUBLIC_BASE_URL`), as a custom domain in front of the
    /// API would be; `None`: this server's URL.
    pub public_base_url: Option<String>,
    /// Brand content from a local stand-in of the template's `ContentBucket` (`None`: off, as
    /// without `CONTENT_BUCKET`: the embedded `config/`).
    pub content: Option<ContentOptions>,
}

/// Brand content, locally: the bucket is created in the local S3 endpoint (versioned, as the
/// template's), and every function that reads content loads and re-checks it as in Lambda.
#[derive(Debug, Clone)]
pub struct ContentOptions {
    /// `CONTENT_RECHECK_SECONDS` (tests make it short).
    pub recheck: std::time::Duration,
    /// Where the functions reach S3 instead of `AWS_ENDPOINT_URL_S3` (tests point it at a dead
    /// port: S3 unreachable). The bucket is created through the environment's endpoint.
    pub function_endpoint: Option<String>,
}

/// The bridge, locally: where the events go and the secret they are signed with.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// The receiver; `None` = this system's sandbox receiver (`/sandbox/bridge`), whatever its port.
    pub url: Option<String>,
    /// `whsec_<base64>` (`BRIDGE_WEBHOOK_SECRET`).
    pub secret: String,
    /// The first retry's delay (`BRIDGE_RETRY_BASE_SECONDS`; default 5).
    pub retry_base_seconds: Option<u64>,
}

impl Options {
    /// `PARLEY_PORT` (default 3000) on 127.0.0.1, prefix `PARLEY_LOCAL_PREFIX` (default
    /// `parley-local`), template `PARLEY_TEMPLATE` (default `template.yaml`).
    pub fn from_env() -> Self {
        let port = std::env::var("PARLEY_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3000u16);
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            prefix: std::env::var("PARLEY_LOCAL_PREFIX").unwrap_or_else(|_| "parley-local".into()),
            template: std::env::var("PARLEY_TEMPLATE").unwrap_or_else(|_| "template.yaml".into()).into(),
            graph_api_base: std::env::var("GRAPH_API_BASE").ok().filter(|s| !s.is_empty()),
            status_webhooks: std::env::var("SANDBOX_STATUS_WEBHOOKS").map(|v| v != "false").unwrap_or(true),
            dynamodb_endpoint: None,
            sqs_endpoint: None,
            claim_lease: None,
            service_window: None,
            marketing_messages_api: None,
            templates: None,
            public_base_url: None,
            // On when the local endpoints include S3 (local/with-endpoints.sh exports it).
            content: std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|v| !v.is_empty()).map(|_| ContentOptions {
                recheck: std::time::Duration::from_secs(
                    std::env::var("CONTENT_RECHECK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60),
                ),
                function_endpoint: None,
            }),
            bridge: std::env::var("BRIDGE_WEBHOOK_URL").ok().filter(|u| !u.trim().is_empty()).map(|url| {
                BridgeOptions {
                    url: Some(url),
                    secret: std::env::var("BRIDGE_WEBHOOK_SECRET").unwrap_or_default(),
                    retry_base_seconds: std::env::var("BRIDGE_RETRY_BASE_SECONDS").ok().and_then(|v| v.parse().ok()),
                }
            }),
        }
    }
}

/// A running local system.
pub struct Running {
    pub addr: SocketAddr,
    pub base_url: String,
    pub resources: provision::Provisioned,
    pub sandbox: sandbox::Sandbox,
    /// The sandbox's stand-in for a brand's inbox (`/sandbox/bridge`).
    pub bridge_receiver: sandbox_bridge::BridgeReceiver,
    /// An operator's view of the system (tests read and seed storage through it): its clients
    /// belong to no function, so its calls are not held against any function's policy.
    pub app: Arc<App>,
    /// The local stand-in for the Cognito user pool (`POST /sandbox/agent-token` uses it; tests
    /// sign the tokens the authorizer must refuse with it).
    pub agent_tokens: Arc<agent_auth::Issuer>,
    journal: Arc<iam::Journal>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Every AWS operation a function performed so far, in IAM terms.
    pub fn aws_operations(&self) -> Vec<iam::Operation> {
        self.journal.operations()
    }

    /// Stops the server and the queue poller and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Runs until Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("stopping");
        self.stop().await;
    }
}

/// The functions of template.yaml, each with its own AWS clients as each has its own role.
struct Functions {
    channel_webhook: Arc<Live<App>>,
    consent_api: Arc<Live<App>>,
    shop_webhook: Arc<Live<App>>,
    agent_api: Arc<Live<App>>,
    campaign_api: Arc<Live<App>>,
    shop_reconciler: Arc<Live<App>>,
    cart_reminder: Arc<Live<App>>,
    outbound_sender: poller::SqsHandler,
    /// The outbound queue's event source polls with the sender's role.
    outbound_sender_sqs: aws_sdk_sqs::Client,
    inbound_worker: poller::SqsHandler,
    /// The inbound queue's event source polls with the worker's role.
    inbound_worker_sqs: aws_sdk_sqs::Client,
    event_bridge: poller::SqsHandler,
    /// The bridge queue's event source polls with the event-bridge role.
    event_bridge_sqs: aws_sdk_sqs::Client,
    campaign_dispatcher: poller::SqsHandler,
    /// The campaign queue's event source polls with the dispatcher's role.
    campaign_dispatcher_sqs: aws_sdk_sqs::Client,
}

impl Functions {
    fn http(&self, function: parley::api::HttpFunction) -> &Live<App> {
        match function {
            parley::api::HttpFunction::ChannelWebhook => &self.channel_webhook,
            parley::api::HttpFunction::ConsentApi => &self.consent_api,
            parley::api::HttpFunction::ShopWebhook => &self.shop_webhook,
            parley::api::HttpFunction::AgentApi => &self.agent_api,
            parley::api::HttpFunction::CampaignApi => &self.campaign_api,
        }
    }
}

#[derive(Clone)]
struct Shared {
    functions: Arc<Functions>,
    poller_alive: Arc<std::sync::atomic::AtomicBool>,
    queue_url: String,
    inbound_queue_url: String,
    bridge_queue_url: String,
    campaign_queue_url: String,
    http: reqwest::Client,
    /// API Gateway's JWT authorizer on the `/agent/` routes that need a token.
    authorizer: Arc<agent_auth::JwtAuthorizer>,
    /// Function invocations running at once (`PARLEY_LOCAL_CONCURRENCY`, default 10). Every
    /// DynamoDB call here goes through one serial emulator, so unbounded concurrency would make
    /// each call queue there for seconds — time AWS never charges — and run into the calls'
    /// time budgets; beyond the bound, requests wait before their function starts instead.
    invocations: Arc<tokio::sync::Semaphore>,
}

/// How many inbound-worker invocations run at once locally (Lambda scales with the FIFO groups).
const LOCAL_INBOUND_WORKERS: usize = 4;

/// Provisions the local resources from the template and starts everything.
pub async fn start(opts: Options) -> Result<Running, LocalError> {
    let budget = parley::budget::Budget::from_env()?;
    let endpoints =
        parley::budget::Endpoints { dynamodb: opts.dynamodb_endpoint.clone(), sqs: opts.sqs_endpoint.clone() };
    let (ddb, sqs) = parley::budget::aws_clients_with(&budget, &endpoints).await;
    let mut resources = provision::provision(&opts.template, &opts.prefix, &ddb, &sqs).await?;
    // The content bucket, as the template's ContentBucket (versioned); its clients are made per
    // function below, like the SDK clients, so their calls are recorded for the IAM check.
    let content_s3 = match &opts.content {
        Some(_) => {
            let http = budget.jwks_http().map_err(|e| parley::config::ConfigError::Invalid {
                name: "PARLEY_FUNCTION_TIMEOUT_SECONDS",
                reason: e.to_string(),
            })?;
            let s3 = parley::content::s3::S3::from_env(http).await;
            let bucket = format!("{}-content", opts.prefix).to_ascii_lowercase();
            let failed =
                |e: parley::content::s3::S3Error| provision::ProvisionError::Endpoint(bucket.clone(), e.to_string());
            s3.create_bucket(&bucket).await.map_err(failed)?;
            s3.enable_versioning(&bucket).await.map_err(failed)?;
            resources.buckets.insert("ContentBucket".into(), bucket);
            Some(s3)
        }
        None => None,
    };
    let table = resources.table("Table").ok_or(LocalError::Missing("Table"))?.to_string();
    let queue_url = resources.queue("OutboundQueue").ok_or(LocalError::Missing("OutboundQueue"))?.to_string();
    let dlq_url = resources.queue("OutboundDLQ").map(str::to_string);
    let inbound_queue_url = resources.queue("InboundQueue").ok_or(LocalError::Missing("InboundQueue"))?.to_string();
    let inbound_dlq_url = resources.queue("InboundDLQ").map(str::to_string);
    let bridge_queue_url = resources.queue("BridgeQueue").ok_or(LocalError::Missing("BridgeQueue"))?.to_string();
    let campaign_queue_url = resources.queue("CampaignQueue").ok_or(LocalError::Missing("CampaignQueue"))?.to_string();
    let bridge_dlq_url = resources.queue("BridgeDLQ").map(str::to_string);

    let listener = tokio::net::TcpListener::bind(opts.addr).await.map_err(|e| LocalError::Bind(opts.addr, e))?;
    let addr = listener.local_addr().map_err(|e| LocalError::Bind(opts.addr, e))?;
    let base_url = format!("http://{addr}");

    let agent_tokens = Arc::new(agent_auth::Issuer::generate(format!("{base_url}{}", agent_auth::ISSUER_PATH))?);
    let aws = AwsSettings {
        table,
        outbound_queue_url: queue_url.clone(),
        outbound_dlq_url: dlq_url,
        inbound_queue_url: Some(inbound_queue_url.clone()),
        inbound_dlq_url,
        campaign_queue_url: Some(campaign_queue_url.clone()),
        campaign_dlq_url: resources.queue("CampaignDLQ").map(str::to_string),
    };
    let mut meta = MetaSettings::from_env()?;
    meta.graph_api_base = opts.graph_api_base.clone().unwrap_or_else(|| format!("{base_url}/sandbox/graph"));
    if let Some(on) = opts.marketing_messages_api {
        meta.marketing_messages_api = on;
    }
    let bridge = match &opts.bridge {
        Some(b) => {
            let url = b.url.clone().unwrap_or_else(|| format!("{base_url}/sandbox/bridge"));
            let mut settings = parley::bridge::BridgeSettings::new(&url, &b.secret)?;
            if let Some(base) = b.retry_base_seconds {
                settings.retry_base_seconds = base.max(1);
            }
            Some(settings)
        }
        None => None,
    };
    // As template.yaml gives the bridge's settings to its producers only.
    let publisher = |sqs: &aws_sdk_sqs::Client| {
        bridge.as_ref().map(|_| parley::bridge::Publisher::new(sqs.clone(), bridge_queue_url.clone()))
    };

    let journal = Arc::new(iam::Journal::default());
    let names = Arc::new(iam::Resources::new(&resources));
    // A function's view of the content bucket (its recorder tags the calls), as in Lambda.
    let content_source = |function: &str| -> Option<Arc<dyn ContentSource>> {
        let endpoint = opts.content.as_ref().and_then(|c| c.function_endpoint.clone());
        let s3 = content_s3.clone()?.with_endpoint(endpoint);
        let recorder = iam::Recorder::new(function, Arc::clone(&names), Arc::clone(&journal));
        let bucket = resources.bucket("ContentBucket")?.to_string();
        Some(Arc::new(parley::content::S3Source { s3: s3.with_observer(recorder.s3_observer()), bucket }))
    };
    let recheck = opts.content.as_ref().map(|c| c.recheck).unwrap_or(parley::content::DEFAULT_RECHECK);
    let content_timeout = budget.aws_operation();
    // The clients of one function: same endpoints and settings, tagged with its name.
    let clients = |function: &str| {
        let recorder = iam::Recorder::new(function, Arc::clone(&names), Arc::clone(&journal));
        (
            aws_sdk_dynamodb::Client::from_conf(ddb.config().to_builder().interceptor(recorder.clone()).build()),
            aws_sdk_sqs::Client::from_conf(sqs.config().to_builder().interceptor(recorder).build()),
        )
    };
    let app_with =
        |clients: (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client), bridged: bool| -> Result<Arc<App>, LocalError> {
            let mut app = App::new(clients.0, clients.1, aws.clone(), meta.clone())?;
            if bridged {
                app.bridge = publisher(app.producer.client());
            }
            if let Some(lease) = opts.claim_lease {
                app.settings.claim_lease = lease;
                app.settings.send_lease = lease;
            }
            if let Some(window) = opts.service_window {
                app.settings.service_window = window;
            }
            // Locally the sandbox is the shop: its REST stand-ins live on this server, whatever the port.
            app.shops.shopify_admin_base = format!("{base_url}/sandbox/shopify");
            app.shops.woo_store_url = format!("{base_url}/sandbox/woo");
            // Tracked links point at this server (template.yaml: the HTTP API's URL).
            app.links.public_base_url = Some(opts.public_base_url.clone().unwrap_or_else(|| base_url.clone()));
            if let Some(templates) = &opts.templates {
                app.templates = templates.clone();
            }
            Ok(Arc::new(app))
        };
    let app_for = |clients: (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client)| app_with(clients, false);
    let (sender_ddb, sender_sqs) = clients("outbound-sender");
    let mut sender = Sender::from_settings(sender_ddb, sender_sqs.clone(), aws.clone(), &meta)?;
    if let Some(lease) = opts.claim_lease {
        sender.settings_mut().send_lease = lease;
    }
    if let Some(window) = opts.service_window {
        sender.settings_mut().service_window = window;
    }
    if let Some(templates) = &opts.templates {
        sender = sender.with_templates(templates.clone());
    }
    let sender = sender.with_bridge(publisher(&sender_sqs));
    let sender = Arc::new(live(sender, content_source("outbound-sender"), recheck, content_timeout).await);
    let inbound_worker = live_app(
        app_with(clients("inbound-worker"), true)?,
        content_source("inbound-worker"),
        recheck,
        content_timeout,
    )
    .await;
    let (_, event_bridge_sqs) = clients("event-bridge");
    let campaign_dispatcher = live_app(
        app_for(clients("campaign-dispatcher"))?,
        content_source("campaign-dispatcher"),
        recheck,
        content_timeout,
    )
    .await;
    let deliverer = Arc::new(parley::bridge::Deliverer::new(
        bridge.clone(),
        budget.webhook_http().map_err(|e| parley::config::ConfigError::Invalid {
            name: "PARLEY_FUNCTION_TIMEOUT_SECONDS",
            reason: e.to_string(),
        })?,
        event_bridge_sqs.clone(),
        bridge_queue_url.clone(),
        bridge_dlq_url,
    ));
    // Routes that take x-api-key or an admin token verify the token themselves (no authorizer
    // there): template.yaml points AGENT_AUTH_ISSUER/AGENT_AUTH_AUDIENCE at the user pool, here
    // they are the local issuer and client. The keys are fetched over HTTP from the issuer's JWKS
    // route, as in AWS.
    let verifying = |app: Arc<App>| -> Result<Arc<App>, LocalError> {
        let mut app = Arc::unwrap_or_clone(app);
        let http = budget.jwks_http().map_err(|e| parley::config::ConfigError::Invalid {
            name: "PARLEY_FUNCTION_TIMEOUT_SECONDS",
            reason: e.to_string(),
        })?;
        app.token_verifier = Some(parley::api::jwt::TokenVerifier::new(
            agent_tokens.url(),
            vec![agent_auth::LOCAL_CLIENT_ID.to_string()],
            http,
        ));
        Ok(Arc::new(app))
    };
    let l = |app: Arc<App>, function: &str| live_app(app, content_source(function), recheck, content_timeout);
    let functions = Arc::new(Functions {
        channel_webhook: l(app_with(clients("channel-webhook"), true)?, "channel-webhook").await,
        consent_api: l(verifying(app_for(clients("consent-api"))?)?, "consent-api").await,
        shop_webhook: l(app_for(clients("shop-webhook"))?, "shop-webhook").await,
        agent_api: l(app_for(clients("agent-api"))?, "agent-api").await,
        campaign_api: l(verifying(app_for(clients("campaign-api"))?)?, "campaign-api").await,
        shop_reconciler: l(app_for(clients("shop-reconciler"))?, "shop-reconciler").await,
        cart_reminder: l(app_for(clients("cart-reminder"))?, "cart-reminder").await,
        outbound_sender: {
            let sender = Arc::clone(&sender);
            Arc::new(move |event| {
                let sender = Arc::clone(&sender);
                Box::pin(async move { sender.current().await.handle(event).await })
            })
        },
        outbound_sender_sqs: sender_sqs,
        inbound_worker: {
            let app = Arc::clone(&inbound_worker);
            Arc::new(move |event| {
                let app = Arc::clone(&app);
                Box::pin(async move { parley::inbound::handle(&*app.current().await, event).await })
            })
        },
        inbound_worker_sqs: inbound_worker.now().producer.client().clone(),
        event_bridge: Arc::new(move |event| {
            let deliverer = Arc::clone(&deliverer);
            Box::pin(async move { deliverer.handle(event).await })
        }),
        event_bridge_sqs,
        campaign_dispatcher: {
            let app = Arc::clone(&campaign_dispatcher);
            Arc::new(move |event| {
                let app = Arc::clone(&app);
                Box::pin(async move { parley::campaigns::handle_jobs(&*app.current().await, event).await })
            })
        },
        campaign_dispatcher_sqs: campaign_dispatcher.now().producer.client().clone(),
    });
    // The init warm-up each Lambda function does (parley::api::lambda::serve, the SQS functions).
    for app in [
        &functions.channel_webhook,
        &functions.consent_api,
        &functions.shop_webhook,
        &functions.agent_api,
        &functions.campaign_api,
        &inbound_worker,
        &campaign_dispatcher,
    ] {
        app.now().store.warm_up().await;
    }
    sender.now().store().warm_up().await;
    let app = app_for((ddb, sqs.clone()))?;

    let env = |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_string());
    let sandbox = sandbox::Sandbox::new(sandbox::SandboxConfig {
        app_secret: meta.app_secret.clone(),
        webhook_url: format!("{base_url}/webhooks/meta"),
        whatsapp_phone_number_id: first(&env("WHATSAPP_PHONE_NUMBER_ID", "100000000000001")),
        messenger_page_id: first(&env("MESSENGER_PAGE_ID", "200000000000001")),
        instagram_account_id: first(&env("INSTAGRAM_ACCOUNT_ID", "300000000000001")),
        templates: app.templates.clone(),
        status_webhooks: opts.status_webhooks,
    });

    let secret =
        |s: &Option<parley::config::Secret>| s.as_ref().map(|s| s.expose_secret().to_string()).unwrap_or_default();
    let shop_sandbox = sandbox_shop::ShopSandbox::new(sandbox_shop::ShopSandboxConfig {
        webhook_base: base_url.clone(),
        shopify_domain: app.shops.shopify_domain.clone(),
        shopify_secret: app.shops.shopify_secret.expose_secret().to_string(),
        shopify_access_token: secret(&app.shops.shopify_access_token),
        woo_secret: app.shops.woo_secret.expose_secret().to_string(),
        woo_store_url: app.shops.woo_store_url.clone(),
        woo_consumer_key: secret(&app.shops.woo_consumer_key),
        woo_consumer_secret: secret(&app.shops.woo_consumer_secret),
    });
    let http = budget.shop_http().map_err(|e| parley::config::ConfigError::Invalid {
        name: "PARLEY_FUNCTION_TIMEOUT_SECONDS",
        reason: e.to_string(),
    })?;

    // Configured like template.yaml's authorizer: the issuer's URL, the console client as audience.
    let authorizer = Arc::new(agent_auth::JwtAuthorizer::new(
        agent_tokens.url(),
        vec![agent_auth::LOCAL_CLIENT_ID.to_string()],
        agent_tokens.jwks().clone(),
    ));

    let (shutdown, rx) = watch::channel(false);
    let poller_alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let shared = Shared {
        functions: Arc::clone(&functions),
        poller_alive: Arc::clone(&poller_alive),
        queue_url: queue_url.clone(),
        inbound_queue_url: inbound_queue_url.clone(),
        bridge_queue_url: bridge_queue_url.clone(),
        campaign_queue_url: campaign_queue_url.clone(),
        http,
        authorizer,
        invocations: Arc::new(tokio::sync::Semaphore::new(
            std::env::var("PARLEY_LOCAL_CONCURRENCY")
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(10),
        )),
    };

    // The state panel reads as an operator: the queues of template.yaml, by their logical ids.
    let queue_urls = parley::ops::queues::QueueUrls::from_lookup(|var| {
        parley::ops::queues::QueueName::ALL.iter().find_map(|q| {
            let (queue, dlq) = q.logical_ids();
            let logical = if var == q.url_var() {
                queue
            } else if var == q.dlq_var() {
                dlq
            } else {
                return None;
            };
            resources.queue(logical).map(str::to_string)
        })
    });
    let state_panel = sandbox_state::StatePanel::new(
        Arc::clone(&app),
        parley::ops::queues::Queues::new(sqs.clone(), queue_urls),
        sandbox.clone(),
    );
    let bridge_receiver =
        sandbox_bridge::BridgeReceiver::new(bridge.as_ref().map(|b| parley::bridge::Signer::new(&b.secret)));
    let router = Router::new()
        .route("/sandbox/run/{function}", post(run_function))
        // A nested router answers `/sandbox` but not `/sandbox/`, the page's documented address.
        .route("/sandbox/", axum::routing::get(sandbox::page))
        .fallback(any(http_functions))
        .with_state(shared)
        .nest(
            "/sandbox",
            sandbox
                .router()
                .merge(shop_sandbox.router())
                .merge(agent_auth::router(Arc::clone(&agent_tokens)))
                .merge(bridge_receiver.router())
                .merge(state_panel.router()),
        );

    let mut server_rx = rx.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = server_rx.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "local server failed");
        }
    });
    let f = &functions;
    let mut tasks = vec![
        server,
        tokio::spawn(poller::run(
            Arc::clone(&f.outbound_sender),
            f.outbound_sender_sqs.clone(),
            queue_url,
            rx.clone(),
            poller_alive,
        )),
    ];
    for _ in 0..LOCAL_INBOUND_WORKERS {
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (worker, url) = (Arc::clone(&f.inbound_worker), inbound_queue_url.clone());
        tasks.push(tokio::spawn(poller::run(worker, f.inbound_worker_sqs.clone(), url, rx.clone(), alive)));
    }
    {
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (dispatcher, url) = (Arc::clone(&f.campaign_dispatcher), campaign_queue_url.clone());
        tasks.push(tokio::spawn(poller::run(dispatcher, f.campaign_dispatcher_sqs.clone(), url, rx.clone(), alive)));
    }
    // The bridge queue's event source is enabled only with the bridge on (template.yaml's
    // `Enabled`): off, it makes no request at all.
    if bridge.is_some() {
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (deliverer, url) = (Arc::clone(&f.event_bridge), bridge_queue_url.clone());
        tasks.push(tokio::spawn(poller::run(deliverer, f.event_bridge_sqs.clone(), url, rx.clone(), alive)));
    }
    tracing::info!(%base_url, bridge = bridge.is_some(), "parley local system is up");
    Ok(Running { addr, base_url, resources, sandbox, bridge_receiver, app, agent_tokens, journal, shutdown, tasks })
}

/// A function's state with its content: loaded from the bucket when content is on, else fixed.
async fn live<T: parley::content::WithContent>(
    value: T,
    source: Option<Arc<dyn ContentSource>>,
    every: std::time::Duration,
    timeout: std::time::Duration,
) -> Live<T> {
    match source {
        Some(source) => Live::load(value, source, every, timeout).await,
        None => Live::fixed(value),
    }
}

async fn live_app(
    app: Arc<App>,
    source: Option<Arc<dyn ContentSource>>,
    every: std::time::Duration,
    timeout: std::time::Duration,
) -> Arc<Live<App>> {
    Arc::new(live(Arc::unwrap_or_clone(app), source, every, timeout).await)
}

fn first(list: &str) -> String {
    list.split(',').next().unwrap_or_default().trim().to_string()
}

/// Every function's HTTP routes, as API Gateway routes them.
async fn http_functions(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // Lambda's synchronous payload limit is 6 MB; read a little more so the handler's own
    // limit (413) is what the caller sees.
    let limit = shared.functions.channel_webhook.now().meta.max_body_bytes + 1024;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return parley::api::ApiError::TooLarge { size: limit, limit: limit - 1024 }.into_response().map(Body::from)
        }
    };
    let mut req = http::Request::from_parts(parts, bytes);
    let path = req.uri().path().to_string();
    let Some(function) = parley::api::HttpFunction::for_path(&path) else {
        return parley::api::ApiError::NotFound.into_response().map(Body::from);
    };
    // API Gateway's JWT authorizer runs before the function; a refused request never reaches it.
    if function == parley::api::HttpFunction::AgentApi && !parley::api::auth::is_public(req.method(), &path) {
        let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        match shared.authorizer.authorize(header, parley::time_util::now_unix()) {
            Ok(claims) => {
                req.extensions_mut().insert(claims);
            }
            Err(why) => {
                tracing::info!(reason = %why, "agent API: the JWT authorizer refused the request");
                return agent_auth::unauthorized().map(Body::from);
            }
        }
    }
    let mut response = {
        let _permit = shared.invocations.acquire().await.expect("the semaphore is never closed");
        // The content set in force, re-checked when due (as the Lambda glue does).
        let app = shared.functions.http(function).current().await;
        let handled = function.handle(&app, req);
        tracing::Instrument::instrument(handled, poller::invoke_span()).await
    };
    if path == "/health"
        && response.status().is_success()
        && !shared.poller_alive.load(std::sync::atomic::Ordering::Relaxed)
    {
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    }
    response.map(Body::from)
}

/// `POST /sandbox/run/{function}`: runs a function now instead of waiting for its trigger.
async fn run_function(
    State(shared): State<Shared>,
    axum::extract::Path(function): axum::extract::Path<String>,
) -> Response {
    match function.as_str() {
        "outbound-sender" => {
            let f = &shared.functions;
            let handled = poller::poll_once(&f.outbound_sender, &f.outbound_sender_sqs, &shared.queue_url, 0).await;
            axum::Json(serde_json::json!({ "function": function, "records": handled })).into_response()
        }
        "inbound-worker" => {
            let f = &shared.functions;
            let handled =
                poller::poll_once(&f.inbound_worker, &f.inbound_worker_sqs, &shared.inbound_queue_url, 0).await;
            axum::Json(serde_json::json!({ "function": function, "records": handled })).into_response()
        }
        "event-bridge" => {
            let f = &shared.functions;
            let handled = poller::poll_once(&f.event_bridge, &f.event_bridge_sqs, &shared.bridge_queue_url, 0).await;
            axum::Json(serde_json::json!({ "function": function, "records": handled })).into_response()
        }
        "campaign-dispatcher" => {
            let f = &shared.functions;
            let handled =
                poller::poll_once(&f.campaign_dispatcher, &f.campaign_dispatcher_sqs, &shared.campaign_queue_url, 0)
                    .await;
            axum::Json(serde_json::json!({ "function": function, "records": handled })).into_response()
        }
        "cart-reminder" => match parley::carts::send_reminders(&*shared.functions.cart_reminder.current().await).await {
            Ok(sent) => axum::Json(serde_json::json!({ "function": function, "reminders_sent": sent })).into_response(),
            Err(e) => e.into_response().map(Body::from),
        },
        "shop-reconciler" => {
            let reports =
                parley::reconciler::run(&*shared.functions.shop_reconciler.current().await, &shared.http).await;
            axum::Json(serde_json::json!({ "function": function, "reports": reports })).into_response()
        }
        _ => (
            http::StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": "unknown_function",
                "message": format!("no function '{function}' to run"),
                "functions": ["outbound-sender", "inbound-worker", "event-bridge", "campaign-dispatcher", "shop-reconciler",
                               "cart-reminder"],
            })),
        )
            .into_response(),
    }
}
