//! A TCP proxy between a service and NATS (or anything) that can turn nasty on command:
//! delay every chunk, drop (close) every connection, stop forwarding one direction while the
//! sockets stay open (half-open), or forward nothing at all (blackhole).
//!
//! [`Proxy::start`] listens on `127.0.0.1:0`; point the service at [`Proxy::url`] and switch
//! the fault with [`Proxy::set_mode`]. A mode applies at once to every open connection and
//! to every new one. Stopped directions are not read, so the sender's kernel buffers fill as
//! they would behind a silent network, and the bytes flow again once the mode allows it (as
//! TCP retransmission would after a partition heals). Memory is bounded: each direction holds
//! at most [`QUEUE_CHUNKS`] chunks of at most [`CHUNK_BYTES`].
//!
//! Dropping the [`Proxy`] closes the listener and every connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The largest chunk read at once from either side.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// How many chunks may wait (e.g. under [`Mode::Delay`]) in each direction of a connection.
pub const QUEUE_CHUNKS: usize = 64;

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (the service) to the upstream (NATS).
    ToUpstream,
    /// From the upstream (NATS) to the client (the service).
    ToClient,
}

/// What the proxy does with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward both directions at once.
    #[default]
    Forward,
    /// Forward both directions, each chunk this long after it was read.
    Delay(Duration),
    /// Close every open connection; accept new ones and close them at once.
    Drop,
    /// Keep every socket open but stop forwarding this direction (the other one flows).
    HalfOpen(Direction),
    /// Keep every socket open (and accept new ones) but forward nothing either way.
    Blackhole,
}

impl Mode {
    fn forwards(self, dir: Direction) -> bool {
        match self {
            Mode::Forward | Mode::Delay(_) => true,
            Mode::Drop | Mode::Blackhole => false,
            Mode::HalfOpen(stopped) => stopped != dir,
        }
    }

    fn delay(self) -> Duration {
        match self {
            Mode::Delay(d) => d,
            _ => Duration::ZERO,
        }
    }
}

/// A running proxy; see the [module docs](self).
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` in [`Mode::Forward`] that forwards to `upstream`.
    ///
    /// # Errors
    /// If the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Forward);
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            open.clone(),
            accepted.clone(),
        ));
        Ok(Self {
            addr,
            upstream,
            mode,
            open,
            accepted,
            task,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address it forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `nats://127.0.0.1:<port>` of the proxy.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Switches the fault; it applies at once to open and new connections.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// How many connections are open through the proxy now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// How many connections the proxy has accepted since it started.
    pub fn accepted_connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    // Dropping this set (when the proxy is dropped) aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => {
                let Ok((client, _)) = res else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                if *mode.borrow() == Mode::Drop {
                    drop(client);
                    continue;
                }
                let guard = OpenGuard::new(open.clone());
                conns.spawn(connection(client, upstream, mode.subscribe(), guard));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        Self(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One proxied connection: ends (closing both sockets) when both directions end or the
/// mode becomes [`Mode::Drop`].
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    _guard: OpenGuard,
) {
    // A blackholed connection does not even reach the upstream until the mode allows it.
    let Ok(m) = mode
        .wait_for(|m| *m == Mode::Drop || m.forwards(Direction::ToUpstream))
        .await
        .map(|m| *m)
    else {
        return;
    };
    if m == Mode::Drop {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let mut pumps = JoinSet::new();
    pumps.spawn(pump(
        Direction::ToUpstream,
        client_r,
        server_w,
        mode.clone(),
    ));
    pumps.spawn(pump(Direction::ToClient, server_r, client_w, mode.clone()));
    tokio::select! {
        _ = mode.wait_for(|m| *m == Mode::Drop) => {}
        _ = async { while pumps.join_next().await.is_some() {} } => {}
    }
    // Dropping `pumps` aborts both directions and closes the sockets.
}

/// Copies one direction, chunk by chunk, as the mode allows; a writer task applies the delay
/// so a delayed stream keeps its throughput.
async fn pump(
    dir: Direction,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let Ok(current) = mode.wait_for(|m| m.forwards(dir)).await.map(|m| *m) else {
                return;
            };
            tokio::select! {
                n = from.read(&mut buf) => {
                    let Ok(n) = n else { return };
                    if n == 0 {
                        return; // EOF: the writer shuts its side down.
                    }
                    let due = Instant::now() + current.delay();
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
        s.write_all(msg).await.expect("write");
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(within, s.read_exact(&mut got))
            .await
            .ok()
            .map(|r| r.map(|_| got).expect("read"))
    }

    const LONG: Duration = Duration::from_secs(5);
    const SILENCE: Duration = Duration::from_millis(300);

    #[tokio::test]
    async fn forward_passes_bytes_both_ways() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(
            roundtrip(&mut s, b"ping", LONG).await.as_deref(),
            Some(&b"ping"[..])
        );
        assert_eq!(proxy.open_connections(), 1);
        assert_eq!(proxy.accepted_connections(), 1);
    }

    #[tokio::test]
    async fn delay_holds_each_chunk_back() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        proxy.set_mode(Mode::Delay(Duration::from_millis(150)));
        let t0 = Instant::now();
        assert!(roundtrip(&mut s, b"slow", LONG).await.is_some());
        // Both directions are delayed.
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn drop_closes_open_connections_and_refuses_new_ones() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert!(roundtrip(&mut s, b"a", LONG).await.is_some());
        proxy.set_mode(Mode::Drop);
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(LONG, s.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        let mut s2 = TcpStream::connect(proxy.addr()).await.expect("accepts");
        let n = tokio::time::timeout(LONG, s2.read(&mut buf))
            .await
            .expect("closed in time");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        proxy.set_mode(Mode::Forward);
        let mut s3 = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert!(roundtrip(&mut s3, b"b", LONG).await.is_some());
    }

    #[tokio::test]
    async fn half_open_stops_one_direction_and_resumes_without_loss() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert!(roundtrip(&mut s, b"a", LONG).await.is_some());
        proxy.set_mode(Mode::HalfOpen(Direction::ToClient));
        assert_eq!(
            roundtrip(&mut s, b"held", SILENCE).await,
            None,
            "answer must not arrive"
        );
        assert_eq!(proxy.open_connections(), 1, "the socket stays open");
        proxy.set_mode(Mode::Forward);
        let mut got = [0u8; 4];
        tokio::time::timeout(LONG, s.read_exact(&mut got))
            .await
            .expect("resumes")
            .expect("read");
        assert_eq!(&got, b"held");
    }

    #[tokio::test]
    async fn blackhole_accepts_and_forwards_nothing_until_lifted() {
        let proxy = Proxy::start(echo().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert!(roundtrip(&mut s, b"a", LONG).await.is_some());
        proxy.set_mode(Mode::Blackhole);
        assert_eq!(roundtrip(&mut s, b"x", SILENCE).await, None);
        let mut fresh = TcpStream::connect(proxy.addr()).await.expect("accepted");
        assert_eq!(roundtrip(&mut fresh, b"y", SILENCE).await, None);
        proxy.set_mode(Mode::Forward);
        let mut got = [0u8; 1];
        tokio::time::timeout(LONG, fresh.read_exact(&mut got))
            .await
            .expect("resumes")
            .expect("read");
        assert_eq!(&got, b"y");
    }
}
