//! Tenant isolation on every transport, including through cursors and topic patterns.

use herald_core::cursor::Cursor;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::scenario::{each_event, poll_json};

#[tokio::test]
async fn sse_never_crosses_tenants_even_through_cursors() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let acme = TestApp::token("acme", &["*"], 3600);
    let mut live = app.sse(&acme, "", None).await;
    let evil_seq = app.publish("evil", "leads", json!({"secret": true})).await;
    let acme_seq = app.publish("acme", "leads", json!({})).await;
    let ev = live.event().await.unwrap();
    assert_eq!(ev.seq(), acme_seq, "evil's event was not delivered");
    assert_eq!(ev.json()["tenant"], "acme");

    // A cursor just before evil's event resumes only acme's events (ring and JetStream).
    let cursor = Cursor::new(evil_seq - 1, epoch).to_string();
    let mut via_header = app.sse(&acme, "", Some(&cursor)).await;
    assert_eq!(via_header.event().await.unwrap().seq(), acme_seq);
    let mut via_since = app.sse(&acme, &format!("since={cursor}"), None).await;
    assert_eq!(via_since.event().await.unwrap().seq(), acme_seq);
}

#[tokio::test]
async fn topic_patterns_and_ungranted_topics_are_refused() {
    let app = TestApp::spawn().await;
    let leads_only = TestApp::token("acme", &["leads"], 3600);
    for (query, status) in [
        ("topics=deals", 403),
        ("topics=*", 403),
        ("topics=>", 400),
        ("topics=le*", 400),
        ("topics=leads.x", 400),
        ("topics=leads,deals", 403),
    ] {
        let resp = app.stream(&leads_only, query, None).await;
        assert_eq!(resp.status(), status, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string());
        let poll = app.poll(&leads_only, &format!("{query}&wait=0")).await;
        assert_eq!(poll.status(), status, "poll {query}");
    }
    let bad_cursor = app.stream(&leads_only, "since=evil.>", None).await;
    assert_eq!(bad_cursor.status(), 400);
}

#[tokio::test]
async fn poll_and_ws_never_cross_tenants() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let acme = TestApp::token("acme", &["*"], 3600);
    let start = app.publish("acme", "leads", json!({})).await;
    app.publish("evil", "leads", json!({})).await;
    let mine = app.publish("acme", "leads", json!({})).await;
    let since = Cursor::new(start, epoch);
    let body: Value = poll_json(&app, &acme, &format!("since={since}&wait=5")).await;
    let tenants: Vec<&Value> = each_event(&body, &["tenant"]);
    assert_eq!(tenants, vec![&json!("acme")]);

    let mut ws = app.ws(&acme).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": [], "since": since.to_string()}))
        .await;
    let ev = ws.expect("event").await.unwrap();
    assert_eq!(ev["cursor"], Cursor::new(mine, epoch).to_string());
    assert_eq!(ev["event"]["tenant"], "acme");

    let leads_only = TestApp::token("acme", &["leads"], 3600);
    let mut ws = app.ws(&leads_only).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["deals"]}))
        .await;
    let err = ws.expect("error").await.unwrap();
    assert_eq!(err["code"], "topic_forbidden");
    ws.send(json!({"op": "subscribe", "topics": ["*"]})).await;
    assert_eq!(ws.expect("error").await.unwrap()["code"], "topic_forbidden");
}
