//! HTTP handlers shared by the Lambda functions and the local runtime. They take and return
//! plain `http` types, so the same code runs behind API Gateway and behind `make dev`.
pub mod agent;
pub mod auth;
pub mod campaigns;
pub mod consent;
pub mod console;
pub mod error;
pub mod jwt;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod links;
pub mod meta_webhook;
pub mod shop_webhook;

pub use error::ApiError;

use crate::channels::signature::{Encoding, Verifier};
use crate::config::{
    Accounts, AgentAuthSettings, AwsSettings, CartSettings, ConfigError, ConsentSettings, LinkSettings, LoopSettings,
    MetaSettings, Secret, ShopSettings,
};
use crate::domain::cart::CartTexts;
use crate::domain::flows::Flows;
use crate::domain::orders::NotificationTexts;
use crate::domain::templates::Templates;
use crate::queue::Producer;
use crate::store::Store;
use bytes::Bytes;
use http::{Method, Request, Response};
use secrecy::ExposeSecret;

/// Everything a request handler needs, built once per container (cold start), never per request.
#[derive(Debug, Clone)]
pub struct App {
    pub store: Store,
    /// The outbound FIFO queue (replies, notifications).
    pub producer: Producer,
    /// The inbound FIFO queue big deliveries are handed to (`None`: all handled inline).
    pub inbound: Option<Producer>,
    /// The inbound queue's DLQ: unreadable inbound envelopes go there at once.
    pub inbound_dlq_url: Option<String>,
    pub meta: MetaSettings,
    pub meta_verifier: Verifier,
    pub accounts: Accounts,
    pub flows: Flows,
    pub templates: Templates,
    pub notifications: NotificationTexts,
    pub settings: LoopSettings,
    pub shops: ShopSettings,
    pub carts: CartSettings,
    pub cart_texts: CartTexts,
    pub consent: ConsentSettings,
    /// `PARLEY_ADMIN_KEY` — the `x-api-key` for the admin routes; unset disables them.
    pub admin_key: Option<Secret>,
    /// Conversation events for the brand's own inbox (`None`: the bridge is off).
    pub bridge: Option<crate::bridge::Publisher>,
    /// Verifies the bearer tokens of routes that accept `x-api-key` or an admin token (no
    /// authorizer runs there); `None` (`AGENT_AUTH_ISSUER` unset): `x-api-key` only. Clones share
    /// the cached keys: one JWKS per container.
    pub token_verifier: Option<jwt::TokenVerifier>,
    /// The campaign queue (`None`: this function runs no campaigns).
    pub campaign_jobs: Option<crate::campaigns::JobQueue>,
    /// `CAMPAIGN_DEFAULT_TIMEZONE`.
    pub campaign_tz: jiff::tz::TimeZone,
    /// Tracked links: the key their tokens derive from and the public URL they point to.
    pub links: LinkSettings,
}

/// Who passed [`App::check_admin_or_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCaller {
    /// The admin `x-api-key` (a back-office system).
    ApiKey,
    /// A signed-in admin, as the token says.
    Token(auth::Agent),
}

/// Brand-editable content: flows and templates from `PARLEY_FLOWS_DIR` when set, else the
/// files compiled in from `config/`.
pub fn load_content() -> Result<(Flows, Templates), ConfigError> {
    let flows = match crate::config::env_opt("PARLEY_FLOWS_DIR") {
        Some(dir) => Flows::load_dir(dir)?,
        None => Flows::embedded()?,
    };
    Ok((flows, Templates::embedded()?))
}

impl crate::content::WithContent for App {
    fn with_content(&self, set: &crate::domain::content::ContentSet) -> Self {
        App {
            flows: set.flows.clone(),
            templates: set.templates.clone(),
            notifications: set.notifications.clone(),
            cart_texts: set.cart_texts.clone(),
            ..self.clone()
        }
    }
}

