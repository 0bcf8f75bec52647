//! The channel sandbox (only in `make dev` and tests, never deployed).
//!
//! It plays both sides of Meta for a local run:
//! - the Graph API send endpoints the sender posts to (`GRAPH_API_BASE` points here), the
//!   Marketing Messages API's `/marketing_messages` too: same request and response shapes,
//!   Graph-style validation errors (a template checked against `config/templates.toml` like
//!   Meta checks it against the approved one), injectable faults, and a log of every accepted
//!   message with the endpoint it came through (`GET /messages?to=`);
//! - the customer: `POST /chat` turns a chat line into a realistic, signed webhook delivery to
//!   the real webhook handler, `POST /status` does the same for WhatsApp status updates.
//!
//! Routes carry no `/sandbox` prefix; the local runtime nests [`Sandbox::router`] under it.
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use parley::channels::meta::outbound::{error_chain, Endpoint};
use parley::channels::signature::{self, Encoding};
use parley::config::ExposeSecret;
use parley::config::Secret;
use parley::domain::templates::{TemplateCategory, Templates};
use parley::domain::{Address, Channel};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const PAGE: &str = include_str!("../sandbox/index.html");
const SCRIPT: &str = include_str!("../sandbox/sandbox.js");
const STYLE: &str = include_str!("../sandbox/sandbox.css");
/// The page loads only its own script, style and API; texts from customers are rendered as text
/// nodes, and the policy stops anything injected anyway (no inline script or style).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Cosmetic ids in generated webhooks (Parley routes on `phone_number_id`, not these).
const DISPLAY_PHONE_NUMBER: &str = "15550001234";
const WABA_ID: &str = "900000000000001";
/// Delay before each automatic status webhook, so the sender has stored the provider id first.
const STATUS_DELAY: Duration = Duration::from_millis(150);

// Graph's limits (meta-channels.md §5).
const WA_TEXT_MAX: usize = 4096;
const WA_BUTTON_BODY_MAX: usize = 1024;
const WA_LIST_BODY_MAX: usize = 4096;
const WA_MAX_BUTTONS: usize = 3;
const WA_BUTTON_TITLE_MAX: usize = 20;
const WA_BUTTON_ID_MAX: usize = 256;
const WA_LIST_BUTTON_MAX: usize = 20;
const WA_LIST_MAX_SECTIONS: usize = 10;
const WA_LIST_MAX_ROWS: usize = 10;
const WA_ROW_TITLE_MAX: usize = 24;
const WA_ROW_ID_MAX: usize = 200;
const WA_ROW_DESCRIPTION_MAX: usize = 72;
const WA_CALLBACK_DATA_MAX: usize = 512;
const FB_TEXT_MAX: usize = 2000;
const FB_MAX_QUICK_REPLIES: usize = 13;
const FB_QUICK_REPLY_TITLE_MAX: usize = 20;
const FB_PAYLOAD_MAX: usize = 1000;

pub struct SandboxConfig {
    /// Signs the webhook deliveries the sandbox posts (`X-Hub-Signature-256`).
    pub app_secret: Secret,
    /// Where deliveries go, e.g. `http://127.0.0.1:3000/webhooks/meta`.
    pub webhook_url: String,
    pub whatsapp_phone_number_id: String,
    pub messenger_page_id: String,
    pub instagram_account_id: String,
    /// Renders template sends into the text a customer would see.
    pub templates: Templates,
    /// Post `sent` and `delivered` statuses after every accepted WhatsApp send.
    pub status_webhooks: bool,
}

/// How a tap on one of a message's buttons comes back in a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    None,
    /// WhatsApp `interactive.button_reply`.
    ButtonReply,
    /// WhatsApp `interactive.list_reply`.
    ListReply,
    /// WhatsApp template quick reply: `type: button`.
    TemplateButton,
    /// Messenger/Instagram `message.quick_reply`.
    QuickReply,
}

/// One message the system sent, as `GET /messages` lists it.
#[derive(Debug, Clone, Serialize)]
struct SentMessage {
    id: String,
    channel: Channel,
    to: String,
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    template: Option<String>,
    buttons: Vec<String>,
    button_ids: Vec<String>,
    /// Templates: the parameters as sent, positional (body, then URL buttons by index).
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Vec<String>>,
    /// Templates: each URL button as the customer sees it (label and resolved URL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    url_buttons: Vec<UrlButtonShown>,
    /// `messages` or `marketing_messages`: which send endpoint it came through.
    endpoint: &'static str,
    sent_at: String,
    #[serde(skip)]
    account: String,
    /// The template's category, when the catalog knows it (status webhooks' pricing).
    #[serde(skip)]
    category: Option<TemplateCategory>,
    #[serde(skip)]
    reply_kind: ReplyKind,
    #[serde(skip)]
    reference: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct UrlButtonShown {
    text: String,
    url: String,
}

/// One customer message the sandbox delivered to the webhook (for the web page).
#[derive(Debug, Clone, Serialize)]
struct ChatLine {
    id: String,
    channel: Channel,
    from: String,
    text: String,
    payload: Option<String>,
    /// The webhook's latest answer (retries update it).
    webhook_status: u16,
    /// The webhook failed in a way a retry can change and the sandbox's retries are not over.
    retrying: bool,
    sent_at: String,
}

#[derive(Debug, Clone, Serialize)]
struct Fault {
    status: u16,
    code: i64,
    remaining: u32,
    /// Only sends to this address fail (a leading `+` ignored); `None`: every send.
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

#[derive(Default)]
struct Log {
    sent: Vec<SentMessage>,
    chat: Vec<ChatLine>,
    fault: Option<Fault>,
}

struct Inner {
    cfg: SandboxConfig,
    http: reqwest::Client,
    log: Mutex<Log>,
}

/// The sandbox's shared state; clones share it.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { inner: Arc::new(Inner { cfg, http, log: Mutex::new(Log::default()) }) }
    }

