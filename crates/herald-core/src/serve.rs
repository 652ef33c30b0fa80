//! The HTTP server every service runs: hyper with a deadline on every request head, and caps
//! on connections, so that slow or idle clients cannot exhaust descriptors or stall accepting.
//!
//! - `header_timeout`: a new connection must send a whole request head within it, and so must
//!   each later request on a keep-alive connection (idle time between requests included).
//!   Late connections are closed; those that never completed a first head are counted
//!   (`<service>_http_header_timeouts_total`): hyper reports a late later head and an idle
//!   keep-alive connection alike, so those are closed but not counted.
//! - `max_pending_connections`: connections that have not yet sent a whole request head (none
//!   of them has authenticated) hold a slot each; the slot is released when hyper hands the
//!   first request to the router.
//! - `max_connections`: every open connection holds a slot until it closes.
//!
//! A connection that finds a cap full is answered at once, without reading its request:
//! `503` with `Retry-After` and a JSON error body, then closed, and counted by reason
//! (`<service>_http_refused_connections_total{reason}`). The accept loop never waits for a slot.
//! Accept errors (out of descriptors, typically) pause accepting briefly rather than spin.
//!
//! | module | what it holds |
//! |---|---|
//! | [`admission`] | the caps and their permits |
//! | [`connection`] | one connection served by hyper with its deadlines |

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod admission;
pub mod connection;
#[cfg(test)]
mod tests;

pub use admission::{Admission, Admitted, Refusal, RefusedLabels};
pub use connection::{Connection, serve_connection, serve_connection_after};

/// Timeouts and connection caps of an HTTP listener (`[http]`, `HERALD_HTTP__*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct HttpConfig {
    /// How long a connection may take to send a whole request head, counted from accept for
    /// the first request and from the previous response for later ones (`HEADER_TIMEOUT`).
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Connections that have not yet sent a whole request head, per listener; more are
    /// refused with 503 (`MAX_PENDING_CONNECTIONS`). Default 1024.
    pub max_pending_connections: usize,
    /// Open connections per listener; more are refused with 503 (`MAX_CONNECTIONS`).
    /// Default 10000.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_pending_connections: 1024,
            max_connections: 10_000,
        }
    }
}

/// The server's counters; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ServerMetrics {
    /// Connections closed because their first request head was not complete in time.
    pub header_timeouts: Counter,
    /// Connections refused because a cap was full, by cap.
    pub refused: Family<RefusedLabels, Counter>,
}

impl ServerMetrics {
    /// Registers both counters in `registry` (`http_header_timeouts`,
    /// `http_refused_connections`, under the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_header_timeouts",
            "Connections closed because their first request head was not complete within header_timeout",
            self.header_timeouts.clone(),
        );
        self.register_refused(registry);
    }

    /// Registers only the refused-connections counter (`http_refused_connections`).
    pub fn register_refused(&self, registry: &mut Registry) {
        registry.register(
            "http_refused_connections",
            "Connections refused at accept because a connection cap was full, by cap",
            self.refused.clone(),
        );
    }
}

/// How long accepting pauses after an error that is not the client's (e.g. EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refusals being written at once; beyond this, refused sockets are just closed.
const MAX_REFUSALS: usize = 64;
/// How long a refusal may take to write and see the client close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` under `cfg` until `shutdown` fires, then lets in-flight
/// requests finish; handlers see `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: &HttpConfig,
    metrics: ServerMetrics,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let admission = Admission::new(cfg, None);
    let refusals = Refusals::new();
    let connections = TaskTracker::new();
    while let Some((tcp, peer)) = accept(&listener, &shutdown).await {
        let first_head_by = Instant::now() + cfg.header_timeout;
        let admitted = match admission.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                refusals.refuse(tcp, refusal, &metrics, &connections);
                continue;
            }
        };
        let (router, metrics, shutdown) = (router.clone(), metrics.clone(), shutdown.clone());
        let header_timeout = cfg.header_timeout;
        connections.spawn(async move {
            let conn = Connection {
                peer,
                router,
                admitted,
                first_head_by,
                header_timeout,
                metrics: &metrics,
                shutdown: &shutdown,
            };
            serve_connection(tcp, conn).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// The next connection (with TCP_NODELAY set), or `None` once `shutdown` fires. Errors that
/// are the client's are skipped; others (out of descriptors, typically) pause accepting for
/// a moment: retrying at once would spin, and the pause lets connections close.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return None,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Responses and frames are written whole: Nagle's algorithm would only hold
                // small writes back (up to a delayed ACK) behind the previous one.
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(%err, "could not set TCP_NODELAY");
                }
                return Some((tcp, peer));
            }
            Err(err) if is_connection_error(&err) => {}
            Err(err) => {
                tracing::error!(%err, "accepting a connection failed; pausing accepts briefly");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers refused connections without holding up the accept loop.
#[derive(Clone)]
pub struct Refusals {
    writing: Arc<Semaphore>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self::new()
    }
}

impl Refusals {
    /// At most a few refusals are written at once.
    pub fn new() -> Self {
        Self {
            writing: Arc::new(Semaphore::new(MAX_REFUSALS)),
        }
    }

    /// Counts the refusal and answers it on a task of `tasks` (`503`/`429` with `Retry-After`
    /// and a JSON body, then close); if too many are being answered already, just closes.
    pub fn refuse(
        &self,
        tcp: TcpStream,
        refusal: Refusal,
        metrics: &ServerMetrics,
        tasks: &TaskTracker,
    ) {
        metrics
            .refused
            .get_or_create(&RefusedLabels { reason: refusal })
            .inc();
        tracing::debug!(?refusal, "refusing a connection: a connection cap is full");
        let Ok(permit) = Arc::clone(&self.writing).try_acquire_owned() else {
            return;
        };
        tasks.spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_LINGER, write_refusal(tcp, refusal)).await;
        });
    }
}

/// The status, code and message of a refusal.
pub fn refusal_answer(refusal: Refusal) -> (u16, &'static str, &'static str, &'static str) {
    match refusal {
        Refusal::Pending => (
            503,
            "Service Unavailable",
            "too_many_pending_connections",
            "too many connections are waiting to send a request; retry later",
        ),
        Refusal::Connections => (
            503,
            "Service Unavailable",
            "too_many_connections",
            "the server has too many open connections; retry later",
        ),
        Refusal::PerIp => (
            429,
            "Too Many Requests",
            "too_many_connections_from_address",
            "too many open connections from your address; close some or retry later",
        ),
    }
}

/// Seconds a refused client is told to wait.
pub const REFUSAL_RETRY_AFTER: u32 = 1;

async fn write_refusal(mut tcp: TcpStream, refusal: Refusal) -> io::Result<()> {
    let (status, reason, code, message) = refusal_answer(refusal);
    let body = serde_json::to_string(&crate::http::ErrorBody {
        error: crate::http::ErrorDetail { code, message },
    })
    .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         retry-after: {REFUSAL_RETRY_AFTER}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(format!("{head}{body}").as_bytes()).await?;
    tcp.shutdown().await?;
    // Read what the client sent until it closes: closing with unread bytes would reset the
    // connection, and the client could lose the answer.
    let mut sink = [0u8; 1024];
    while tcp.read(&mut sink).await? > 0 {}
    Ok(())
}
