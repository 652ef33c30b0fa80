//! NATS frozen (SIGSTOP) mid-stream: the socket stays open and silent, so only the active
//! probe can tell. Clients must hear `degraded` within 2 s, `live` within 2 s of the thaw, and
//! then every event — published before, during and after the freeze — exactly once, in order.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestApp, publish};
use crate::scenario::streaming;

/// The promise (issue 14): `degraded` within 2 s of NATS going silent, `live` within 2 s of
/// it answering again.
const WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_frozen_nats_is_reported_degraded_then_live_and_no_event_is_lost_or_repeated() {
    let app = TestApp::spawn().await;
    let mut sse = streaming(&app).await;
    // A producer connected before the freeze: its publishes wait in the socket and are
    // stored when the server resumes.
    let mut producer = app.nats.jetstream().await;
    producer.set_timeout(Duration::from_secs(60));

    let frozen = app.nats.freeze();
    let t0 = Instant::now();
    let (degraded, early) = sse.until("status").await.unwrap();
    let took = t0.elapsed();
    assert_eq!(degraded.json()["state"], "degraded");
    assert!(early.is_empty(), "nothing before `degraded`: {early:?}");
    assert!(took <= WITHIN, "`degraded` after {took:?}");
    eprintln!("degraded {took:?} after the freeze");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while NATS is silent");
    let why: serde_json::Value = ready.json().await.unwrap();
    assert!(
        why["reason"].as_str().unwrap().contains("did not answer"),
        "{why}"
    );
    let during: Vec<_> = (0..3)
        .map(|i| {
            let js = producer.clone();
            tokio::spawn(async move { publish(&js, "acme", "leads", json!({"during": i})).await })
        })
        .collect();

    frozen.thaw();
    let t1 = Instant::now();
    let (live, early) = sse.until("status").await.unwrap();
    let took = t1.elapsed();
    assert_eq!(live.json()["state"], "live");
    assert!(early.is_empty(), "no event while degraded: {early:?}");
    assert!(took <= WITHIN, "`live` after {took:?}");
    eprintln!("live {took:?} after the thaw");
    let mut expected = Vec::new();
    for task in during {
        expected.push(task.await.unwrap());
    }
    expected.sort_unstable();
    for i in 0..3 {
        expected.push(app.publish("acme", "leads", json!({"after": i})).await);
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let ev = sse.next().await.unwrap().expect("the stream stays open");
        assert_eq!(ev.event, None, "only events after `live`: {ev:?}");
        got.push(ev.seq());
    }
    assert_eq!(
        got, expected,
        "every event once, in order, none from before"
    );
}

#[tokio::test]
async fn long_poll_says_degraded_while_nats_is_frozen() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    app.publish_seen("acme", "leads", json!({})).await;
    let frozen = app.nats.freeze();
    let t0 = Instant::now();
    herald_test_support::wait::until_ok("a degraded long-poll", WITHIN, || async {
        let body: serde_json::Value = app.poll(&token, "wait=0").await.json().await?;
        match body["state"].as_str() {
            Some("degraded") => Ok(()),
            _ => Err(anyhow::anyhow!("{body}")),
        }
    })
    .await;
    eprintln!("poll degraded {:?} after the freeze", t0.elapsed());
    frozen.thaw();
    app.wait_ready().await;
    let body: serde_json::Value = app.poll(&token, "wait=0").await.json().await.unwrap();
    assert_eq!(body["state"], "live", "{body}");
}
