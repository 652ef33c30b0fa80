//! The real binary on SIGTERM: it stops accepting connections, finishes the request in
//! flight (its event is stored and answered 200), and exits 0 within a bound.

use std::time::Duration;

use herald_core::streams::EVENTS_STREAM;
use herald_test_support::process::{self, ServiceSpec, sigterm};
use herald_test_support::{NatsServer, wait};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::API_KEY;

/// How long start-up, and each awaited condition, may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long the process may take to exit after SIGTERM once its last request is answered.
const EXIT_BOUND: Duration = Duration::from_secs(5);

/// Reads an HTTP/1.1 response head (up to the blank line) off `conn`.
async fn read_head(conn: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await.unwrap();
        assert!(n > 0, "the connection closed mid-response: {head}");
        if line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    let nats = NatsServer::start().await;
    let addr = process::free_addr();
    let port = addr.port();
    let (dir, config) = process::config_file(
        &nats.url(),
        &format!("[ingest]\nlisten = \"{addr}\"\n[ingest.api_keys]\nacme = [\"{API_KEY}\"]\n"),
    );
    let spec = ServiceSpec::new("ingest", env!("CARGO_BIN_EXE_herald-ingest"))
        .config(&config)
        .listen(addr)
        .log_file(dir.path().join("ingest.log"));
    let mut child = process::spawn(spec);
    let ready = child.wait_ready(DEADLINE).await;
    assert!(ready.is_ok(), "ingest becomes ready");

    // A request in flight: `Expect: 100-continue` makes the server say when the handler is
    // reading the body, so the request is provably being served when SIGTERM arrives.
    let body = br#"{"topic":"leads","action":"insert","id":"in-flight-1","data":{"n":1}}"#;
    let mut conn = BufReader::new(
        TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect"),
    );
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(head.as_bytes()).await.unwrap();
    let cont = tokio::time::timeout(DEADLINE, read_head(&mut conn))
        .await
        .expect("100 Continue");
    assert!(cont.starts_with("HTTP/1.1 100"), "{cont}");

    sigterm(&child);
    // Stop accepting: new connections are refused while the request above is still open.
    wait::until("the listener to close on SIGTERM", DEADLINE, || async {
        TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;

    // The in-flight request still completes.
    conn.get_mut().write_all(body).await.unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut conn))
        .await
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut rest = String::new();
    let _ = tokio::time::timeout(DEADLINE, conn.read_to_string(&mut rest)).await;
    assert!(rest.contains(r#""seq":1"#), "{rest}");

    let status = child
        .wait_exit(EXIT_BOUND)
        .await
        .expect("ingest exits within the bound after SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        child.log()
    );

    let js = nats.jetstream().await;
    let mut stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1, "stored");
}
