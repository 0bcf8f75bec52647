//! A loopback TCP proxy between a test system and a local AWS endpoint that can be switched to
//! misbehave the way a network or a service does: stall (accept, never answer), delay answers,
//! or reset connections. It works on bytes, below HTTP, so the app's real SDK clients and their
//! timeouts are what is tested.
//!
//! Started with [`FaultProxy::start_injecting`] it also reads the HTTP/1.1 requests passing
//! through and answers a share of them itself, the way the service does under load: throttling
//! errors and 500s in the exact wire shape of DynamoDB or SQS (both speak AWS JSON 1.0 to this
//! SDK; SQS adds its query-compatible error code in `x-amzn-query-error`), or a dropped
//! connection, before the request reaches the endpoint or after (the work done, the answer lost).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Accept and read, never forward, never answer — also on connections already open.
    Stall,
    /// Forward, but hold every chunk of the answer back this long.
    Delay(Duration),
    /// Reset every connection (RST), new and open ones.
    Reset,
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: Arc<watch::Sender<Fault>>,
    task: tokio::task::JoinHandle<()>,
    injector: Option<Arc<Injector>>,
}

/// Whose error shapes an injecting proxy answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    DynamoDb,
    Sqs,
}

/// What an injecting proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Injected {
    /// DynamoDB `ProvisionedThroughputExceededException`, SQS `RequestThrottled` (400).
    Throttled,
    /// DynamoDB `ThrottlingException`, SQS `ThrottlingException` (query code `Throttling`) (400).
    ThrottlingException,
    /// `InternalServerError` / `InternalFailure` (500).
    ServerError,
    /// Reset before the request is forwarded: the endpoint never saw it.
    DroppedBefore,
    /// Forwarded and answered by the endpoint, then reset: the work is done, the answer lost.
    DroppedAfter,
}

const INJECTED: [Injected; 5] = [
    Injected::Throttled,
    Injected::ThrottlingException,
    Injected::ServerError,
    Injected::DroppedBefore,
    Injected::DroppedAfter,
];

/// Draws, for each request in arrival order, whether and how it fails: a seeded RNG, so a run's
/// sequence of faults can be repeated (which request meets which depends on timing).
struct Injector {
    service: Service,
    /// `X-Amz-Target`s passed through untouched.
    exempt: &'static [&'static str],
    /// Faults per million requests.
    rate_ppm: u64,
    rng: Mutex<SplitMix64>,
    requests: AtomicU64,
    counts: [AtomicU64; 5],
}