impl App {
    /// [`App::from_env`] with the brand content of `CONTENT_BUCKET` (see [`crate::content`]).
    pub async fn live_from_env() -> Result<crate::content::Live<App>, ConfigError> {
        crate::content::Live::from_env(Self::from_env().await?).await
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let budget = crate::budget::Budget::from_env()?;
        let (ddb, sqs) = crate::budget::aws_clients_with(&budget, &crate::budget::Endpoints::default()).await;
        let bridge = crate::bridge::Publisher::from_env(&sqs)?;
        Ok(Self { bridge, ..Self::new(ddb, sqs, AwsSettings::from_env()?, MetaSettings::from_env()?)? })
    }

    /// Table, queue and Meta settings are explicit so the local runtime and the tests can run
    /// several systems side by side; the rest comes from the environment.
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        aws: AwsSettings,
        meta: MetaSettings,
    ) -> Result<Self, ConfigError> {
        let (flows, templates) = load_content()?;
        let shops = ShopSettings::from_env()?;
        let settings = LoopSettings::from_env()?;
        let jwks_http = crate::budget::Budget::from_env()?
            .jwks_http()
            .map_err(|e| ConfigError::Invalid { name: "PARLEY_FUNCTION_TIMEOUT_SECONDS", reason: e.to_string() })?;
        let producer = |url: String| Producer::new(sqs.clone(), url).with_concurrency(settings.queue_send_concurrency);
        Ok(Self {
            store: Store::new(ddb, aws.table).with_settings(&settings),
            producer: producer(aws.outbound_queue_url),
            inbound: aws.inbound_queue_url.map(producer),
            inbound_dlq_url: aws.inbound_dlq_url,
            meta_verifier: Verifier::new(
                Encoding::PrefixedHex,
                meta.app_secret.clone(),
                meta.app_secret_previous.clone(),
            ),
            meta,
            accounts: Accounts::from_env()?,
            flows,
            templates,
            notifications: NotificationTexts::embedded()?,
            settings,
            carts: CartSettings::from_env(&shops)?,
            shops,
            cart_texts: CartTexts::embedded()?,
            consent: ConsentSettings::from_env()?,
            admin_key: crate::config::env_opt("PARLEY_ADMIN_KEY").map(Secret::from),
            bridge: None,
            token_verifier: jwt::TokenVerifier::from_settings(&AgentAuthSettings::from_env()?, jwks_http),
            campaign_jobs: aws
                .campaign_queue_url
                .clone()
                .map(|u| crate::campaigns::JobQueue::new(sqs.clone(), u).with_dlq(aws.campaign_dlq_url.clone())),
            campaign_tz: crate::config::campaign_timezone()?,
            links: LinkSettings::from_env()?,
        })
    }

    /// Mints tracked links (campaign fan-out); needs `PARLEY_LINK_KEY` and `PARLEY_PUBLIC_BASE_URL`.
    pub fn links(&self) -> Result<crate::links::Links<'_>, ConfigError> {
        crate::links::Links::new(&self.store, &self.links)
    }

    /// Checks the admin `x-api-key` in constant time.
    pub fn check_admin(&self, req: &Request<Bytes>) -> Result<(), ApiError> {
        let given = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("");
        match &self.admin_key {
            Some(key) if constant_time_eq(given.as_bytes(), key.expose_secret().as_bytes()) => Ok(()),
            _ => Err(ApiError::BadApiKey),
        }
    }

    /// Routes open to the admin `x-api-key` or an admin's bearer token. No authorizer runs on them
    /// (an `x-api-key` caller has no token), so the token is verified here, by API Gateway's
    /// rules ([`jwt`]). A valid key → ok; else a token: an admin's → ok, an agent's (or one
    /// outside the groups) → 403, a refused one → 401, keys out of reach → 503. Neither → 401.
    pub async fn check_admin_or_token(&self, req: &Request<Bytes>) -> Result<AdminCaller, ApiError> {
        let key = self.check_admin(req);
        let authorization = req.headers().get(http::header::AUTHORIZATION);
        match (key, authorization, &self.token_verifier) {
            (Ok(()), _, _) => Ok(AdminCaller::ApiKey),
            (Err(_), Some(value), Some(verifier)) => {
                // A header that is not text is no token either.
                let claims = verifier.verify(Some(value.to_str().unwrap_or(""))).await.map_err(|e| {
                    tracing::info!(reason = %e, "bearer token refused on an admin route");
                    ApiError::from(e)
                })?;
                let agent = claims.agent()?;
                agent.require_admin()?;
                Ok(AdminCaller::Token(agent))
            }
            (Err(key), _, _) => Err(key),
        }
    }
}

