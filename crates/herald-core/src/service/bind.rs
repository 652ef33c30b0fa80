//! Binding a service's listener, with a backlog that absorbs a reconnect storm.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The listen backlog: connections the kernel queues before they are accepted. Tokio's
/// `TcpListener::bind` uses 1024, which a reconnect storm of thousands of clients overflows
/// (each overflow costs the client a SYN retry, one second or more). The kernel caps it at
/// `net.core.somaxconn`.
pub const BACKLOG: u32 = 4096;

/// A listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`BACKLOG`]. Used by every service binary and by `herald up`.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|source| BindError { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_port_zero_and_names_the_address_it_cannot_bind() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let err = bind(addr).unwrap_err();
        assert_eq!(err.to_string(), format!("cannot listen on {addr}"));
    }
}
