//! NATS stopped and restarted mid-stream.

use herald_test_support::wait;
use serde_json::json;

use crate::helpers::TestApp;
use crate::scenario::streaming;

#[tokio::test]
async fn nats_outage_degrades_then_goes_live_and_nothing_is_lost() {
    let mut app = TestApp::spawn().await;
    let mut sse = streaming(&app).await;

    app.nats.stop().await;
    let (degraded, _) = sse.until("status").await.unwrap();
    assert_eq!(degraded.json()["state"], "degraded");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while NATS is down");

    app.nats.restart().await;
    // Published as soon as NATS is back, possibly before the gateway resumed its consumer.
    let mut after = Vec::new();
    for i in 0..3 {
        after.push(
            app.publish("acme", "leads", json!({"phase": "after", "i": i}))
                .await,
        );
    }
    let mut live = false;
    let mut got = Vec::new();
    while got.len() < after.len() {
        let ev = sse.next().await.unwrap().expect("the stream stays open");
        match ev.event.as_deref() {
            Some("status") => {
                assert_eq!(ev.json()["state"], "live");
                live = true;
            }
            None => got.push(ev.seq()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(live, "`status: live` came before the events");
    assert_eq!(got, after, "nothing lost, nothing twice");
}

#[tokio::test]
async fn a_gateway_started_without_nats_says_so_in_band_and_becomes_ready_later() {
    herald_core::telemetry::init_for_tests();
    let mut nats = herald_test_support::NatsServer::start().await;
    nats.stop().await;
    let cfg = crate::helpers::test_config();
    let gw = crate::helpers::start_gateway(&nats, &cfg, &Default::default()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{}{p}", gw.addr);
    let get = |p: &str, token: &str| http.get(url(p)).bearer_auth(token).send();
    let ready = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        http.get(url("/healthz")).send().await.unwrap().status(),
        200
    );

    // A plain EventSource must not see an error status: it would never come back.
    let token = TestApp::token("acme", &["*"], 3600);
    let resp = get("/v1/stream", &token).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut sse = crate::helpers::SseClient::new(resp);
    let (bye, _) = sse.until("reconnect").await.unwrap();
    let status = sse.hello.as_ref().expect("it opens with `status`");
    assert_eq!(status.json()["state"], "degraded");
    assert_eq!(bye.json()["reason"], "unavailable");
    assert!(!sse.retries.is_empty(), "with a retry hint");
    // Long-poll is a fetch: it gets a 503 with Retry-After.
    let poll = get("/v1/poll?wait=0", &token).await.unwrap();
    assert_eq!(poll.status(), 503);
    assert!(poll.headers().contains_key("retry-after"));

    nats.restart().await;
    wait::until(
        "ready once NATS is up",
        crate::helpers::DEADLINE,
        || async {
            let r = http.get(url("/readyz")).send().await.map(|r| r.status());
            matches!(r, Ok(s) if s == 200)
        },
    )
    .await;
}
