//! The gateway's own HTTP/1 handling of SSE streams (`herald_gateway::server`), over raw
//! sockets: what goes on the wire, HTTP/1.0, refusals, the hyper fallback on a kept-alive
//! connection, silent and non-reading clients.

use std::time::Duration;

use herald_test_support::wait;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{DEADLINE, TestApp, test_config};

/// A raw HTTP/1 client: what it sent is exactly what the test wrote.
struct Raw {
    tcp: TcpStream,
    read: Vec<u8>,
}

impl Raw {
    async fn connect(app: &TestApp) -> Self {
        let tcp = TcpStream::connect(app.gw.addr).await.unwrap();
        Self {
            tcp,
            read: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.tcp.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` has arrived (after `from`); returns where it ends.
    async fn until(&mut self, from: usize, needle: &str) -> usize {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(at) = find(&self.read[from..], needle.as_bytes()) {
                    return from + at + needle.len();
                }
                let mut buf = [0u8; 4096];
                let n = self.tcp.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before {needle:?}: {}", self.text());
                self.read.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in time: {}", self.text()))
    }

    /// Reads until the server closes the connection.
    async fn until_closed(&mut self) {
        let rest = herald_test_support::net::read_until_closed(&mut self.tcp, DEADLINE).await;
        self.read.extend_from_slice(&rest);
    }

    /// The response head, lower-cased.
    async fn head(&mut self) -> (String, usize) {
        let end = self.until(0, "\r\n\r\n").await;
        (
            String::from_utf8_lossy(&self.read[..end]).to_lowercase(),
            end,
        )
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.read).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn stream_request(version: &str, token: &str) -> String {
    format!("GET /v1/stream?access_token={token} HTTP/{version}\r\nhost: herald\r\n\r\n")
}

#[tokio::test]
async fn http_1_1_streams_are_chunked_each_event_one_chunk_and_the_connection_closes_after() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut raw = Raw::connect(&app).await;
    raw.send(&stream_request("1.1", &token)).await;
    let (head, body) = raw.head().await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert!(head.contains("cache-control: no-cache\r\n"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let hello = raw.until(body, "event: status\n").await;
    let seq = app.publish("acme", "leads", json!({"n": 1})).await;
    let epoch = app.epoch().await;
    let id = format!("id: {seq}-{epoch}\n");
    let end = raw.until(hello, &id).await;
    // The event is one chunk: its size line, exactly its bytes, CRLF.
    let frame_end = raw.until(end, "\n\n\r\n").await;
    let frame_start = end - id.len();
    let size_line_end = frame_start - 2;
    let size_line_start = raw.read[..size_line_end]
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    let size = std::str::from_utf8(&raw.read[size_line_start..size_line_end]).unwrap();
    let size = usize::from_str_radix(size, 16).expect("a hex chunk size");
    assert_eq!(size, frame_end - 2 - frame_start, "{}", raw.text());
}

#[tokio::test]
async fn http_1_0_streams_are_delimited_by_the_close() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut raw = Raw::connect(&app).await;
    raw.send(&stream_request("1.0", &token)).await;
    let (head, body) = raw.head().await;
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    let seq = app.publish("acme", "leads", json!({"n": 1})).await;
    let at = raw.until(body, &format!("id: {seq}-")).await;
    // No chunk framing anywhere in the body.
    assert!(
        raw.text()[body..at].starts_with("retry: "),
        "{}",
        raw.text()
    );
}

#[tokio::test]
async fn a_refused_stream_gets_the_json_error_with_its_length_and_the_connection_closes() {
    let app = TestApp::spawn().await;
    let mut raw = Raw::connect(&app).await;
    raw.send("GET /v1/stream HTTP/1.1\r\nhost: herald\r\n\r\n")
        .await;
    let (head, body) = raw.head().await;
    assert!(head.starts_with("http/1.1 401 unauthorized\r\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    raw.until_closed().await;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    assert_eq!(raw.read.len() - body, length);
    let error: serde_json::Value = serde_json::from_slice(&raw.read[body..]).unwrap();
    assert!(
        error["error"].is_object() || error["error"].is_string(),
        "{error}"
    );
}

#[tokio::test]
async fn a_stream_on_a_kept_alive_connection_is_served_by_hyper_with_the_same_bytes() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut raw = Raw::connect(&app).await;
    raw.send("GET /healthz HTTP/1.1\r\nhost: herald\r\n\r\n")
        .await;
    let (head, _) = raw.head().await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("connection: close"),
        "hyper keeps it alive: {head}"
    );
    let served = raw.read.len();
    raw.send(&stream_request("1.1", &token)).await;
    let head_end = raw.until(served, "\r\n\r\n").await;
    let head = String::from_utf8_lossy(&raw.read[served..head_end]).to_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let seq = app.publish("acme", "leads", json!({"n": 2})).await;
    raw.until(head_end, &format!("id: {seq}-")).await;
}

#[tokio::test]
async fn a_connection_that_sends_no_whole_head_in_time_is_closed() {
    let mut cfg = test_config();
    cfg.head_timeout = Duration::from_millis(200);
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let mut silent = Raw::connect(&app).await;
    let mut partial = Raw::connect(&app).await;
    partial.send("GET /v1/stream HTTP/1.1\r\nhost: her").await;
    silent.until_closed().await;
    partial.until_closed().await;
    assert!(silent.read.is_empty() && partial.read.is_empty());
    assert_eq!(app.metric("herald_gateway_head_timeouts_total").await, 2.0);
    // The listener is unaffected.
    let token = TestApp::token("acme", &["*"], 3600);
    let mut sse = app.sse(&token, "", None).await;
    let seq = app.publish("acme", "leads", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), seq);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_after_the_write_timeout() {
    let mut cfg = test_config();
    cfg.client_queue = 4;
    cfg.write_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut stuck = Raw::connect(&app).await;
    stuck.send(&stream_request("1.1", &token)).await;
    stuck.head().await;
    let open = r#"herald_gateway_connections{transport="sse"} 1"#;
    wait::until("the stream is counted", DEADLINE, || async {
        app.metrics().await.contains(open)
    })
    .await;
    // Enough to fill both socket buffers, then the queue: the gateway's write can make no
    // progress, and without a write timeout the connection would stay forever.
    let blob = "x".repeat(256 * 1024);
    let closed = r#"herald_gateway_connections{transport="sse"} 0"#;
    let mut published = 0;
    while app.metric("herald_gateway_overflows_total").await < 1.0 {
        assert!(published < 200, "no overflow after {published} events");
        app.publish("acme", "leads", json!({"blob": blob})).await;
        published += 1;
    }
    wait::until("the stuck connection is closed", DEADLINE, || async {
        app.metrics().await.contains(closed)
    })
    .await;
    assert_eq!(app.metric("herald_gateway_write_timeouts_total").await, 1.0);
}
