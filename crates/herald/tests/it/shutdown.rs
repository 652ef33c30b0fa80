//! `herald up` on SIGTERM: an open SSE stream is told to `reconnect` within the gateway's
//! drain window, then every service and the spawned nats-server stop, and the process exits
//! 0 within the drain window plus a bound. (Each service binary's own SIGTERM test lives in
//! its crate: `crates/herald-*/tests/it/shutdown.rs`.)

use std::time::{Duration, Instant};

use herald_core::names::TenantId;
use serde_json::json;

use crate::sse;
use crate::up::start_with;
use herald_test_support::process::sigterm;
use herald_test_support::wait;

const DRAIN_WINDOW: Duration = Duration::from_secs(1);
const EXIT_BOUND: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn sigterm_drains_the_open_stream_and_exits_0() {
    let mut up = start_with(&[("HERALD_GATEWAY__DRAIN_WINDOW", "1s")]).await;
    let http = reqwest::Client::new();
    let token = herald::token::mint(
        herald::dev::JWT_SECRET,
        "shutdown-test",
        &TenantId::parse(herald::dev::TENANT).unwrap(),
        &["leads".to_owned()],
        Duration::from_secs(600),
    )
    .unwrap();
    // The banner comes as soon as the services listen; the gateway is live a moment later.
    wait::until("the gateway to become ready", DEADLINE, || async {
        let r = http
            .get(format!("http://{}/readyz", up.gateway))
            .send()
            .await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let resp = http
        .get(format!("http://{}/v1/stream?topics=leads", up.gateway))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = sse::Reader::new(resp);

    // The stream is live: a webhook posted to ingest arrives on it.
    let body = json!({
        "record": {"id": 1, "name": "Ada"}, "changes": null, "action": "insert",
        "metadata": {"table_name": "leads", "idempotency_key": "shutdown-1"}
    });
    let posted = http
        .post(format!("http://{}/v1/webhooks/demo-sequin", up.ingest))
        .bearer_auth(herald::dev::SEQUIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success(), "{posted:?}");
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            let msg = stream.next().await.unwrap().expect("the stream is open");
            if msg.event.is_none() {
                return msg;
            }
        }
    })
    .await
    .expect("the event arrives");
    assert_eq!(event.json()["id"], "shutdown-1");

    let term_at = Instant::now();
    sigterm(&up.child);
    let bye = tokio::time::timeout(DRAIN_WINDOW + EXIT_BOUND, async {
        loop {
            let msg = stream
                .next()
                .await
                .unwrap()
                .expect("reconnect before the end");
            if msg.event.as_deref() == Some("reconnect") {
                return msg;
            }
        }
    })
    .await
    .expect("`reconnect` within the drain window");
    assert_eq!(bye.json()["reason"], "draining");
    assert!(
        term_at.elapsed() <= DRAIN_WINDOW + Duration::from_millis(500),
        "told within the drain window: {:?}",
        term_at.elapsed()
    );
    let ended = tokio::time::timeout(DEADLINE, stream.next()).await;
    assert!(
        matches!(ended, Ok(Ok(None))),
        "the stream ends after `reconnect`: {ended:?}"
    );
    let status = tokio::time::timeout(DRAIN_WINDOW + EXIT_BOUND, up.child.wait())
        .await
        .expect("herald up exits within the drain window + 5 s")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