    /// The sandbox routes, without the `/sandbox` prefix.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/sandbox.js", get(script))
            .route("/sandbox.css", get(style))
            // `me` (Messenger) matches `{id}` too.
            .route("/graph/{version}/{id}/messages", post(graph_send))
            .route("/graph/{version}/{id}/marketing_messages", post(graph_send_marketing))
            .route("/messages", get(list_messages))
            .route("/faults", get(get_fault).post(set_fault).delete(clear_fault))
            .route("/chat", get(list_chat).post(chat))
            .route("/status", post(post_status))
            .with_state(self.clone())
    }

    /// Every message sent to `address` (a leading `+` is ignored), oldest first.
    pub fn messages_to(&self, address: &str) -> Vec<Value> {
        let address = normalize_address(address);
        self.log().sent.iter().filter(|m| m.to == address).map(to_json).collect()
    }

    /// The sandbox's own record of one contact: what was sent to them (each with the reference
    /// the sender attached, our outbound id) and the chat lines delivered for them, oldest first.
    pub(crate) fn record_of(&self, channel: Channel, address: &str) -> (Vec<Value>, Vec<Value>) {
        let address = normalize_address(address);
        let log = self.log();
        let sent = log
            .sent
            .iter()
            .filter(|m| m.channel == channel && m.to == address)
            .map(|m| {
                let mut v = to_json(m);
                v["reference"] = json!(m.reference);
                v
            })
            .collect();
        let chat = log
            .chat
            .iter()
            .filter(|l| l.channel == channel && l.from == address)
            .map(|l| serde_json::to_value(l).unwrap_or(Value::Null))
            .collect();
        (sent, chat)
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic elsewhere must not take the sandbox down with it.
        self.inner.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cfg(&self) -> &SandboxConfig {
        &self.inner.cfg
    }

    /// Consumes one pending fault that applies to a send to `to`, if any.
    fn take_fault(&self, to: Option<&str>) -> Option<Fault> {
        let mut log = self.log();
        let fault = log.fault.as_mut()?;
        if fault.to.as_deref().is_some_and(|only| Some(only) != to) {
            return None;
        }
        fault.remaining = fault.remaining.saturating_sub(1);
        let taken = fault.clone();
        if taken.remaining == 0 {
            log.fault = None;
        }
        Some(taken)
    }

    fn channel_of(&self, body: &Value, id: &str) -> Channel {
        if body.get("messaging_product").and_then(Value::as_str) == Some("whatsapp") {
            Channel::WhatsApp
        } else if id == self.cfg().instagram_account_id {
            Channel::Instagram
        } else {
            Channel::Messenger
        }
    }

    /// Signs and posts a webhook delivery; returns the handler's HTTP status.
    async fn deliver(&self, payload: &Value) -> Result<u16, String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let sig = signature::sign(Encoding::PrefixedHex, self.cfg().app_secret.expose_secret(), &body);
        let resp = self
            .inner
            .http
            .post(&self.cfg().webhook_url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot reach the webhook at {}: {}", self.cfg().webhook_url, error_chain(&e)))?;
        Ok(resp.status().as_u16())
    }

    /// Meta's retries (on [`REDELIVERY`]'s schedule) of a delivery whose first answer, `first`,
    /// was a failure a retry can change, in the background; `answered` sees each later answer
    /// and whether more retries follow.
    fn redeliver_later(&self, payload: Value, first: u16, mut answered: impl FnMut(u16, bool) + Send + 'static) {
        let sb = self.clone();
        tokio::spawn(async move {
            let mut last = first;
            for delay in REDELIVERY {
                tokio::time::sleep(delay).await;
                match sb.deliver(&payload).await {
                    Ok(status) if !worth_retrying(status) => return answered(status, false),
                    Ok(status) => {
                        last = status;
                        answered(status, true);
                    }
                    Err(e) => tracing::warn!(error = %e, "sandbox: redelivery failed"),
                }
            }
            tracing::warn!("sandbox: the webhook did not take a delivery after its retries");
            answered(last, false);
        });
    }

    /// Posts a WhatsApp status webhook for a message the sandbox accepted (retried like a
    /// message); returns the first answer.
    async fn deliver_status(&self, msg: &SentMessage, status: &str, code: Option<i64>) -> Result<u16, String> {
        let payload = self.status_payload(msg, status, code);
        let answer = self.deliver(&payload).await?;
        if worth_retrying(answer) {
            self.redeliver_later(payload, answer, |_, _| {});
        }
        Ok(answer)
    }

    fn status_payload(&self, msg: &SentMessage, status: &str, code: Option<i64>) -> Value {
        let mut st = json!({
            "id": msg.id,
            "status": status,
            "timestamp": now_secs().to_string(),
            "recipient_id": msg.to,
        });
        if let Some(r) = &msg.reference {
            st["biz_opaque_callback_data"] = json!(r);
        }
        if status == "failed" {
            let code = code.unwrap_or(131000);
            let (title, details) = describe_code(code);
            st["errors"] = json!([{
                "code": code,
                "title": title,
                "message": title,
                "error_data": { "details": details },
                "href": "https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes",
            }]);
        } else {
            let (category, kind, billable) = if msg.template.is_some() {
                let category = msg.category.map_or("utility", TemplateCategory::as_str);
                (category, "regular", true)
            } else {
                ("service", "free_customer_service", false)
            };
            st["pricing"] = json!({ "billable": billable, "pricing_model": "PMP", "category": category, "type": kind });
        }
        whatsapp_envelope(&msg.account, json!({ "statuses": [st] }))
    }

    /// Records a later answer of the webhook to the customer's line `id`.
    fn chat_answered(&self, id: &str, status: u16, retrying: bool) {
        if let Some(line) = self.log().chat.iter_mut().find(|l| l.id == id) {
            line.webhook_status = status;
            line.retrying = retrying;
        }
    }
}

