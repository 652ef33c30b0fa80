//! Live delivery over SSE, heartbeat hint, slow clients.

use serde_json::json;

use crate::helpers::{TestApp, test_config};

#[tokio::test]
async fn live_events_are_unnamed_messages_with_cursor_ids_and_a_jittered_retry() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut sse = app.sse(&token, "", None).await;
    let mut published = Vec::new();
    for n in 0..3 {
        published.push(app.publish("acme", "leads", json!({"n": n})).await);
    }
    let got = sse.events(3).await.unwrap();
    for (i, ev) in got.iter().enumerate() {
        assert_eq!(
            ev.id.as_deref(),
            Some(format!("{}-{epoch}", published[i]).as_str())
        );
        let body = ev.json();
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["data"]["n"], i);
    }
    let retry = sse.retries.first().copied().expect("a retry hint");
    assert!(
        (100..=150).contains(&retry),
        "retry {retry} within base+jitter"
    );
}

#[tokio::test]
async fn topics_filter_what_a_connection_receives() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["leads", "deals"], 3600);
    let mut sse = app.sse(&token, "topics=deals", None).await;
    app.publish("acme", "leads", json!({})).await;
    let deal = app.publish("acme", "deals", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), deal);
}

#[tokio::test]
async fn a_slow_client_gets_overflow_and_others_are_unaffected() {
    let mut cfg = test_config();
    cfg.client_queue = 4;
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut slow = app.sse(&token, "", None).await;
    let mut fast = app.sse(&token, "", None).await;
    // Large events fill the slow client's socket buffers, then its queue.
    let blob = "x".repeat(256 * 1024);
    let total = 120;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            seqs.push(
                fast.event()
                    .await
                    .expect("fast client keeps receiving")
                    .seq(),
            );
        }
        seqs
    });
    let mut last = 0;
    for n in 0..total {
        last = app
            .publish("acme", "leads", json!({"n": n, "blob": blob}))
            .await;
    }
    let fast_seqs = reader.await.unwrap();
    assert_eq!(fast_seqs.len(), total);
    assert_eq!(*fast_seqs.last().unwrap(), last);
    let (overflow, before) = slow.until("overflow").await.unwrap();
    assert!(before.len() < total, "the slow client was cut off early");
    assert_eq!(overflow.json()["reason"], "client_too_slow");
    assert!(
        slow.next().await.unwrap().is_none(),
        "then the stream closes"
    );
    assert!(app.metric("herald_gateway_overflows_total").await >= 1.0);
    // It resumes from its cursor and gets the rest.
    let resume_from = slow.last_id.clone();
    let mut again = app.sse(&token, "", resume_from.as_deref()).await;
    let rest = again.events(total - before.len()).await.unwrap();
    assert_eq!(rest.last().unwrap().seq(), last);
}
