//! NATS frozen (SIGSTOP) while the notifier is mid-batch, for longer than `ack_wait`: acks and
//! delivery records written during the freeze wait in the socket, and the server's ack timers
//! run out the moment it resumes. Every event — delivered before, in flight at, published
//! during and after the freeze — must reach its chat exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_test_support::freeze::until_silent_for;
use serde_json::json;

use crate::helpers::{DEADLINE, TestApp, lead, publish, wait_for};
use crate::rules_text::RulesText;

const ACK_WAIT: Duration = Duration::from_secs(1);

fn markers(app: &TestApp) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for r in app.tg.accepted() {
        if let Some(n) = r.text.strip_prefix('e').and_then(|n| n.parse().ok()) {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

#[tokio::test]
async fn a_nats_frozen_longer_than_ack_wait_sends_nothing_twice_and_loses_nothing() {
    let rules = RulesText::new()
        .telegram("tg", 7)
        .rule("all", &["tg"], "e{{ data.n }}");
    let app = TestApp::spawn_with(&rules, |cfg| {
        cfg.ack_wait = ACK_WAIT;
        cfg.rate.telegram_chat_per_sec = 50;
        cfg.rate.telegram_global_per_sec = 100;
        cfg.digest.enabled = false;
    })
    .await;
    let mut producer = app.nats.jetstream().await;
    producer.set_timeout(Duration::from_secs(60));
    for n in 0..20 {
        app.publish(&lead("insert", json!({"n": n}))).await;
    }
    wait_for("some delivered before the freeze", || {
        app.tg.accepted().len() >= 3
    })
    .await;

    let frozen = app.nats.freeze();
    let readyz = format!("http://{}/readyz", app.addr);
    until_silent_for(&app.http, &readyz, 2 * ACK_WAIT).await;
    let during: Vec<_> = (20..30)
        .map(|n| {
            let js = producer.clone();
            tokio::spawn(async move { publish(&js, &lead("insert", json!({"n": n}))).await })
        })
        .collect();
    until_silent_for(&app.http, &readyz, 3 * ACK_WAIT).await;
    frozen.thaw();

    for task in during {
        task.await.unwrap();
    }
    for n in 30..40 {
        app.publish(&lead("insert", json!({"n": n}))).await;
    }
    wait_for("every event delivered", || markers(&app).len() == 40).await;
    // Settled: nothing left to redeliver, so no late duplicate can follow the assertion.
    herald_test_support::wait::until_ok("the consumer to settle", DEADLINE, || async {
        let stream = app
            .js
            .get_stream("HERALD_EVENTS")
            .await
            .map_err(|e| e.to_string())?;
        let info = stream
            .consumer_info("notifier")
            .await
            .map_err(|e| e.to_string())?;
        match (info.num_pending, info.num_ack_pending) {
            (0, 0) => Ok(()),
            other => Err(format!("pending, ack pending: {other:?}")),
        }
    })
    .await;
    app.wait_ready().await;
    let seen = markers(&app);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..40).collect::<Vec<_>>()
    );
}