/// Meta retries a delivery its webhook did not take "immediately, then a few more times with
/// decreasing frequency over the next 7 days" (shared/reference/meta-channels.md). The sandbox
/// keeps that shape on a shorter clock for the answers a retry can change (5xx, 429), so a
/// webhook that failed for a moment — a store timeout on a loaded machine — still gets the
/// message, as in production. A 4xx (a wrong secret) would fail the same way again.
const REDELIVERY: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

fn worth_retrying(status: u16) -> bool {
    status == 429 || status >= 500
}

fn to_json(m: &SentMessage) -> Value {
    serde_json::to_value(m).unwrap_or(Value::Null)
}

fn normalize_address(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('+').unwrap_or(s).to_string()
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let r = uuid::Uuid::new_v4().into_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    out
}

/// A WhatsApp message id in Meta's shape (`wamid.` + base64).
fn new_wamid() -> String {
    format!("wamid.HBgL{}", base64::engine::general_purpose::STANDARD.encode(random_bytes::<30>()))
}

/// A Messenger/Instagram message id in Meta's shape (`m_` + URL-safe base64).
fn new_mid() -> String {
    format!("m_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<36>()))
}

fn new_fbtrace_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<9>())
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A Graph-style error answer.
fn graph_error(status: StatusCode, code: i64, message: &str, details: Option<&str>) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": new_fbtrace_id(),
    });
    if let Some(d) = details {
        error["error_data"] = json!({ "details": d });
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// Graph's message and details for the codes faults and failed statuses use.
fn describe_code(code: i64) -> (String, String) {
    const KNOWN: &[(i64, &str, &str)] = &[
        (0, "(#0) AuthException", "We were unable to authenticate the app user."),
        (1, "An unknown error has occurred.", "Invalid request or possible server error."),
        (
            2,
            "An unexpected error has occurred. Please retry your request later.",
            "Temporary due to downtime or due to being overloaded.",
        ),
        (4, "(#4) Application request limit reached", "The app has reached its API call rate limit."),
        (
            10,
            "(#10) Application does not have permission for this action",
            "Permission is either not granted or has been removed.",
        ),
        (100, "(#100) Invalid parameter", "The request included one or more unsupported or misspelled parameters."),
        (190, "Error validating access token: Session has expired.", "Your access token has expired."),
        (130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
        (131000, "(#131000) Something went wrong", "Message failed to send due to an unknown error."),
        (131026, "(#131026) Message undeliverable", "Unable to deliver message."),
        (
            131047,
            "(#131047) Re-engagement message",
            "More than 24 hours have passed since the recipient last replied to the sender number.",
        ),
        (
            131048,
            "(#131048) Spam rate limit hit",
            "There are restrictions on how many messages can be sent from this phone number.",
        ),
        (
            131049,
            "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        (
            131050,
            "(#131050) Unable to deliver the message.",
            "The recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        ),
        (
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient in a short period of time.",
        ),
    ];
    match KNOWN.iter().find(|(c, _, _)| *c == code) {
        Some((_, message, details)) => (message.to_string(), details.to_string()),
        None => (format!("(#{code}) Sandbox fault"), "Injected by the local channel sandbox.".to_string()),
    }
}

/// The default Graph code for a fault's HTTP status.
fn default_fault_code(status: u16) -> i64 {
    match status {
        429 => 130429,
        400 => 100,
        401 => 190,
        403 => 10,
        500 => 131000,
        503 => 2,
        _ => 1,
    }
}

// ---------------------------------------------------------------------------------------------
// Graph send endpoint

/// A send Graph would refuse with code `code`.
#[derive(Debug)]
struct Reject {
    code: i64,
    message: String,
    details: Option<String>,
}

fn reject<T>(message: impl Into<String>) -> Result<T, Reject> {
    Err(Reject { code: 100, message: message.into(), details: None })
}

/// An accepted send.
struct Accepted {
    /// The recipient exactly as sent (for WhatsApp's `contacts[].input`).
    to_raw: String,
    /// Our outbound id the sender attached (`biz_opaque_callback_data` / `metadata`).
    reference: Option<String>,
    shown: Shown,
}

impl Accepted {
    fn new(to_raw: &str, reference: Option<String>, shown: Shown) -> Self {
        Self { to_raw: to_raw.to_string(), reference, shown }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A required, non-empty string of at most `max` characters.
fn required<'a>(v: &'a Value, pointer: &str, name: &str, max: usize) -> Result<&'a str, Reject> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => reject(format!("(#100) The parameter {name} is required.")),
        Some(Value::String(s)) if s.trim().is_empty() => reject(format!("(#100) Param {name} must be non-empty.")),
        Some(Value::String(s)) => {
            let len = s.chars().count();
            if len > max {
                reject(format!("(#100) Param {name} must be at most {max} characters long (got {len})."))
            } else {
                Ok(s)
            }
        }
        Some(_) => reject(format!("(#100) Param {name} must be a string.")),
    }
}

fn optional_max(v: &Value, pointer: &str, name: &str, max: usize) -> Result<Option<String>, Reject> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required(v, pointer, name, max).map(|s| Some(s.to_string())),
    }
}

fn array<'a>(v: &'a Value, pointer: &str, name: &str) -> Result<&'a Vec<Value>, Reject> {
    match v.pointer(pointer) {
        Some(Value::Array(a)) => Ok(a),
        None | Some(Value::Null) => reject(format!("(#100) The parameter {name} is required.")),
        Some(_) => reject(format!("(#100) Param {name} must be an array.")),
    }
}

