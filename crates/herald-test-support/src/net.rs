//! Loopback listeners on free ports.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// A listener on `127.0.0.1:0` (the OS picks a free port).
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback listener")
}

/// Serves `app` on a fresh loopback listener in the background (a fake upstream: Telegram,
/// Slack, a JWKS endpoint); the server stops when the handle is aborted or the runtime ends.
pub async fn serve_router(app: axum::Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = listener().await;
    let addr = listener.local_addr().expect("the listener's address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

/// The `http://` base URL of `addr`.
pub fn http_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Reads from `conn` until the peer closes it (end of stream or reset) and returns what came;
/// panics if it is still open after `deadline`. For tests that check a server hangs up.
pub async fn read_until_closed<R>(conn: &mut R, deadline: std::time::Duration) -> Vec<u8>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the peer closes the connection in time");
    got
}
