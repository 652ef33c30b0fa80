//! `/healthz`, `/readyz`, `/metrics`, and starting without NATS.

use crate::helpers::*;

#[tokio::test]
async fn starts_without_nats_and_becomes_ready_when_it_appears() {
    let mut nats = NatsServer::start().await;
    nats.kill().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    assert_eq!(
        app.healthz().await.status(),
        200,
        "the process answers without NATS"
    );
    let not_ready = app.readyz().await;
    assert_eq!(not_ready.status(), 503);
    let body: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");

    nats.restart().await;
    app.wait_ready().await;
    let js = nats.jetstream().await;
    let mut t = Table::new("acme", "leads");
    let seqs = publish(&js, &[t.op(0, 0, 0)]).await;
    let d = doc_at(&bucket(&js).await, "acme", "leads", seqs[0]).await;
    assert_eq!(d.total, 1);
    app.stop().await;
}

#[tokio::test]
async fn metrics_report_applied_skipped_conflicts_and_lag() {
    let nats = nats().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    app.wait_ready().await;
    let js = nats.jetstream().await;
    let mut t = Table::new("acme", "leads");
    let events: Vec<_> = (0..25).map(|i| t.op(0, 0, i)).collect();
    let seqs = publish(&js, &events).await;
    doc_at(&bucket(&js).await, "acme", "leads", seqs[24]).await;
    eventually("25 events applied", || async {
        app.metric("herald_stats_events_applied_total").await == 25
    })
    .await;
    let text = app.metrics().await;
    for name in [
        "herald_stats_messages_received_total",
        "herald_stats_events_skipped_total",
        "herald_stats_cas_conflicts_total",
        "herald_stats_writes_total",
        "herald_stats_lag_events",
        "herald_stats_batch_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert_eq!(app.metric("herald_stats_lag_events").await, 0);
    app.stop().await;
}