/// The contact a route's path names (`/consent/{channel}/{address}`, `/contacts/{channel}/{address}/…`):
/// every path route parses it here, so a WhatsApp number means the same everywhere (international
/// E.164 digits, see [`ContactId::from_path`]). Unknown channel or bad address → 422 saying which rule.
pub fn path_contact(channel: &str, address: &str) -> Result<crate::domain::ContactId, ApiError> {
    crate::domain::ContactId::from_path(channel, address).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    // Comparing digests keeps the time independent of the lengths too (subtle's comparison of
    // slices returns early on a length difference).
    bool::from(Sha256::digest(a).ct_eq(&Sha256::digest(b))) && !b.is_empty()
}

pub(crate) fn json_response(status: http::StatusCode, body: &serde_json::Value) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .expect("valid response")
}

pub(crate) fn text_response(status: http::StatusCode, body: impl Into<String>) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.into())
        .expect("valid response")
}

/// Query parameters, decoded as browsers encode forms (`+` is a space, `%XX` a byte, invalid
/// UTF-8 replaced).
pub(crate) fn query_param(req: &Request<Bytes>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `GET /health`: 200 when the table and the queue answer, 503 otherwise. Uses only what the
/// channel-webhook role allows (`GetItem` on the table, `GetQueueAttributes` on the queue).
pub async fn health(app: &App) -> Response<String> {
    let table = app.store.ping();
    let queue = app
        .producer
        .client()
        .get_queue_attributes()
        .queue_url(app.producer.queue_url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send();
    let (t, q) = futures::join!(table, queue);
    // The body says only what is down; the cause goes to the log.
    if let Err(e) = &t {
        tracing::warn!(error = %e, "health: the table did not answer");
    }
    let backlog = match q {
        Ok(o) => o
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).cloned())
            .and_then(|v| v.parse::<u64>().ok()),
        Err(e) => {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "health: the outbound queue did not answer");
            None
        }
    };
    let ok = t.is_ok() && backlog.is_some();
    let status = if ok { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE };
    json_response(
        status,
        &serde_json::json!({
            "status": if ok { "ok" } else { "degraded" },
            "table": if t.is_ok() { "ok" } else { "unreachable" },
            "outbound_queue": if backlog.is_some() { "ok" } else { "unreachable" },
            "outbound_backlog": backlog,
        }),
    )
}

/// The HTTP functions, as template.yaml deploys them. Each serves its own routes; the local
/// runtime uses [`HttpFunction::for_path`] to route like API Gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFunction {
    /// `GET/POST /webhooks/meta`, `POST /contacts/{channel}/{address}/release-to-bot`, `GET /health`.
    ChannelWebhook,
    /// `POST /consent/optin`, `GET /consent/{channel}/{address}`,
    /// `GET /contacts/{channel}/{address}/export`, `DELETE /contacts/{channel}/{address}`.
    ConsentApi,
    /// `POST /webhooks/shopify`, `POST /webhooks/woocommerce`.
    ShopWebhook,
    /// `/agent/…`: the team inbox's API and its console.
    AgentApi,
    /// `GET /r/{token}` (tracked links), `/campaigns…`, `/segments/…`.
    CampaignApi,
}

