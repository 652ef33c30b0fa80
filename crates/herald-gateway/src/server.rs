//! The gateway's HTTP server: hyper and axum for every request, except the bytes of an SSE
//! stream, which are written here.
//!
//! An SSE stream lives for hours and is idle most of the time. Served by hyper, each one keeps
//! hyper's per-connection read buffer and header write buffer (8 KiB each) for its whole life:
//! most of the gateway's memory per idle client. So the request head of every new connection
//! is read here into a temporary buffer and parsed ([`httparse`]). A `GET /v1/stream` over
//! HTTP/1.x goes to the same axum router as any request (authentication, CORS, limits,
//! tracing and error bodies are the router's), with a [`StreamSlot`]: when the handler opens a
//! stream it leaves it there, and this module writes the response itself, holding nothing but
//! the socket and the session: the head, then each piece chunked (HTTP/1.1; a lone event is its
//! pre-framed shared bytes, one contiguous write) or close-delimited (HTTP/1.0), with
//! `Connection: close`. Anything else (other paths, a head this parser does not take, HTTP/2,
//! WebSocket upgrades) goes to hyper, with the bytes already read put back in front.
//!
//! A stream ends when its session ends (drain, token expiry, overflow: the last message is
//! written, then the final chunk), when the client closes its side, or when a write makes no
//! progress for `write_timeout` (a client that stopped reading).

use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{self, HeaderName, HeaderValue, Method, Request, Version};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::routes::sse::{Piece, SseStream, StreamSlot};

/// The path whose streams are written here.
const STREAM_PATH: &str = "/v1/stream";
/// A request head this long that is still incomplete goes to hyper (which has its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed here; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;
/// The first read's buffer; it grows for longer heads and is freed once the head is parsed.
const FIRST_READ: usize = 2048;
/// The largest non-stream answer buffered here (error bodies are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;
const CRLF: &[u8] = b"\r\n";
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

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

/// Serves a stream request: the router answers it, and either leaves a stream (written here
/// until it ends) or a plain answer (written here, then the connection closes).
async fn stream_connection(
    tcp: TcpStream,
    request: Box<Request<Body>>,
    router: Router,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
) {
    // Boxed, and only boxes come out: handling the request takes far more room than
    // streaming does, and this task lives as long as the stream.
    let result = match Box::pin(open(tcp, request, router, write_timeout)).await {
        Opened::Stream(pump) => {
            let span = pump.stream.span().clone();
            pump.run().instrument(span).await
        }
        Opened::Answer(answer) => answer.write().await,
    };
    if let Err(err) = result {
        if err.kind() == io::ErrorKind::TimedOut {
            metrics.write_timeouts.inc();
        }
        tracing::debug!(%err, "stream connection ended");
    }
}

/// What the router made of a stream request.
enum Opened {
    /// A stream.
    Stream(Box<Pump>),
    /// A plain answer.
    Answer(Box<Answer>),
}

