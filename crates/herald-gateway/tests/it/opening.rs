//! How every stream opens: the heartbeat interval, the starting cursor, and cursors the stream
//! never held.

use herald_core::cursor::Cursor;
use serde_json::json;

use crate::helpers::{SseClient, TestApp};
use crate::scenario::poll_json;

#[tokio::test]
async fn sse_opens_with_the_heartbeat_and_the_head_cursor_as_its_id() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let head = app.publish_seen("acme", "leads", json!({"n": 0})).await;

    // The raw bytes: `id:` comes before anything else a browser would dispatch.
    let resp = app.stream(&token, "", None).await;
    let mut raw = resp.bytes_stream();
    let mut text = String::new();
    while text.matches("\n\n").count() < 2 {
        let chunk = futures::StreamExt::next(&mut raw).await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let first_message = text.split("\n\n").nth(1).unwrap();
    assert!(
        first_message.starts_with(&format!("id: {head}-{epoch}\nevent: status\n")),
        "{text:?}"
    );
    drop(raw);

    let sse = app.sse(&token, "", None).await;
    let hello = sse.hello.clone().unwrap();
    assert_eq!(hello.json()["heartbeat_ms"], 15_000);
    assert_eq!(hello.json()["state"], "live");
    assert_eq!(hello.cursor(), Cursor::new(head, epoch));
    // Resuming from the opening id, before any event arrived, misses nothing.
    let resume_from = sse.last_id.clone().unwrap();
    drop(sse);
    let missed = app.publish("acme", "leads", json!({"n": 1})).await;
    let mut again = app.sse(&token, "", Some(&resume_from)).await;
    assert_eq!(again.event().await.unwrap().seq(), missed);
    let hello = again.hello.clone().unwrap();
    assert!(
        hello.id.is_none(),
        "a resumed stream keeps its cursor: {hello:?}"
    );
}

#[tokio::test]
async fn ws_subscriptions_open_with_heartbeat_and_cursor_and_ping_gets_pong() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let head = app.publish_seen("acme", "leads", json!({})).await;
    let mut ws = app.ws(&TestApp::token("acme", &["*"], 3600)).await.unwrap();
    ws.send(json!({"op": "ping"})).await;
    ws.expect("pong").await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["leads"]}))
        .await;
    ws.send(json!({"op": "ping"})).await;
    ws.expect("pong").await.unwrap();
    let hello = &ws.hellos[0];
    assert_eq!(hello["heartbeat_ms"], 15_000);
    assert_eq!(hello["cursor"], Cursor::new(head, epoch).to_string());
    let next = app.publish("acme", "leads", json!({})).await;
    let ev = ws.expect("event").await.unwrap();
    assert_eq!(ev["cursor"], Cursor::new(next, epoch).to_string());
}

#[tokio::test]
async fn a_cursor_past_the_stream_end_is_reset_not_skipped() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let head = app.publish_seen("acme", "leads", json!({})).await;
    let ahead = Cursor::new(head + 100, epoch).to_string();

    let mut sse = app.sse(&token, "", Some(&ahead)).await;
    let reset = sse.next().await.unwrap().unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json()["reason"], "cursor_ahead");
    assert_eq!(
        reset.cursor(),
        Cursor::new(head, epoch),
        "continue from the head"
    );
    // The next event is delivered, not skipped until `head + 100`.
    let next = app.publish("acme", "leads", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), next);

    let poll: serde_json::Value = poll_json(&app, &token, &format!("since={ahead}&wait=0")).await;
    assert_eq!(poll["reset"]["reason"], "cursor_ahead");
    assert_eq!(poll["cursor"], Cursor::new(next, epoch).to_string());
    assert!(app.metric("herald_gateway_resets_total").await >= 2.0);
}

#[tokio::test]
async fn a_reset_comes_after_the_opening_status() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let resp = app.stream(&token, "", Some("1-deadbeef")).await;
    let mut sse = SseClient::new(resp);
    let (reset, _) = sse.until("reset").await.unwrap();
    assert_eq!(reset.json()["reason"], "epoch_mismatch");
    assert!(sse.hello.is_some());
}
