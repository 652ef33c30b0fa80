//! NATS frozen (SIGSTOP) while producers post: the socket stays open and silent, so a publish
//! neither fails nor completes. Ingest must answer 503 + `Retry-After` within its publish
//! timeout (never hang), lose nothing it acknowledged, and store the producer's retry once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{API_KEY, TestApp, assert_error};

/// Slack on top of `publish_timeout` for the answer to travel (the bound).
const SLACK: Duration = Duration::from_secs(1);

fn event(i: u32) -> Value {
    json!({"topic": "leads", "action": "insert", "id": format!("e{i}"), "data": {"i": i}})
}

#[tokio::test]
async fn a_frozen_nats_gets_503_within_the_publish_timeout_and_the_retry_is_stored_once() {
    let app = TestApp::spawn().await;
    let publish_timeout = crate::helpers::test_config().publish_timeout;
    for i in 0..5 {
        assert_eq!(app.publish(API_KEY, event(i)).await.status(), 200);
    }

    let frozen = app.nats.freeze();
    let t0 = Instant::now();
    let resp = app.publish(API_KEY, event(5)).await;
    let took = t0.elapsed();
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_error(resp, 503, "unavailable").await;
    assert!(
        took <= publish_timeout + SLACK,
        "503 after {took:?}, publish_timeout {publish_timeout:?}"
    );
    eprintln!("503 after {took:?} (publish_timeout {publish_timeout:?})");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503, "not ready while NATS is silent");
    let why: Value = ready.json().await.unwrap();
    assert!(
        why["reason"].as_str().unwrap().contains("did not answer"),
        "{why}"
    );

    frozen.thaw();
    app.wait_ready().await;
    // The producer retries what got a 503.
    let resp = app.publish(API_KEY, event(5)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The frozen publish waited in the socket and was stored on SIGCONT: a 503 means
    // "maybe not stored", and de-duplication makes the retry safe.
    assert_eq!(body["events"][0]["duplicate"], true, "{body}");
    let mut stored: BTreeMap<String, u32> = BTreeMap::new();
    for (_, e) in app.stored().await {
        *stored.entry(e.id.to_string()).or_default() += 1;
    }
    let expected: BTreeMap<String, u32> = (0..6).map(|i| (format!("e{i}"), 1)).collect();
    assert_eq!(
        stored, expected,
        "every acknowledged event once, the retry once"
    );
}
