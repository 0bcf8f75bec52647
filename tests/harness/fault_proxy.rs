//! A loopback TCP proxy between a test system and a local AWS endpoint that can be switched to
//! misbehave the way a network or a service does: stall (accept, never answer), delay answers,
//! or reset connections. It works on bytes, below HTTP, so the app's real SDK clients and their
//! timeouts are what is tested.
use std::net::SocketAddr;
use std::sync::Arc;
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
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (an `http://host:port` URL).
    pub async fn start(upstream: &str) -> Self {
        let target = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream: SocketAddr =
            tokio::net::lookup_host(target).await.expect("upstream resolves").next().expect("upstream has an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Fault::Pass);
        let mode = Arc::new(mode);
        let m = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, m.subscribe()));
            }
        });
        Self { addr, mode, task }
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