impl Injector {
    fn draw(&self, request: &HttpMessage) -> Option<Injected> {
        if request.header("x-amz-target").is_some_and(|t| self.exempt.contains(&t.as_str())) {
            return None;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (roll, kind) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.next() % 1_000_000, rng.next() as usize % INJECTED.len())
        };
        (roll < self.rate_ppm).then(|| {
            self.counts[kind].fetch_add(1, Ordering::Relaxed);
            INJECTED[kind]
        })
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a few lines, good enough to spread faults evenly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What an injecting proxy did so far.
#[derive(Debug, Clone, Default)]
pub struct InjectionReport {
    pub requests: u64,
    pub injected: Vec<(Injected, u64)>,
}

impl InjectionReport {
    pub fn total(&self) -> u64 {
        self.injected.iter().map(|(_, n)| n).sum()
    }
}

/// The upstream's address (an `http://host:port` URL) and a listener on a free loopback port.
async fn bind(upstream: &str) -> (SocketAddr, TcpListener, SocketAddr) {
    let target = upstream.trim_start_matches("http://").trim_end_matches('/');
    let upstream: SocketAddr =
        tokio::net::lookup_host(target).await.expect("upstream resolves").next().expect("upstream has an address");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
    let addr = listener.local_addr().unwrap();
    (upstream, listener, addr)
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an `http://host:port` URL).
    pub async fn start(upstream: &str) -> Self {
        let (upstream, listener, addr) = bind(upstream).await;
        let (mode, _) = watch::channel(Fault::Pass);
        let mode = Arc::new(mode);
        let m = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, m.subscribe()));
            }
        });
        Self { addr, mode, task, injector: None }
    }

    /// Forwards to `upstream` request by request and fails `rate` (0.0..=1.0) of them, each with
    /// one of the [`Injected`] faults drawn evenly, in `service`'s wire format. Requests whose
    /// `X-Amz-Target` is in `exempt` always pass (and are not counted).
    pub async fn start_injecting(
        upstream: &str,
        service: Service,
        rate: f64,
        seed: u64,
        exempt: &'static [&'static str],
    ) -> Self {
        let (upstream, listener, addr) = bind(upstream).await;
        let (mode, _) = watch::channel(Fault::Pass);
        let injector = Arc::new(Injector {
            service,
            exempt,
            rate_ppm: (rate.clamp(0.0, 1.0) * 1_000_000.0) as u64,
            rng: Mutex::new(SplitMix64(seed)),
            requests: AtomicU64::new(0),
            counts: Default::default(),
        });
        let inj = Arc::clone(&injector);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve_injecting(client, upstream, Arc::clone(&inj)));
            }
        });
        Self { addr, mode: Arc::new(mode), task, injector: Some(injector) }
    }

    /// The requests seen and the faults injected (an injecting proxy; empty otherwise).
    pub fn report(&self) -> InjectionReport {
        let Some(inj) = &self.injector else { return InjectionReport::default() };
        InjectionReport {
            requests: inj.requests.load(Ordering::Relaxed),
            injected: INJECTED.iter().zip(&inj.counts).map(|(k, n)| (*k, n.load(Ordering::Relaxed))).collect(),
        }
    }

    /// The endpoint URL to give the system instead of the real one.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Fault>) {
    let fault = || *mode.borrow();
    match fault() {
        Fault::Stall => return black_hole(client).await,
        Fault::Reset => return reset(client),
        Fault::Pass | Fault::Delay(_) => {}
    }
    let Ok(mut up) = TcpStream::connect(upstream).await else { return reset(client) };
    let (mut from_client, mut from_up) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            r = client.read(&mut from_client) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                match fault() {
                    Fault::Stall => return black_hole(client).await,
                    Fault::Reset => return reset(client),
                    Fault::Pass | Fault::Delay(_) => {}
                }
                if up.write_all(&from_client[..n]).await.is_err() {
                    return;
                }
            }
            r = up.read(&mut from_up) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                match fault() {
                    Fault::Stall => return black_hole(client).await,
                    Fault::Reset => return reset(client),
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    Fault::Pass => {}
                }
                if client.write_all(&from_up[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads whatever the client sends and never answers, until the client gives up.
async fn black_hole(mut client: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Closes with RST instead of FIN: the client sees "connection reset by peer".
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}

/// One HTTP/1.1 message (request or response) read off a stream: head and body, as bytes.
struct HttpMessage {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl HttpMessage {
    fn header(&self, name: &str) -> Option<String> {
        String::from_utf8_lossy(&self.head).lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn bytes(&self) -> Vec<u8> {
        [&self.head[..], &self.body[..]].concat()
    }
}

/// Reads one message: the head up to the blank line, then a `Content-Length` body, a chunked
/// body (kept encoded, it is forwarded as is), or — an answer without either — up to EOF.
/// `None` when the peer closed before a whole message.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>, is_response: bool) -> Option<HttpMessage> {
    let mut chunk = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<u8> = buf.drain(..head_end).collect();
    let mut msg = HttpMessage { head, body: Vec::new() };
    if let Some(len) = msg.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while buf.len() < len {
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        msg.body = buf.drain(..len).collect();
    } else if msg.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        while !buf.windows(5).any(|w| w == b"0\r\n\r\n") {
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        let end = buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5;
        msg.body = buf.drain(..end).collect();
    } else if is_response {
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        msg.body = std::mem::take(buf);
    }
    Some(msg)
}

/// Request by request: forward on a fresh upstream connection, or inject a fault.
async fn serve_injecting(mut client: TcpStream, upstream: SocketAddr, injector: Arc<Injector>) {
    let mut from_client = Vec::new();
    while let Some(request) = read_message(&mut client, &mut from_client, false).await {
        let fault = injector.draw(&request);
        match fault {
            Some(Injected::DroppedBefore) => return reset(client),
            Some(Injected::DroppedAfter) | None => {}
            Some(error) => {
                if client.write_all(&error_response(injector.service, error)).await.is_err() {
                    return;
                }
                continue;
            }
        }
        let Ok(mut up) = TcpStream::connect(upstream).await else { return reset(client) };
        if up.write_all(&request.bytes()).await.is_err() {
            return reset(client);
        }
        let Some(answer) = read_message(&mut up, &mut Vec::new(), true).await else { return reset(client) };
        if fault == Some(Injected::DroppedAfter) {
            return reset(client);
        }
        if client.write_all(&answer.bytes()).await.is_err() {
            return;
        }
    }
}

/// The service's own answer for `fault`, byte for byte as it sends it (status, content type,
/// request id, the JSON error body; SQS's query-compatible code in `x-amzn-query-error`).
fn error_response(service: Service, fault: Injected) -> Vec<u8> {
    let (status, reason, error_type, message, query_error) = match (service, fault) {
        (Service::DynamoDb, Injected::Throttled) => (
            400,
            "Bad Request",
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
            None,
        ),
        (Service::DynamoDb, Injected::ThrottlingException) => (
            400,
            "Bad Request",
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
            None,
        ),
        (Service::DynamoDb, _) => {
            (500, "Internal Server Error", "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error", None)
        }
        (Service::Sqs, Injected::Throttled) => (
            400,
            "Bad Request",
            "com.amazonaws.sqs#RequestThrottled",
            "Request is throttled.",
            Some("RequestThrottled;Sender"),
        ),
        (Service::Sqs, Injected::ThrottlingException) => (
            400,
            "Bad Request",
            "com.amazonaws.sqs#ThrottlingException",
            "Rate exceeded",
            Some("Throttling;Sender"),
        ),
        (Service::Sqs, _) => (
            500,
            "Internal Server Error",
            "com.amazon.coral.service#InternalFailure",
            "We encountered an internal error. Please try again.",
            Some("InternalFailure;Receiver"),
        ),
    };
    let body = serde_json::json!({"__type": error_type, "message": message}).to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nx-amzn-RequestId: {}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n",
        uuid::Uuid::new_v4(),
        body.len()
    );
    if let Some(q) = query_error {
        head.push_str(&format!("x-amzn-query-error: {q}\r\n"));
    }
    head.push_str("\r\n");
    [head.into_bytes(), body.into_bytes()].concat()
}
