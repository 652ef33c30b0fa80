//! The server over real loopback sockets: deadlines, caps and their refusals, shutdown.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use herald_test_support::net::read_until_closed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

/// How long any awaited condition may take.
const DEADLINE: Duration = Duration::from_secs(10);
/// A slowloris's request: a head that never ends.
const UNFINISHED: &[u8] = b"GET /healthz HTTP/1.1\r\nX: ";
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n";

struct Server {
    addr: SocketAddr,
    metrics: ServerMetrics,
    shutdown: CancellationToken,
    task: JoinHandle<io::Result<()>>,
}

async fn start(cfg: HttpConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        );
    let metrics = ServerMetrics::default();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move { serve(listener, router, &cfg, metrics, shutdown).await }
    });
    Server {
        addr,
        metrics,
        shutdown,
        task,
    }
}

fn config(header_timeout: Duration) -> HttpConfig {
    HttpConfig {
        header_timeout,
        ..HttpConfig::default()
    }
}

/// Sends one request and reads its whole (short) response, leaving the connection open.
async fn request(tcp: &mut TcpStream, req: &[u8]) -> String {
    tcp.write_all(req).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") || !complete(&got) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed mid-response");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response");
    String::from_utf8(got).unwrap()
}

fn complete(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got).to_lowercase();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= len
}

fn refused(server: &Server, reason: Refusal) -> u64 {
    server
        .metrics
        .refused
        .get_or_create(&RefusedLabels { reason })
        .get()
}

#[tokio::test]
async fn a_head_that_never_completes_is_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let server = start(config(timeout)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    slow.write_all(UNFINISHED).await.unwrap();
    let got = read_until_closed(&mut slow, DEADLINE).await;
    assert!(opened.elapsed() >= timeout, "closed before the deadline");
    assert!(got.is_empty(), "nothing is answered: {got:?}");
    assert_eq!(server.metrics.header_timeouts.get(), 1);
}

#[tokio::test]
async fn a_kept_alive_connection_whose_next_head_is_late_is_closed() {
    let timeout = Duration::from_millis(300);
    let server = start(config(timeout)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    assert!(request(&mut tcp, HEALTHZ).await.starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    tcp.write_all(UNFINISHED).await.unwrap();
    read_until_closed(&mut tcp, DEADLINE).await;
    assert!(answered.elapsed() >= timeout, "closed before the deadline");
    // hyper does not tell a late head from an idle connection: not counted.
    assert_eq!(server.metrics.header_timeouts.get(), 0);
}

#[tokio::test]
async fn a_full_pending_cap_is_answered_503_with_retry_after_and_a_json_body() {
    let server = start(HttpConfig {
        max_pending_connections: 1,
        ..config(Duration::from_secs(60))
    })
    .await;
    // Accepted in order: the first takes the only pending slot.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    let answer = String::from_utf8(read_until_closed(&mut second, DEADLINE).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    let lower = answer.to_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{answer}");
    assert!(lower.contains("content-type: application/json"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_pending_connections");
    assert_eq!(refused(&server, Refusal::Pending), 1);
    // Once the first has sent its head, its pending slot is free for a newcomer.
    assert!(
        request(&mut first, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        request(&mut third, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(refused(&server, Refusal::Pending), 1);
}

#[tokio::test]
async fn a_full_connection_cap_is_answered_503_and_the_open_connection_keeps_working() {
    let server = start(HttpConfig {
        max_connections: 1,
        ..config(Duration::from_secs(60))
    })
    .await;
    let mut open = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        request(&mut open, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let answer = String::from_utf8(read_until_closed(&mut extra, DEADLINE).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert_eq!(refused(&server, Refusal::Connections), 1);
    assert!(
        request(&mut open, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let server = start(HttpConfig::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let me = tcp.local_addr().unwrap();
    let answer = request(&mut tcp, b"GET /peer HTTP/1.1\r\nhost: test\r\n\r\n").await;
    assert!(answer.ends_with(&me.to_string()), "{answer}");
}

#[tokio::test]
async fn shutdown_closes_connections_without_a_request_and_serve_returns() {
    let server = start(config(Duration::from_secs(60))).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(UNFINISHED).await.unwrap();
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        request(&mut idle, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    server.shutdown.cancel();
    read_until_closed(&mut slow, DEADLINE).await;
    read_until_closed(&mut idle, DEADLINE).await;
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
}

#[test]
fn the_per_ip_cap_refuses_only_that_address_and_frees_its_slot_on_drop() {
    let admission = Admission::new(&HttpConfig::default(), Some(2));
    let a: IpAddr = "127.0.0.1".parse().unwrap();
    let b: IpAddr = "127.0.0.2".parse().unwrap();
    let first = admission.admit(a).unwrap();
    let _second = admission.admit(a).unwrap();
    assert_eq!(admission.admit(a).unwrap_err(), Refusal::PerIp);
    let _other = admission.admit(b).unwrap();
    drop(first);
    let _again = admission.admit(a).unwrap();
}

#[test]
fn a_refused_connection_takes_no_slot() {
    let cfg = HttpConfig {
        max_pending_connections: 1,
        ..HttpConfig::default()
    };
    let admission = Admission::new(&cfg, None);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut first = admission.admit(ip).unwrap();
    assert_eq!(admission.admit(ip).unwrap_err(), Refusal::Pending);
    first.head_read();
    assert!(!first.is_pending());
    let _second = admission.admit(ip).unwrap();
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
fn the_http_section_loads_from_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("HERALD_HTTP__HEADER_TIMEOUT", "2s");
        jail.set_env("HERALD_HTTP__MAX_PENDING_CONNECTIONS", "7");
        let common: crate::service::CommonConfig = crate::config::load(None, None).unwrap();
        assert_eq!(common.http.header_timeout, Duration::from_secs(2));
        assert_eq!(common.http.max_pending_connections, 7);
        assert_eq!(common.http.max_connections, 10_000);
        Ok(())
    });
}
