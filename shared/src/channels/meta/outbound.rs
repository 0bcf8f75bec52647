//! The Graph API send client: WhatsApp Cloud API, Messenger and Instagram.
//!
//! Built once per container; one [`GraphClient::send`] is one HTTP call. Failures are classified
//! by Graph's `error.code`, not by HTTP status (Meta says to build logic on the code), into what
//! the sender does next: retry, switch to a template, give up, or pause the queue.
use crate::config::{MetaSettings, Secret};
use crate::domain::templates::{TemplateCategory, TemplateDef};
use crate::domain::{AccountId, Address, Channel, ContactId, OutboundBody, ProviderMessageId, Purpose, TemplateRef};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Messenger/Instagram show at most 13 quick replies.
const MAX_QUICK_REPLIES: usize = 13;
/// Messenger/Instagram truncate quick-reply titles after 20 characters; doing it here keeps the
/// request valid and the result predictable.
const MAX_QUICK_REPLY_TITLE: usize = 20;
/// Keeps error details short enough for logs and stored send records.
const MAX_DETAIL_CHARS: usize = 500;

/// One message to one contact.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    /// The business account sending: WhatsApp phone_number_id, Page id or Instagram account id.
    pub account: &'a AccountId,
    pub contact: &'a ContactId,
    pub body: &'a OutboundBody,
    pub purpose: Purpose,
    /// Our outbound id: WhatsApp echoes it in status webhooks (`biz_opaque_callback_data`),
    /// Messenger in echoes (`message.metadata`).
    pub reference: Option<&'a str>,
    /// The catalog's definition of a template body: it splits the positional parameters into
    /// body and URL-button parameters, names the header image and the category. `None` for
    /// other bodies; for a template the catalog does not know, every parameter goes to the body.
    pub template: Option<&'a TemplateDef>,
}

/// The WhatsApp send endpoint of a phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/{phone-number-id}/messages` (Cloud API; Messenger and Instagram too).
    Messages,
    /// `/{phone-number-id}/marketing_messages` (Marketing Messages API): MARKETING templates only.
    MarketingMessages,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Messages => "messages",
            Endpoint::MarketingMessages => "marketing_messages",
        }
    }
}

/// Where a send goes: Meta routes templates whose category is MARKETING to the Marketing
/// Messages API once the account uses it (`WHATSAPP_MARKETING_MESSAGES_API`); every other
/// message, and every channel but WhatsApp, goes to `/messages`.
pub fn endpoint_for(req: &SendRequest<'_>, marketing_messages_api: bool) -> Endpoint {
    let marketing = matches!(req.body, OutboundBody::Template { .. })
        && req.template.is_some_and(|d| d.category == TemplateCategory::Marketing);
    if marketing_messages_api && marketing && req.contact.channel == Channel::WhatsApp {
        Endpoint::MarketingMessages
    } else {
        Endpoint::Messages
    }
}

/// What the sender should do after a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Back off and try again.
    Retryable,
    /// The customer-service window is closed: send a template instead.
    WindowClosed,
    /// Final for this message.
    Permanent,
    /// Account-level trouble (token, quality restriction): stop sending and alarm.
    Pause,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("retryable send failure{}: {detail}", code_suffix(.code))]
    Retryable { code: Option<i64>, detail: String },
    #[error("customer-service window closed (code {code}): {detail}")]
    WindowClosed { code: i64, detail: String },
    #[error("permanent send failure{}: {detail}", code_suffix(.code))]
    Permanent { code: Option<i64>, detail: String },
    #[error("sending must pause (code {code}): {detail}")]
    Pause { code: i64, detail: String },
    #[error("cannot send: {0}")]
    Config(String),
}

fn code_suffix(code: &Option<i64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

impl SendError {
    /// The Graph error code, when Graph gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Retryable { code, .. } | SendError::Permanent { code, .. } => *code,
            SendError::WindowClosed { code, .. } | SendError::Pause { code, .. } => Some(*code),
            SendError::Config(_) => None,
        }
    }

    /// Short stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Retryable { .. } => "retryable",
            SendError::WindowClosed { .. } => "window_closed",
            SendError::Permanent { .. } => "permanent",
            SendError::Pause { .. } => "pause",
            SendError::Config(_) => "config",
        }
    }

    fn from_class(class: ErrorClass, code: i64, detail: String) -> Self {
        match class {
            ErrorClass::Retryable => SendError::Retryable { code: Some(code), detail },
            ErrorClass::WindowClosed => SendError::WindowClosed { code, detail },
            ErrorClass::Permanent => SendError::Permanent { code: Some(code), detail },
            ErrorClass::Pause => SendError::Pause { code, detail },
        }
    }
}

/// Classifies a Graph `error.code` (WhatsApp and Messenger share the code space).
/// Unknown codes are permanent: retrying what we do not understand only burns quota.
pub fn classify(code: i64) -> ErrorClass {
    match code {
        // Throughput, pair rate, app/WABA rate limits, transient server trouble, maintenance.
        // 1200 is Messenger's "Temporary send message failure. Please try again later."
        130429 | 131056 | 4 | 80007 | 131000 | 131016 | 1 | 2 | 131057 | 2494100 | 1200 => ErrorClass::Retryable,
        // 131047: WhatsApp re-engagement; 2534022 is Instagram/Messenger's window subcode,
        // accepted here too in case it ever arrives as the code.
        131047 | 2534022 => ErrorClass::WindowClosed,
        // Expired/invalid token, or the number is restricted for spam/quality.
        131048 | 190 | 0 => ErrorClass::Pause,
        _ => ErrorClass::Permanent,
    }
}

