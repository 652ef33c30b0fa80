//! Bounded work per client: replays read only the subscribed topics, WebSocket subscribe
//! frames are rate-limited, and no client gets more than `max_replays` JetStream consumers
//! opened, however it behaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures::{SinkExt, StreamExt};
use herald_core::cursor::Cursor;
use herald_core::streams::EVENTS_STREAM;
use herald_test_support::wait;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{DEADLINE, TestApp, test_config};

#[tokio::test]
async fn replay_reads_only_the_subscribed_topics_not_the_whole_tenant() {
    let mut cfg = test_config();
    cfg.ring_events = 2;
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let epoch = app.epoch().await;
    // 300 events, one in fifty of topic `a`.
    let mut wanted = Vec::new();
    for i in 0..300 {
        let topic = if i % 50 == 0 { "a" } else { "b" };
        let seq = app.publish("acme", topic, json!({ "i": i })).await;
        if topic == "a" {
            wanted.push(seq);
        }
    }
    tailed(&app, 300).await;
    let since = Cursor::new(wanted[0], epoch).to_string();
    let token = TestApp::token("acme", &["*"], 3600);
    let mut sse = app
        .sse(&token, &format!("topics=a&since={since}"), None)
        .await;
    let got: Vec<u64> = sse
        .events(wanted.len() - 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq())
        .collect();
    assert_eq!(got, wanted[1..]);
    assert_eq!(
        app.metric("herald_gateway_replay_messages_total").await,
        (wanted.len() - 1) as f64,
        "the replay read topic a's events and nothing else of the tenant"
    );
}

/// Waits until the gateway's tail has seen `n` events (its head is at the last of them).
async fn tailed(app: &TestApp, n: u64) {
    wait::until("the gateway to tail every event", DEADLINE, || async {
        app.metric("herald_gateway_tailed_events_total").await >= n as f64
    })
    .await;
}

async fn raw_ws(
    app: &TestApp,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut req = format!("ws://{}/v1/ws", app.gw.addr)
        .into_client_request()
        .unwrap();
    let headers = req.headers_mut();
    headers.insert("Authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

#[tokio::test]
async fn ws_subscribe_flood_is_rate_limited_then_closed() {
    let app = TestApp::spawn().await;
    assert_eq!(app.cfg.ws_subscribe_burst, 10, "the documented default");
    let mut ws = raw_ws(&app, &TestApp::token("acme", &["*"], 3600)).await;
    let subscribe = json!({"op": "subscribe", "topics": ["a"]}).to_string();
    for _ in 0..200 {
        if ws.send(Message::text(subscribe.clone())).await.is_err() {
            break;
        }
    }
    let mut limited = Vec::new();
    let close = tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "error" {
                        limited.push(v);
                    }
                }
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the flooding connection is closed");
    let close = close.expect("with a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "subscribe rate exceeded");
    // The frames over the budget were each refused, in band, before the close: nine in a row
    // (the tenth closes), more if the bucket refilled meanwhile (2 per second).
    assert!(limited.len() >= 9, "{limited:?}");
    assert!(limited.iter().all(|e| e["code"] == "rate_limited"
        && e["retry_after_ms"].as_u64().is_some_and(|ms| ms <= 1000)));
}

#[tokio::test]
async fn ws_subscribe_flood_never_opens_more_than_max_replays_consumers() {
    let mut cfg = test_config();
    cfg.ring_events = 2;
    cfg.max_replays = 2;
    // The rate limit is not what this test is about: the replays must stay bounded anyway.
    cfg.ws_subscribe_rate = 100_000;
    cfg.ws_subscribe_burst = 100_000;
    let app = TestApp::spawn_with(cfg, Default::default()).await;
    let epoch = app.epoch().await;
    let first = app.publish("acme", "a", json!({})).await;
    for i in 0..700 {
        app.publish("acme", "a", json!({ "i": i })).await;
    }
    tailed(&app, 701).await;
    let js = app.nats.jetstream().await;
    let consumers = move || {
        let js = js.clone();
        async move {
            let mut stream = js.get_stream(EVENTS_STREAM).await.unwrap();
            stream.info().await.unwrap().state.consumer_count as u64
        }
    };
    let base = consumers().await; // the gateway's own tail
    let most = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (most, stop, consumers) = (Arc::clone(&most), Arc::clone(&stop), consumers.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                most.fetch_max(consumers().await, Ordering::SeqCst);
            }
        })
    };
    let mut ws = raw_ws(&app, &TestApp::token("acme", &["*"], 3600)).await;
    let since = Cursor::new(first, epoch).to_string();
    let subscribe = json!({"op": "subscribe", "topics": ["a"], "since": since}).to_string();
    for _ in 0..150 {
        ws.send(Message::text(subscribe.clone())).await.unwrap();
        // Give the gateway a moment to start each replay before the next frame replaces it.
        tokio::task::yield_now().await;
    }
    // The last subscription replays in full, from just after `first`.
    let event = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "event" {
                    return v;
                }
            }
        }
    })
    .await
    .expect("an event from the last subscription");
    let seq = event["cursor"]
        .as_str()
        .unwrap()
        .parse::<Cursor>()
        .unwrap()
        .seq;
    assert!(seq > first);
    most.fetch_max(consumers().await, Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= base + app.cfg.max_replays as u64,
        "{most} consumers at once on HERALD_EVENTS; the tail's {base} + max_replays {} allowed",
        app.cfg.max_replays
    );
}
