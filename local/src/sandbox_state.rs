//! The sandbox page's state panel (only in `make dev` and tests, never deployed):
//! `GET /sandbox/state?channel=&address=` answers what Parley keeps about one contact, read from
//! the real store through the shared crate ([`parley::ops::contact_state`]), plus what only the
//! local system can see: queue and DLQ depths (the same call as `parley queues`) and the metric
//! totals the functions counted in this process.
//!
//! `conversation` is the store's history of the contact (so a message sent with curl straight to
//! the webhook shows too), each message joined with how the sandbox saw it: the rendered text and
//! buttons of what was sent (matched by the outbound id the sender passes as the callback
//! reference), and for the customer's lines whether they came through the sandbox. Lines the
//! store does not have (yet, or ever: the webhook refused them) come from the sandbox's record.
use crate::sandbox::Sandbox;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parley::api::App;
use parley::domain::{Channel, ContactId, InboundMessageId};
use parley::ops::queues::Queues;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub struct StatePanel {
    /// The operator's view of the store (not held against any function's policy).
    app: Arc<App>,
    queues: Arc<Queues>,
    sandbox: Sandbox,
}

impl StatePanel {
    pub fn new(app: Arc<App>, queues: Queues, sandbox: Sandbox) -> Self {
        Self { app, queues: Arc::new(queues), sandbox }
    }

    pub fn router(&self) -> Router {
        Router::new().route("/state", get(state)).with_state(self.clone())
    }
}

#[derive(Deserialize)]
struct StateQuery {
    channel: Option<String>,
    address: Option<String>,
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": code, "message": message.into() }))).into_response()
}

/// The history id of an inbound message: the short hash its history key carries.
fn inbound_history_id(channel: Channel, message_id: &str) -> Option<String> {
    let id = InboundMessageId::parse(message_id).ok()?;
    let pk = parley::store::keys::inbound_pk(channel, &id);
    let hash = pk.rsplit('#').next()?;
    Some(hash[..hash.len().min(16)].to_string())
}

fn unix_of(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or_default()
}

/// The store's history joined with the sandbox's record (see the module docs).
fn conversation(
    channel: Channel,
    history: &[parley::store::history::Message],
    sent: &[Value],
    chat: &[Value],
) -> Vec<Value> {
    use parley::store::history::Direction;
    let mut used_sent = vec![false; sent.len()];
    let mut used_chat = vec![false; chat.len()];
    let chat_ids: Vec<Option<String>> =
        chat.iter().map(|l| l["id"].as_str().and_then(|id| inbound_history_id(channel, id))).collect();
    let mut out: Vec<(i64, Value)> = Vec::new();
    for m in history {
        let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
        v["source"] = json!("store");
        match m.direction {
            Direction::Out => {
                if let Some(i) = sent.iter().position(|s| s["reference"].as_str() == Some(m.id.as_str())) {
                    used_sent[i] = true;
                    v["shown"] = sent[i].clone();
                }
            }
            Direction::In => {
                let i = chat_ids.iter().position(|h| h.as_deref() == Some(m.id.as_str()));
                v["via"] = json!(if i.is_some() { "sandbox" } else { "webhook" });
                if let Some(i) = i {
                    used_chat[i] = true;
                    v["payload"] = chat[i]["payload"].clone();
                }
            }
        }
        out.push((m.at, v));
    }
    // What the store does not have, placed by time among what it has.
    let mut extra: Vec<(i64, Value)> = Vec::new();
    for (i, l) in chat.iter().enumerate().filter(|(i, _)| !used_chat[*i]) {
        let code = l["webhook_status"].as_u64().unwrap_or(0);
        let accepted = (200..300).contains(&code);
        extra.push((
            unix_of(l["sent_at"].as_str().unwrap_or_default()),
            json!({
                "id": l["id"], "direction": "in", "author": "customer", "kind": "text", "text": l["text"],
                "at": unix_of(l["sent_at"].as_str().unwrap_or_default()), "payload": l["payload"],
                // Accepted but not in the history yet: the inbound worker has not taken it.
                // Refused for now: the sandbox retries it as Meta would.
                "status": if accepted { "pending" } else if l["retrying"] == true { "retrying" } else { "rejected" },
                "webhook_status": code, "source": "sandbox", "via": "sandbox", "order": i,
            }),
        ));
    }
    for (i, s) in sent.iter().enumerate().filter(|(i, _)| !used_sent[*i]) {
        let at = unix_of(s["sent_at"].as_str().unwrap_or_default());
        extra.push((
            at,
            json!({
                "id": s["id"], "direction": "out", "author": "bot", "kind": s["type"], "text": s["text"],
                "at": at, "status": "sent", "template": s["template"], "shown": s, "source": "sandbox", "order": i,
            }),
        ));
    }
    extra.sort_by_key(|(at, _)| *at);
    for (at, v) in extra {
        let pos = out.iter().position(|(t, _)| *t > at).unwrap_or(out.len());
        out.insert(pos, (at, v));
    }
    out.into_iter().map(|(_, v)| v).collect()
}

