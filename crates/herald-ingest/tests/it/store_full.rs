//! JetStream out of space: a real nats-server whose `max_file_store` is small, filled through
//! ingest. Ingest must answer `503 store_full` with `Retry-After` (never a 2xx for an event
//! that was not stored), `/readyz` must say the store is full, and once space returns the
//! producer's retry is stored, once, and ingest is ready again.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::event::Event;
use herald_core::streams::EVENTS_STREAM;
use herald_test_support::{NatsServer, nats, service, wait};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, TestApp, assert_error, test_config};

/// The server's whole JetStream file store.
const STORE: &str = "256KB";

fn event(i: u32) -> Value {
    // ~4 KiB per event: the store fills in a few dozen requests.
    json!({"topic": "leads", "action": "insert", "id": format!("e{i}"),
           "data": {"i": i, "pad": "x".repeat(4096)}})
}

/// A nats-server whose JetStream store holds at most [`STORE`].
async fn small_store() -> (NatsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("small.conf");
    std::fs::write(
        &conf,
        format!("jetstream {{\n  store_dir: \"unused\"\n  max_file_store: {STORE}\n}}\n"),
    )
    .unwrap();
    let server = NatsServer::start_with(nats::Options {
        config: Some(conf),
        ..Default::default()
    })
    .await;
    (server, dir)
}

/// Every event `HERALD_EVENTS` holds now, by id, with how many times.
async fn stored(app: &TestApp) -> BTreeMap<String, u32> {
    let mut stream = app.js.get_stream(EVENTS_STREAM).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut out = BTreeMap::new();
    for seq in (state.first_sequence..=state.last_sequence).filter(|_| state.messages > 0) {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let event: Event = serde_json::from_slice(&msg.payload).unwrap();
        *out.entry(event.id.to_string()).or_default() += 1;
    }
    out
}

#[tokio::test]
async fn a_full_store_gets_503_store_full_readyz_says_why_and_recovers_when_space_returns() {
    let (server, _conf) = small_store().await;
    let mut common = service::common_config(&server);
    // No reservation: the stream grows until the server's store is exhausted (with the
    // default 1 GiB `max_bytes`, creating the stream is refused instead, error 10047).
    common.stream.max_bytes = -1;
    let app = TestApp::spawn_on_with(server, test_config(), common).await;

    let mut acked = BTreeMap::new();
    let mut refused = None;
    for i in 0..400 {
        let resp = app.publish(API_KEY, event(i)).await;
        match resp.status().as_u16() {
            200 => {
                acked.insert(format!("e{i}"), 1);
            }
            _ => {
                assert_eq!(resp.headers()["retry-after"], "2");
                let body = assert_error(resp, 503, "store_full").await;
                eprintln!("refused after {} events: {body}", acked.len());
                refused = Some(i);
                break;
            }
        }
    }
    let refused = refused.expect("the store never filled");
    assert!(
        acked.len() >= 10,
        "filled after only {} events",
        acked.len()
    );
    // Still full: a retry is refused the same way, nothing stored.
    let resp = app.publish(API_KEY, event(refused)).await;
    assert_error(resp, 503, "store_full").await;

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503, "not ready while the store is full");
    let why: Value = ready.json().await.unwrap();
    let reason = why["reason"].as_str().unwrap();
    assert!(reason.contains("store is full"), "{why}");
    eprintln!("/readyz: {why}");
    assert_eq!(
        stored(&app).await,
        acked,
        "exactly the acknowledged events, once each; nothing refused was stored"
    );

    // The operator frees space (here: purges the stream; raising max_file_store works too).
    let stream = app.js.get_stream(EVENTS_STREAM).await.unwrap();
    stream.purge().await.unwrap();
    // Readiness returns within Retry-After of the latest refusal.
    wait::until("ingest ready again", Duration::from_secs(5), || async {
        app.get("/readyz").await.status() == 200
    })
    .await;
    let resp = app.publish(API_KEY, event(refused)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["duplicate"], false, "{body}");
    // The producer's second retry (e.g. its first answer was lost) is a duplicate.
    let resp = app.publish(API_KEY, event(refused)).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["duplicate"], true, "{body}");
    let expected: BTreeMap<String, u32> = [(format!("e{refused}"), 1)].into();
    assert_eq!(stored(&app).await, expected, "the retry stored once");
}
