//! Settings, read once per container from the environment. Every setting has a documented
//! default (README "Configuration"); secrets have none outside `make dev`.
use crate::domain::{AccountId, Channel};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing required setting {0}")]
    Missing(&'static str),
    #[error("setting {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("accounts file: {0}")]
    Accounts(String),
    #[error("flows file {file}: {reason}")]
    Flows { file: String, reason: String },
    /// `PARLEY_SETTINGS` is not what it must be (the message names keys, never values).
    #[error("PARLEY_SETTINGS: {0}")]
    Settings(String),
}

/// A secret string: `Debug` never shows it, it is zeroed when dropped, and reading it takes
/// `expose_secret()` (from `secrecy::ExposeSecret`), which is easy to find in a review.
pub type Secret = secrecy::SecretString;
pub use secrecy::ExposeSecret;

/// A setting: the variable itself, else its entry in `PARLEY_SETTINGS`.
pub(crate) fn env_opt(name: &str) -> Option<String> {
    own_var(name).or_else(|| overlay().as_ref().ok().and_then(|m| m.get(name).cloned()))
}

fn own_var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// PARLEY_SETTINGS: the tunables without a template parameter of their own, as one JSON object
// (template parameter `Settings`), so a deployment never needs an edit of template.yaml.

/// Settings that are secrets: only through their `NoEcho` parameters, never in the plain JSON.
pub const SECRET_SETTINGS: &[&str] = &[
    "META_APP_SECRET",
    "META_APP_SECRET_PREVIOUS",
    "META_VERIFY_TOKEN",
    "META_ACCESS_TOKEN",
    "PARLEY_ADMIN_KEY",
    "PARLEY_PSEUDONYM_KEY",
    "PARLEY_LINK_KEY",
    "SHOPIFY_WEBHOOK_SECRET",
    "SHOPIFY_WEBHOOK_SECRET_PREVIOUS",
    "SHOPIFY_ACCESS_TOKEN",
    "WOOCOMMERCE_WEBHOOK_SECRET",
    "WOOCOMMERCE_WEBHOOK_SECRET_PREVIOUS",
    "WOOCOMMERCE_CONSUMER_KEY",
    "WOOCOMMERCE_CONSUMER_SECRET",
    "BRIDGE_WEBHOOK_SECRET",
];

/// Settings the template wires to its own resources (table, queues, user pool, URL, timeout).
pub const WIRED_SETTINGS: &[&str] = &[
    "PARLEY_TABLE",
    "PARLEY_OUTBOUND_QUEUE_URL",
    "PARLEY_OUTBOUND_DLQ_URL",
    "PARLEY_INBOUND_QUEUE_URL",
    "PARLEY_INBOUND_DLQ_URL",
    "PARLEY_CAMPAIGN_QUEUE_URL",
    "PARLEY_CAMPAIGN_DLQ_URL",
    "PARLEY_BRIDGE_QUEUE_URL",
    "PARLEY_BRIDGE_DLQ_URL",
    "PARLEY_FUNCTION_TIMEOUT_SECONDS",
    "PARLEY_PUBLIC_BASE_URL",
    "AGENT_AUTH_ISSUER",
    "AGENT_AUTH_AUDIENCE",
    "AGENT_AUTH_CLIENT_ID",
    "AGENT_AUTH_DOMAIN",
    "PARLEY_SETTINGS",
    "CONTENT_BUCKET",
];

/// Every other setting README "Configuration" documents: each may come from `PARLEY_SETTINGS`.
pub const TUNABLE_SETTINGS: &[&str] = &[
    "GRAPH_API_BASE",
    "GRAPH_API_VERSION",
    "GRAPH_TIMEOUT_MS",
    "WHATSAPP_PHONE_NUMBER_ID",
    "WHATSAPP_MARKETING_MESSAGES_API",
    "MESSENGER_PAGE_ID",
    "INSTAGRAM_ACCOUNT_ID",
    "DEFAULT_LOCALE",
    "FALLBACK_TEMPLATE",
    "HISTORY_RETENTION_DAYS",
    "CAMPAIGN_DEFAULT_TIMEZONE",
    "CONSENT_CONFIRM_HOURS",
    "CONSENT_RESEND_HOURS",
    "CONSENT_POLICY_VERSION",
    "DEFAULT_PHONE_REGION",
    "SHOPIFY_SHOP_DOMAIN",
    "SHOPIFY_API_VERSION",
    "SHOPIFY_ADMIN_BASE",
    "WOOCOMMERCE_STORE_URL",
    "ORDER_CONFIRM_ON",
    "SHOP_DELIVERY_DEDUPE_HOURS",
    "RECONCILE_LOOKBACK_MINUTES",
    "SHOP_CURRENCY",
    "CART_SHOP",
    "SHOPIFY_STOREFRONT_URL",
    "WOOCOMMERCE_CHECKOUT_LINK",
    "CHECKOUT_DISCOUNT_CODE",
    "CART_MAX_QUANTITY",
    "CART_MAX_LINES",
    "CART_REMINDER_DELAY_MINUTES",
    "CART_ATTRIBUTION_DAYS",
    "PARLEY_FLOWS_DIR",
    "MAX_WEBHOOK_BODY_BYTES",
    "INBOUND_DEDUPE_TTL_DAYS",
    "INBOUND_CLAIM_LEASE_SECONDS",
    "SEND_LEASE_SECONDS",
    "INBOUND_INLINE_MAX_EVENTS",
    "INBOUND_MAX_CONCURRENCY",
    "QUEUE_SEND_CONCURRENCY",
    "CAMPAIGN_PAGE_CONCURRENCY",
    "CONTENT_RECHECK_SECONDS",
    "INIT_WARM_UP",
    "SERVICE_WINDOW_HOURS",
    "SEND_RETRY_BASE_SECONDS",
    "SEND_PAUSE_SECONDS",
    "BRIDGE_WEBHOOK_URL",
    "BRIDGE_RETRY_BASE_SECONDS",
];

