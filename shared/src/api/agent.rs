//! The agent API (`/agent/…`): the team inbox over HTTP. Handlers decode the request, take the
//! agent's identity from the verified token ([`super::auth`]) — never from the body — and call
//! the inbox service ([`crate::inbox`]); only this module maps its errors to HTTP.
//!
//! The console polls the list and the open thread every second with `If-None-Match`: the ETag
//! covers what the team sees except the ticking window countdown (the console counts that down
//! from `window_closes_at`), so an unchanged inbox answers 304 with no body.
use super::auth::{self, Agent};
use super::{json_response, query_param, ApiError, App};
use crate::domain::inbox::State;
use crate::domain::ContactId;
use crate::inbox::{Inbox, InboxError, ListFilter, Reply};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

/// How the console signs agents in, as `GET /agent/config` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAuth {
    /// `make dev`: tokens from `POST /sandbox/agent-token`.
    Sandbox,
    /// AWS: the Cognito hosted UI (authorization code flow with PKCE).
    Cognito { domain: String, client_id: String },
}

impl ConsoleAuth {
    /// `AGENT_AUTH_DOMAIN` + `AGENT_AUTH_CLIENT_ID` (set by template.yaml) select Cognito.
    pub fn from_env() -> Self {
        match (crate::config::env_opt("AGENT_AUTH_DOMAIN"), crate::config::env_opt("AGENT_AUTH_CLIENT_ID")) {
            (Some(domain), Some(client_id)) => ConsoleAuth::Cognito { domain, client_id },
            _ => ConsoleAuth::Sandbox,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            ConsoleAuth::Sandbox => json!({ "auth": "sandbox", "cognito": null }),
            ConsoleAuth::Cognito { domain, client_id } => {
                json!({ "auth": "cognito", "cognito": { "domain": domain, "client_id": client_id } })
            }
        }
    }
}

impl App {
    /// The inbox service over this container's store, queue and content.
    pub fn inbox(&self) -> Inbox<'_, App> {
        Inbox {
            store: &self.store,
            producer: &self.producer,
            templates: &self.templates,
            accounts: &self.accounts,
            window_secs: self.settings.service_window.as_secs() as i64,
            carts: self,
        }
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::NotFound => {
                ApiError::Missing("no conversation with this contact: they never wrote, or were erased")
            }
            InboxError::WindowClosed { templates } => ApiError::Conflict {
                code: "window_closed",
                message: "The 24-hour window is closed: send an approved template instead.".into(),
                extra: json!({ "templates": templates }),
            },
            InboxError::NoConsent(purpose) => ApiError::Conflict {
                code: "no_consent",
                message: format!(
                    "The customer has not confirmed {purpose} messages; outside the window nothing else may be sent."
                ),
                extra: json!({ "purpose": purpose }),
            },
            InboxError::Refused(crate::domain::inbox::Refusal::AssignedToOther(assignee)) => ApiError::Conflict {
                code: "assigned_to_other",
                // Who has it is for the caller, not for the log line the message goes to.
                message: "this conversation is assigned to another agent; an admin can reassign it".into(),
                extra: json!({ "assignee": assignee }),
            },
            InboxError::Contended => ApiError::Conflict {
                code: "changed_concurrently",
                message: "the conversation changed at the same time; reload and try again".into(),
                extra: json!({}),
            },
            InboxError::NoShop => ApiError::Conflict {
                code: "no_shop",
                message: "no shop is connected, so there is no catalog or checkout".into(),
                extra: json!({}),
            },
            InboxError::Invalid(m) | InboxError::Cart(m) => ApiError::Unprocessable(m),
            InboxError::Store(s) => s.into(),
            InboxError::Queue(q) => q.into(),
            InboxError::Unavailable(d) => ApiError::Unavailable(d),
        }
    }
}