async fn open(
    tcp: TcpStream,
    mut request: Box<Request<Body>>,
    router: Router,
    write_timeout: Duration,
) -> Opened {
    let slot = StreamSlot::default();
    request.extensions_mut().insert(slot.clone());
    let framing = if request.version() == Version::HTTP_10 {
        Framing::Close
    } else {
        Framing::Chunked
    };
    let response = match router.oneshot(*request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    match slot.take() {
        Some(stream) => Opened::Stream(Box::new(Pump {
            tcp,
            stream,
            head: Some(head(&parts, framing).freeze()),
            framing,
            write_timeout,
        })),
        None => Opened::Answer(Box::new(Answer { tcp, parts, body })),
    }
}

/// A plain answer to a stream request (an error, or `reconnect` in band).
struct Answer {
    tcp: TcpStream,
    parts: http::response::Parts,
    body: Body,
}

impl Answer {
    /// Writes the answer whole and closes.
    async fn write(self: Box<Self>) -> io::Result<()> {
        let Answer {
            mut tcp,
            parts,
            body,
        } = *self;
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(io::Error::other)?;
        let mut out = head(&parts, Framing::Length(body.len()));
        out.extend_from_slice(&body);
        tcp.write_all(&out).await?;
        tcp.shutdown().await
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Transfer-Encoding: chunked` (HTTP/1.1 streams).
    Chunked,
    /// Until the connection closes (HTTP/1.0 streams).
    Close,
    /// `Content-Length`.
    Length(usize),
}

/// The status line and headers, with this connection's own framing and `Connection: close`.
fn head(parts: &http::response::Parts, framing: Framing) -> BytesMut {
    let mut out = BytesMut::with_capacity(512);
    let status = parts.status;
    let _ = write!(
        (&mut out).writer(),
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length" | "keep-alive"
        ) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(CRLF);
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n");
    match framing {
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Close => {}
        Framing::Length(len) => {
            let _ = write!((&mut out).writer(), "content-length: {len}\r\n");
        }
    }
    out.extend_from_slice(CRLF);
    out
}

/// A stream being written: everything it holds, in one allocation.
struct Pump {
    tcp: TcpStream,
    stream: SseStream,
    /// The response head, until the first write.
    head: Option<Bytes>,
    framing: Framing,
    write_timeout: Duration,
}

impl Pump {
    /// Writes the head, then every piece of the stream, until the stream ends, the client
    /// closes or a write stalls.
    async fn run(mut self: Box<Self>) -> io::Result<()> {
        let this = &mut *self;
        let (mut rd, mut wr) = this.tcp.split();
        // Whatever the client sends now is not a request we serve: read it only to see the
        // close.
        let mut discard = [0u8; 16];
        loop {
            let piece = tokio::select! {
                biased;
                piece = this.stream.next() => piece,
                read = rd.read(&mut discard) => match read {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(err) => return Err(err),
                },
            };
            let end = piece.is_none();
            let write = write_piece(&mut wr, this.head.take(), piece, this.framing);
            match tokio::time::timeout(this.write_timeout, write).await {
                Ok(written) => written?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ));
                }
            }
            if end {
                return wr.shutdown().await;
            }
        }
    }
}

/// Writes `head` (if any) and one piece (`None`: the end of the body) in one go.
async fn write_piece(
    wr: &mut WriteHalf<'_>,
    head: Option<Bytes>,
    piece: Option<Piece>,
    framing: Framing,
) -> io::Result<()> {
    let head = head.unwrap_or_default();
    let mut size = [0u8; 18];
    let chunked = framing == Framing::Chunked;
    let (size, body, trailer): (&[u8], &[u8], &[u8]) = match &piece {
        None if chunked => (&[], LAST_CHUNK, &[]),
        None => (&[], &[], &[]),
        Some(Piece::Event(event)) if chunked => (&[], &event.sse_chunk, &[]),
        Some(piece) if chunked => {
            let body = piece.sse();
            let mut cursor = io::Cursor::new(&mut size[..]);
            write!(cursor, "{:x}\r\n", body.len())?;
            let len = usize::try_from(cursor.position()).unwrap_or(0);
            (&size[..len], body, CRLF)
        }
        Some(piece) => (&[], piece.sse(), &[]),
    };
    let mut slices = [
        IoSlice::new(&head),
        IoSlice::new(size),
        IoSlice::new(body),
        IoSlice::new(trailer),
    ];
    write_all(wr, &mut slices).await
}

async fn write_all(wr: &mut WriteHalf<'_>, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Serves a connection with hyper (HTTP/1.1 keep-alive, HTTP/2, upgrades), the bytes already
/// read first; on shutdown, in-flight requests finish and the connection closes.
async fn hyper_connection(
    tcp: TcpStream,
    read: Bytes,
    router: Router,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(Rewind { read, tcp });
    let service = TowerToHyperService::new(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The extended CONNECT protocol: WebSocket over HTTP/2.
    builder.http2().enable_connect_protocol();
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::trace!(%err, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A socket whose first reads return bytes that were already read from it.
struct Rewind {
    read: Bytes,
    tcp: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(read: &[u8]) -> &'static str {
        match examine(read) {
            Head::Partial => "partial",
            Head::Stream(_) => "stream",
            Head::Other => "other",
        }
    }

    #[test]
    fn only_a_whole_bodiless_get_of_the_stream_path_is_taken() {
        let get =
            b"GET /v1/stream?topics=a HTTP/1.1\r\nhost: x\r\nlast-event-id: 3-00000001\r\n\r\n";
        assert_eq!(kind(get), "stream");
        assert_eq!(kind(b"GET /v1/stream HTTP/1.0\r\n\r\n"), "stream");
        // Incomplete: wait for more, unless the request line already says it is not a stream.
        assert_eq!(kind(&get[..20]), "partial");
        assert_eq!(kind(&get[..40]), "partial");
        assert_eq!(kind(b"GET /v1/streams HTTP/1.1\r\n"), "other");
        assert_eq!(kind(b"POST /v1/stream HTTP/1.1\r\n"), "other");
        assert_eq!(kind(b"GET /v1/ws HTTP/1.1\r\n\r\n"), "other");
        // Bodies, upgrades, pipelining, HTTP/2 and garbage are hyper's.
        for other in [
            &b"GET /v1/stream HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi"[..],
            b"GET /v1/stream HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\n\r\nGET /v1/stream HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01",
            b"GET /v1/stream HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert_eq!(kind(other), "other", "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_head_carries_the_framing_of_this_connection_only() {
        let (mut parts, ()) = http::Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .header("content-length", "0")
            .header("connection", "keep-alive")
            .body(())
            .expect("response")
            .into_parts();
        let chunked = String::from_utf8(head(&parts, Framing::Chunked).to_vec()).expect("utf8");
        assert!(chunked.starts_with("HTTP/1.1 200 OK\r\n"), "{chunked}");
        assert!(chunked.contains("content-type: text/event-stream\r\n"));
        assert!(chunked.contains("connection: close\r\n"));
        assert!(chunked.contains("transfer-encoding: chunked\r\n"));
        assert!(!chunked.contains("content-length"));
        assert!(!chunked.contains("keep-alive"));
        assert!(chunked.ends_with("\r\n\r\n"));
        parts.status = http::StatusCode::UNAUTHORIZED;
        let sized = String::from_utf8(head(&parts, Framing::Length(42)).to_vec()).expect("utf8");
        assert!(
            sized.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{sized}"
        );
        assert!(sized.contains("content-length: 42\r\n"));
        assert!(!sized.contains("transfer-encoding"));
        let close = String::from_utf8(head(&parts, Framing::Close).to_vec()).expect("utf8");
        assert!(!close.contains("transfer-encoding") && !close.contains("content-length"));
    }
}