/// Per-account settings: `ACCOUNT_<id>_<suffix>`.
const ACCOUNT_SUFFIXES: &[&str] = &["_LOCALE", "_FALLBACK_TEMPLATE", "_FLOWS"];

fn is_tunable(name: &str) -> bool {
    TUNABLE_SETTINGS.contains(&name)
        || name
            .strip_prefix("ACCOUNT_")
            .is_some_and(|rest| ACCOUNT_SUFFIXES.iter().any(|s| rest.strip_suffix(s).is_some_and(|id| !id.is_empty())))
}

static OVERLAY: std::sync::OnceLock<Result<HashMap<String, String>, String>> = std::sync::OnceLock::new();

fn overlay() -> &'static Result<HashMap<String, String>, String> {
    OVERLAY.get_or_init(|| match own_var("PARLEY_SETTINGS") {
        None => Ok(HashMap::new()),
        Some(json) => parse_settings(&json, |name| own_var(name).is_some()),
    })
}

/// Fails when `PARLEY_SETTINGS` is unreadable; every function checks it at cold start (through
/// [`crate::budget::Budget::from_env`]), so a typo stops the deploy's first invocation loudly
/// instead of being ignored.
pub fn check_settings() -> Result<(), ConfigError> {
    overlay().as_ref().map(|_| ()).map_err(|e| ConfigError::Settings(e.clone()))
}

/// Reads the JSON object of settings. Values are strings, numbers or booleans. Refused, with
/// the key named and the value never shown: unknown keys (a typo would otherwise be ignored),
/// secrets (they belong in their `NoEcho` parameters), keys the template wires itself, and keys
/// also set as variables (`is_set`), which are set by their own template parameter.
pub(crate) fn parse_settings(json: &str, is_set: impl Fn(&str) -> bool) -> Result<HashMap<String, String>, String> {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON object of settings ({})", json_problem(&e)))?;
    let mut out = HashMap::with_capacity(map.len());
    for (name, value) in map {
        if SECRET_SETTINGS.contains(&name.as_str()) {
            return Err(format!("{name} is a secret: pass it through its NoEcho parameter, not in Settings"));
        }
        if WIRED_SETTINGS.contains(&name.as_str()) {
            return Err(format!("{name} is set by the template itself and cannot be changed in Settings"));
        }
        if !is_tunable(&name) {
            return Err(format!("unknown setting {} (README \"Configuration\" lists them)", printable(&name)));
        }
        if is_set(&name) {
            return Err(format!("{name} is set twice: by its own template parameter and in Settings; keep one"));
        }
        let value = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => return Err(format!("{name} must be a string, a number or true/false")),
        };
        out.insert(name, value.trim().to_string());
    }
    Ok(out)
}

/// An unknown key as it may be shown: settings names are upper-case ASCII, so anything else is
/// cut short (a value pasted as a key by mistake must not reach the log whole).
fn printable(name: &str) -> String {
    if name.len() <= 64 && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        name.to_string()
    } else {
        "(a key that is not a setting name)".to_string()
    }
}

/// What is wrong with unreadable JSON, without serde's message (it may quote the value).
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "expected an object",
        serde_json::error::Category::Eof => "truncated",
    }
}

pub(crate) fn env_or(name: &'static str, default: &str) -> String {
    env_opt(name).unwrap_or_else(|| default.to_string())
}

pub(crate) fn env_parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env_opt(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
    }
}

