//! Prometheus metrics on a loopback port: `GET /metrics` (text exposition
//! format 0.0.4) and `GET /health`, read at scrape time from the same
//! [`DataplaneView`] the API answers from, from the attachments, and from
//! the forwarder's per-tenant counters.
//!
//! ```text
//! scraper ──TCP──► accept task ──(one of Limits::max_connections)──► connection task
//!                                                                │ read head (≤ MAX_HEAD_BYTES,
//!                                                                │   within read_timeout)
//!                                                                │ http::parse_request_head
//!                                                                │ collect() ◄── DataplaneView, Attachments,
//!                                                                │               TenantTrafficSource
//!                                                                └ exposition::render → write → close
//! ```
//!
//! One request per connection (`Connection: close`). A malformed head gets
//! 400, an oversized one 431, a head that does not arrive in time 408; each
//! then closes. A client costs the server at most one task, for at most
//! `read_timeout` + `write_timeout` + `read_timeout` (the lingering close).
//! The metrics are for the operator, not the network: [`serve`] refuses a
//! non-loopback address, as config validation does (`metrics.listen`).

mod exposition;
pub mod http;
mod tenant_traffic;

pub use exposition::{
    CONTENT_TYPE, EndpointCount, Scrape, TenantTraffic, escape_label_value, render,
};
pub use tenant_traffic::{ForwarderCounters, TenantTrafficSource};

use crate::api::DataplaneView;
use crate::attach::Attachments;
use http::{HttpError, Method};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// Bounds on what one client may cost the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time for the whole request head to arrive (slowloris bound).
    pub read_timeout: Duration,
    /// Time for the answer to be taken by the client.
    pub write_timeout: Duration,
    /// Connections served at once; more are closed at once on accept.
    pub max_connections: usize,
}

impl Default for Limits {
    /// Prometheus scrapes with a 10 s timeout; a head arrives in one packet.
    fn default() -> Self {
        Limits {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_connections: 32,
        }
    }
}

/// Where a scrape reads from: the view, and what it does not carry.
#[derive(Clone)]
pub struct MetricsSources {
    /// Peers, BGP sessions, routes and drops.
    pub view: Arc<dyn DataplaneView>,
    /// Endpoints per tenant; `None` leaves `pisek_endpoints` and the local
    /// routes out.
    pub attachments: Option<Arc<Attachments>>,
    /// Per-tenant traffic; `None` leaves `pisek_tenant_*_total` out.
    pub tenant_traffic: Option<Arc<dyn TenantTrafficSource>>,
}

impl MetricsSources {
    /// Only the view: peers, BGP, routes learned, drops.
    pub fn new(view: Arc<dyn DataplaneView>) -> MetricsSources {
        MetricsSources {
            view,
            attachments: None,
            tenant_traffic: None,
        }
    }

    /// Adds endpoints and local routes per tenant.
    pub fn with_attachments(mut self, attachments: Arc<Attachments>) -> MetricsSources {
        self.attachments = Some(attachments);
        self
    }

    /// Adds per-tenant traffic.
    pub fn with_tenant_traffic(mut self, source: Arc<dyn TenantTrafficSource>) -> MetricsSources {
        self.tenant_traffic = Some(source);
        self
    }
}

/// A running metrics endpoint. Dropping it stops the server.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the port, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Starts the metrics endpoint on `listen` (a loopback address) with the
/// default [`Limits`]. Must be called inside a tokio runtime; the server
/// runs on it until the returned handle is dropped.
pub async fn serve(listen: SocketAddr, sources: MetricsSources) -> io::Result<MetricsServer> {
    serve_with_limits(listen, sources, Limits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with_limits(
    listen: SocketAddr,
    sources: MetricsSources,
    limits: Limits,
) -> io::Result<MetricsServer> {
    if !listen.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("metrics address {listen} is not a loopback address"),
        ));
    }
    let listener = TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let accept = tokio::spawn(accept_loop(listener, Arc::new(sources), limits));
    Ok(MetricsServer { local_addr, accept })
}