/// What the customer sees of a WhatsApp message.
struct Shown {
    kind: &'static str,
    text: String,
    template: Option<String>,
    /// (title, id or payload) of each button or list row.
    buttons: Vec<(String, String)>,
    reply_kind: ReplyKind,
    /// Templates: the parameters as sent (body, then URL buttons).
    parameters: Option<Vec<String>>,
    url_buttons: Vec<UrlButtonShown>,
    category: Option<TemplateCategory>,
}

impl Shown {
    fn new(kind: &'static str, text: &str, buttons: Vec<(String, String)>, reply_kind: ReplyKind) -> Self {
        Shown {
            kind,
            text: text.to_string(),
            template: None,
            buttons,
            reply_kind,
            parameters: None,
            url_buttons: Vec::new(),
            category: None,
        }
    }

    fn text(text: &str) -> Self {
        Shown::new("text", text, Vec::new(), ReplyKind::None)
    }
}

fn wa_buttons(v: &Value) -> Result<Shown, Reject> {
    let text = required(v, "/interactive/body/text", "interactive['body']['text']", WA_BUTTON_BODY_MAX)?;
    let list = array(v, "/interactive/action/buttons", "interactive['action']['buttons']")?;
    if list.is_empty() || list.len() > WA_MAX_BUTTONS {
        let n = list.len();
        return reject(format!(
            "(#100) Param interactive['action']['buttons'] must have 1 to {WA_MAX_BUTTONS} items, not {n}."
        ));
    }
    let mut buttons: Vec<(String, String)> = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let name = |field: &str| format!("interactive['action']['buttons'][{i}]{field}");
        if b.get("type").and_then(Value::as_str) != Some("reply") {
            return reject(format!("(#100) Param {} must be reply.", name("['type']")));
        }
        let id = required(b, "/reply/id", &name("['reply']['id']"), WA_BUTTON_ID_MAX)?;
        let title = required(b, "/reply/title", &name("['reply']['title']"), WA_BUTTON_TITLE_MAX)?;
        if buttons.iter().any(|(t, _)| t == title) {
            return reject(format!("(#100) Button titles must be unique: '{title}' appears twice."));
        }
        buttons.push((title.to_string(), id.to_string()));
    }
    Ok(Shown::new("interactive", text, buttons, ReplyKind::ButtonReply))
}

fn wa_list(v: &Value) -> Result<Shown, Reject> {
    let text = required(v, "/interactive/body/text", "interactive['body']['text']", WA_LIST_BODY_MAX)?;
    required(v, "/interactive/action/button", "interactive['action']['button']", WA_LIST_BUTTON_MAX)?;
    let sections = array(v, "/interactive/action/sections", "interactive['action']['sections']")?;
    if sections.is_empty() || sections.len() > WA_LIST_MAX_SECTIONS {
        return reject(format!(
            "(#100) Param interactive['action']['sections'] must have 1 to {WA_LIST_MAX_SECTIONS} items."
        ));
    }
    let mut rows_seen: Vec<(String, String)> = Vec::new();
    for (s, section) in sections.iter().enumerate() {
        if sections.len() > 1 {
            required(section, "/title", &format!("sections[{s}]['title']"), WA_ROW_TITLE_MAX)?;
        }
        let rows = array(section, "/rows", &format!("sections[{s}]['rows']"))?;
        if rows.is_empty() {
            return reject(format!("(#100) Param sections[{s}]['rows'] must be non-empty."));
        }
        for (r, row) in rows.iter().enumerate() {
            let name = |field: &str| format!("sections[{s}]['rows'][{r}]['{field}']");
            let id = required(row, "/id", &name("id"), WA_ROW_ID_MAX)?;
            let title = required(row, "/title", &name("title"), WA_ROW_TITLE_MAX)?;
            optional_max(row, "/description", &name("description"), WA_ROW_DESCRIPTION_MAX)?;
            if rows_seen.iter().any(|(_, x)| x == id) {
                return reject(format!("(#100) Row ids must be unique: '{id}' appears twice."));
            }
            rows_seen.push((title.to_string(), id.to_string()));
        }
    }
    if rows_seen.len() > WA_LIST_MAX_ROWS {
        let n = rows_seen.len();
        return reject(format!("(#100) A list may have at most {WA_LIST_MAX_ROWS} rows over all sections, not {n}."));
    }
    Ok(Shown::new("interactive", text, rows_seen, ReplyKind::ListReply))
}

impl Sandbox {
    fn wa_template(&self, v: &Value) -> Result<Shown, Reject> {
        let name = required(v, "/template/name", "template['name']", 512)?;
        let language = required(v, "/template/language/code", "template['language']['code']", 32)?;
        let sent = template_components(v)?;
        let mut shown = Shown::new("template", &format!("[template {name}]"), Vec::new(), ReplyKind::None);
        shown.template = Some(name.to_string());
        shown.parameters = Some(sent.positional());
        let Some(def) = self.cfg().templates.get(name, language) else {
            return Ok(shown);
        };
        // Checked like Meta checks a send against the approved template.
        let mismatch = |what: String| Reject {
            code: 132012,
            message: "(#132012) Parameter format does not match format in the created template".into(),
            details: Some(what),
        };
        match (&def.header_image, &sent.header_image) {
            (Some(_), None) => {
                return Err(mismatch(format!("template '{name}' ({language}) has an IMAGE header: send its image")))
            }
            (None, Some(_)) => return Err(mismatch(format!("template '{name}' ({language}) has no header"))),
            _ => {}
        }
        let dynamic: Vec<usize> = (0..def.url_buttons.len())
            .filter(|n| def.url_buttons[*n].is_dynamic())
            .map(|n| def.url_button_index(n))
            .collect();
        let url_indices: Vec<usize> = sent.url.keys().copied().collect();
        if sent.body.len() != def.body_param_count() || url_indices != dynamic {
            let (got, want) = (sent.positional().len(), def.param_count());
            return Err(Reject {
                code: 132000,
                message: "(#132000) Number of parameters does not match the expected number of params".into(),
                details: Some(format!(
                    "template '{name}' ({language}) takes {} body parameter(s) and URL parameter(s) for button(s) \
                     {dynamic:?}; got {} and {url_indices:?} ({got} of {want} in all)",
                    def.body_param_count(),
                    sent.body.len(),
                )),
            });
        }
        if let Some(i) = sent.payloads.keys().find(|i| **i >= def.buttons.len()) {
            return reject(format!("(#100) Invalid parameter: button {i} of template '{name}' is not a quick reply."));
        }
        let params = sent.positional();
        shown.text = def.render(&params).unwrap_or_default();
        shown.url_buttons = def
            .links(&params)
            .unwrap_or_default()
            .into_iter()
            .map(|(text, url)| UrlButtonShown { text, url })
            .collect();
        // A tap on a quick reply comes back with its payload parameter, else the button text.
        shown.buttons = def
            .buttons
            .iter()
            .enumerate()
            .map(|(i, b)| (b.clone(), sent.payloads.get(&i).cloned().unwrap_or_else(|| b.clone())))
            .collect();
        shown.reply_kind = ReplyKind::TemplateButton;
        shown.category = Some(def.category);
        Ok(shown)
    }