/// A yes/no setting: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case).
pub(crate) fn env_bool(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env_opt(name) {
        None => Ok(default),
        Some(v) => parse_bool(&v).ok_or_else(|| ConfigError::Invalid { name, reason: "expected true or false".into() }),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(crate) fn env_required(name: &'static str) -> Result<String, ConfigError> {
    env_opt(name).ok_or(ConfigError::Missing(name))
}

/// Where state lives: the DynamoDB table and the outbound FIFO queue.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// `PARLEY_TABLE` — the single DynamoDB table.
    pub table: String,
    /// `PARLEY_OUTBOUND_QUEUE_URL` — the outbound FIFO queue.
    pub outbound_queue_url: String,
    /// `PARLEY_OUTBOUND_DLQ_URL` — its dead-letter queue (unreadable envelopes go straight there).
    pub outbound_dlq_url: Option<String>,
    /// `PARLEY_INBOUND_QUEUE_URL` — the inbound FIFO queue big deliveries are handed to (unset:
    /// every delivery is handled inline).
    pub inbound_queue_url: Option<String>,
    /// `PARLEY_INBOUND_DLQ_URL` — its dead-letter queue (unreadable envelopes go straight there).
    pub inbound_dlq_url: Option<String>,
    /// `PARLEY_CAMPAIGN_QUEUE_URL` — the campaign queue the paced fan-out runs on (unset: this
    /// function runs no campaigns).
    pub campaign_queue_url: Option<String>,
    /// `PARLEY_CAMPAIGN_DLQ_URL` — its dead-letter queue: a page job that can never succeed goes
    /// there at once, with its reason (unset: it is retried until the queue moves it there).
    pub campaign_dlq_url: Option<String>,
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table: env_required("PARLEY_TABLE")?,
            outbound_queue_url: env_required("PARLEY_OUTBOUND_QUEUE_URL")?,
            outbound_dlq_url: env_opt("PARLEY_OUTBOUND_DLQ_URL"),
            inbound_queue_url: env_opt("PARLEY_INBOUND_QUEUE_URL"),
            inbound_dlq_url: env_opt("PARLEY_INBOUND_DLQ_URL"),
            campaign_queue_url: env_opt("PARLEY_CAMPAIGN_QUEUE_URL"),
            campaign_dlq_url: env_opt("PARLEY_CAMPAIGN_DLQ_URL"),
        })
    }
}

/// Meta (WhatsApp Cloud API, Messenger, Instagram) settings.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    /// `META_APP_SECRET` — signs `X-Hub-Signature-256`.
    pub app_secret: Secret,
    /// `META_APP_SECRET_PREVIOUS` — still accepted while a rotation is under way.
    pub app_secret_previous: Option<Secret>,
    /// `META_VERIFY_TOKEN` — the GET handshake token.
    pub verify_token: Secret,
    /// `META_ACCESS_TOKEN` — Graph API bearer token (system-user or page token).
    pub access_token: Secret,
    /// `GRAPH_API_BASE` — default `https://graph.facebook.com`.
    pub graph_api_base: String,
    /// `GRAPH_API_VERSION` — default `v25.0`.
    pub graph_api_version: String,
    /// `GRAPH_TIMEOUT_MS` — default 10 000.
    pub graph_timeout: Duration,
    /// `MAX_WEBHOOK_BODY_BYTES` — default 6 MiB (Lambda's synchronous payload limit).
    pub max_body_bytes: usize,
    /// `WHATSAPP_MARKETING_MESSAGES_API` — default false: send MARKETING templates through the
    /// Marketing Messages API (`/{phone-number-id}/marketing_messages`) instead of `/messages`
    /// (the WhatsApp Business Account must be onboarded to it).
    pub marketing_messages_api: bool,
}

impl MetaSettings {
    /// The webhook cannot verify anything without these; the sender does not need them.
    pub fn require_webhook_secrets(&self) -> Result<(), ConfigError> {
        if self.app_secret.expose_secret().is_empty() {
            return Err(ConfigError::Missing("META_APP_SECRET"));
        }
        if self.verify_token.expose_secret().is_empty() {
            return Err(ConfigError::Missing("META_VERIFY_TOKEN"));
        }
        Ok(())
    }
}

pub const DEFAULT_GRAPH_API_VERSION: &str = "v25.0";
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

impl MetaSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            app_secret: Secret::from(env_or("META_APP_SECRET", "")),
            app_secret_previous: env_opt("META_APP_SECRET_PREVIOUS").map(Secret::from),
            verify_token: Secret::from(env_or("META_VERIFY_TOKEN", "")),
            access_token: Secret::from(env_or("META_ACCESS_TOKEN", "")),
            graph_api_base: env_or("GRAPH_API_BASE", "https://graph.facebook.com").trim_end_matches('/').to_string(),
            graph_api_version: env_or("GRAPH_API_VERSION", DEFAULT_GRAPH_API_VERSION),
            graph_timeout: Duration::from_millis(env_parse("GRAPH_TIMEOUT_MS", 10_000u64)?),
            max_body_bytes: env_parse("MAX_WEBHOOK_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            marketing_messages_api: env_bool("WHATSAPP_MARKETING_MESSAGES_API", false)?,
        })
    }
}

