//! Everything that is not a stream request: hyper, with the bytes already read put back in
//! front.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use herald_core::serve::{Admitted, Connection, serve_connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::Shared;

/// Serves a connection with hyper (HTTP/1.1 keep-alive, HTTP/2, upgrades), the bytes already
/// read first, through herald-core's connection server: the first head is due by `deadline`
/// (set at accept), later ones within `head_timeout`; on shutdown, in-flight requests finish
/// and the connection closes.
pub(super) async fn hyper_connection(
    tcp: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    admitted: Admitted,
    deadline: Instant,
    shared: &Shared,
) {
    let conn = Connection {
        peer,
        router: shared.router.clone(),
        admitted,
        first_head_by: deadline,
        header_timeout: shared.timeouts.head,
        metrics: &shared.server_metrics,
        shutdown: &shared.shutdown,
    };
    serve_connection(Rewind { read, tcp }, conn).await;
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