async fn state(State(p): State<StatePanel>, Query(q): Query<StateQuery>) -> Response {
    let (Some(channel), Some(address)) = (q.channel, q.address) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "channel and address are required");
    };
    let contact = match ContactId::from_path(&channel, &address) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    let now = parley::time_util::now_unix();
    let (contact_state, queues) =
        futures::join!(parley::ops::contact_state::state(&p.app, &contact, now), p.queues.stats());
    let contact_state = match contact_state {
        Ok(s) => s,
        // The error names the store's operation and code, never the person.
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", e.to_string()),
    };
    let (sent, chat) = p.sandbox.record_of(contact.channel, contact.address.as_str());
    let conversation = conversation(contact.channel, &contact_state.messages, &sent, &chat);
    let queues = match queues {
        Ok(q) => serde_json::to_value(q).unwrap_or(Value::Null),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let metrics: serde_json::Map<String, Value> =
        parley::observability::totals().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut body = serde_json::to_value(&contact_state).unwrap_or(Value::Null);
    if let Some(obj) = body.as_object_mut() {
        obj.remove("messages");
        obj.insert("channel".into(), json!(contact.channel));
        obj.insert("address".into(), json!(contact.address.as_str()));
        obj.insert("now".into(), json!(now));
        obj.insert("conversation".into(), Value::Array(conversation));
        obj.insert("queues".into(), queues);
        obj.insert("metrics".into(), Value::Object(metrics));
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley::store::history::{Direction, Message};

    fn msg(id: &str, direction: Direction, at: i64) -> Message {
        Message {
            id: id.into(),
            direction,
            kind: "text".into(),
            text: format!("text {id}"),
            at,
            author: if direction == Direction::In { "customer".into() } else { "bot".into() },
            status: if direction == Direction::In { "received".into() } else { "delivered".into() },
            error: None,
            template: None,
        }
    }

    #[test]
    fn joins_the_history_with_the_sandbox_record_and_keeps_what_only_one_has() {
        let wamid = "wamid.HBgLabc";
        let in_id = inbound_history_id(Channel::WhatsApp, wamid).unwrap();
        let history =
            vec![msg(&in_id, Direction::In, 100), msg("out-1", Direction::Out, 101), msg("h-curl", Direction::In, 200)];
        let sent = vec![json!({ "id": "wamid.S1", "reference": "out-1", "type": "interactive", "text": "shown",
                                "buttons": ["A"], "sent_at": "1970-01-01T00:01:41Z" })];
        let chat = vec![
            json!({ "id": wamid, "text": "hi", "payload": null, "webhook_status": 200, "sent_at": "1970-01-01T00:01:40Z" }),
            json!({ "id": "wamid.late", "text": "refused", "payload": null, "webhook_status": 401,
                    "retrying": false, "sent_at": "1970-01-01T00:02:30Z" }),
            json!({ "id": "wamid.busy", "text": "refused for now", "payload": null, "webhook_status": 503,
                    "retrying": true, "sent_at": "1970-01-01T00:03:30Z" }),
        ];
        let c = conversation(Channel::WhatsApp, &history, &sent, &chat);
        let ids: Vec<&str> = c.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [in_id.as_str(), "out-1", "wamid.late", "h-curl", "wamid.busy"]);
        assert_eq!(c[0]["via"], "sandbox");
        assert_eq!(c[1]["shown"]["buttons"][0], "A");
        assert_eq!(c[1]["status"], "delivered");
        assert_eq!(c[2]["status"], "rejected");
        assert_eq!(c[2]["source"], "sandbox");
        // Sent straight to the webhook (curl): only the store has it.
        assert_eq!(c[3]["via"], "webhook");
        assert_eq!(c[3]["source"], "store");
        // Refused with a 5xx, its retries not over: shown as retrying, not as refused.
        assert_eq!((c[4]["status"].as_str(), c[4]["webhook_status"].as_u64()), (Some("retrying"), Some(503)));
    }
}