/// Behaviour knobs of the message loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// `INBOUND_DEDUPE_TTL_DAYS` — default 7 (Meta retries deliveries for up to 7 days).
    pub dedupe_ttl: Duration,
    /// `HISTORY_RETENTION_DAYS` — default 90: how long conversation history is kept.
    pub history_retention: Duration,
    /// `INBOUND_CLAIM_LEASE_SECONDS` — default 30: how long an unfinished claim blocks a re-delivery.
    pub claim_lease: Duration,
    /// `SEND_LEASE_SECONDS` — default 60: how long a started send blocks a re-delivery of the
    /// same message (longer than one Graph call).
    pub send_lease: Duration,
    /// `SERVICE_WINDOW_HOURS` — default 24 (customer-service window).
    pub service_window: Duration,
    /// `SEND_RETRY_BASE_SECONDS` — default 4 (backoff 4^n seconds, capped at 15 minutes).
    pub retry_base_seconds: u64,
    /// `SEND_PAUSE_SECONDS` — default 300: how long sending pauses after a token or
    /// number-restriction error (an alarm fires on the `SendPaused` metric).
    pub pause_seconds: u64,
    /// `INBOUND_INLINE_MAX_EVENTS` — default 50: a delivery with more events than this is
    /// handed to the inbound queue and answered at once (needs `PARLEY_INBOUND_QUEUE_URL`).
    pub inline_max_events: usize,
    /// `INBOUND_MAX_CONCURRENCY` — default 32: DynamoDB requests one invocation has in flight
    /// at most while handling a delivery or a batch.
    pub max_concurrency: usize,
    /// `QUEUE_SEND_CONCURRENCY` — default 16: `SendMessageBatch` calls in flight at most.
    pub queue_send_concurrency: usize,
    /// `CAMPAIGN_PAGE_CONCURRENCY` — default 16: a campaign page's per-recipient writes
    /// (recipient record, tracked links, send mark) in flight at most.
    pub campaign_page_concurrency: usize,
    /// `INIT_WARM_UP` — default true: open the DynamoDB connection during init rather than on
    /// the first event (`make bench-functions` turns it off to measure the difference).
    pub init_warm_up: bool,
}

impl LoopSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            dedupe_ttl: Duration::from_secs(env_parse("INBOUND_DEDUPE_TTL_DAYS", 7u64)? * 86_400),
            history_retention: Duration::from_secs(env_parse("HISTORY_RETENTION_DAYS", 90u64)?.max(1) * 86_400),
            claim_lease: Duration::from_secs(env_parse("INBOUND_CLAIM_LEASE_SECONDS", 30u64)?),
            send_lease: Duration::from_secs(env_parse("SEND_LEASE_SECONDS", 60u64)?),
            service_window: Duration::from_secs(env_parse("SERVICE_WINDOW_HOURS", 24u64)? * 3600),
            retry_base_seconds: env_parse("SEND_RETRY_BASE_SECONDS", 4u64)?,
            pause_seconds: env_parse("SEND_PAUSE_SECONDS", 300u64)?,
            inline_max_events: env_parse("INBOUND_INLINE_MAX_EVENTS", 50usize)?,
            max_concurrency: env_parse("INBOUND_MAX_CONCURRENCY", 32usize)?.max(2),
            queue_send_concurrency: env_parse("QUEUE_SEND_CONCURRENCY", 16usize)?.max(1),
            campaign_page_concurrency: env_parse("CAMPAIGN_PAGE_CONCURRENCY", 16usize)?.max(1),
            init_warm_up: env_bool("INIT_WARM_UP", true)?,
        })
    }
}

/// A business account Parley answers for, with its settings.
#[derive(Debug, Clone)]
pub struct Account {
    pub channel: Channel,
    pub id: AccountId,
    /// Default locale for new contacts of this account (`de` or `en`).
    pub locale: String,
    /// Template sent instead of a free-form reply when the service window is closed.
    pub fallback_template: Option<String>,
    /// The flow set this account answers from (`<set>.<locale>.toml`).
    pub flows: String,
}

/// The accounts of this deployment, keyed by the id Meta routes on.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    by_id: HashMap<(Channel, String), Account>,
}

