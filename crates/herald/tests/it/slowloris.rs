//! Slowloris against each service, one service per test (in-process, on a real nats-server):
//! 5,000 sockets each send `GET /healthz HTTP/1.1\r\nX: ` and then trickle one more byte of
//! the header every second, so the head never ends and the connection is never silent for a
//! whole header timeout. While they trickle, `/healthz` (and, on the gateway, a new SSE
//! stream) answers within 1 s; each socket is closed by the server once the header timeout
//! has run from its accept, and every one is counted.
//!
//! Descriptors: 5,000 client and 5,000 server sockets in this one process; the test needs a
//! soft `nofile` limit of at least 12,000 (`ulimit -n 20000` where the default is lower).
//! The gateway's sockets come from 20 loopback addresses (127.0.1.1–20, 250 each) so that
//! its per-IP cap (default 256) is not what turns them away.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_core::secret::Secret;
use herald_core::serve::HttpConfig;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_test_support::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Sockets per attack.
const SOCKETS: usize = 5_000;
/// Loopback addresses the attack comes from.
const SOURCES: u8 = 20;
/// The services' header timeout in these tests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(4);
/// One more byte of the unfinished header per socket this often: the attack's own pace
/// (part of the scenario, not synchronisation); shorter than the header timeout, so only a
/// deadline on the whole head can end it.
const TRICKLE: Duration = Duration::from_secs(1);
/// How long a service may take to answer while under attack.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The bound on the whole attack.
const DEADLINE: Duration = Duration::from_secs(25);
const JWT_SECRET: &str = "slowloris-jwt-secret-0123456789";

/// One service in-process, with its own nats-server.
struct Service {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _nats: NatsServer,
}

impl Service {
    async fn start(kind: &str) -> Self {
        herald_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await;
        let common = CommonConfig {
            http: HttpConfig {
                header_timeout: HEADER_TIMEOUT,
                // Above the attack's size: what keeps the service answering here is the
                // deadline; the cap (whose refusals are tested in herald-core) is the backstop.
                max_pending_connections: 2 * SOCKETS,
                ..HttpConfig::default()
            },
            ..herald_test_support::service::common_config(&nats)
        };
        let shutdown = CancellationToken::new();
        let ctx = ServiceContext::connect(&common, kind, shutdown.clone())
            .await
            .unwrap();
        // A listen backlog of 4096 (the kernel's somaxconn here), not tokio's 1024: the attack
        // connects faster than a debug build on two shared cores accepts, and a full accept
        // queue makes the kernel reset connections the service never saw.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(4096).unwrap();
        let addr = listener.local_addr().unwrap();
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let task = match kind {
            "ingest" => {
                let cfg = herald_ingest::Config {
                    listen: local,
                    ..Default::default()
                };
                let app = herald_ingest::App::build(cfg, listener, ctx).await.unwrap();
                tokio::spawn(async move { Ok(app.run_until_stopped().await?) })
            }
            "notifier" => {
                let cfg = herald_notifier::Config {
                    listen: local,
                    ..Default::default()
                };
                let app = herald_notifier::App::build(cfg, listener, ctx)
                    .await
                    .unwrap();
                tokio::spawn(async move { Ok(app.run_until_stopped().await?) })
            }
            "stats" => {
                let cfg = herald_stats::Config {
                    listen: local,
                    ..Default::default()
                };
                let app = herald_stats::App::build(cfg, listener, ctx).await.unwrap();
                tokio::spawn(async move { Ok(app.run_until_stopped().await?) })
            }
            _ => {
                let mut cfg = herald_gateway::Config {
                    listen: local,
                    head_timeout: HEADER_TIMEOUT,
                    drain_window: Duration::ZERO,
                    ..Default::default()
                };
                cfg.jwt.secret = Some(Secret::new(JWT_SECRET));
                let app = herald_gateway::App::build(cfg, listener, ctx)
                    .await
                    .unwrap();
                tokio::spawn(async move { Ok(app.run_until_stopped().await?) })
            }
        };
        let service = Self {
            addr,
            shutdown,
            task,
            _nats: nats,
        };
        service.healthz().await;
        service
    }

    /// `GET /healthz` on a new connection answers 200 within [`ANSWER_WITHIN`]; returns how long.
    async fn healthz(&self) -> Duration {
        let asked = Instant::now();
        let http = reqwest::Client::new();
        let res = tokio::time::timeout(
            ANSWER_WITHIN,
            http.get(format!("http://{}/healthz", self.addr)).send(),
        )
        .await
        .expect("/healthz answers within 1 s")
        .unwrap();
        assert_eq!(res.status(), 200);
        asked.elapsed()
    }

