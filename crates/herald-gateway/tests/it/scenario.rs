//! Set-ups and readings several test files share: an app with a small ring, a client already
//! streaming, the sequences a client received, a resume after the gateway went away.

use herald_core::cursor::Cursor;
use herald_core::streams::StreamSettings;
use serde_json::{Value, json};

use crate::helpers::{SseClient, TestApp, test_config};

/// A token for tenant `acme`, every topic, valid for an hour.
pub fn acme_token() -> String {
    TestApp::token("acme", &["*"], 3600)
}

/// An app whose ring buffer holds only `ring_events` events (older resumes replay from
/// JetStream).
pub async fn with_ring(ring_events: usize) -> TestApp {
    let mut cfg = test_config();
    cfg.ring_events = ring_events;
    TestApp::spawn_with(cfg, StreamSettings::default()).await
}

/// The sequences of the next `n` events `sse` receives.
pub async fn next_seqs(sse: &mut SseClient, n: usize) -> Vec<u64> {
    sse.events(n)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq())
        .collect()
}

/// The sequence of a WebSocket `event` frame's cursor.
pub fn ws_seq(event: &Value) -> u64 {
    event["cursor"]
        .as_str()
        .unwrap()
        .parse::<Cursor>()
        .unwrap()
        .seq
}

/// `herald_gateway_resumes_total` for `source` (`memory` or `jetstream`).
pub async fn resumes(app: &TestApp, source: &str) -> f64 {
    app.metric(&format!(
        "herald_gateway_resumes_total{{source=\"{source}\"}}"
    ))
    .await
}

/// The status of a GET to `path` without a token.
pub async fn status(app: &TestApp, path: &str) -> reqwest::StatusCode {
    app.http.get(app.url(path)).send().await.unwrap().status()
}

/// A GET to `path` with `token` as the bearer.
pub async fn get_with(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// An `acme` SSE client (every topic) that has received one event (`{"phase":"before"}`).
pub async fn streaming(app: &TestApp) -> SseClient {
    let token = acme_token();
    let mut sse = app.sse(&token, "", None).await;
    let before = app
        .publish("acme", "leads", json!({"phase": "before"}))
        .await;
    assert_eq!(sse.event().await.unwrap().seq(), before);
    sse
}

/// A client that lost its gateway reconnects to the app with its Last-Event-ID: it gets
/// exactly `missed`, then live events, nothing twice.
pub async fn resumes_exactly_then_live(
    app: &TestApp,
    token: &str,
    lost: &SseClient,
    missed: &[u64],
) {
    let last_id = lost.last_id.clone().expect("the client kept its last id");
    let mut resumed = app.sse(token, "", Some(&last_id)).await;
    let got = next_seqs(&mut resumed, missed.len()).await;
    assert_eq!(got, missed.to_vec(), "exactly the missed events");
    let live = app.publish("acme", "leads", json!({})).await;
    assert_eq!(
        resumed.event().await.unwrap().seq(),
        live,
        "then live, nothing twice"
    );
}

/// A long-poll's JSON answer.
pub async fn poll_json(app: &TestApp, token: &str, query: &str) -> Value {
    app.poll(token, query).await.json().await.unwrap()
}

/// One field of each event of a long-poll answer (`path`: keys from the event down).
pub fn each_event<'a>(body: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| path.iter().fold(e, |v, key| &v[*key]))
        .collect()
}
