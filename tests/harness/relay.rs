//! Relays HTTP requests to an upstream endpoint: the benchmarks' loopback fronts (the TLS front,
//! the cost meter) sit between the functions and the local endpoints with it. Requests and
//! answers pass unchanged (a signed request's headers included); the framing is redone.
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub struct Relay {
    /// Pooled: connections to the upstream are reused where it keeps them open.
    http: reqwest::Client,
    upstream: String,
}

/// The upstream's answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Relay {
    /// `upstream`: an `http://host:port` URL.
    pub fn new(upstream: &str) -> Self {
        Self { http: reqwest::Client::new(), upstream: upstream.trim_end_matches('/').to_string() }
    }

    /// Sends the request upstream; `None` when the upstream could not be reached.
    pub async fn send(&self, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Option<Answer> {
        let url = format!("{}{}", self.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
        let mut req = self.http.request(method, url).body(body);
        for (k, v) in headers {
            if k != "content-length" {
                req = req.header(k, v);
            }
        }
        let resp = req.send().await.ok()?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.bytes().await.ok()?;
        Some(Answer { status, headers, body })
    }

    /// The whole round trip for a server's handler: the upstream's answer, or 502.
    pub async fn forward(&self, req: axum::extract::Request) -> Response {
        let (parts, body) = req.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        match self.send(parts.method, &parts.uri, &parts.headers, body).await {
            Some(answer) => answer.into_response(),
            None => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut out = Response::builder().status(self.status.as_u16());
        for (k, v) in &self.headers {
            // Framing is the server's own; a `Connection: close` would end the kept connection.
            if k != "content-length" && k != "transfer-encoding" && k != "connection" {
                out = out.header(k.as_str(), v.as_bytes());
            }
        }
        out.body(Body::from(self.body)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
    }
}