    /// The Marketing Messages API sends MARKETING templates only, refused the way Meta refuses
    /// anything else; its own optional fields must be well-formed.
    fn check_marketing(&self, v: &Value, shown: &Shown) -> Result<(), Reject> {
        if shown.kind != "template" {
            return Err(Reject {
                code: 100,
                message: "(#100) Invalid parameter".into(),
                details: Some("Message must be a template message.".into()),
            });
        }
        if shown.category.is_some_and(|c| c != TemplateCategory::Marketing) {
            return Err(Reject {
                code: 131055,
                message: "(#131055) Method not allowed".into(),
                details: Some("Only marketing template messages are supported".into()),
            });
        }
        if v.get("message_activity_sharing").is_some_and(|b| !b.is_boolean()) {
            return reject("(#100) Param message_activity_sharing must be a boolean.");
        }
        match v.get("product_policy").map(|p| p.as_str()) {
            None | Some(Some("CLOUD_API_FALLBACK" | "STRICT")) => Ok(()),
            Some(_) => reject("(#100) Param product_policy must be one of {CLOUD_API_FALLBACK, STRICT}."),
        }
    }

    fn accept_whatsapp(&self, v: &Value) -> Result<Accepted, Reject> {
        let to_raw = match (str_at(v, "/to"), str_at(v, "/recipient")) {
            (Some(t), _) if !t.trim().is_empty() => t,
            (_, Some(r)) if !r.trim().is_empty() => r,
            _ => return reject("(#100) The parameter to is required."),
        };
        if v.get("recipient_type").is_some_and(|rt| rt != "individual") {
            return reject("(#100) Param recipient_type must be one of {INDIVIDUAL}.");
        }
        let reference = optional_max(v, "/biz_opaque_callback_data", "biz_opaque_callback_data", WA_CALLBACK_DATA_MAX)?;
        // Graph defaults a missing type to text.
        let shown = match v.get("type").and_then(Value::as_str).unwrap_or("text") {
            "text" => Shown::text(required(v, "/text/body", "text['body']", WA_TEXT_MAX)?),
            "interactive" => match str_at(v, "/interactive/type") {
                Some("button") => wa_buttons(v)?,
                Some("list") => wa_list(v)?,
                Some(other) => {
                    return reject(format!("(#100) Interactive type '{other}' is not supported by the sandbox."))
                }
                None => return reject("(#100) The parameter interactive['type'] is required."),
            },
            "template" => self.wa_template(v)?,
            other => return reject(format!("(#100) Message type '{other}' is not supported by the sandbox.")),
        };
        Ok(Accepted::new(to_raw, reference, shown))
    }

    fn accept_messenger(&self, v: &Value) -> Result<Accepted, Reject> {
        let to = required(v, "/recipient/id", "recipient['id']", 128)?;
        match v.get("messaging_type").and_then(Value::as_str) {
            Some("RESPONSE" | "UPDATE") => {}
            Some("MESSAGE_TAG") => {
                required(v, "/tag", "tag", 64)?;
            }
            Some(other) => {
                return reject(format!(
                    "(#100) Param messaging_type must be one of {{RESPONSE, UPDATE, MESSAGE_TAG}}, not '{other}'."
                ))
            }
            None => return reject("(#100) The parameter messaging_type is required."),
        }
        let Some(message) = v.get("message").filter(|m| m.is_object()) else {
            return reject("(#100) The parameter message is required.");
        };
        let text = optional_max(message, "/text", "message[text]", FB_TEXT_MAX)?;
        let text = match (text, message.pointer("/attachment/type").and_then(Value::as_str)) {
            (Some(t), _) => t,
            (None, Some(kind)) => format!("[attachment {kind}]"),
            (None, None) => return reject("(#100) Message cannot be empty, must provide valid attachment or text."),
        };
        let reference = optional_max(message, "/metadata", "message[metadata]", FB_PAYLOAD_MAX)?;
        let mut shown = Shown::text(&text);
        if message.get("quick_replies").is_some_and(|q| !q.is_null()) {
            let replies = array(message, "/quick_replies", "message[quick_replies]")?;
            if replies.len() > FB_MAX_QUICK_REPLIES {
                return reject(format!(
                    "(#100) Param message[quick_replies] must have at most {FB_MAX_QUICK_REPLIES} items."
                ));
            }
            for (i, q) in replies.iter().enumerate() {
                let name = |field: &str| format!("message[quick_replies][{i}][{field}]");
                match q.get("content_type").and_then(Value::as_str) {
                    Some("text") => {
                        let title = required(q, "/title", &name("title"), FB_QUICK_REPLY_TITLE_MAX)?;
                        let payload = required(q, "/payload", &name("payload"), FB_PAYLOAD_MAX)?;
                        shown.buttons.push((title.to_string(), payload.to_string()));
                    }
                    // Messenger fills these in from the user's profile.
                    Some(kind @ ("user_phone_number" | "user_email")) => {
                        shown.buttons.push((kind.to_string(), kind.to_string()))
                    }
                    _ => {
                        return reject(format!(
                            "(#100) Param {} must be one of {{text, user_phone_number, user_email}}.",
                            name("content_type")
                        ))
                    }
                }
            }
            if !shown.buttons.is_empty() {
                shown.kind = "interactive";
                shown.reply_kind = ReplyKind::QuickReply;
            }
        }
        Ok(Accepted::new(to, reference, shown))
    }
}