async fn accept_loop(listener: TcpListener, sources: Arc<MetricsSources>, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like pass; the endpoint must not die of them.
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Busy: closing is the cheapest answer, the scraper retries.
            continue;
        };
        let sources = Arc::clone(&sources);
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, &sources, limits).await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
            drop(permit);
        });
    }
}

/// Why reading a head stopped short of a complete one.
enum HeadError {
    TooLarge,
    TimedOut,
    Closed,
    Io(io::Error),
}

async fn serve_connection(
    mut stream: TcpStream,
    sources: &MetricsSources,
    limits: Limits,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let answer = match read_head(&mut stream, &mut buf, limits.read_timeout).await {
        Ok(len) => answer(&buf[..len], sources).await,
        Err(HeadError::TooLarge) => plain(431, "request head too large\n", false),
        Err(HeadError::TimedOut) => plain(408, "request head not received in time\n", false),
        Err(HeadError::Closed) => return Ok(()),
        Err(HeadError::Io(e)) => return Err(e),
    };
    let write = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(limits.write_timeout, write).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "metrics client did not read",
            ));
        }
    }
    linger(&mut stream, limits.read_timeout).await;
    Ok(())
}

/// Lingering close (RFC 9112 §9.6): closing a socket with unread input
/// makes the kernel send a reset, which can destroy the answer before the
/// client reads it. So the rest of a refused request is read and discarded,
/// bounded in bytes and time, until the client closes.
async fn linger(stream: &mut TcpStream, timeout: Duration) {
    const MAX_DISCARD: usize = 256 * 1024;
    let mut discarded = 0;
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    while discarded < MAX_DISCARD {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

/// Reads until the head is complete; returns its length in `buf`.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> Result<usize, HeadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 1024];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        let n = match read {
            Err(_) => return Err(HeadError::TimedOut),
            Ok(Err(e)) => return Err(HeadError::Io(e)),
            Ok(Ok(0)) => return Err(HeadError::Closed),
            Ok(Ok(n)) => n,
        };
        // Search only where the new bytes can complete the terminator.
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(len) = http::head_len(&buf[from..]) {
            return Ok(from + len);
        }
        if buf.len() >= http::MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The complete response to one request head.
async fn answer(head: &[u8], sources: &MetricsSources) -> Vec<u8> {
    let request = match http::parse_request_head(head) {
        Ok(request) => request,
        Err(e) => return plain(400, &format!("{}\n", bad_request(&e)), false),
    };
    let head_only = request.method == Method::Head;
    match (request.path, request.method) {
        ("/metrics", Method::Get | Method::Head) => {
            let text = render(&collect(sources).await);
            http::response(200, CONTENT_TYPE, text.as_bytes(), head_only)
        }
        ("/health", Method::Get | Method::Head) => plain(200, "ok\n", head_only),
        ("/metrics" | "/health", Method::Other) => plain(405, "method not allowed\n", false),
        _ => plain(404, "not found; try /metrics\n", head_only),
    }
}

fn bad_request(e: &HttpError) -> String {
    format!("bad request: {e}")
}

fn plain(status: u16, body: &str, head_only: bool) -> Vec<u8> {
    http::response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        head_only,
    )
}

/// Reads everything a scrape shows, now.
pub async fn collect(sources: &MetricsSources) -> Scrape {
    let view = &sources.view;
    let endpoints = match &sources.attachments {
        Some(attachments) => {
            let mut per_tenant: BTreeMap<String, EndpointCount> = BTreeMap::new();
            for a in attachments.list().await {
                let count = per_tenant.entry(a.tenant).or_default();
                count.endpoints += 1;
                count.addresses += a.addresses.len() as u64;
            }
            Some(per_tenant)
        }
        None => None,
    };
    let now_unix_secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Scrape {
        dataplane_up: view.running(),
        tenants: sources
            .tenant_traffic
            .as_ref()
            .map(|t| t.tenant_traffic())
            .unwrap_or_default(),
        peers: view.peers(),
        drops: view.drops(),
        bgp_sessions: view.bgp_sessions(),
        refused_routes: view.refused_routes(),
        remote_routes: view.remote_routes(None),
        endpoints,
        now_unix_secs,
    }
}
