//! One admitted connection, served by hyper with deadlines on every request head.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ServerMetrics;
use super::admission::{Admitted, Slots};

/// What [`serve_connection`] needs besides the socket.
pub struct Connection<'a> {
    /// The client's address, given to handlers as `ConnectInfo<SocketAddr>`.
    pub peer: SocketAddr,
    /// The routes.
    pub router: Router,
    /// Its slots; the pending one is released once the first request head is in.
    pub admitted: Admitted,
    /// When the first request head must be complete (the connection is closed otherwise).
    pub first_head_by: Instant,
    /// How long each later request head (HTTP/1.1 keep-alive) may take, idle time included.
    pub header_timeout: Duration,
    /// Where header timeouts are counted (first heads only).
    pub metrics: &'a ServerMetrics,
    /// On cancellation, in-flight requests finish and the connection closes (at once if it
    /// has not sent a whole request head yet).
    pub shutdown: &'a CancellationToken,
}

/// Serves `io` with hyper (HTTP/1.1 with keep-alive, HTTP/2, upgrades) until the client
/// leaves, a request head is late, or shutdown.
///
/// The first head's deadline is kept here rather than by hyper: it also covers a client that
/// never sends enough bytes for hyper to pick the protocol, and HTTP/2 connections that open
/// no stream. Later HTTP/1 heads are hyper's `header_read_timeout` (its timer starts when the
/// previous response is written, so it also bounds an idle keep-alive connection).
pub async fn serve_connection<I>(io: I, conn: Connection<'_>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve_connection_after(io, Bytes::new(), conn).await;
}

/// [`serve_connection`] for a socket from which `read` was already taken (to sniff what the
/// client speaks): hyper reads those bytes first, then the socket.
pub async fn serve_connection_after<I>(io: I, read: Bytes, conn: Connection<'_>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        router,
        admitted,
        first_head_by,
        header_timeout,
        metrics,
        shutdown,
    } = conn;
    // The open-connection slots go with the socket, so that a connection upgraded to a
    // WebSocket (which outlives this function) keeps holding them.
    let (slots, mut admitted) = admitted.split();
    let io = Held {
        read,
        io,
        _slots: slots,
    };
    let head_seen = Arc::new(Notify::new());
    let service = {
        let head_seen = Arc::clone(&head_seen);
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            head_seen.notify_one();
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            router.oneshot(request.map(Body::new))
        })
    };
    let builder = builder(header_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let late = tokio::time::sleep_until(first_head_by);
    let mut late = std::pin::pin!(late);
    let mut stopping = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                // A later head that is late is not counted: hyper reports an idle keep-alive
                // connection the same way, and those are not a client misbehaving. (hyper's
                // timer can beat ours to a first head: that one counts.)
                if let Err(err) = served {
                    if is_header_timeout(&*err) && admitted.is_pending() {
                        metrics.header_timeouts.inc();
                        tracing::debug!("closing a connection that sent no request head in time");
                    } else if is_header_timeout(&*err) {
                        tracing::trace!("closing a kept-alive connection: no request head in time");
                    } else {
                        tracing::trace!(%err, "connection ended with an error");
                    }
                }
                return;
            }
            () = head_seen.notified(), if admitted.is_pending() => admitted.head_read(),
            () = late.as_mut(), if admitted.is_pending() => {
                metrics.header_timeouts.inc();
                tracing::debug!("closing a connection that sent no request head in time");
                return;
            }
            () = shutdown.cancelled(), if !stopping => {
                // No request yet: nothing to finish (hyper would wait for a partial head).
                if admitted.is_pending() {
                    return;
                }
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// hyper's server: HTTP/1.1 whose later heads are due within `header_timeout`, and HTTP/2.
fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // The extended CONNECT protocol: WebSocket over HTTP/2.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    builder
}

fn is_header_timeout(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    err.downcast_ref::<hyper::Error>()
        .is_some_and(hyper::Error::is_timeout)
}

/// A socket and the slots it holds (released when the socket is dropped); its first reads
/// return the bytes already read from it.
struct Held<I> {
    read: Bytes,
    io: I,
    _slots: Slots,
}

impl<I: AsyncRead + Unpin> AsyncRead for Held<I> {
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
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Held<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
