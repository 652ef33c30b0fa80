//! Connection limits.

use std::time::Duration;

use herald_core::streams::StreamSettings;
use herald_test_support::wait;
use serde_json::Value;

use crate::helpers::{SECRET, TestApp, test_config, token_for};

#[tokio::test]
async fn per_user_and_per_tenant_limits_answer_429_and_free_up_on_close() {
    let mut cfg = test_config();
    cfg.limits.per_user = 1;
    cfg.limits.per_tenant = 2;
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let u1 = token_for("u1", "acme", &["*"], 3600, SECRET);
    let u2 = token_for("u2", "acme", &["*"], 3600, SECRET);
    let u3 = token_for("u3", "acme", &["*"], 3600, SECRET);
    let first = app.sse(&u1, "", None).await;
    let second = app.stream(&u1, "", None).await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    let _other = app.sse(&u2, "", None).await;
    assert_eq!(
        app.stream(&u3, "", None).await.status(),
        429,
        "tenant limit"
    );
    drop(first);
    // The slot frees once the server notices the closed connection.
    wait::until(
        "u1's slot to free up once its connection closed",
        Duration::from_secs(10),
        || async { app.stream(&u1, "", None).await.status() == 200 },
    )
    .await;
    assert!(
        app.metric("herald_gateway_rejected_connections_total")
            .await
            >= 2.0
    );
}

#[tokio::test]
async fn connection_rate_answers_503_with_retry_after() {
    let mut cfg = test_config();
    cfg.limits.connect_rate = 1;
    cfg.limits.connect_burst = 1;
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    assert_eq!(app.poll(&token, "wait=0").await.status(), 200);
    let refused = app.poll(&token, "wait=0").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn too_many_topics_is_a_400() {
    let mut cfg = test_config();
    cfg.limits.topics_per_connection = 2;
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    assert_eq!(app.stream(&token, "topics=a,b,c", None).await.status(), 400);
    assert_eq!(app.stream(&token, "topics=a,b", None).await.status(), 200);
}