/// The parameters of a template send, by component.
#[derive(Default)]
struct SentComponents {
    /// The header's image link or media id.
    header_image: Option<String>,
    /// Body parameters, as the customer would read them.
    body: Vec<String>,
    /// URL-button parameters by button index.
    url: std::collections::BTreeMap<usize, String>,
    /// Quick-reply payloads by button index.
    payloads: std::collections::HashMap<usize, String>,
}

impl SentComponents {
    /// Body parameters, then the URL buttons' by index (CONTRACT.md's positional order).
    fn positional(&self) -> Vec<String> {
        self.body.iter().chain(self.url.values()).cloned().collect()
    }
}

fn template_components(v: &Value) -> Result<SentComponents, Reject> {
    let mut sent = SentComponents::default();
    let Some(components) = v.pointer("/template/components") else { return Ok(sent) };
    let Some(components) = components.as_array() else {
        return reject("(#100) Param template['components'] must be an array.");
    };
    for (c, component) in components.iter().enumerate() {
        let name = |field: &str| format!("template['components'][{c}]{field}");
        let kind = component.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase);
        let params = component.get("parameters").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        match kind.as_deref() {
            Some("header") => {
                let image = match params {
                    [p] if p.get("type").and_then(Value::as_str) == Some("image") => {
                        p.pointer("/image/link").or_else(|| p.pointer("/image/id")).and_then(Value::as_str)
                    }
                    _ => None,
                };
                match image.filter(|i| !i.trim().is_empty()) {
                    Some(i) => sent.header_image = Some(i.to_string()),
                    None => {
                        return reject(format!(
                            "(#100) Param {} must be one image with a link or id (the sandbox has image headers only).",
                            name("['parameters']")
                        ))
                    }
                }
            }
            Some("body") => {
                for (i, p) in params.iter().enumerate() {
                    let text = match p.get("type").and_then(Value::as_str) {
                        Some("text") => p.get("text"),
                        Some("currency") => p.pointer("/currency/fallback_value"),
                        Some("date_time") => p.pointer("/date_time/fallback_value"),
                        _ => None,
                    };
                    match text.and_then(Value::as_str) {
                        Some(t) => sent.body.push(t.to_string()),
                        None => return reject(format!("(#100) Invalid parameter: body parameter {i} has no text.")),
                    }
                }
            }
            Some("button") => {
                let index = component
                    .get("index")
                    .and_then(|i| i.as_str().and_then(|s| s.parse().ok()).or(i.as_u64().map(|n| n as usize)));
                let Some(index) = index else {
                    return reject(format!("(#100) Param {} must be a button index.", name("['index']")));
                };
                if sent.url.contains_key(&index) || sent.payloads.contains_key(&index) {
                    return reject(format!("(#100) Button {index} has more than one component."));
                }
                match component.get("sub_type").and_then(Value::as_str) {
                    Some("url") => {
                        let text = match params {
                            [p] if p.get("type").and_then(Value::as_str) == Some("text") => {
                                required(p, "/text", &name("['parameters'][0]['text']"), 2000)?
                            }
                            _ => return reject(format!("(#100) Param {} must be one text.", name("['parameters']"))),
                        };
                        sent.url.insert(index, text.to_string());
                    }
                    Some("quick_reply") => {
                        if let Some(payload) = params.first().and_then(|p| p.get("payload")).and_then(Value::as_str) {
                            sent.payloads.insert(index, payload.to_string());
                        }
                    }
                    _ => {
                        return reject(format!(
                            "(#100) Param {} must be url or quick_reply in the sandbox.",
                            name("['sub_type']")
                        ))
                    }
                }
            }
            _ => return reject(format!("(#100) Param {} must be header, body or button.", name("['type']"))),
        }
    }
    Ok(sent)
}

/// The web page. Public so the runtime can also serve it at `/sandbox/`: a router nested at
/// `/sandbox` answers `/sandbox` but not `/sandbox/`.
pub async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store"), (header::CONTENT_SECURITY_POLICY, CSP)], Html(PAGE)).into_response()
}

async fn script() -> Response {
    let headers = [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-store")];
    (headers, SCRIPT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], STYLE).into_response()
}

async fn graph_send(
    State(sb): State<Sandbox>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(sb, id, headers, body, Endpoint::Messages).await
}

async fn graph_send_marketing(
    State(sb): State<Sandbox>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(sb, id, headers, body, Endpoint::MarketingMessages).await
}

