//! A loopback TLS front for the local endpoints (which speak plain HTTP), so a benchmark sees
//! what a function's first AWS call costs over TLS, as in AWS: the TCP connect, the TLS 1.3
//! handshake and the certificate check. The certificate chain (a CA and a `localhost` leaf,
//! P-256, valid one day) is made by `openssl` for the run; a function trusts it through
//! `SSL_CERT_FILE`, which the SDK's root store (rustls-native-certs) reads instead of the
//! system's — nothing in the function changes.
use crate::relay::Relay;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

pub struct TlsProxy {
    /// `https://localhost:<port>`: set as `AWS_ENDPOINT_URL_DYNAMODB` / `_SQS`.
    pub url: String,
    /// The CA's certificate (PEM): set as `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    handshakes: Arc<AtomicU64>,
    dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TlsProxy {
    /// Listens on a free loopback port, serves HTTP/1.1 over TLS and relays each request to
    /// `upstream` (an `http://host:port` URL). Client connections stay open between requests as
    /// AWS's endpoints keep them (the local endpoints close theirs after every answer).
    pub async fn start(upstream: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = std::env::temp_dir().join(format!("parley-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Parley bench CA"],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[&["req"][..], &ec, &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost"]].concat(),
        );
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
                .into_iter()
                .chain(["-out", "leaf.pem", "-days", "1", "-extfile", "leaf.ext"])
                .collect::<Vec<_>>(),
        );
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("leaf.pem")).unwrap().map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("leaf.key")).unwrap();
        let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicU64::new(0));
        let tls = TlsListener { tcp: listener, acceptor, handshakes: Arc::clone(&handshakes) };
        let relay = Relay::new(upstream);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let relay = relay.clone();
            async move { relay.forward(req).await }
        });
        let task = tokio::spawn(async move {
            axum::serve(tls, app).await.ok();
        });
        Self { url: format!("https://localhost:{port}"), ca_file: dir.join("ca.pem"), handshakes, dir, task }
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Accepts TCP connections and completes their TLS handshake (one at a time: enough for a
/// benchmark's few connections), counting the handshakes.
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Arc<AtomicU64>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                // Out of descriptors or the like: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                self.handshakes.fetch_add(1, Ordering::Relaxed);
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
