//! The WebSocket transport.

use std::time::Duration;

use herald_core::cursor::Cursor;
use herald_test_support::wait;
use serde_json::json;

use crate::helpers::{DEADLINE, TestApp, test_config};
use crate::scenario::ws_seq;

#[tokio::test]
async fn subscribe_resume_unsubscribe_and_refresh() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["leads", "deals"], 3600);
    let first = app.publish("acme", "leads", json!({"n": 1})).await;
    let second = app.publish("acme", "leads", json!({"n": 2})).await;
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["leads", "deals"], "since": Cursor::new(first, epoch).to_string()}))
        .await;
    let ev = ws.expect("event").await.unwrap();
    assert_eq!(ev["cursor"], Cursor::new(second, epoch).to_string());
    assert_eq!(ev["topic"], "leads");
    assert_eq!(ev["event"]["data"]["n"], 2);

    ws.send(json!({"op": "unsubscribe", "topics": ["leads"]}))
        .await;
    // A refresh with a token of another user is refused; the session carries on.
    let other =
        crate::helpers::token_for("someone-else", "acme", &["*"], 3600, crate::helpers::SECRET);
    ws.send(json!({"op": "refresh", "token": other})).await;
    assert_eq!(
        ws.expect("error").await.unwrap()["code"],
        "identity_changed"
    );
    ws.send(json!({"op": "refresh", "token": TestApp::token("acme", &["leads", "deals"], 7200)}))
        .await;
    app.publish("acme", "leads", json!({})).await;
    let deal = app.publish("acme", "deals", json!({})).await;
    let ev = ws.expect("event").await.unwrap();
    assert_eq!(
        ev["cursor"],
        Cursor::new(deal, epoch).to_string(),
        "leads was unsubscribed"
    );
    ws.send(json!({"op": "bogus"})).await;
    assert_eq!(ws.expect("error").await.unwrap()["code"], "bad_frame");
}

#[tokio::test]
async fn ws_token_expiry_sends_reconnect() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&TestApp::token("acme", &["*"], 2)).await.unwrap();
    ws.send(json!({"op": "subscribe"})).await;
    let frame = ws.expect("reconnect").await.unwrap();
    assert_eq!(frame["reason"], "token_expired");
    assert!(ws.next().await.unwrap().is_none(), "then the socket closes");
}

#[tokio::test]
async fn a_peer_that_answers_no_ping_is_disconnected_and_one_that_does_stays() {
    let mut cfg = test_config();
    cfg.heartbeat = Duration::from_millis(100);
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let token = TestApp::token("acme", &["*"], 3600);
    let mut alive = app.ws(&token).await.unwrap();
    alive.send(json!({"op": "subscribe"})).await;
    // Never read again: no pong ever goes back.
    let mut gone = app.ws(&token).await.unwrap();
    gone.send(json!({"op": "subscribe"})).await;
    // Ten heartbeats: four times the allowance the silent peer has.
    alive.pings(10).await.unwrap();
    let one = r#"herald_gateway_connections{transport="ws"} 1"#;
    wait::until("the silent peer is disconnected", DEADLINE, || async {
        app.metrics().await.contains(one)
    })
    .await;
    assert_eq!(app.metric("herald_gateway_silent_peers_total").await, 1.0);
    let seq = app.publish("acme", "leads", json!({})).await;
    let event = alive.expect("event").await.unwrap();
    assert_eq!(ws_seq(&event), seq);
}

#[tokio::test]
async fn a_refreshed_token_that_grants_less_narrows_the_subscription() {
    let app = TestApp::spawn().await;
    let mut ws = app
        .ws(&TestApp::token("acme", &["leads", "deals"], 3600))
        .await
        .unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["leads", "deals"]}))
        .await;
    let lead = app.publish("acme", "leads", json!({})).await;
    let event = ws.expect("event").await.unwrap();
    assert_eq!(ws_seq(&event), lead);
    let narrower = TestApp::token("acme", &["deals"], 3600);
    ws.send(json!({"op": "refresh", "token": narrower})).await;
    // A ping after the refresh: its pong proves the refresh was handled first.
    ws.send(json!({"op": "ping"})).await;
    ws.expect("pong").await.unwrap();
    app.publish("acme", "leads", json!({})).await;
    let deal = app.publish("acme", "deals", json!({})).await;
    let event = ws.expect("event").await.unwrap();
    assert_eq!(event["topic"], "deals");
    assert_eq!(ws_seq(&event), deal);
}