/// Like [`classify`], but knows Messenger's "outside of allowed window" errors, which come as
/// the generic permission code 10 with a telling subcode.
pub fn classify_with_subcode(code: i64, subcode: Option<i64>) -> ErrorClass {
    match (code, subcode) {
        (10, Some(2018278 | 2534022)) => ErrorClass::WindowClosed,
        _ => classify(code),
    }
}

/// The Graph API client. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
    token: Secret,
    timeout: Duration,
    /// `WHATSAPP_MARKETING_MESSAGES_API`.
    marketing_messages_api: bool,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("version", &self.version)
            .field("timeout", &self.timeout)
            .field("marketing_messages_api", &self.marketing_messages_api)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    pub fn new(settings: &MetaSettings) -> Result<Self, SendError> {
        let base = settings.graph_api_base.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SendError::Config(format!("GRAPH_API_BASE must be an http(s) URL, got '{base}'")));
        }
        let version = settings.graph_api_version.trim_matches('/').to_string();
        if version.is_empty() {
            return Err(SendError::Config("GRAPH_API_VERSION is empty".to_string()));
        }
        let timeout = settings.graph_timeout;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Config(format!("cannot build the HTTP client: {}", error_chain(&e))))?;
        let marketing_messages_api = settings.marketing_messages_api;
        Ok(Self { http, base, version, token: settings.access_token.clone(), timeout, marketing_messages_api })
    }

    /// The URL of a send endpoint for a channel and account.
    pub fn endpoint(&self, channel: Channel, account: &AccountId, endpoint: Endpoint) -> String {
        let node = match channel {
            // The Page token identifies the Page, so `me` always addresses the right one.
            Channel::Messenger => "me",
            Channel::WhatsApp | Channel::Instagram => account.as_str(),
        };
        format!("{}/{}/{}/{}", self.base, self.version, node, endpoint.as_str())
    }

    /// Where this client sends `req`.
    pub fn endpoint_for(&self, req: &SendRequest<'_>) -> Endpoint {
        endpoint_for(req, self.marketing_messages_api)
    }

    /// Sends one message. `Ok` means Graph accepted it (delivery comes later as a status).
    pub async fn send(&self, req: &SendRequest<'_>) -> Result<ProviderMessageId, SendError> {
        let channel = req.contact.channel;
        let body = request_body(req)?;
        // The Marketing Messages API takes the same body as `/messages` (its extra fields
        // `message_activity_sharing`, `product_policy` are optional; Meta's defaults apply).
        let endpoint = self.endpoint_for(req);
        let url = self.endpoint(channel, req.account, endpoint);
        let started = Instant::now();
        let response = self
            .http
            .post(&url)
            .bearer_auth(self.token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport_error(e))?;
        let result = interpret_response(channel, status, &bytes);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let contact = req.contact.redacted();
        match &result {
            Ok(id) => {
                let endpoint = endpoint.as_str();
                tracing::debug!(%channel, %contact, status, elapsed_ms, endpoint, provider_id = %id, "graph send accepted")
            }
            Err(e @ SendError::Permanent { code: None, .. }) if (200..300).contains(&status) => {
                // Graph may have accepted the message; a resend could duplicate it, so say so loudly.
                tracing::warn!(%channel, %contact, status, elapsed_ms, error = %e, "graph success without a message id")
            }
            Err(e) => {
                let (kind, code) = (e.kind(), e.code());
                tracing::debug!(%channel, %contact, status, elapsed_ms, kind, ?code, "graph send failed")
            }
        }
        result
    }

    fn transport_error(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        if e.is_builder() {
            return SendError::Config(format!("invalid Graph request: {}", error_chain(&e)));
        }
        let detail = if e.is_timeout() {
            format!("Graph API did not answer within {} ms", self.timeout.as_millis())
        } else if e.is_connect() {
            format!("cannot connect to the Graph API: {}", error_chain(&e))
        } else {
            format!("Graph API request failed: {}", error_chain(&e))
        };
        SendError::Retryable { code: None, detail }
    }
}

/// `e` and its sources on one line (reqwest's own Display hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The JSON request body for a send.
pub fn request_body(req: &SendRequest<'_>) -> Result<Value, SendError> {
    match req.contact.channel {
        Channel::WhatsApp => Ok(whatsapp_body(&req.contact.address, req.body, req.reference, req.template)),
        Channel::Messenger | Channel::Instagram => {
            messenger_body(req.contact.channel, &req.contact.address, req.body, req.purpose, req.reference)
        }
    }
}

/// WhatsApp Cloud API `/{phone_number_id}/messages` body (`/marketing_messages` takes the same).
/// `def` is the catalog's definition when `body` is a template.
pub fn whatsapp_body(
    address: &Address,
    body: &OutboundBody,
    reference: Option<&str>,
    def: Option<&TemplateDef>,
) -> Value {
    let mut msg = Map::new();
    msg.insert("messaging_product".into(), json!("whatsapp"));
    msg.insert("recipient_type".into(), json!("individual"));
    let addr = address.as_str();
    if addr.bytes().all(|b| b.is_ascii_digit()) {
        // A wa_id: Meta asks for `+` and the country code, otherwise it may prepend the
        // business number's country code.
        msg.insert("to".into(), json!(format!("+{addr}")));
    } else {
        // A business-scoped user id (no phone known).
        msg.insert("recipient".into(), json!(addr));
    }
    match body {
        OutboundBody::Text { text } => {
            msg.insert("type".into(), json!("text"));
            msg.insert("text".into(), json!({ "body": text, "preview_url": false }));
        }
        OutboundBody::Buttons { text, buttons } => {
            let buttons: Vec<Value> =
                buttons.iter().map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } })).collect();
            msg.insert("type".into(), json!("interactive"));
            msg.insert(
                "interactive".into(),
                json!({ "type": "button", "body": { "text": text }, "action": { "buttons": buttons } }),
            );
        }
        OutboundBody::List { text, button, sections } => {
            msg.insert("type".into(), json!("interactive"));
            msg.insert(
                "interactive".into(),
                json!({
                    "type": "list",
                    "body": { "text": text },
                    "action": { "button": button, "sections": sections },
                }),
            );
        }
        OutboundBody::Template { template } => {
            msg.insert("type".into(), json!("template"));
            msg.insert("template".into(), template_object(template, def.filter(|d| d.name == template.name)));
        }
    }
    if let Some(r) = reference {
        msg.insert("biz_opaque_callback_data".into(), json!(r));
    }
    Value::Object(msg)
}

