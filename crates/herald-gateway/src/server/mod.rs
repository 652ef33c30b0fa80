//! The gateway's HTTP server: hyper and axum for every request, except the bytes of an SSE
//! stream, which are written here.
//!
//! An SSE stream lives for hours and is idle most of the time. Served by hyper, each one keeps
//! hyper's per-connection read buffer and header write buffer (8 KiB each) for its whole life:
//! most of the gateway's memory per idle client. So the request head of every new connection
//! is read here into a temporary buffer and parsed ([`httparse`]). A `GET /v1/stream` over
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
//! A stream ends when its session ends (drain, token expiry, overflow: the last message is
//! written, then the final chunk), when the client closes its side, or when a write makes no
//! progress for `write_timeout` (a client that stopped reading).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use bytes::BytesMut;
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

/// The path whose streams are written here.
const STREAM_PATH: &str = "/v1/stream";
/// A request head this long that is still incomplete goes to hyper (which has its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed here; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// The first read's buffer; it grows for longer heads and is freed once the head is parsed.
const FIRST_READ: usize = 2048;

/// Connection timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long a new connection may take to send its request head.
    pub head: Duration,
    /// How long one write of an SSE stream may make no progress.
    pub write: Duration,
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
    let connections = TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of descriptors, typically: waiting is the only way through, and
                    // retrying at once would spin.
                    tracing::error!(%err, "accepting a connection failed; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        };
        connections.spawn(connection(
            tcp,
            router.clone(),
            timeouts,
            Arc::clone(&metrics),
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
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

/// Reads the request head and routes the connection.
async fn connection(
    mut tcp: TcpStream,
    router: Router,
    timeouts: Timeouts,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(%err, "could not set TCP_NODELAY");
    }
    let deadline = Instant::now() + timeouts.head;
    let mut read = BytesMut::with_capacity(FIRST_READ);
    let request = loop {
        if read.len() == read.capacity() {
            read.reserve(read.capacity());
        }
        let n = tokio::select! {
            n = tcp.read_buf(&mut read) => n,
            () = tokio::time::sleep_until(deadline) => {
                tracing::debug!("closing a connection that sent no request head in time");
                metrics.head_timeouts.inc();
                return;
            }
            () = shutdown.cancelled() => return,
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
                return Box::pin(hyper_connection(tcp, read.freeze(), router, shutdown)).await;
            }
        }
    };
    drop(read);
    Box::pin(stream_connection(
        tcp,
        request,
        router,
        timeouts.write,
        metrics,
    ))
    .await;
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
    method == "GET" && path.split('?').next() == Some(STREAM_PATH)
}