async fn send(sb: Sandbox, id: String, headers: HeaderMap, body: Bytes, endpoint: Endpoint) -> Response {
    // Faults come first: "the next N send calls fail", whatever else those calls carry (a fault
    // for one recipient only looks at the recipient: WhatsApp's `to`, Messenger's `recipient.id`).
    let recipient = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        let to = str_at(&v, "/to").or_else(|| str_at(&v, "/recipient/id"))?;
        Some(normalize_address(to))
    });
    if let Some(f) = sb.take_fault(recipient.as_deref()) {
        let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (message, details) = describe_code(f.code);
        return graph_error(status, f.code, &message, Some(&details));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if token.is_none() {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
    }
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return graph_error(StatusCode::BAD_REQUEST, 100, "(#100) The request body must be a JSON object.", None),
    };
    let channel = sb.channel_of(&v, &id);
    let accepted = match (channel, endpoint) {
        (Channel::WhatsApp, Endpoint::Messages) => sb.accept_whatsapp(&v),
        (Channel::WhatsApp, Endpoint::MarketingMessages) => {
            sb.accept_whatsapp(&v).and_then(|a| sb.check_marketing(&v, &a.shown).map(|()| a))
        }
        (Channel::Messenger | Channel::Instagram, Endpoint::Messages) => sb.accept_messenger(&v),
        (_, Endpoint::MarketingMessages) => reject("(#100) Param messaging_product must be whatsapp."),
    };
    let a = match accepted {
        Ok(a) => a,
        Err(r) => return graph_error(StatusCode::BAD_REQUEST, r.code, &r.message, r.details.as_deref()),
    };
    let to = normalize_address(&a.to_raw);
    let (buttons, button_ids) = a.shown.buttons.into_iter().unzip();
    let msg = SentMessage {
        id: if channel == Channel::WhatsApp { new_wamid() } else { new_mid() },
        channel,
        to: to.clone(),
        kind: a.shown.kind,
        text: a.shown.text,
        template: a.shown.template,
        buttons,
        button_ids,
        parameters: a.shown.parameters,
        url_buttons: a.shown.url_buttons,
        endpoint: endpoint.as_str(),
        sent_at: now_rfc3339(),
        account: id,
        category: a.shown.category,
        reply_kind: a.shown.reply_kind,
        reference: a.reference,
    };
    sb.log().sent.push(msg.clone());
    if channel == Channel::WhatsApp && sb.cfg().status_webhooks {
        let sb = sb.clone();
        let msg = msg.clone();
        tokio::spawn(async move {
            for status in ["sent", "delivered"] {
                tokio::time::sleep(STATUS_DELAY).await;
                if let Err(e) = sb.deliver_status(&msg, status, None).await {
                    tracing::warn!(error = %e, "sandbox: status webhook not delivered");
                }
            }
        });
    }
    let answer = match channel {
        Channel::WhatsApp => json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": a.to_raw, "wa_id": to }],
            "messages": [{ "id": msg.id }],
        }),
        Channel::Messenger | Channel::Instagram => json!({ "recipient_id": to, "message_id": msg.id }),
    };
    Json(answer).into_response()
}

#[derive(Deserialize)]
struct MessagesQuery {
    to: Option<String>,
}

async fn list_messages(State(sb): State<Sandbox>, Query(q): Query<MessagesQuery>) -> Json<Vec<Value>> {
    Json(match q.to {
        Some(to) => sb.messages_to(&to),
        None => sb.log().sent.iter().map(to_json).collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Deserialize)]
struct FaultRequest {
    status: u16,
    #[serde(default = "one")]
    count: u32,
    code: Option<i64>,
    /// Only sends to this recipient fail.
    #[serde(default)]
    to: Option<String>,
}

fn one() -> u32 {
    1
}

async fn get_fault(State(sb): State<Sandbox>) -> Json<Option<Fault>> {
    Json(sb.log().fault.clone())
}

async fn set_fault(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("expected {{\"status\":429,\"count\":3}}: {e}")),
    };
    if !(400..=599).contains(&req.status) {
        return json_error(StatusCode::BAD_REQUEST, "status must be an HTTP error status (400-599)");
    }
    let fault = (req.count > 0).then(|| Fault {
        status: req.status,
        code: req.code.unwrap_or_else(|| default_fault_code(req.status)),
        remaining: req.count,
        to: req.to.as_deref().map(normalize_address),
    });
    sb.log().fault = fault.clone();
    Json(json!({ "fault": fault })).into_response()
}

async fn clear_fault(State(sb): State<Sandbox>) -> StatusCode {
    sb.log().fault = None;
    StatusCode::NO_CONTENT
}

// ---------------------------------------------------------------------------------------------
// The customer side: inbound messages and statuses as webhook deliveries

#[derive(Deserialize)]
struct ChatRequest {
    channel: String,
    from: String,
    name: Option<String>,
    text: Option<String>,
    payload: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct ChatQuery {
    channel: Option<String>,
    from: Option<String>,
}

async fn list_chat(State(sb): State<Sandbox>, Query(q): Query<ChatQuery>) -> Json<Vec<ChatLine>> {
    let channel = q.channel.and_then(|c| c.parse::<Channel>().ok());
    let from = q.from.map(|f| normalize_address(&f));
    let log = sb.log();
    Json(
        log.chat
            .iter()
            .filter(|l| channel.is_none_or(|c| l.channel == c) && from.as_deref().is_none_or(|f| l.from == f))
            .cloned()
            .collect(),
    )
}

fn whatsapp_envelope(phone_number_id: &str, value_extra: Value) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": DISPLAY_PHONE_NUMBER, "phone_number_id": phone_number_id },
    });
    if let (Some(obj), Value::Object(extra)) = (value.as_object_mut(), value_extra) {
        obj.extend(extra);
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": WABA_ID, "changes": [{ "value": value, "field": "messages" }] }],
    })
}

fn messaging_envelope(channel: Channel, account: &str, event: Value) -> Value {
    let object = if channel == Channel::Instagram { "instagram" } else { "page" };
    json!({ "object": object, "entry": [{ "id": account, "time": now_millis(), "messaging": [event] }] })
}

impl Sandbox {
    /// The latest message to this contact that offered `payload` as a button.
    fn offered(&self, channel: Channel, to: &str, payload: &str) -> Option<SentMessage> {
        self.log()
            .sent
            .iter()
            .rev()
            .find(|m| m.channel == channel && m.to == to && m.button_ids.iter().any(|b| b == payload))
            .cloned()
    }