impl HttpFunction {
    pub fn name(self) -> &'static str {
        match self {
            HttpFunction::ChannelWebhook => "channel-webhook",
            HttpFunction::ConsentApi => "consent-api",
            HttpFunction::ShopWebhook => "shop-webhook",
            HttpFunction::AgentApi => "agent-api",
            HttpFunction::CampaignApi => "campaign-api",
        }
    }

    /// Which function API Gateway sends `path` to.
    pub fn for_path(path: &str) -> Option<Self> {
        let p = path.trim_end_matches('/');
        if p == "/health" || p == "/webhooks/meta" || (p.starts_with("/contacts/") && p.ends_with("/release-to-bot")) {
            Some(HttpFunction::ChannelWebhook)
        } else if p.starts_with("/consent/") || p.starts_with("/contacts/") {
            Some(HttpFunction::ConsentApi)
        } else if p == "/webhooks/shopify" || p == "/webhooks/woocommerce" {
            Some(HttpFunction::ShopWebhook)
        } else if p == "/agent" || p.starts_with("/agent/") {
            Some(HttpFunction::AgentApi)
        } else if p.starts_with("/r/")
            || p == "/campaigns"
            || p.starts_with("/campaigns/")
            || p.starts_with("/segments/")
        {
            Some(HttpFunction::CampaignApi)
        } else {
            None
        }
    }

    /// This function's handler (the local runtime routes every path through these).
    pub fn handler(self) -> Handler {
        match self {
            HttpFunction::ChannelWebhook => handlers::channel_webhook,
            HttpFunction::ConsentApi => handlers::consent_api,
            HttpFunction::ShopWebhook => handlers::shop_webhook,
            HttpFunction::AgentApi => handlers::agent_api,
            HttpFunction::CampaignApi => handlers::campaign_api,
        }
    }

    pub async fn handle(self, app: &App, req: Request<Bytes>) -> Response<String> {
        (self.handler())(app, req).await
    }
}

/// One HTTP function's request handler: `GET /health` and the function's own routes. A Lambda
/// binary hands its own to [`lambda::serve`] and so links only its own routes (a dispatch on
/// [`HttpFunction`] at run time would link all five into each).
pub type Handler = for<'a> fn(&'a App, Request<Bytes>) -> futures::future::BoxFuture<'a, Response<String>>;

/// The handlers of the five HTTP functions (see [`Handler`]).
pub mod handlers {
    use super::*;
    use futures::future::BoxFuture;

    pub fn channel_webhook(app: &App, req: Request<Bytes>) -> BoxFuture<'_, Response<String>> {
        Box::pin(answer(app, req, |app, req, method, path| async move {
            channel_webhook_route(app, req, method, &path).await
        }))
    }

    pub fn consent_api(app: &App, req: Request<Bytes>) -> BoxFuture<'_, Response<String>> {
        Box::pin(answer(app, req, |app, req, _, path| async move {
            consent::route(app, &req, &path).await.unwrap_or(Err(ApiError::NotFound))
        }))
    }

    pub fn shop_webhook(app: &App, req: Request<Bytes>) -> BoxFuture<'_, Response<String>> {
        Box::pin(answer(app, req, |app, req, method, path| async move {
            match (method, path.as_str()) {
                (Method::POST, "/webhooks/shopify") => shop_webhook::shopify(app, req).await,
                (Method::POST, "/webhooks/woocommerce") => shop_webhook::woocommerce(app, req).await,
                (_, "/webhooks/shopify" | "/webhooks/woocommerce") => Err(ApiError::MethodNotAllowed { allow: "POST" }),
                _ => Err(ApiError::NotFound),
            }
        }))
    }

    pub fn agent_api(app: &App, req: Request<Bytes>) -> BoxFuture<'_, Response<String>> {
        Box::pin(answer(app, req, |app, req, _, path| async move { agent::route(app, req, &path).await }))
    }

    pub fn campaign_api(app: &App, req: Request<Bytes>) -> BoxFuture<'_, Response<String>> {
        Box::pin(answer(app, req, |app, req, _, path| async move {
            if path.starts_with("/r/") {
                links::route(app, &req, &path).await
            } else {
                campaigns::route(app, &req, &path).await.unwrap_or(Err(ApiError::NotFound))
            }
        }))
    }

    /// `/health` (every function answers it), else the function's routes; errors as responses,
    /// and the invocation's metrics written.
    async fn answer<'a, F, Fut>(app: &'a App, req: Request<Bytes>, routes: F) -> Response<String>
    where
        F: FnOnce(&'a App, Request<Bytes>, Method, String) -> Fut,
        Fut: std::future::Future<Output = Result<Response<String>, ApiError>>,
    {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let method = req.method().clone();
        let result = match (&method, path.as_str()) {
            (&Method::GET, "/health") => Ok(health(app).await),
            (_, "/health") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
            _ => routes(app, req, method, path).await,
        };
        let response = result.unwrap_or_else(ApiError::into_response);
        crate::observability::flush();
        response
    }
}