/// The `template` object: header image, body parameters, then the buttons in index order
/// (quick replies first, as the catalog orders them, then URL buttons).
fn template_object(template: &TemplateRef, def: Option<&TemplateDef>) -> Value {
    let mut t = json!({
        "name": template.name,
        "language": { "code": template.language, "policy": "deterministic" },
    });
    // Not in the catalog (or a stale count): everything to the body; Graph judges it (#132000).
    let (body, url_buttons) = match def.and_then(|d| d.split(&template.params)) {
        Some(split) => (split.body, split.url_buttons),
        None => (template.params.as_slice(), Vec::new()),
    };
    let mut components = Vec::new();
    if let Some(image) = template.header_image.as_deref().or(def.and_then(|d| d.header_image.as_deref())) {
        // Uploaded media is addressed by its numeric id, anything else is a link.
        let media =
            if image.bytes().all(|b| b.is_ascii_digit()) { json!({ "id": image }) } else { json!({ "link": image }) };
        components.push(json!({ "type": "header", "parameters": [{ "type": "image", "image": media }] }));
    }
    if !body.is_empty() {
        let params: Vec<Value> = body.iter().map(|p| json!({ "type": "text", "text": p })).collect();
        components.push(json!({ "type": "body", "parameters": params }));
    }
    for (i, payload) in template.payloads.iter().enumerate() {
        components.push(json!({
            "type": "button", "sub_type": "quick_reply", "index": i.to_string(),
            "parameters": [{ "type": "payload", "payload": payload }],
        }));
    }
    for (index, text) in url_buttons {
        // The parameter is the end of the approved URL (its `{{1}}`).
        components.push(json!({
            "type": "button", "sub_type": "url", "index": index.to_string(),
            "parameters": [{ "type": "text", "text": text }],
        }));
    }
    if !components.is_empty() {
        t["components"] = Value::Array(components);
    }
    t
}

/// Messenger / Instagram Send API body.
pub fn messenger_body(
    channel: Channel,
    address: &Address,
    body: &OutboundBody,
    purpose: Purpose,
    reference: Option<&str>,
) -> Result<Value, SendError> {
    let mut message = match body {
        OutboundBody::Text { text } => json!({ "text": text }),
        OutboundBody::Buttons { text, buttons } => {
            let qr: Vec<Value> = buttons.iter().take(MAX_QUICK_REPLIES).map(|b| quick_reply(&b.title, &b.id)).collect();
            json!({ "text": text, "quick_replies": qr })
        }
        OutboundBody::List { text, sections, .. } => {
            let qr: Vec<Value> = sections
                .iter()
                .flat_map(|s| &s.rows)
                .take(MAX_QUICK_REPLIES)
                .map(|r| quick_reply(&r.title, &r.id))
                .collect();
            json!({ "text": text, "quick_replies": qr })
        }
        OutboundBody::Template { template } => {
            return Err(SendError::Config(format!(
                "template '{}' is a WhatsApp template; {channel} cannot carry it",
                template.name
            )))
        }
    };
    if let Some(r) = reference {
        message["metadata"] = json!(r);
    }
    // RESPONSE answers the customer; UPDATE is business-initiated but still inside the window.
    let messaging_type = if purpose == Purpose::Reply { "RESPONSE" } else { "UPDATE" };
    Ok(json!({
        "recipient": { "id": address.as_str() },
        "messaging_type": messaging_type,
        "message": message,
    }))
}

