//! The sandbox's bridge receiver (only in `make dev` and tests, never deployed): stands in for a
//! brand's inbox so a newcomer can watch the conversation events arrive.
//!
//! - `POST /sandbox/bridge` verifies the Standard Webhooks signature with the bridge's secret
//!   (all three headers, timestamp within 5 minutes, constant-time comparison), answers 401 on a
//!   bad one and 204 after recording a good one;
//! - `GET /sandbox/bridge` lists what arrived, oldest first: `{"id","type","timestamp",
//!   "payload","duplicate","received_at"}` (`duplicate`: the id arrived before, as an at-least-once
//!   receiver must expect).
//!
//! Routes carry no `/sandbox` prefix; the local runtime nests [`BridgeReceiver::router`] under it.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parley::bridge::Signer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The receiver's state; clones share it.
#[derive(Clone)]
pub struct BridgeReceiver {
    /// `None`: the bridge is off, there is no secret to verify with.
    signer: Option<Signer>,
    received: Arc<Mutex<Vec<Value>>>,
}

impl BridgeReceiver {
    pub fn new(signer: Option<Signer>) -> Self {
        Self { signer, received: Arc::default() }
    }

    pub fn router(&self) -> Router {
        Router::new().route("/bridge", get(list).post(receive)).with_state(self.clone())
    }

    fn received(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

async fn receive(State(r): State<BridgeReceiver>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signer) = &r.signer else {
        return error(
            StatusCode::NOT_FOUND,
            "bridge_off",
            "the bridge is off: set BRIDGE_WEBHOOK_URL and BRIDGE_WEBHOOK_SECRET (see .env.example)",
        );
    };
    // Verify the raw bytes before anything is parsed.
    if let Err(e) = signer.verify(&body, &headers) {
        return error(StatusCode::UNAUTHORIZED, "bad_signature", &e.to_string());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let id = header(parley::bridge::signer::HEADER_ID);
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut received = r.received();
    let duplicate = received.iter().any(|d| d["id"] == id.as_str());
    received.push(json!({
        "id": id,
        "type": payload["type"].clone(),
        "timestamp": header(parley::bridge::signer::HEADER_TIMESTAMP),
        "payload": payload,
        "duplicate": duplicate,
        "received_at": parley::time_util::rfc3339_millis(parley::time_util::now_millis()),
    }));
    StatusCode::NO_CONTENT.into_response()
}

async fn list(State(r): State<BridgeReceiver>) -> Json<Vec<Value>> {
    Json(r.received().clone())
}
