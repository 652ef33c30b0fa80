//! The real binary on SIGTERM: it stops accepting, tells every open stream to `reconnect` at a
//! moment spread over the drain window (so clients do not stampede the other instances), and
//! exits 0 within the drain window plus a bound.

use std::time::{Duration, Instant};

use herald_test_support::NatsServer;
use serde_json::json;

use crate::helpers::{SECRET, SseClient, TestApp, publish};
use herald_test_support::process::{self, ServiceSpec, sigterm};
use herald_test_support::wait;

/// The drain window the binary is configured with.
const DRAIN_WINDOW: Duration = Duration::from_secs(2);
/// How long the process may take to exit after the drain window.
const EXIT_BOUND: Duration = Duration::from_secs(5);
/// Open streams during the shutdown.
const CLIENTS: usize = 8;
/// How long start-up may take.
const DEADLINE: Duration = Duration::from_secs(20);

fn spec(config: &std::path::Path) -> ServiceSpec {
    ServiceSpec::new("gateway", env!("CARGO_BIN_EXE_herald-gateway")).config(config)
}

#[tokio::test]
async fn sigterm_spreads_reconnects_over_the_drain_window_then_exits_0() {
    let nats = NatsServer::start().await;
    let addr = process::free_addr();
    let port = addr.port();
    let (_dir, config) = process::config_file(
        &nats.url(),
        &format!(
            "[gateway]\nlisten = \"{addr}\"\ndrain_window = \"{}ms\"\n\
             [gateway.jwt]\nsecret = \"{SECRET}\"\n",
            DRAIN_WINDOW.as_millis()
        ),
    );
    let mut child = process::spawn_ready(spec(&config).listen(addr)).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let token = TestApp::token("acme", &["leads"], 600);
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let resp = http
            .get(format!("{base}/v1/stream?topics=leads"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        clients.push(SseClient::new(resp));
    }
    // Every stream is live: each receives the same event.
    let seq = publish(&nats.jetstream().await, "acme", "leads", json!({"n": 1})).await;
    for sse in &mut clients {
        // Control messages (the `status` hello) come first; then the event.
        let first = loop {
            let msg = sse.next().await.unwrap().expect("the stream is open");
            if msg.event.is_none() {
                break msg;
            }
        };
        assert_eq!(first.seq(), seq);
    }

    let term_at = Instant::now();
    sigterm(&child);
    let mut tasks = Vec::with_capacity(CLIENTS);
    for mut sse in clients {
        tasks.push(tokio::spawn(async move {
            let (bye, _) = sse.until("reconnect").await.unwrap();
            let at = term_at.elapsed();
            assert_eq!(bye.json()["reason"], "draining");
            assert!(sse.next().await.unwrap().is_none(), "the stream ends");
            at
        }));
    }
    // Stop accepting while the streams drain: new connections are refused.
    wait::until("the listener to close on SIGTERM", DEADLINE, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    })
    .await;
    let refused = term_at.elapsed();
    let mut told = Vec::with_capacity(CLIENTS);
    for t in tasks {
        told.push(t.await.unwrap());
    }
    let status = child
        .wait_exit(DRAIN_WINDOW + EXIT_BOUND)
        .await
        .expect("the gateway exits within the drain window + 5 s");
    assert!(status.success(), "exit status {status}");

    told.sort_unstable();
    let (first, last) = (told[0], told[CLIENTS - 1]);
    eprintln!("reconnects told between {first:?} and {last:?} after SIGTERM");
    assert!(
        last <= DRAIN_WINDOW + Duration::from_secs(1),
        "every client is told within the window: {told:?}"
    );
    assert!(
        last - first >= Duration::from_millis(100),
        "reconnects are spread over the window, not all at once: {told:?}"
    );
    assert!(
        refused < last,
        "the listener closed ({refused:?}) while streams were still draining: {told:?}"
    );
}