pub async fn route(app: &App, req: Request<Bytes>, path: &str) -> Result<Response<String>, ApiError> {
    let method = req.method().clone();
    let rest = path.strip_prefix("/agent").unwrap_or(path);
    let parts: Vec<&str> = rest.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    match (method, parts.as_slice()) {
        (Method::GET, ["config"]) => {
            let mut config = ConsoleAuth::from_env().to_json();
            // Segment amounts ("spent at least") are in the shop currency's minor units: the
            // console scales what an admin types by its exponent (JPY 0, EUR 2, KWD 3).
            let currency = app.shops.shop_currency;
            config["shop_currency"] = json!({ "code": currency.as_str(), "exponent": currency.exponent() });
            Ok(json_response(StatusCode::OK, &config))
        }
        (_, ["config"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        // The console's static files (no token: the page signs the agent in).
        (Method::GET, []) => Ok(super::console::index(&req, &ConsoleAuth::from_env())),
        (Method::GET, ["assets", file]) => super::console::asset(&req, file, &ConsoleAuth::from_env()),
        (method, parts) => {
            // Everything else needs a verified token.
            let agent = auth::agent(&req)?;
            authed(app, &req, &agent, method, parts).await
        }
    }
}

async fn authed(
    app: &App,
    req: &Request<Bytes>,
    agent: &Agent,
    method: Method,
    parts: &[&str],
) -> Result<Response<String>, ApiError> {
    let now = crate::time_util::now_unix();
    let inbox = app.inbox();
    match (method, parts) {
        (Method::GET, ["me"]) => Ok(json_response(StatusCode::OK, &json!({ "id": agent.id, "role": agent.role }))),
        (Method::GET, ["conversations"]) => {
            let filter = list_filter(req, agent)?;
            let list = inbox.list(&filter, now).await?;
            Ok(cached(req, json!({ "conversations": list })))
        }
        (Method::GET, ["conversations", c, a]) => {
            let contact = super::path_contact(c, a)?;
            let limit = match query_param(req, "limit") {
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=200).contains(l))
                    .ok_or_else(|| ApiError::BadRequest("limit must be a number from 1 to 200".into()))?,
                None => 50,
            };
            let before = query_param(req, "before");
            let thread = inbox.thread(&contact, before.as_deref(), limit, now).await?;
            Ok(cached(req, serde_json::to_value(thread).map_err(|e| ApiError::Internal(e.to_string()))?))
        }
        (Method::POST, ["conversations", c, a, action]) => {
            let contact = super::path_contact(c, a)?;
            conversation_action(app, req, agent, &contact, action, now).await
        }
        (_, ["conversations", _, _, action]) if ACTIONS.contains(action) => {
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        }
        (_, ["conversations"] | ["conversations", _, _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (Method::GET, ["catalog"]) => {
            let q = query_param(req, "q").unwrap_or_default();
            let items = inbox.catalog(&q).await?;
            let products: Vec<_> = items
                .iter()
                .map(|i| {
                    json!({
                        "sku": i.sku.as_str(), "name": i.title, "available": i.available, "category": i.category,
                        "price": { "minor": i.price.minor, "currency": i.price.currency.as_str(), "display": i.price.to_string() },
                    })
                })
                .collect();
            Ok(json_response(StatusCode::OK, &json!({ "products": products })))
        }
        (Method::GET, ["templates"]) => Ok(json_response(StatusCode::OK, &json!({ "templates": inbox.templates() }))),
        (Method::GET, ["audit"]) => {
            agent.require_admin()?;
            let (Some(c), Some(a)) = (query_param(req, "channel"), query_param(req, "address")) else {
                return Err(ApiError::BadRequest("channel and address are required".into()));
            };
            let contact = super::path_contact(&c, &a)?;
            let events = inbox.audit_trail(&contact).await?;
            Ok(json_response(StatusCode::OK, &json!({ "events": events })))
        }
        (_, ["me" | "catalog" | "templates" | "audit"]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        _ => Err(ApiError::NotFound),
    }
}

const ACTIONS: &[&str] = &["claim", "assign", "messages", "cart", "notes", "tags", "release", "resolve", "read"];

fn list_filter(req: &Request<Bytes>, agent: &Agent) -> Result<ListFilter, ApiError> {
    let state = match query_param(req, "state").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            State::parse(&s)
                .ok_or_else(|| ApiError::BadRequest("state must be one of waiting, assigned, resolved, bot".into()))?,
        ),
        None => None,
    };
    let channel = match query_param(req, "channel").filter(|s| !s.is_empty()) {
        Some(c) => Some(
            c.parse().map_err(|_| ApiError::BadRequest("channel must be whatsapp, messenger or instagram".into()))?,
        ),
        None => None,
    };
    let assignee =
        query_param(req, "assignee").filter(|s| !s.is_empty()).map(|a| if a == "me" { agent.id.clone() } else { a });
    Ok(ListFilter { state, channel, assignee })
}

fn body<'a, T: Deserialize<'a>>(req: &'a Request<Bytes>) -> Result<T, ApiError> {
    crate::privacy::from_json_slice(req.body()).map_err(ApiError::BadRequest)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    assignee: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    name: String,
    language: String,
    #[serde(default)]
    parameters: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    text: Option<String>,
    template: Option<TemplateBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CartItem {
    sku: String,
    #[serde(default = "one")]
    quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CartBody {
    #[serde(default)]
    items: Vec<CartItem>,
    #[serde(default)]
    send_checkout_link: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsBody {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

async fn conversation_action(
    app: &App,
    req: &Request<Bytes>,
    agent: &Agent,
    contact: &ContactId,
    action: &str,
    now: i64,
) -> Result<Response<String>, ApiError> {
    let inbox = app.inbox();
    let state = |c: crate::domain::inbox::Conversation| {
        json_response(StatusCode::OK, &json!({ "state": c.state, "assignee": c.assignee }))
    };
    match action {
        "claim" => Ok(state(inbox.claim(&agent.id, contact, now).await?)),
        "assign" => {
            agent.require_admin()?;
            let b: AssignBody = body(req)?;
            Ok(state(inbox.assign(&agent.id, contact, &b.assignee, now).await?))
        }
        "release" => Ok(state(inbox.release(&agent.id, contact, now).await?)),
        "resolve" => Ok(state(inbox.resolve(&agent.id, contact, now).await?)),
        "read" => {
            inbox.mark_read(contact).await?;
            Ok(Response::builder().status(StatusCode::NO_CONTENT).body(String::new()).expect("valid response"))
        }
        "messages" => {
            let b: MessageBody = body(req)?;
            let reply = match (b.text, b.template) {
                (Some(text), None) => Reply::Text(text),
                (None, Some(t)) => Reply::Template { name: t.name, language: t.language, parameters: t.parameters },
                _ => return Err(ApiError::BadRequest("send either text or template".into())),
            };
            let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok());
            let id = inbox.reply(&agent.id, contact, reply, key, now).await?;
            Ok(json_response(StatusCode::ACCEPTED, &json!({ "id": id.as_str(), "status": "queued" })))
        }
        "cart" => {
            let b: CartBody = body(req)?;
            let items: Vec<(String, u32)> = b.items.into_iter().map(|i| (i.sku, i.quantity)).collect();
            let out = inbox.cart(&agent.id, contact, &items, b.send_checkout_link, now).await?;
            Ok(json_response(
                StatusCode::ACCEPTED,
                &serde_json::to_value(out).map_err(|e| ApiError::Internal(e.to_string()))?,
            ))
        }
        "notes" => {
            let b: NoteBody = body(req)?;
            let note = inbox.add_note(&agent.id, contact, &b.text).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &serde_json::to_value(note).map_err(|e| ApiError::Internal(e.to_string()))?,
            ))
        }
        "tags" => {
            let b: TagsBody = body(req)?;
            let tags = crate::inbox::change_tags(&app.store, contact, &b.add, &b.remove).await?;
            let event = crate::store::inbox::AuditEvent {
                agent: agent.id.clone(),
                action: "tags".into(),
                detail: json!({ "add": b.add, "remove": b.remove }),
                at_ms: now * 1000,
            };
            app.store.audit(contact, &event).await?;
            Ok(json_response(StatusCode::OK, &json!({ "tags": tags })))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// A JSON answer with an ETag over what the team sees (the window countdown left out); 304
/// when the caller has it already.
pub(super) fn cached(req: &Request<Bytes>, body: serde_json::Value) -> Response<String> {
    use sha2::{Digest, Sha256};
    let mut stable = body.clone();
    strip(&mut stable, "window_remaining_secs");
    let digest = Sha256::digest(stable.to_string().as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    let matches = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag));
    let builder =
        Response::builder().header(http::header::ETAG, &etag).header(http::header::CACHE_CONTROL, "no-cache, private");
    if matches {
        return builder.status(StatusCode::NOT_MODIFIED).body(String::new()).expect("valid response");
    }
    builder
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .expect("valid response")
}

fn strip(v: &mut serde_json::Value, key: &str) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| strip(x, key));
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip(x, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_ignores_the_countdown_and_answers_304() {
        let body = |remaining: i64, text: &str| json!({ "conversations": [{ "window_remaining_secs": remaining, "last_message": { "text": text } }] });
        let first = cached(&Request::builder().body(Bytes::new()).unwrap(), body(100, "Hilfe"));
        let etag = first.headers()[http::header::ETAG].to_str().unwrap().to_string();
        let again = Request::builder().header("if-none-match", &etag).body(Bytes::new()).unwrap();
        assert_eq!(cached(&again, body(99, "Hilfe")).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(cached(&again, body(99, "Hallo?")).status(), StatusCode::OK);
    }
}
