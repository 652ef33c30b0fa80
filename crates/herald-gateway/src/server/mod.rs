//! The gateway's HTTP server: hyper and axum for every request, except the bytes of an SSE
//! stream, which are written here.
//!
//! An SSE stream lives for hours and is idle most of the time. Served by hyper, each one keeps
//! hyper's per-connection read buffer and header write buffer (8 KiB each) for its whole life:
//! most of the gateway's memory per idle client. So the request head of every new connection
//! is read here into a temporary buffer and parsed ([`httparse`]). A `GET /v1/stream` (or a
//! public `GET /v1/public/<tenant>/stream`) over
//! HTTP/1.x goes to the same axum router as any request (authentication, CORS, limits,
//! tracing and error bodies are the router's), with a [`StreamSlot`]: when the handler opens
//! a stream it leaves it there, and `stream` writes the response itself, holding nothing but
//! the socket and the session: the head, then each piece chunked (HTTP/1.1; a lone event is its
//! pre-framed shared bytes, one contiguous write) or close-delimited (HTTP/1.0), with
//! `Connection: close`. Anything else (other paths, a head this parser does not take, HTTP/2,
//! WebSocket upgrades) goes to hyper (`fallback`), with the bytes already read put back in
//! front.
//!
//! [`StreamSlot`]: crate::routes::sse::StreamSlot
//!
//! Every connection is admitted first (herald-core's [`Admission`]: open connections, connections
//! still sending their first head, and open connections per client IP; a full cap is answered
//! `503`/`429` with `Retry-After` and closed). The first head must be complete within
//! `head_timeout`, whichever path it takes: read here, or by hyper (the deadline set at accept
//! goes with it); later heads on a keep-alive connection are hyper's `header_read_timeout`,
//! set to the same value.
//!
//! [`Admission`]: herald_core::serve::Admission
//!
//! A stream ends when its session ends (drain, token expiry, overflow: the last message is
//! written, then the final chunk), when the client closes its side, or when a write makes no
//! progress for `write_timeout` (a client that stopped reading).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use bytes::BytesMut;
use herald_core::serve::{Admission, Admitted, HttpConfig, Refusals, ServerMetrics};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

mod fallback;
mod stream;
#[cfg(test)]
mod tests;

use fallback::hyper_connection;
use stream::stream_connection;

/// The path whose streams are written here (and each tenant's public `/v1/public/<t>/stream`).
const STREAM_PATH: &str = "/v1/stream";
/// A request head this long that is still incomplete goes to hyper (which has its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed here; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// The first read's buffer; it grows for longer heads and is freed once the head is parsed.
const FIRST_READ: usize = 2048;

/// Connection timeouts, and the caps that go with them.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long a connection may take to send a request head (the first one from accept,
    /// later ones from the previous response).
    pub head: Duration,
    /// How long one write of an SSE stream may make no progress.
    pub write: Duration,
    /// The caps on open and pending connections (`[http]`; its `header_timeout` is not used:
    /// `head` is).
    pub caps: HttpConfig,
    /// Open connections per client IP address; 0 means no cap.
    pub per_ip: usize,
}

/// What every connection task shares.
struct Shared {
    router: Router,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    server_metrics: ServerMetrics,
    shutdown: CancellationToken,
}

/// Serves `router` on `listener` until `shutdown` fires, then waits for every connection:
/// streams end by draining (their sessions watch the same token), hyper's connections finish
/// their in-flight requests, and connections that have not sent a request are closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let admission = Admission::new(&timeouts.caps, Some(timeouts.per_ip));
    let refusals = Refusals::new();
    let server_metrics = ServerMetrics {
        header_timeouts: metrics.head_timeouts.clone(),
        refused: metrics.refused_connections.clone(),
    };
    let shared = Arc::new(Shared {
        router,
        timeouts,
        metrics,
        server_metrics,
        shutdown: shutdown.clone(),
    });
    let connections = TaskTracker::new();
    while let Some((tcp, peer)) = herald_core::serve::accept(&listener, &shutdown).await {
        let deadline = Instant::now() + shared.timeouts.head;
        match admission.admit(peer.ip()) {
            Ok(admitted) => {
                connections.spawn(connection(
                    tcp,
                    peer,
                    admitted,
                    deadline,
                    Arc::clone(&shared),
                ));
            }
            Err(refusal) => refusals.refuse(tcp, refusal, &shared.server_metrics, &connections),
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What the bytes read so far are.
#[derive(Debug)]
enum Head {
    /// Not a whole head yet, and nothing says it is not a stream.
    Partial,
    /// A stream request, parsed.
    Stream(Box<Request<Body>>),
    /// Anything else: hyper's.
    Other,
}

/// Reads the request head (by `deadline`) and routes the connection; its slots are held
/// until it closes, the pending one until its head is in.
async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    mut admitted: Admitted,
    deadline: Instant,
    shared: Arc<Shared>,
) {
    let mut read = BytesMut::with_capacity(FIRST_READ);
    let mut request = loop {
        if read.len() == read.capacity() {
            read.reserve(read.capacity());
        }
        let n = tokio::select! {
            n = tcp.read_buf(&mut read) => n,
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!("closing a connection that sent no request head in time");
                shared.metrics.head_timeouts.inc();
                return;
            }
            () = shared.shutdown.cancelled() => return,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        match examine(&read) {
            Head::Partial if read.len() < MAX_HEAD => {}
            Head::Stream(request) => break request,
            Head::Partial | Head::Other => {
                // Boxed: a stream's task should not be sized for hyper's connection.
                let fallback =
                    hyper_connection(tcp, read.freeze(), peer, admitted, deadline, &shared);
                return Box::pin(fallback).await;
            }
        }
    };
    drop(read);
    admitted.head_read();
    // Handlers see the client's address as with hyper (the public limits are per address).
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    Box::pin(stream_connection(
        tcp,
        request,
        shared.router.clone(),
        shared.timeouts.write,
        Arc::clone(&shared.metrics),
    ))
    .await;
    drop(admitted);
}

/// Parses what was read: a whole `GET /v1/stream` head without a body over HTTP/1.x is a
/// stream; anything this parser does not take goes to hyper, which answers it properly.
fn examine(read: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    let len = match head.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // The request line alone can already tell.
            return match (head.method, head.path) {
                (Some(method), Some(path)) if !is_stream(method, path) => Head::Other,
                _ => Head::Partial,
            };
        }
        Err(_) => return Head::Other,
    };
    let (Some(method), Some(path), Some(version)) = (head.method, head.path, head.version) else {
        return Head::Other;
    };
    // Anything after the head would be a pipelined request or a body: hyper's business.
    if len != read.len() || !is_stream(method, path) {
        return Head::Other;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(if version == 0 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        });
    for header in head.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Head::Other;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Head::Other;
        };
        request = request.header(name, value);
    }
    match request.body(Body::empty()) {
        Ok(request) => Head::Stream(Box::new(request)),
        Err(_) => Head::Other,
    }
}

fn is_stream(method: &str, path: &str) -> bool {
    method == "GET" && path.split('?').next().is_some_and(is_stream_path)
}

/// `/v1/stream`, or a tenant's public stream `/v1/public/<tenant>/stream`.
fn is_stream_path(path: &str) -> bool {
    path == STREAM_PATH
        || path
            .strip_prefix("/v1/public/")
            .and_then(|rest| rest.strip_suffix("/stream"))
            .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/'))
}
