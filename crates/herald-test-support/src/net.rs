//! Loopback listeners on free ports.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A listener on `127.0.0.1:0` (the OS picks a free port).
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback listener")
}

/// The `http://` base URL of `addr`.
pub fn http_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
