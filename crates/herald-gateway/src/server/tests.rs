//! The head classification and the response head, without sockets.

use super::stream::{Framing, head};
use super::*;

fn kind(read: &[u8]) -> &'static str {
    match examine(read) {
        Head::Partial => "partial",
        Head::Stream(_) => "stream",
        Head::Other => "other",
    }
}

#[test]
fn only_a_whole_bodiless_get_of_the_stream_path_is_taken() {
    let get = b"GET /v1/stream?topics=a HTTP/1.1\r\nhost: x\r\nlast-event-id: 3-00000001\r\n\r\n";
    assert_eq!(kind(get), "stream");
    assert_eq!(kind(b"GET /v1/stream HTTP/1.0\r\n\r\n"), "stream");
    // Incomplete: wait for more, unless the request line already says it is not a stream.
    assert_eq!(kind(&get[..20]), "partial");
    assert_eq!(kind(&get[..40]), "partial");
    assert_eq!(kind(b"GET /v1/streams HTTP/1.1\r\n"), "other");
    assert_eq!(kind(b"POST /v1/stream HTTP/1.1\r\n"), "other");
    assert_eq!(kind(b"GET /v1/ws HTTP/1.1\r\n\r\n"), "other");
    // A tenant's public stream is a stream too; its other paths are not.
    assert_eq!(
        kind(b"GET /v1/public/acme/stream?topics=p HTTP/1.1\r\n\r\n"),
        "stream"
    );
    for other in [
        "/v1/public/acme/ws",
        "/v1/public//stream",
        "/v1/public/a/b/stream",
        "/v1/public/acme/streams",
    ] {
        let req = format!("GET {other} HTTP/1.1\r\n\r\n");
        assert_eq!(kind(req.as_bytes()), "other", "{other}");
    }
    // Bodies, upgrades, pipelining, HTTP/2 and garbage are hyper's.
    for other in [
        &b"GET /v1/stream HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi"[..],
        b"GET /v1/stream HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        b"GET /v1/stream HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
        b"GET /v1/stream HTTP/1.1\r\n\r\nGET /v1/stream HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01",
        b"GET /v1/stream HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        assert_eq!(kind(other), "other", "{}", String::from_utf8_lossy(other));
    }
}

#[test]
fn the_head_carries_the_framing_of_this_connection_only() {
    let (mut parts, ()) = http::Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("content-length", "0")
        .header("connection", "keep-alive")
        .body(())
        .expect("response")
        .into_parts();
    let chunked = String::from_utf8(head(&parts, Framing::Chunked).to_vec()).expect("utf8");
    assert!(chunked.starts_with("HTTP/1.1 200 OK\r\n"), "{chunked}");
    assert!(chunked.contains("content-type: text/event-stream\r\n"));
    assert!(chunked.contains("connection: close\r\n"));
    assert!(chunked.contains("transfer-encoding: chunked\r\n"));
    assert!(!chunked.contains("content-length"));
    assert!(!chunked.contains("keep-alive"));
    assert!(chunked.ends_with("\r\n\r\n"));
    parts.status = http::StatusCode::UNAUTHORIZED;
    let sized = String::from_utf8(head(&parts, Framing::Length(42)).to_vec()).expect("utf8");
    assert!(
        sized.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{sized}"
    );
    assert!(sized.contains("content-length: 42\r\n"));
    assert!(!sized.contains("transfer-encoding"));
    let close = String::from_utf8(head(&parts, Framing::Close).to_vec()).expect("utf8");
    assert!(!close.contains("transfer-encoding") && !close.contains("content-length"));
}