impl Accounts {
    pub fn new(list: Vec<Account>) -> Self {
        Self { by_id: list.into_iter().map(|a| ((a.channel, a.id.as_str().to_string()), a)).collect() }
    }
    pub fn get(&self, channel: Channel, id: &str) -> Option<&Account> {
        self.by_id.get(&(channel, id.to_string()))
    }
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_id.values()
    }
    /// Accounts from the environment: comma-separated ids in `WHATSAPP_PHONE_NUMBER_ID`,
    /// `MESSENGER_PAGE_ID`, `INSTAGRAM_ACCOUNT_ID`; per-id settings as
    /// `ACCOUNT_<ID>_LOCALE` / `ACCOUNT_<ID>_FALLBACK_TEMPLATE` / `ACCOUNT_<ID>_FLOWS`, else
    /// `DEFAULT_LOCALE` (default `de`), `FALLBACK_TEMPLATE` (default `service_followup`) and the
    /// flow set `default`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let default_locale = env_or("DEFAULT_LOCALE", "de");
        let default_template = env_opt("FALLBACK_TEMPLATE").or_else(|| Some("service_followup".to_string()));
        let mut list = Vec::new();
        for (var, channel) in [
            ("WHATSAPP_PHONE_NUMBER_ID", Channel::WhatsApp),
            ("MESSENGER_PAGE_ID", Channel::Messenger),
            ("INSTAGRAM_ACCOUNT_ID", Channel::Instagram),
        ] {
            let Some(raw) = env_opt(var) else { continue };
            for id in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let account_id =
                    AccountId::parse(id).map_err(|e| ConfigError::Accounts(format!("{var}: '{id}': {e}")))?;
                let locale = env_opt(&format!("ACCOUNT_{id}_LOCALE")).unwrap_or_else(|| default_locale.clone());
                if !matches!(locale.as_str(), "de" | "en") {
                    return Err(ConfigError::Accounts(format!("locale '{locale}' for {id}: expected de or en")));
                }
                let fallback_template =
                    env_opt(&format!("ACCOUNT_{id}_FALLBACK_TEMPLATE")).or_else(|| default_template.clone());
                let flows = env_opt(&format!("ACCOUNT_{id}_FLOWS")).unwrap_or_else(|| "default".to_string());
                list.push(Account { channel, id: account_id, locale, fallback_template, flows });
            }
        }
        Ok(Self::new(list))
    }
}

/// Consent rules and privacy settings.
#[derive(Debug, Clone)]
pub struct ConsentSettings {
    /// `CONSENT_CONFIRM_HOURS` — default 48: how long a pending opt-in can be confirmed.
    pub confirm_validity_hours: i64,
    /// `CONSENT_RESEND_HOURS` — default 24: no second confirmation message within this time.
    pub resend_after_hours: i64,
    /// `CONSENT_POLICY_VERSION` — default `v1`: the consent text version recorded with each change.
    pub policy_version: String,
    /// `DEFAULT_PHONE_REGION` — default `DE`: how national numbers in forms and shops are read.
    pub default_phone_region: String,
    /// `PARLEY_PSEUDONYM_KEY` — keys the hashes that replace addresses in erased consent proof.
    pub pseudonym_key: Secret,
}

impl ConsentSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            confirm_validity_hours: env_parse("CONSENT_CONFIRM_HOURS", 48i64)?,
            resend_after_hours: env_parse("CONSENT_RESEND_HOURS", 24i64)?,
            policy_version: env_or("CONSENT_POLICY_VERSION", "v1"),
            default_phone_region: env_or("DEFAULT_PHONE_REGION", "DE"),
            pseudonym_key: Secret::from(env_or("PARLEY_PSEUDONYM_KEY", "")),
        })
    }

    pub fn policy(&self) -> crate::domain::consent::ConsentPolicy {
        crate::domain::consent::ConsentPolicy {
            confirm_validity_secs: self.confirm_validity_hours * 3600,
            resend_after_secs: self.resend_after_hours * 3600,
            policy_version: self.policy_version.clone(),
        }
    }

    /// Erase needs the key: without it the kept proof could not be tied back to anyone.
    pub fn require_pseudonym_key(&self) -> Result<&str, ConfigError> {
        match self.pseudonym_key.expose_secret() {
            "" => Err(ConfigError::Missing("PARLEY_PSEUDONYM_KEY")),
            k => Ok(k),
        }
    }
}

/// Tracked links: the key their tokens are derived under and the public URL the short links
/// point to.
#[derive(Debug, Clone, Default)]
pub struct LinkSettings {
    /// `PARLEY_LINK_KEY` — keys the HMAC that derives link tokens (README "Tracked links"). Keep
    /// it: a new key mints new tokens for links already sent (the old ones keep working).
    pub key: Option<Secret>,
    /// `PARLEY_PUBLIC_BASE_URL` — the API's public URL, the short links' prefix
    /// (`{base}/r/{token}`); template.yaml sets the HTTP API's URL, `make dev` its own address.
    pub public_base_url: Option<String>,
}

impl LinkSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_base_url = env_opt("PARLEY_PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_base_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    name: "PARLEY_PUBLIC_BASE_URL",
                    reason: "must be an http(s) URL".into(),
                });
            }
        }
        Ok(Self { key: env_opt("PARLEY_LINK_KEY").map(Secret::from), public_base_url })
    }

    /// Minting links needs both; a function that mints them checks this at init, so a missing
    /// setting fails the deployment instead of the first campaign.
    pub fn require(&self) -> Result<(&str, &str), ConfigError> {
        let key = self.key.as_ref().map(|s| s.expose_secret()).ok_or(ConfigError::Missing("PARLEY_LINK_KEY"))?;
        let base = self.public_base_url.as_deref().ok_or(ConfigError::Missing("PARLEY_PUBLIC_BASE_URL"))?;
        Ok((key, base))
    }
}

