//! What happens before a request reaches the router: the per-IP cap at accept, and the head
//! deadline on every path (hyper's included), over raw sockets from chosen loopback addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{DEADLINE, TestApp, test_config};

/// A connection to the gateway from `source` (a loopback address of the test's own, so the
/// helpers' connections from 127.0.0.1 do not count against its per-IP cap).
async fn connect(app: &TestApp, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    let source: IpAddr = source.parse().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(app.gw.addr).await.unwrap()
}

/// Reads until `needle`; returns everything read.
async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the answer arrives");
    String::from_utf8(got).unwrap()
}

/// Reads until the gateway closes the connection (end of stream or reset).
async fn until_closed(tcp: &mut TcpStream) -> String {
    String::from_utf8(herald_test_support::net::read_until_closed(tcp, DEADLINE).await).unwrap()
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_are_answered_429_with_retry_after_and_closed() {
    let mut cfg = test_config();
    cfg.limits.per_ip = 2;
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    // Two open streams from one address fill its cap.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect(&app, "127.0.0.3").await;
        let req = format!("GET /v1/stream?access_token={token} HTTP/1.1\r\nhost: h\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        assert!(
            read_until(&mut tcp, "\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 200")
        );
        streams.push(tcp);
    }
    let mut third = connect(&app, "127.0.0.3").await;
    let answer = until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    assert!(
        answer.to_lowercase().contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    let body: serde_json::Value =
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections_from_address");
    // Another address is not affected.
    let mut other = connect(&app, "127.0.0.4").await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: h\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut other, "\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let refused = r#"herald_gateway_refused_connections_total{reason="per_ip"}"#;
    assert_eq!(app.metric(refused).await, 1.0);
}

#[tokio::test]
async fn a_slow_head_for_a_path_hyper_serves_is_closed_after_the_head_timeout() {
    let mut cfg = test_config();
    cfg.head_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let mut slow = connect(&app, "127.0.0.5").await;
    let opened = Instant::now();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nX: ")
        .await
        .unwrap();
    assert_eq!(until_closed(&mut slow).await, "");
    assert!(opened.elapsed() >= Duration::from_millis(300));
    assert_eq!(app.metric("herald_gateway_head_timeouts_total").await, 1.0);
}

#[tokio::test]
async fn a_later_head_on_a_kept_alive_connection_must_arrive_within_the_head_timeout() {
    let mut cfg = test_config();
    cfg.head_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let mut tcp = connect(&app, "127.0.0.6").await;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: h\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until(&mut tcp, "\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 200")
    );
    let answered = Instant::now();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nX: ")
        .await
        .unwrap();
    until_closed(&mut tcp).await;
    assert!(answered.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_websocket_keeps_its_per_ip_slot_after_the_upgrade() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let mut cfg = test_config();
    cfg.limits.per_ip = 1;
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut req = format!("ws://{}/v1/ws", app.gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let tcp = connect(&app, "127.0.0.7").await;
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    // A subscription's opening frame: the socket is the WebSocket's now, hyper is done with it.
    let subscribe = serde_json::json!({"op": "subscribe", "topics": ["leads"]}).to_string();
    ws.send(Message::text(subscribe)).await.unwrap();
    let opening = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap();
    assert!(opening.unwrap().is_ok());
    let mut second = connect(&app, "127.0.0.7").await;
    let answer = until_closed(&mut second).await;
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    ws.close(None).await.unwrap();
}