    /// Builds the webhook delivery for a customer's chat line; returns it and the message id.
    fn inbound_payload(&self, channel: Channel, from: &str, name: &str, content: &Content) -> (Value, String) {
        let cfg = self.cfg();
        match channel {
            Channel::WhatsApp => {
                let id = new_wamid();
                let mut msg = json!({ "from": from, "id": id, "timestamp": now_secs().to_string() });
                match content {
                    Content::Text(text) => {
                        msg["type"] = json!("text");
                        msg["text"] = json!({ "body": text });
                    }
                    Content::Button { payload, title } => {
                        let offered = self.offered(channel, from, payload);
                        let title = title.clone().or_else(|| {
                            let m = offered.as_ref()?;
                            let i = m.button_ids.iter().position(|b| b == payload)?;
                            m.buttons.get(i).cloned()
                        });
                        let title = title.unwrap_or_else(|| payload.clone());
                        if let Some(m) = &offered {
                            msg["context"] = json!({ "from": DISPLAY_PHONE_NUMBER, "id": m.id });
                        }
                        match offered.map(|m| m.reply_kind) {
                            Some(ReplyKind::TemplateButton) => {
                                msg["type"] = json!("button");
                                msg["button"] = json!({ "payload": payload, "text": title });
                            }
                            Some(ReplyKind::ListReply) => {
                                msg["type"] = json!("interactive");
                                let reply = json!({ "id": payload, "title": title });
                                msg["interactive"] = json!({ "type": "list_reply", "list_reply": reply });
                            }
                            _ => {
                                msg["type"] = json!("interactive");
                                let reply = json!({ "id": payload, "title": title });
                                msg["interactive"] = json!({ "type": "button_reply", "button_reply": reply });
                            }
                        }
                    }
                }
                let value = json!({
                    "contacts": [{ "profile": { "name": name }, "wa_id": from }],
                    "messages": [msg],
                });
                (whatsapp_envelope(&cfg.whatsapp_phone_number_id, value), id)
            }
            Channel::Messenger | Channel::Instagram => {
                let account =
                    if channel == Channel::Instagram { &cfg.instagram_account_id } else { &cfg.messenger_page_id };
                let id = new_mid();
                let message = match content {
                    Content::Text(text) => json!({ "mid": id, "text": text }),
                    Content::Button { payload, title } => {
                        let title = title.clone().unwrap_or_else(|| payload.clone());
                        json!({ "mid": id, "text": title, "quick_reply": { "payload": payload } })
                    }
                };
                let ts = now_millis();
                let event = json!({
                    "sender": { "id": from },
                    "recipient": { "id": account },
                    "timestamp": ts,
                    "message": message,
                });
                (messaging_envelope(channel, account, event), id)
            }
        }
    }
}

enum Content {
    Text(String),
    Button { payload: String, title: Option<String> },
}

async fn chat(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return json_error(StatusCode::BAD_REQUEST, format!("expected {{\"channel\",\"from\",\"text\"}}: {e}"))
        }
    };
    let channel: Channel = match req.channel.parse() {
        Ok(c) => c,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let from = match Address::parse(req.from.as_str()) {
        Ok(a) => a.as_str().to_string(),
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("from: {e}")),
    };
    let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let title = non_empty(req.title);
    let content = match (non_empty(req.payload), non_empty(req.text)) {
        (Some(payload), _) => Content::Button { payload, title },
        (None, Some(text)) => Content::Text(text),
        (None, None) => return json_error(StatusCode::BAD_REQUEST, "text or payload is required"),
    };
    let name = non_empty(req.name).unwrap_or_else(|| "Sandbox Customer".to_string());
    let (payload, id) = sb.inbound_payload(channel, &from, &name, &content);
    let status = match sb.deliver(&payload).await {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::BAD_GATEWAY, e),
    };
    let retrying = worth_retrying(status);
    let (text, button) = match content {
        Content::Text(t) => (t, None),
        Content::Button { payload, title } => (title.unwrap_or_else(|| payload.clone()), Some(payload)),
    };
    sb.log().chat.push(ChatLine {
        id: id.clone(),
        channel,
        from,
        text,
        payload: button,
        webhook_status: status,
        retrying,
        sent_at: now_rfc3339(),
    });
    if retrying {
        // Recorded first: the retries update the line.
        let (line_of, line) = (sb.clone(), id.clone());
        sb.redeliver_later(payload, status, move |status, more| line_of.chat_answered(&line, status, more));
    }
    Json(json!({ "status": status, "message_id": id, "retrying": retrying })).into_response()
}

#[derive(Deserialize)]
struct StatusRequest {
    id: String,
    status: String,
    code: Option<i64>,
}

async fn post_status(State(sb): State<Sandbox>, body: Bytes) -> Response {
    let req: StatusRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("expected {{\"id\",\"status\"}}: {e}")),
    };
    if !matches!(req.status.as_str(), "sent" | "delivered" | "read" | "failed") {
        return json_error(StatusCode::BAD_REQUEST, "status must be sent, delivered, read or failed");
    }
    let Some(msg) = sb.log().sent.iter().find(|m| m.id == req.id).cloned() else {
        return json_error(
            StatusCode::NOT_FOUND,
            format!("no message with id '{}' was sent through the sandbox", req.id),
        );
    };
    if msg.channel != Channel::WhatsApp {
        return json_error(StatusCode::BAD_REQUEST, "status webhooks are simulated for WhatsApp messages only");
    }
    match sb.deliver_status(&msg, &req.status, req.code).await {
        Ok(status) => Json(json!({ "status": status })).into_response(),
        Err(e) => json_error(StatusCode::BAD_GATEWAY, e),
    }
}