/// Who may sign bearer tokens for the routes that verify them themselves (those that accept
/// `x-api-key` or an admin token): the user pool's issuer URL and the app client ids its tokens
/// must be for — what template.yaml gives the HTTP API's JWT authorizer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentAuthSettings {
    /// `AGENT_AUTH_ISSUER` — e.g. `https://cognito-idp.{region}.amazonaws.com/{pool id}`; unset:
    /// no bearer tokens there, `x-api-key` only.
    pub issuer: Option<String>,
    /// `AGENT_AUTH_AUDIENCE` — comma-separated client ids (`aud`, or `client_id` without `aud`);
    /// required with an issuer.
    pub audience: Vec<String>,
}

impl AgentAuthSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let issuer = env_opt("AGENT_AUTH_ISSUER");
        let audience: Vec<String> = env_opt("AGENT_AUTH_AUDIENCE")
            .map(|v| v.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()).collect())
            .unwrap_or_default();
        if let Some(url) = &issuer {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    name: "AGENT_AUTH_ISSUER",
                    reason: "must be an http(s) URL".into(),
                });
            }
            if audience.is_empty() {
                return Err(ConfigError::Missing("AGENT_AUTH_AUDIENCE"));
            }
        }
        Ok(Self { issuer, audience })
    }
}

/// Shop platforms: webhook secrets, the shop they must come from, and the REST credentials the
/// reconciler polls with. A platform without its webhook secret is switched off (its webhook
/// answers 404).
#[derive(Debug, Clone)]
pub struct ShopSettings {
    /// `SHOPIFY_WEBHOOK_SECRET` (+ `SHOPIFY_WEBHOOK_SECRET_PREVIOUS` during a rotation): the app's client secret.
    pub shopify_secret: Secret,
    pub shopify_secret_previous: Option<Secret>,
    /// `SHOPIFY_SHOP_DOMAIN` — the `myshopify.com` domain deliveries must come from.
    pub shopify_domain: String,
    /// `SHOPIFY_ACCESS_TOKEN` — Admin API token for the reconciler (unset: no polling).
    pub shopify_access_token: Option<Secret>,
    /// `SHOPIFY_API_VERSION` — default `2026-07`.
    pub shopify_api_version: String,
    /// `SHOPIFY_ADMIN_BASE` — default `https://{SHOPIFY_SHOP_DOMAIN}` (locally the sandbox).
    pub shopify_admin_base: String,
    /// `WOOCOMMERCE_WEBHOOK_SECRET` (+ `_PREVIOUS`): the webhook's secret.
    pub woo_secret: Secret,
    pub woo_secret_previous: Option<Secret>,
    /// `WOOCOMMERCE_STORE_URL` — the shop deliveries must come from (`X-WC-Webhook-Source`).
    pub woo_store_url: String,
    /// `WOOCOMMERCE_CONSUMER_KEY` / `WOOCOMMERCE_CONSUMER_SECRET` — REST credentials for the reconciler.
    pub woo_consumer_key: Option<Secret>,
    pub woo_consumer_secret: Option<Secret>,
    /// `SHOP_DELIVERY_DEDUPE_HOURS` — default 72 (Shopify retries for 4 h; a day late happens).
    pub delivery_dedupe_hours: u64,
    /// `ORDER_CONFIRM_ON` — `placed` (default) or `paid`.
    pub confirm_on_paid: bool,
    /// `RECONCILE_LOOKBACK_MINUTES` — default 1440 on the first run; later runs overlap 10 minutes.
    pub reconcile_lookback_minutes: i64,
    /// `SHOP_CURRENCY` — default `EUR`: product webhooks carry prices without a currency.
    pub shop_currency: crate::domain::Currency,
}

impl ShopSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let shopify_domain = env_or("SHOPIFY_SHOP_DOMAIN", "").to_ascii_lowercase();
        let confirm_on = env_or("ORDER_CONFIRM_ON", "placed").to_ascii_lowercase();
        if !matches!(confirm_on.as_str(), "placed" | "paid") {
            return Err(ConfigError::Invalid {
                name: "ORDER_CONFIRM_ON",
                reason: format!("'{confirm_on}': expected placed or paid"),
            });
        }
        Ok(Self {
            shopify_secret: Secret::from(env_or("SHOPIFY_WEBHOOK_SECRET", "")),
            shopify_secret_previous: env_opt("SHOPIFY_WEBHOOK_SECRET_PREVIOUS").map(Secret::from),
            shopify_admin_base: env_opt("SHOPIFY_ADMIN_BASE")
                .unwrap_or_else(|| format!("https://{shopify_domain}"))
                .trim_end_matches('/')
                .to_string(),
            shopify_domain,
            shopify_access_token: env_opt("SHOPIFY_ACCESS_TOKEN").map(Secret::from),
            shopify_api_version: env_or("SHOPIFY_API_VERSION", "2026-07"),
            woo_secret: Secret::from(env_or("WOOCOMMERCE_WEBHOOK_SECRET", "")),
            woo_secret_previous: env_opt("WOOCOMMERCE_WEBHOOK_SECRET_PREVIOUS").map(Secret::from),
            woo_store_url: env_or("WOOCOMMERCE_STORE_URL", "").trim_end_matches('/').to_string(),
            woo_consumer_key: env_opt("WOOCOMMERCE_CONSUMER_KEY").map(Secret::from),
            woo_consumer_secret: env_opt("WOOCOMMERCE_CONSUMER_SECRET").map(Secret::from),
            delivery_dedupe_hours: env_parse("SHOP_DELIVERY_DEDUPE_HOURS", 72u64)?.max(24),
            confirm_on_paid: confirm_on == "paid",
            reconcile_lookback_minutes: env_parse("RECONCILE_LOOKBACK_MINUTES", 1440i64)?,
            shop_currency: crate::domain::Currency::parse(&env_or("SHOP_CURRENCY", "EUR"))
                .map_err(|e| ConfigError::Invalid { name: "SHOP_CURRENCY", reason: e.to_string() })?,
        })
    }

    /// The WooCommerce store's host: how orders of that shop are keyed.
    pub fn woo_host(&self) -> String {
        let url = self.woo_store_url.as_str();
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        rest.split('/').next().unwrap_or_default().to_ascii_lowercase()
    }
}

