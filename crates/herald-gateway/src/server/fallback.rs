//! Everything that is not a stream request: hyper, with the bytes already read put back in
//! front.

use std::net::SocketAddr;

use bytes::Bytes;
use herald_core::serve::{Admitted, Connection, serve_connection_after};
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
    serve_connection_after(tcp, read, conn).await;
}
