//! `/healthz`, `/readyz`, `/metrics`, and a clean stop.

use herald_test_support::wait;
use serde_json::json;

use crate::delivery::all_targets;
use crate::helpers::{DEADLINE, TestApp, lead, metric};

#[tokio::test]
async fn ops_endpoints_report_health_readiness_and_counts_by_kind() {
    let mut app = TestApp::spawn(&all_targets()).await;
    let health: serde_json::Value = app.healthz().await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready: serde_json::Value = app.readyz().await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");

    app.publish(&lead(
        "insert",
        json!({"name": "x", "company": "y", "score": 1}),
    ))
    .await;
    app.tg.wait_accepted(2, DEADLINE).await;
    app.slack.wait_accepted(2, DEADLINE).await;
    app.wait_metric("herald_notifier_sent_total{kind=\"slack\"}", 2)
        .await;
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "herald_notifier_sent_total{kind=\"telegram\"}"),
        2
    );
    assert_eq!(metric(&m, "herald_notifier_rules "), 1);
    app.stop().await;
}

#[tokio::test]
async fn not_ready_while_nats_is_down() {
    let mut app = TestApp::spawn(&all_targets()).await;
    app.nats.kill().await;
    wait::until("readyz to fail without NATS", DEADLINE, || async {
        !app.readyz().await.status().is_success()
    })
    .await;
    assert_eq!(app.readyz().await.status(), 503);
    assert!(
        app.healthz().await.status().is_success(),
        "the process is alive"
    );
    app.nats.restart().await;
    app.wait_ready().await;
}