/// Carts in chat: limits, the shop the checkout link points to, reminders and attribution.
#[derive(Debug, Clone)]
pub struct CartSettings {
    /// `CART_SHOP` — `shopify` or `woocommerce`; default: Shopify when its domain is set.
    pub shop: Option<crate::shops::Platform>,
    /// `SHOPIFY_STOREFRONT_URL` — default `https://{SHOPIFY_SHOP_DOMAIN}`: where cart permalinks go.
    pub shopify_storefront_url: String,
    /// `WOOCOMMERCE_CHECKOUT_LINK` — `whole_cart` (default, `/checkout-link/`) or `single_product`.
    pub woo_single_product: bool,
    /// `CHECKOUT_DISCOUNT_CODE` — added to every checkout link when set.
    pub discount: Option<String>,
    /// `CART_MAX_QUANTITY` — default 10 per line; `CART_MAX_LINES` — default 20.
    pub max_quantity: u32,
    pub max_lines: usize,
    /// `CART_REMINDER_DELAY_MINUTES` — default 120: idle time before the one reminder.
    pub reminder_delay_minutes: i64,
    /// `CART_ATTRIBUTION_DAYS` — default 7: an order of the same contact within this time after a
    /// checkout link counts as converted even without the cart id.
    pub attribution_days: i64,
}

impl CartSettings {
    pub fn from_env(shops: &ShopSettings) -> Result<Self, ConfigError> {
        let shop = match env_opt("CART_SHOP").map(|s| s.to_ascii_lowercase()) {
            Some(s) if s == "shopify" => Some(crate::shops::Platform::Shopify),
            Some(s) if s == "woocommerce" => Some(crate::shops::Platform::WooCommerce),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "CART_SHOP",
                    reason: format!("'{other}': expected shopify or woocommerce"),
                })
            }
            None if !shops.shopify_domain.is_empty() => Some(crate::shops::Platform::Shopify),
            None if !shops.woo_store_url.is_empty() => Some(crate::shops::Platform::WooCommerce),
            None => None,
        };
        let link = env_or("WOOCOMMERCE_CHECKOUT_LINK", "whole_cart");
        if !matches!(link.as_str(), "whole_cart" | "single_product") {
            return Err(ConfigError::Invalid {
                name: "WOOCOMMERCE_CHECKOUT_LINK",
                reason: format!("'{link}': expected whole_cart or single_product"),
            });
        }
        Ok(Self {
            shop,
            shopify_storefront_url: env_opt("SHOPIFY_STOREFRONT_URL")
                .unwrap_or_else(|| format!("https://{}", shops.shopify_domain))
                .trim_end_matches('/')
                .to_string(),
            woo_single_product: link == "single_product",
            discount: env_opt("CHECKOUT_DISCOUNT_CODE"),
            max_quantity: env_parse("CART_MAX_QUANTITY", 10u32)?,
            max_lines: env_parse("CART_MAX_LINES", 20usize)?,
            reminder_delay_minutes: env_parse("CART_REMINDER_DELAY_MINUTES", 120i64)?,
            attribution_days: env_parse("CART_ATTRIBUTION_DAYS", 7i64)?,
        })
    }
}