async fn channel_webhook_route(
    app: &App,
    req: Request<Bytes>,
    method: Method,
    path: &str,
) -> Result<Response<String>, ApiError> {
    match (method, path) {
        (Method::GET, "/webhooks/meta") => meta_webhook::verify(app, &req),
        (Method::POST, "/webhooks/meta") => meta_webhook::receive(app, req).await,
        (_, "/webhooks/meta") => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        (Method::POST, p) if p.starts_with("/contacts/") && p.ends_with("/release-to-bot") => {
            meta_webhook::release_to_bot(app, &req, p).await
        }
        (_, p) if p.starts_with("/contacts/") && p.ends_with("/release-to-bot") => {
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
        _ => Err(ApiError::NotFound),
    }
}

/// Shorthand for [`HttpFunction::ChannelWebhook`] (tests and benchmarks call it directly).
pub async fn channel_webhook(app: &App, req: Request<Bytes>) -> Response<String> {
    HttpFunction::ChannelWebhook.handle(app, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let req = Request::builder()
            .uri("/webhooks/meta?hub.mode=subscribe&hub.verify_token=a%20b+c&hub.challenge=1158201444&x=%zz")
            .body(Bytes::new())
            .unwrap();
        assert_eq!(query_param(&req, "hub.mode").as_deref(), Some("subscribe"));
        assert_eq!(query_param(&req, "hub.verify_token").as_deref(), Some("a b c"));
        assert_eq!(query_param(&req, "hub.challenge").as_deref(), Some("1158201444"));
        assert_eq!(query_param(&req, "x").as_deref(), Some("%zz"));
        assert_eq!(query_param(&req, "missing"), None);
    }

    #[test]
    fn paths_route_to_the_function_template_yaml_deploys_them_in() {
        use HttpFunction::*;
        assert_eq!(HttpFunction::for_path("/webhooks/meta"), Some(ChannelWebhook));
        assert_eq!(HttpFunction::for_path("/health"), Some(ChannelWebhook));
        assert_eq!(HttpFunction::for_path("/contacts/whatsapp/49151/release-to-bot"), Some(ChannelWebhook));
        assert_eq!(HttpFunction::for_path("/contacts/whatsapp/49151"), Some(ConsentApi));
        assert_eq!(HttpFunction::for_path("/contacts/whatsapp/49151/export"), Some(ConsentApi));
        assert_eq!(HttpFunction::for_path("/consent/optin"), Some(ConsentApi));
        assert_eq!(HttpFunction::for_path("/webhooks/shopify"), Some(ShopWebhook));
        assert_eq!(HttpFunction::for_path("/webhooks/woocommerce"), Some(ShopWebhook));
        assert_eq!(HttpFunction::for_path("/agent/"), Some(AgentApi));
        assert_eq!(HttpFunction::for_path("/agent/conversations/whatsapp/49151/claim"), Some(AgentApi));
        assert_eq!(HttpFunction::for_path("/r/AAAAAAAAAAAAAAAAAAAAAA"), Some(CampaignApi));
        assert_eq!(HttpFunction::for_path("/r/"), None);
        assert_eq!(HttpFunction::for_path("/campaigns"), Some(CampaignApi));
        assert_eq!(HttpFunction::for_path("/campaigns/c-1/start"), Some(CampaignApi));
        assert_eq!(HttpFunction::for_path("/segments/preview"), Some(CampaignApi));
        assert_eq!(HttpFunction::for_path("/r"), None);
        assert_eq!(HttpFunction::for_path("/redirect/x"), None);
        assert_eq!(HttpFunction::for_path("/campaignsx"), None);
        assert_eq!(HttpFunction::for_path("/agents"), None);
        assert_eq!(HttpFunction::for_path("/nope"), None);
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"local-admin-key", b"local-admin-key"));
        assert!(!constant_time_eq(b"local-admin-kez", b"local-admin-key"));
        assert!(!constant_time_eq(b"", b""));
    }
}
