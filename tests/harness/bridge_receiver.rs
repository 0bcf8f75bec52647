//! A brand's inbox as the bridge tests see it: an HTTP receiver on a free port that records every
//! delivery attempt and checks its Standard Webhooks signature on its own — plain HMAC-SHA256
//! over `{id}.{timestamp}.{body}` with the `whsec_` key, compared in constant time
//! (`Mac::verify_slice`), the timestamp within 5 minutes — not with the library Parley signs with.
//! It answers the statuses it is told to, in order, then 200.
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One delivery attempt as it arrived.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    /// The signature checked out with the receiver's secret.
    pub verified: bool,
    /// What the receiver answered.
    pub answered: u16,
    pub at: Instant,
}

impl Attempt {
    pub fn payload(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn kind(&self) -> String {
        self.payload()["type"].as_str().unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct Inner {
    attempts: Vec<Attempt>,
    script: VecDeque<u16>,
    always: Option<u16>,
}

#[derive(Clone)]
struct Shared {
    secret: String,
    inner: Arc<Mutex<Inner>>,
}

/// The receiver; dropped, it stops.
pub struct Receiver {
    /// Its URL, with a query key as real relays often have (it must never show in a log).
    pub url: String,
    /// `whsec_…`
    pub secret: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let secret = parley::bridge::SigningSecret::generate();
        let shared = Shared { secret: secret.clone(), inner: Arc::default() };
        let router = Router::new().route("/inbox", post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let key = uuid::Uuid::new_v4().simple().to_string();
        Self { url: format!("http://{addr}/inbox?key=relay-{key}"), secret, shared, server }
    }

    /// The next answers, in order (then 200 again).
    pub fn answer(&self, statuses: &[u16]) {
        self.shared.inner.lock().unwrap().script.extend(statuses);
    }

    /// Answer every attempt with `status` from now on.
    pub fn always(&self, status: u16) {
        self.shared.inner.lock().unwrap().always = Some(status);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.inner.lock().unwrap().attempts.clone()
    }

    /// The attempts whose payload matches `pred`.
    pub fn matching(&self, pred: impl Fn(&Value) -> bool) -> Vec<Attempt> {
        self.attempts().into_iter().filter(|a| pred(&a.payload())).collect()
    }

    /// Waits until at least `n` attempts match `pred`, then returns them.
    pub async fn wait_for(&self, n: usize, within: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Attempt> {
        let start = Instant::now();
        loop {
            let got = self.matching(&pred);
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < within,
                "expected {n} matching deliveries within {within:?}: {:#?}",
                self.attempts()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Standard Webhooks verification, written out from the spec.
pub fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8]) -> bool {
    let Some(key) =
        secret.strip_prefix("whsec_").and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
    else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    if (crate::now() - ts).abs() > 300 {
        return false;
    }
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|s| {
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(s) else { return false };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(&signed);
        mac.verify_slice(&sig).is_ok()
    })
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (id, timestamp, signature) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    let verified = verify(&s.secret, &id, &timestamp, &signature, &body);
    let mut inner = s.inner.lock().unwrap();
    let answered = if !verified { 401 } else { inner.script.pop_front().or(inner.always).unwrap_or(200) };
    inner.attempts.push(Attempt {
        id,
        timestamp,
        signature,
        body: String::from_utf8_lossy(&body).into_owned(),
        verified,
        answered,
        at: Instant::now(),
    });
    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