/// `CAMPAIGN_DEFAULT_TIMEZONE` — where campaign recipients whose phone country is unknown are
/// (their quiet hours); default `Europe/Berlin`.
pub fn campaign_timezone() -> Result<jiff::tz::TimeZone, ConfigError> {
    let name = env_opt("CAMPAIGN_DEFAULT_TIMEZONE").unwrap_or_else(|| "Europe/Berlin".into());
    jiff::tz::TimeZone::get(&name).map_err(|_| ConfigError::Invalid {
        name: "CAMPAIGN_DEFAULT_TIMEZONE",
        reason: "is not an IANA time zone such as Europe/Berlin".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<HashMap<String, String>, String> {
        parse_settings(json, |name| name == "GRAPH_API_VERSION")
    }

    #[test]
    fn settings_json_gives_tunables_and_per_account_settings() {
        let m = parse(
            r#"{"CART_MAX_LINES": 5, "WHATSAPP_MARKETING_MESSAGES_API": true,
            "CAMPAIGN_DEFAULT_TIMEZONE": " Europe/Vienna ", "ACCOUNT_100000000000001_FLOWS": "spring"}"#,
        )
        .unwrap();
        assert_eq!(m["CART_MAX_LINES"], "5");
        assert_eq!(m["WHATSAPP_MARKETING_MESSAGES_API"], "true");
        assert_eq!(m["CAMPAIGN_DEFAULT_TIMEZONE"], "Europe/Vienna");
        assert_eq!(m["ACCOUNT_100000000000001_FLOWS"], "spring");
        assert!(parse("{}").unwrap().is_empty());
    }

    #[test]
    fn settings_json_refuses_what_it_must_not_carry_and_never_shows_a_value() {
        for (json, says) in [
            (r#"{"META_APP_SECRET": "s3cr3t-value"}"#, "META_APP_SECRET is a secret"),
            (r#"{"PARLEY_TABLE": "other-table"}"#, "PARLEY_TABLE is set by the template"),
            (r#"{"CART_MAX_LINE": "5"}"#, "unknown setting CART_MAX_LINE"),
            (r#"{"ACCOUNT__FLOWS": "x"}"#, "unknown setting ACCOUNT__FLOWS"),
            (r#"{"GRAPH_API_VERSION": "v99.0"}"#, "GRAPH_API_VERSION is set twice"),
            (r#"{"CART_MAX_LINES": [5]}"#, "CART_MAX_LINES must be a string"),
            (r#"{"CART_MAX_LINES": null}"#, "CART_MAX_LINES must be a string"),
            (r#"{"+4915123456789 anna@example.com": "1"}"#, "a key that is not a setting name"),
            (r#"["CART_MAX_LINES"]"#, "expected an object"),
            (r#"{"CART_MAX_LINES": "5""#, "truncated"),
            (r#"{CART_MAX_LINES: 5}"#, "syntax error"),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
            for value in ["s3cr3t-value", "other-table", "v99.0", "+4915123456789"] {
                assert!(!err.contains(value), "{json}: {err}");
            }
        }
    }

    /// The variables README "Configuration" documents, read from its table.
    fn documented_settings() -> Vec<String> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let section = readme.split("\n## Configuration").nth(1).unwrap().split("\n## ").next().unwrap();
        let mut names = Vec::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cell = row.split('|').nth(1).unwrap();
            let mut last: Option<String> = None;
            for token in cell.split('`').skip(1).step_by(2) {
                let name = match (token.strip_prefix('_'), &last) {
                    // `X` (+`_PREVIOUS`): a second variable named X_PREVIOUS.
                    (Some(_), Some(prev)) if cell.contains("(+`") => format!("{prev}{token}"),
                    // `X_KEY` / `_SECRET`: X_SECRET.
                    (Some(_), Some(prev)) => format!("{}{token}", &prev[..prev.rfind('_').unwrap()]),
                    _ => token.to_string(),
                };
                if name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                    last = Some(name.clone());
                    names.push(name);
                }
            }
        }
        names
    }

    #[test]
    fn every_documented_setting_is_in_exactly_one_list_and_every_listed_one_is_documented() {
        let documented = documented_settings();
        assert!(documented.len() > 50, "{documented:?}");
        for name in &documented {
            let n = name.as_str();
            assert!(
                TUNABLE_SETTINGS.contains(&n) || SECRET_SETTINGS.contains(&n) || WIRED_SETTINGS.contains(&n),
                "README documents {n}, which no settings list names (config.rs)"
            );
        }
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for name in TUNABLE_SETTINGS.iter().chain(SECRET_SETTINGS).chain(WIRED_SETTINGS) {
            assert!(
                documented.iter().any(|d| d == name) || readme.contains(&format!("`{name}`")),
                "{name} is listed but README does not document it"
            );
        }
    }

    #[test]
    fn the_three_lists_are_disjoint() {
        for name in TUNABLE_SETTINGS {
            assert!(!SECRET_SETTINGS.contains(name) && !WIRED_SETTINGS.contains(name), "{name}");
        }
        for name in SECRET_SETTINGS {
            assert!(!WIRED_SETTINGS.contains(name), "{name}");
        }
    }

    #[test]
    fn booleans_are_read_in_the_usual_spellings_and_nothing_else() {
        for v in ["true", "TRUE", "1", "yes", "On"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["false", "False", "0", "no", "OFF"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in ["", "enabled", "2", "truee"] {
            assert_eq!(parse_bool(v), None, "{v}");
        }
    }
}