fn quick_reply(title: &str, payload: &str) -> Value {
    let title = truncate_chars(title, MAX_QUICK_REPLY_TITLE);
    json!({ "content_type": "text", "title": title, "payload": payload })
}

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A Graph error envelope: `{"error":{"message","type","code","error_data":{"details"},"error_subcode","fbtrace_id"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: Option<String>,
    pub details: Option<String>,
    pub fbtrace_id: Option<String>,
}

impl GraphError {
    /// Parses an error body; `None` when it is not a Graph error (an HTML 502 page, say).
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?;
        let code = e.get("code").and_then(as_i64)?;
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        // `error_data` is an object on WhatsApp and sometimes a bare string on older Messenger errors.
        let details = match e.get("error_data") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(d) => d.get("details").and_then(Value::as_str).map(str::to_string),
            None => None,
        };
        Some(Self {
            code,
            subcode: e.get("error_subcode").and_then(as_i64),
            message: text("message"),
            details,
            fbtrace_id: text("fbtrace_id"),
        })
    }

    pub fn class(&self) -> ErrorClass {
        classify_with_subcode(self.code, self.subcode)
    }

    /// A one-line description for logs and send records.
    pub fn describe(&self) -> String {
        let mut out = self.message.clone().unwrap_or_else(|| format!("Graph error {}", self.code));
        if let Some(d) = self.details.as_deref().filter(|d| !d.is_empty()) {
            out.push_str(": ");
            out.push_str(d);
        }
        if let Some(s) = self.subcode {
            out.push_str(&format!(" [subcode {s}]"));
        }
        if let Some(t) = &self.fbtrace_id {
            out.push_str(&format!(" [fbtrace_id {t}]"));
        }
        truncate_chars(&out, MAX_DETAIL_CHARS)
    }

    pub fn into_send_error(self) -> SendError {
        let detail = self.describe();
        SendError::from_class(self.class(), self.code, detail)
    }
}

/// Graph sometimes sends numbers as strings.
fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Turns an HTTP answer from a send endpoint into the provider message id or a classified error.
pub fn interpret_response(channel: Channel, status: u16, body: &[u8]) -> Result<ProviderMessageId, SendError> {
    if let Some(err) = GraphError::parse(body) {
        return Err(err.into_send_error());
    }
    if (200..300).contains(&status) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let id = match channel {
            Channel::WhatsApp => v.pointer("/messages/0/id"),
            Channel::Messenger | Channel::Instagram => v.get("message_id"),
        }
        .and_then(Value::as_str);
        return match id.map(ProviderMessageId::parse) {
            Some(Ok(id)) => Ok(id),
            Some(Err(e)) => Err(SendError::Permanent {
                code: None,
                detail: format!(
                    "HTTP {status}: Graph returned an unusable message id ({e}); the message may have been sent"
                ),
            }),
            None => Err(SendError::Permanent {
                code: None,
                detail: format!(
                    "HTTP {status} without a message id; the message may have been accepted: {}",
                    snippet(body)
                ),
            }),
        };
    }
    let detail = format!("HTTP {status} without a Graph error body: {}", snippet(body));
    if status >= 500 || status == 408 || status == 429 {
        Err(SendError::Retryable { code: None, detail })
    } else {
        Err(SendError::Permanent { code: None, detail })
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        "(empty body)".to_string()
    } else {
        truncate_chars(&s, 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Button, ListRow, ListSection, TemplateRef};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn contact(channel: Channel, addr: &str) -> ContactId {
        ContactId::new(channel, Address::parse(addr).unwrap())
    }

    fn buttons() -> OutboundBody {
        OutboundBody::Buttons {
            text: "Add to cart?".into(),
            buttons: vec![
                Button { id: "add:SKU1".into(), title: "Yes".into() },
                Button { id: "no".into(), title: "No thanks".into() },
            ],
        }
    }

    fn list() -> OutboundBody {
        OutboundBody::List {
            text: "Pick a size".into(),
            button: "Sizes".into(),
            sections: vec![ListSection {
                title: "Shirts".into(),
                rows: vec![
                    ListRow { id: "size:s".into(), title: "Small".into(), description: None },
                    ListRow { id: "size:m".into(), title: "Medium".into(), description: Some("Most popular".into()) },
                ],
            }],
        }
    }

    fn template(params: &[&str]) -> OutboundBody {
        OutboundBody::Template {
            template: TemplateRef::new("order_confirmed", "de", params.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn body_for(
        channel: Channel,
        addr: &str,
        body: &OutboundBody,
        purpose: Purpose,
        reference: Option<&str>,
    ) -> Result<Value, SendError> {
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(channel, addr);
        request_body(&SendRequest { account: &account, contact: &contact, body, purpose, reference, template: None })
    }

    #[test]
    fn whatsapp_text_body() {
        let v =
            body_for(Channel::WhatsApp, "4915123456789", &OutboundBody::text("Hallo!"), Purpose::Reply, Some("out-1"))
                .unwrap();
        assert_eq!(
            v,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+4915123456789",
                "type": "text", "text": { "body": "Hallo!", "preview_url": false },
                "biz_opaque_callback_data": "out-1"
            })
        );
    }

    #[test]
    fn whatsapp_business_scoped_user_id_goes_to_recipient() {
        let v = body_for(Channel::WhatsApp, "DE.1234567890abcdef", &OutboundBody::text("Hi"), Purpose::Reply, None)
            .unwrap();
        assert_eq!(
            v,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "recipient": "DE.1234567890abcdef",
                "type": "text", "text": { "body": "Hi", "preview_url": false }
            })
        );
    }

    #[test]
    fn whatsapp_buttons_body() {
        let v = body_for(Channel::WhatsApp, "4915123456789", &buttons(), Purpose::Reply, None).unwrap();
        assert_eq!(
            v,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+4915123456789",
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": { "text": "Add to cart?" },
                    "action": { "buttons": [
                        { "type": "reply", "reply": { "id": "add:SKU1", "title": "Yes" } },
                        { "type": "reply", "reply": { "id": "no", "title": "No thanks" } }
                    ] }
                }
            })
        );
    }

    #[test]
    fn whatsapp_list_body() {
        let v = body_for(Channel::WhatsApp, "4915123456789", &list(), Purpose::Reply, None).unwrap();
        assert_eq!(
            v,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+4915123456789",
                "type": "interactive",
                "interactive": {
                    "type": "list",
                    "body": { "text": "Pick a size" },
                    "action": { "button": "Sizes", "sections": [ { "title": "Shirts", "rows": [
                        { "id": "size:s", "title": "Small" },
                        { "id": "size:m", "title": "Medium", "description": "Most popular" }
                    ] } ] }
                }
            })
        );
    }

    #[test]
    fn whatsapp_template_body_with_and_without_params() {
        let v = body_for(
            Channel::WhatsApp,
            "4915123456789",
            &template(&["#1001", "Erika"]),
            Purpose::OrderUpdate,
            Some("o-1"),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+4915123456789",
                "type": "template",
                "template": {
                    "name": "order_confirmed",
                    "language": { "code": "de", "policy": "deterministic" },
                    "components": [ { "type": "body", "parameters": [
                        { "type": "text", "text": "#1001" }, { "type": "text", "text": "Erika" }
                    ] } ]
                },
                "biz_opaque_callback_data": "o-1"
            })
        );
        let v = body_for(Channel::WhatsApp, "4915123456789", &template(&[]), Purpose::OrderUpdate, None).unwrap();
        assert_eq!(
            v["template"],
            json!({ "name": "order_confirmed", "language": { "code": "de", "policy": "deterministic" } })
        );
    }

    /// A catalog with a marketing template (quick reply, two URL buttons, image header) and a
    /// utility one.
    fn catalog() -> crate::domain::templates::Templates {
        crate::domain::templates::Templates::from_toml(
            r#"
[[template]]
name = "promo"
language = "de"
category = "marketing"
body = "Hallo {{1}}, neu: {{2}}!"
buttons = ["STOP"]
url_buttons = [
  { text = "Ansehen", url = "https://shop.example/c/{{1}}" },
  { text = "Alle", url = "https://shop.example/all" },
]
header_image = "https://cdn.example/spring.jpg"

[[template]]
name = "receipt"
language = "de"
category = "utility"
body = "Danke für {{1}}."
"#,
        )
        .unwrap()
    }

    fn promo(params: &[&str]) -> OutboundBody {
        OutboundBody::Template {
            template: TemplateRef::new("promo", "de", params.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn whatsapp_template_sends_header_body_and_url_button_parameters_as_components() {
        let templates = catalog();
        let def = templates.get("promo", "de");
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(Channel::WhatsApp, "4915123456789");
        let OutboundBody::Template { template: mut t } = promo(&["Erika", "Frühling", "spring-26"]) else { panic!() };
        t.payloads = vec!["stop".into()];
        let body = OutboundBody::Template { template: t.clone() };
        let req = |body| SendRequest {
            account: &account,
            contact: &contact,
            body,
            purpose: Purpose::Marketing,
            reference: None,
            template: def,
        };
        let v = request_body(&req(&body)).unwrap();
        assert_eq!(
            v["template"],
            json!({
                "name": "promo",
                "language": { "code": "de", "policy": "deterministic" },
                "components": [
                    { "type": "header", "parameters": [
                        { "type": "image", "image": { "link": "https://cdn.example/spring.jpg" } }
                    ] },
                    { "type": "body", "parameters": [
                        { "type": "text", "text": "Erika" }, { "type": "text", "text": "Frühling" }
                    ] },
                    { "type": "button", "sub_type": "quick_reply", "index": "0",
                      "parameters": [{ "type": "payload", "payload": "stop" }] },
                    // The quick reply is button 0, so the first URL button is button 1; the
                    // static second URL button takes no parameter.
                    { "type": "button", "sub_type": "url", "index": "1",
                      "parameters": [{ "type": "text", "text": "spring-26" }] }
                ]
            })
        );
        // A message's own image (an uploaded media id) replaces the catalog's.
        t.header_image = Some("1043219".into());
        let v = request_body(&req(&OutboundBody::Template { template: t })).unwrap();
        assert_eq!(v.pointer("/template/components/0/parameters/0/image"), Some(&json!({ "id": "1043219" })));
    }

    #[test]
    fn a_template_the_catalog_does_not_know_sends_every_parameter_in_the_body() {
        // So does a count the catalog refuses: Graph answers #132000, never a guessed split.
        for def in [None, catalog().get("promo", "de").cloned()] {
            let account = AccountId::parse("100000000000001").unwrap();
            let contact = contact(Channel::WhatsApp, "4915123456789");
            let body = promo(&["a", "b"]);
            let req = SendRequest {
                account: &account,
                contact: &contact,
                body: &body,
                purpose: Purpose::Marketing,
                reference: None,
                template: def.as_ref(),
            };
            let v = request_body(&req).unwrap();
            let components = v.pointer("/template/components").unwrap().as_array().unwrap();
            let body = components.iter().find(|c| c["type"] == "body").unwrap();
            assert_eq!(body["parameters"].as_array().unwrap().len(), 2, "{v}");
            assert!(components.iter().all(|c| c["type"] != "button"), "{v}");
        }
    }

    #[test]
    fn marketing_templates_go_to_the_marketing_messages_api_only_when_it_is_on() {
        let templates = catalog();
        let account = AccountId::parse("100000000000001").unwrap();
        let wa = contact(Channel::WhatsApp, "4915123456789");
        let receipt = OutboundBody::Template { template: TemplateRef::new("receipt", "de", vec!["#1".into()]) };
        let promo = promo(&["a", "b", "c"]);
        let text = OutboundBody::text("Hallo");
        let req = |body, name: &str| SendRequest {
            account: &account,
            contact: &wa,
            body,
            purpose: Purpose::Marketing,
            reference: None,
            template: templates.get(name, "de"),
        };
        assert_eq!(endpoint_for(&req(&promo, "promo"), true), Endpoint::MarketingMessages);
        assert_eq!(endpoint_for(&req(&promo, "promo"), false), Endpoint::Messages);
        assert_eq!(endpoint_for(&req(&receipt, "receipt"), true), Endpoint::Messages);
        // Only a template body of a MARKETING definition qualifies.
        assert_eq!(endpoint_for(&req(&text, "promo"), true), Endpoint::Messages);
        let unknown = SendRequest { template: None, ..req(&promo, "promo") };
        assert_eq!(endpoint_for(&unknown, true), Endpoint::Messages);
        let fb = contact(Channel::Messenger, "240001");
        assert_eq!(endpoint_for(&SendRequest { contact: &fb, ..req(&promo, "promo") }, true), Endpoint::Messages);
    }

    #[test]
    fn messenger_and_instagram_text_bodies() {
        for channel in [Channel::Messenger, Channel::Instagram] {
            let v = body_for(channel, "24000000000000001", &OutboundBody::text("Hi"), Purpose::Reply, Some("out-9"))
                .unwrap();
            assert_eq!(
                v,
                json!({
                    "recipient": { "id": "24000000000000001" },
                    "messaging_type": "RESPONSE",
                    "message": { "text": "Hi", "metadata": "out-9" }
                })
            );
        }
        let v =
            body_for(Channel::Messenger, "240001", &OutboundBody::text("Shipped"), Purpose::OrderUpdate, None).unwrap();
        assert_eq!(v["messaging_type"], "UPDATE");
    }

    #[test]
    fn messenger_buttons_become_quick_replies() {
        for channel in [Channel::Messenger, Channel::Instagram] {
            let v = body_for(channel, "240001", &buttons(), Purpose::Marketing, None).unwrap();
            assert_eq!(
                v,
                json!({
                    "recipient": { "id": "240001" },
                    "messaging_type": "UPDATE",
                    "message": { "text": "Add to cart?", "quick_replies": [
                        { "content_type": "text", "title": "Yes", "payload": "add:SKU1" },
                        { "content_type": "text", "title": "No thanks", "payload": "no" }
                    ] }
                })
            );
        }
    }

    #[test]
    fn messenger_list_rows_become_at_most_13_quick_replies() {
        let v = body_for(Channel::Instagram, "240001", &list(), Purpose::Reply, None).unwrap();
        assert_eq!(
            v,
            json!({
                "recipient": { "id": "240001" },
                "messaging_type": "RESPONSE",
                "message": { "text": "Pick a size", "quick_replies": [
                    { "content_type": "text", "title": "Small", "payload": "size:s" },
                    { "content_type": "text", "title": "Medium", "payload": "size:m" }
                ] }
            })
        );
        let rows: Vec<ListRow> = (0..20)
            .map(|i| ListRow { id: format!("r{i}"), title: format!("A rather long row title {i}"), description: None })
            .collect();
        let big = OutboundBody::List {
            text: "t".into(),
            button: "b".into(),
            sections: vec![
                ListSection { title: "a".into(), rows: rows[..8].to_vec() },
                ListSection { title: "b".into(), rows: rows[8..].to_vec() },
            ],
        };
        let v = body_for(Channel::Messenger, "240001", &big, Purpose::Reply, None).unwrap();
        let qr = v["message"]["quick_replies"].as_array().unwrap();
        assert_eq!(qr.len(), 13);
        assert_eq!(qr[12]["payload"], "r12");
        assert_eq!(qr[0]["title"], "A rather long row ti");
    }

    #[test]
    fn templates_are_refused_on_messenger_and_instagram() {
        for channel in [Channel::Messenger, Channel::Instagram] {
            let err = body_for(channel, "240001", &template(&["x"]), Purpose::OrderUpdate, None).unwrap_err();
            assert!(matches!(err, SendError::Config(_)), "{err:?}");
            assert_eq!(err.kind(), "config");
            assert_eq!(err.code(), None);
        }
    }

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        let table: &[(i64, ErrorClass)] = &[
            (130429, Retryable),
            (131056, Retryable),
            (4, Retryable),
            (80007, Retryable),
            (131000, Retryable),
            (131016, Retryable),
            (2, Retryable),
            (1, Retryable),
            (131057, Retryable),
            (2494100, Retryable),
            (131047, WindowClosed),
            (131026, Permanent),
            (130403, Permanent),
            (368, Permanent),
            (131031, Permanent),
            (100, Permanent),
            (132000, Permanent),
            (132001, Permanent),
            (132015, Permanent),
            (131049, Permanent),
            (131050, Permanent),
            (131008, Permanent),
            (131009, Permanent),
            (131021, Permanent),
            (131051, Permanent),
            (130472, Permanent),
            (131064, Permanent),
            (130497, Permanent),
            (3, Permanent),
            (10, Permanent),
            (200, Permanent),
            (250, Permanent),
            (299, Permanent),
            (987654, Permanent),
            (131048, Pause),
            (190, Pause),
            (0, Pause),
        ];
        for &(code, class) in table {
            assert_eq!(classify(code), class, "code {code}");
        }
        assert_eq!(classify_with_subcode(10, Some(2018278)), WindowClosed);
        assert_eq!(classify_with_subcode(10, Some(2534022)), WindowClosed);
        assert_eq!(classify_with_subcode(10, Some(1)), Permanent);
        assert_eq!(classify_with_subcode(131047, None), WindowClosed);
    }

    #[test]
    fn parses_graph_error_bodies() {
        let body = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,
            "error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},
            "error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
        let e = GraphError::parse(body).unwrap();
        assert_eq!(e.code, 130429);
        assert_eq!(e.subcode, Some(2494055));
        assert_eq!(e.details.as_deref(), Some("Cloud API message throughput has been reached."));
        assert_eq!(e.fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
        assert_eq!(
            e.describe(),
            "(#130429) Rate limit hit: Cloud API message throughput has been reached. [subcode 2494055] [fbtrace_id Az8or2yhqkZfEZ-_4Qn_Bam]"
        );
        // Class comes from the code, whatever the HTTP status.
        let err = interpret_response(Channel::WhatsApp, 400, body).unwrap_err();
        assert!(matches!(err, SendError::Retryable { code: Some(130429), .. }), "{err:?}");

        let messenger = br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"x"}}"#;
        let err = interpret_response(Channel::Messenger, 400, messenger).unwrap_err();
        assert!(matches!(err, SendError::WindowClosed { code: 10, .. }), "{err:?}");

        let window = br#"{"error":{"message":"(#131047) Re-engagement message","code":131047,"error_data":{"details":"More than 24 hours have passed"}}}"#;
        let err = interpret_response(Channel::WhatsApp, 400, window).unwrap_err();
        assert_eq!((err.kind(), err.code()), ("window_closed", Some(131047)));

        let token = br#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#;
        let err = interpret_response(Channel::Instagram, 401, token).unwrap_err();
        assert!(matches!(err, SendError::Pause { code: 190, .. }));

        let string_code = br#"{"error":{"message":"odd","code":"131026","error_data":"plain string"}}"#;
        let e = GraphError::parse(string_code).unwrap();
        assert_eq!((e.code, e.details.as_deref()), (131026, Some("plain string")));
        assert!(matches!(e.into_send_error(), SendError::Permanent { code: Some(131026), .. }));
    }

    #[test]
    fn non_graph_error_bodies_use_the_http_status() {
        let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
        assert!(GraphError::parse(html).is_none());
        let err = interpret_response(Channel::WhatsApp, 502, html).unwrap_err();
        assert!(
            matches!(&err, SendError::Retryable { code: None, detail } if detail.contains("502 Bad Gateway")),
            "{err:?}"
        );
        for status in [408, 429, 500, 503] {
            assert_eq!(interpret_response(Channel::Messenger, status, b"").unwrap_err().kind(), "retryable");
        }
        assert_eq!(interpret_response(Channel::Messenger, 404, b"not found").unwrap_err().kind(), "permanent");
        // JSON, but not a Graph error.
        assert_eq!(interpret_response(Channel::WhatsApp, 400, br#"{"oops":1}"#).unwrap_err().kind(), "permanent");
    }

    #[test]
    fn parses_success_bodies() {
        let wa = br#"{"messaging_product":"whatsapp","contacts":[{"input":"+4915123456789","wa_id":"4915123456789"}],"messages":[{"id":"wamid.HBgLNDkxNTE=","message_status":"accepted"}]}"#;
        assert_eq!(interpret_response(Channel::WhatsApp, 200, wa).unwrap().as_str(), "wamid.HBgLNDkxNTE=");
        let fb = br#"{"recipient_id":"240001","message_id":"m_AbC-12_x"}"#;
        assert_eq!(interpret_response(Channel::Messenger, 200, fb).unwrap().as_str(), "m_AbC-12_x");
        assert_eq!(interpret_response(Channel::Instagram, 200, fb).unwrap().as_str(), "m_AbC-12_x");

        // Accepted but no id: permanent (a retry could double-send), with a clear detail.
        let err = interpret_response(Channel::WhatsApp, 200, br#"{"messaging_product":"whatsapp"}"#).unwrap_err();
        assert!(
            matches!(&err, SendError::Permanent { code: None, detail } if detail.contains("without a message id")),
            "{err:?}"
        );
        // The wrong channel's shape has no id either.
        assert_eq!(interpret_response(Channel::Messenger, 200, wa).unwrap_err().kind(), "permanent");
        assert_eq!(interpret_response(Channel::WhatsApp, 200, b"not json").unwrap_err().kind(), "permanent");
    }

    #[test]
    fn error_display_names_the_class_and_code() {
        let e = SendError::Retryable { code: Some(4), detail: "slow down".into() };
        assert_eq!(e.to_string(), "retryable send failure (code 4): slow down");
        let e = SendError::Retryable { code: None, detail: "timeout".into() };
        assert_eq!(e.to_string(), "retryable send failure: timeout");
        assert_eq!(SendError::Pause { code: 190, detail: "token".into() }.code(), Some(190));
    }

    // ---- end to end against a tiny HTTP/1.1 server ----

    const TOKEN: &str = "test-token-s3cr3t";

    fn settings(base: &str, timeout_ms: u64) -> MetaSettings {
        MetaSettings {
            app_secret: Secret::from("app"),
            app_secret_previous: None,
            verify_token: Secret::from("verify"),
            access_token: Secret::from(TOKEN),
            graph_api_base: base.to_string(),
            graph_api_version: "v25.0".to_string(),
            graph_timeout: Duration::from_millis(timeout_ms),
            max_body_bytes: 1024,
            marketing_messages_api: false,
        }
    }

    struct Captured {
        head: String,
        body: Value,
    }

    /// Serves one request with a canned answer; returns the base URL and the captured request.
    async fn serve_once(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<Captured>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = sock.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    break (pos + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let reason = if status < 300 { "OK" } else { "Error" };
            let response = format!(
                "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(response.as_bytes()).await.unwrap();
            sock.shutdown().await.ok();
            Captured {
                head: String::from_utf8_lossy(&buf[..head_end]).to_string(),
                body: serde_json::from_slice(&buf[head_end..head_end + len]).unwrap(),
            }
        });
        (base, handle)
    }

    #[tokio::test]
    async fn sends_whatsapp_text_with_bearer_token() {
        let (base, server) = serve_once(
            200,
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"+4915123456789","wa_id":"4915123456789"}],"messages":[{"id":"wamid.TEST1"}]}"#,
        )
        .await;
        let client = GraphClient::new(&settings(&format!("{base}/"), 2000)).unwrap();
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(Channel::WhatsApp, "4915123456789");
        let body = OutboundBody::text("Hallo");
        let id = client
            .send(&SendRequest {
                account: &account,
                contact: &contact,
                body: &body,
                purpose: Purpose::Reply,
                reference: Some("r1"),
                template: None,
            })
            .await
            .unwrap();
        assert_eq!(id.as_str(), "wamid.TEST1");
        let got = server.await.unwrap();
        assert!(got.head.starts_with("POST /v25.0/100000000000001/messages HTTP/1.1\r\n"), "{}", got.head);
        assert!(got.head.to_lowercase().contains(&format!("authorization: bearer {TOKEN}")), "{}", got.head);
        assert!(got.head.to_lowercase().contains("content-type: application/json"));
        assert_eq!(got.body["to"], "+4915123456789");
        assert_eq!(got.body["biz_opaque_callback_data"], "r1");
    }

    #[tokio::test]
    async fn marketing_templates_are_posted_to_marketing_messages_with_the_messages_body() {
        let answer = r#"{"messaging_product":"whatsapp","contacts":[{"input":"+4915123456789","wa_id":"4915123456789"}],"messages":[{"id":"wamid.MM1"}]}"#;
        let templates = catalog();
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(Channel::WhatsApp, "4915123456789");
        let body = promo(&["Erika", "Frühling", "spring-26"]);
        let req = SendRequest {
            account: &account,
            contact: &contact,
            body: &body,
            purpose: Purpose::Marketing,
            reference: Some("c-1"),
            template: templates.get("promo", "de"),
        };
        for (on, path) in [(true, "marketing_messages"), (false, "messages")] {
            let (base, server) = serve_once(200, answer).await;
            let client =
                GraphClient::new(&MetaSettings { marketing_messages_api: on, ..settings(&base, 2000) }).unwrap();
            assert_eq!(client.send(&req).await.unwrap().as_str(), "wamid.MM1");
            let got = server.await.unwrap();
            let want = format!("POST /v25.0/100000000000001/{path} HTTP/1.1\r\n");
            assert!(got.head.starts_with(&want), "{}", got.head);
            assert_eq!(got.body, request_body(&req).unwrap());
        }
    }

    #[tokio::test]
    async fn messenger_uses_me_and_instagram_its_account() {
        for (channel, path) in
            [(Channel::Messenger, "/v25.0/me/messages"), (Channel::Instagram, "/v25.0/17841400000000001/messages")]
        {
            let (base, server) = serve_once(200, r#"{"recipient_id":"240001","message_id":"m_abc"}"#).await;
            let client = GraphClient::new(&settings(&base, 2000)).unwrap();
            let account = AccountId::parse("17841400000000001").unwrap();
            let contact = contact(channel, "240001");
            let body = OutboundBody::text("Hi");
            let id = client
                .send(&SendRequest {
                    account: &account,
                    contact: &contact,
                    body: &body,
                    purpose: Purpose::Reply,
                    reference: None,
                    template: None,
                })
                .await
                .unwrap();
            assert_eq!(id.as_str(), "m_abc");
            let got = server.await.unwrap();
            assert!(got.head.starts_with(&format!("POST {path} HTTP/1.1")), "{}", got.head);
            assert_eq!(got.body["recipient"]["id"], "240001");
        }
    }

    #[tokio::test]
    async fn graph_errors_are_classified_and_never_show_the_token() {
        let (base, _server) = serve_once(
            429,
            r#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"fbtrace_id":"AbC"}}"#,
        )
        .await;
        let client = GraphClient::new(&settings(&base, 2000)).unwrap();
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(Channel::WhatsApp, "4915123456789");
        let body = OutboundBody::text("Hallo");
        let err = client
            .send(&SendRequest {
                account: &account,
                contact: &contact,
                body: &body,
                purpose: Purpose::Reply,
                reference: None,
                template: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Retryable { code: Some(131056), .. }), "{err:?}");
        assert!(!format!("{err} {err:?} {client:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn timeouts_and_refused_connections_are_retryable() {
        // Accepts but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sock);
        });
        let client = GraphClient::new(&settings(&base, 200)).unwrap();
        let account = AccountId::parse("100000000000001").unwrap();
        let contact = contact(Channel::WhatsApp, "4915123456789");
        let body = OutboundBody::text("Hallo");
        let req = SendRequest {
            account: &account,
            contact: &contact,
            body: &body,
            purpose: Purpose::Reply,
            reference: None,
            template: None,
        };
        let err = client.send(&req).await.unwrap_err();
        assert!(matches!(&err, SendError::Retryable { code: None, detail } if detail.contains("200 ms")), "{err:?}");
        hold.abort();

        // Nobody listens on a port we just released.
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let client = GraphClient::new(&settings(&format!("http://127.0.0.1:{port}"), 2000)).unwrap();
        let err = client.send(&req).await.unwrap_err();
        assert!(matches!(err, SendError::Retryable { code: None, .. }), "{err:?}");
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(matches!(GraphClient::new(&settings("graph.facebook.com", 1000)), Err(SendError::Config(_))));
        let client = GraphClient::new(&settings("https://graph.facebook.com/", 1000)).unwrap();
        assert_eq!(
            client.endpoint(Channel::WhatsApp, &AccountId::parse("123").unwrap(), Endpoint::Messages),
            "https://graph.facebook.com/v25.0/123/messages"
        );
        assert_eq!(
            client.endpoint(Channel::WhatsApp, &AccountId::parse("123").unwrap(), Endpoint::MarketingMessages),
            "https://graph.facebook.com/v25.0/123/marketing_messages"
        );
    }
}