    /// A new SSE stream's head arrives (200) within [`ANSWER_WITHIN`]; returns how long.
    async fn sse(&self) -> Duration {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let claims = serde_json::json!({"sub": "u", "tenant": "acme", "topics": ["*"], "exp": exp});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap();
        let asked = Instant::now();
        let res = tokio::time::timeout(
            ANSWER_WITHIN,
            reqwest::Client::new()
                .get(format!("http://{}/v1/stream", self.addr))
                .bearer_auth(token)
                .send(),
        )
        .await
        .expect("a new SSE stream answers within 1 s")
        .unwrap();
        assert_eq!(res.status(), 200);
        asked.elapsed()
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    }
}

/// Connects one attacking socket from `source` and sends the unfinished head; returns it and
/// when connecting started (the server accepts it later, and starts its clock then).
async fn connect(target: SocketAddr, source: IpAddr) -> (TcpStream, Instant) {
    let connected = Instant::now();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut tcp = socket.connect(target).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nX: ")
        .await
        .unwrap();
    (tcp, connected)
}

/// Trickles the header until the server closes the socket; returns how long after connecting.
async fn trickle(mut tcp: TcpStream, connected: Instant, closed: Arc<AtomicUsize>) -> Duration {
    let lasted = trickle_until_closed(&mut tcp, connected).await;
    closed.fetch_add(1, Ordering::Relaxed);
    lasted
}

async fn trickle_until_closed(tcp: &mut TcpStream, connected: Instant) -> Duration {
    let mut tick = tokio::time::interval_at((connected + TRICKLE).into(), TRICKLE);
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return connected.elapsed(),
                Ok(_) => {}
            },
            _ = tick.tick() => {
                if tcp.write_all(b"a").await.is_err() {
                    return connected.elapsed();
                }
            }
        }
    }
}

/// The attack: opens every socket, checks the service answers while they trickle, then waits
/// for the server to close each; asserts the closes and `timeouts_metric`.
async fn attack(service: &Service, timeouts_metric: &str, sse: bool) {
    let started = Instant::now();
    let sources: Vec<IpAddr> = (1..=SOURCES)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, i)))
        .collect();
    let target = service.addr;
    let mut trickling = JoinSet::new();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut opening = futures::stream::iter(0..SOCKETS)
        .map(|i| connect(target, sources[i % sources.len()]))
        .buffer_unordered(512);
    while let Some((tcp, connected)) = opening.next().await {
        trickling.spawn(trickle(tcp, connected, Arc::clone(&closed)));
    }
    let opened_in = started.elapsed();
    let healthz = service.healthz().await;
    let stream = if sse { Some(service.sse().await) } else { None };
    // Sockets the server had closed by the time it answered: most must still be trickling.
    let closed_early = closed.load(Ordering::Relaxed);
    let mut closes = Vec::with_capacity(SOCKETS);
    tokio::time::timeout(DEADLINE, async {
        while let Some(closed) = trickling.join_next().await {
            closes.push(closed.unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} of {SOCKETS} sockets still open after {DEADLINE:?}",
            SOCKETS - closes.len()
        )
    });
    closes.sort();
    let (first, last) = (closes[0], closes[SOCKETS - 1]);
    eprintln!(
        "{SOCKETS} sockets opened in {opened_in:?}; /healthz in {healthz:?}, SSE in {stream:?} \
         ({closed_early} closed by then); closed {first:?}..{last:?} after connecting"
    );
    // Not before the header timeout (the server's clock starts at accept, after the client
    // started connecting; the timer may round down by a millisecond), and not much later.
    assert!(
        first >= HEADER_TIMEOUT - Duration::from_millis(5),
        "{first:?}"
    );
    assert!(last <= HEADER_TIMEOUT + Duration::from_secs(5), "{last:?}");
    assert!(
        closed_early < SOCKETS / 2,
        "{closed_early} closed before the check"
    );
    assert_eq!(service.metric(timeouts_metric).await, SOCKETS as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_ingest_is_cut_off_by_the_header_timeout() {
    let service = Service::start("ingest").await;
    attack(&service, "herald_ingest_http_header_timeouts_total", false).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_notifier_is_cut_off_by_the_header_timeout() {
    let service = Service::start("notifier").await;
    attack(
        &service,
        "herald_notifier_http_header_timeouts_total",
        false,
    )
    .await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_stats_is_cut_off_by_the_header_timeout() {
    let service = Service::start("stats").await;
    attack(&service, "herald_stats_http_header_timeouts_total", false).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_gateway_is_cut_off_by_the_header_timeout() {
    let service = Service::start("gateway").await;
    attack(&service, "herald_gateway_head_timeouts_total", true).await;
    service.stop().await;
}
