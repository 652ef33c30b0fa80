//! Writing a stream request's answer: the head, then the stream's pieces (or a plain answer),
//! then close.

use std::io::{self, IoSlice, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{self, Request, Version};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::WriteHalf;
use tower::ServiceExt;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::routes::sse::{Piece, SseStream, StreamSlot};

/// The largest non-stream answer buffered here (error bodies are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;
const CRLF: &[u8] = b"\r\n";
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Serves a stream request: the router answers it, and either leaves a stream (written here
/// until it ends) or a plain answer (written here, then the connection closes).
pub(super) async fn stream_connection(
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
pub(super) enum Framing {
    /// `Transfer-Encoding: chunked` (HTTP/1.1 streams).
    Chunked,
    /// Until the connection closes (HTTP/1.0 streams).
    Close,
    /// `Content-Length`.
    Length(usize),
}

/// The status line and headers, with this connection's own framing and `Connection: close`.
pub(super) fn head(parts: &http::response::Parts, framing: Framing) -> BytesMut {
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
