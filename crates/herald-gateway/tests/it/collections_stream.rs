//! Snapshot, then stream (`snapshot=1` on SSE, `"snapshot":true` on WebSocket, `snapshot=1`
//! on long-poll): clients opened at moments spread over a publisher's writes end with the
//! reference table, every event after their snapshot's cursor applied once, in order.

use std::sync::Arc;

use serde_json::{Value, json};

use herald_test_support::wait;

use crate::collections::{
    Client, Log, app, cursor_of, get, is_end, non_empty, token, write_end, write_with,
};
use crate::helpers::{DEADLINE, TestApp};

/// An SSE client with `query` (`snapshot=1` among it): its tables once the writer's end came.
pub async fn sse_client(app: &TestApp, query: &str) -> Client {
    let mut sse = app.sse(&token(), query, None).await;
    let hello = sse.hello.as_ref().unwrap().json();
    assert!(
        hello.get("cursor").is_none(),
        "no cursor before the snapshot: {hello}"
    );
    let mut client = Client::default();
    follow_sse(&mut sse, &mut client).await;
    client
}

/// Reads snapshots and events into `client` until the writer's end: `status` messages are
/// skipped; a `reset` must be followed by a fresh snapshot (counted in `client.resets`).
pub async fn follow_sse(sse: &mut crate::helpers::SseClient, client: &mut Client) {
    let mut first_page = true;
    loop {
        let msg = sse.next().await.unwrap().expect("the stream goes on");
        match msg.event.as_deref() {
            None => {
                assert!(first_page, "an event in the middle of a snapshot");
                let event = msg.json();
                client.event(msg.seq(), &event);
                if is_end(&event) {
                    return;
                }
            }
            Some("snapshot") => {
                let page = msg.json();
                client.snapshot_page(&page, first_page);
                first_page = page["more"] == false;
                if first_page {
                    assert_eq!(
                        msg.id.as_deref(),
                        page["cursor"].as_str(),
                        "id: on the last page"
                    );
                    assert_eq!(sse.last_id.as_deref(), page["cursor"].as_str());
                } else {
                    assert!(msg.id.is_none(), "id: only on the last page");
                }
            }
            Some("status") => {}
            Some("reset") => {
                client.resets += 1;
                // Until the fresh snapshot, nothing may be applied.
                client.cursor = None;
            }
            other => panic!("unexpected {other:?}: {msg:?}"),
        }
    }
}

/// A WebSocket client subscribed with `"snapshot":true`: its tables at the writer's end.
pub async fn ws_client(app: &TestApp) -> Client {
    let mut ws = app.ws(&token()).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["leads"], "snapshot": true}))
        .await;
    let mut client = Client::default();
    let mut first = true;
    loop {
        let frame = ws.next().await.unwrap().expect("a frame");
        match frame["type"].as_str() {
            Some("snapshot") => {
                client.snapshot_page(&frame, first);
                first = false;
            }
            Some("event") => {
                let seq = cursor_of(&frame["cursor"]).seq;
                client.event(seq, &frame["event"]);
                if is_end(&frame["event"]) {
                    break;
                }
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    let hello = ws.hellos.last().unwrap();
    assert!(hello.get("cursor").is_none(), "{hello}");
    client
}

/// A long-poll client: `snapshot=1` without `since`, the rest of the snapshot from
/// `/v1/snapshot`, then polls from its cursor until the writer's end. (A poll's events carry
/// no cursor of their own: each one's sequence is looked up in the log by its id.)
pub async fn poll_client(app: &TestApp, log: &Log) -> Client {
    let t = token();
    let answer: Value = app
        .poll(&t, "topics=leads&snapshot=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["events"], json!([]), "{answer}");
    let mut client = Client::default();
    let mut page = answer["snapshot"].clone();
    page["cursor"] = answer["cursor"].clone();
    let cursor = answer["cursor"].as_str().unwrap().to_owned();
    client.snapshot_page(&page, true);
    while page["more"] == true {
        let after = page["after"].as_str().unwrap();
        let (status, next) = get(
            app,
            &t,
            &format!("/v1/snapshot?topics=leads&cursor={cursor}&after={after}"),
        )
        .await;
        assert_eq!(status, 200, "{next}");
        client.snapshot_page(&next, false);
        page = next;
    }
    let mut since = cursor;
    loop {
        let answer: Value = app
            .poll(&t, &format!("topics=leads&since={since}"))
            .await
            .json()
            .await
            .unwrap();
        assert!(answer.get("reset").is_none(), "{answer}");
        assert!(answer.get("snapshot").is_none(), "{answer}");
        for event in answer["events"].as_array().unwrap() {
            let id = event["id"].as_str().unwrap();
            let mut seq = None;
            wait::until_sync("the writer to record the event", DEADLINE, || {
                seq = log.seq_of(id);
                seq.is_some()
            })
            .await;
            client.event(seq.unwrap(), event);
            if is_end(event) {
                return client;
            }
        }
        since = answer["cursor"].as_str().unwrap().to_owned();
    }
}

#[tokio::test]
async fn snapshot_then_stream_over_sse_websocket_and_poll_ends_with_the_reference() {
    let app = Arc::new(app().await);
    let log = Log::default();
    // Public changes only: streams deliver events whatever their audience (until audiences
    // are enforced on streams), while a snapshot holds a private row only for its users.
    let js = app.nats.jetstream().await;
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            write_with(js.clone(), log.clone(), (7, false), 2000, 80).await;
            write_end(&js, &log).await;
        })
    };
    let mut clients = Vec::new();
    for round in 1..=3usize {
        wait::until_sync("the writes to go on", DEADLINE, || log.len() >= round * 500).await;
        for kind in ["sse", "ws", "poll"] {
            let (app, log) = (Arc::clone(&app), log.clone());
            clients.push(tokio::spawn(async move {
                let client = match kind {
                    "sse" => sse_client(&app, "topics=leads&snapshot=1").await,
                    "ws" => ws_client(&app).await,
                    _ => poll_client(&app, &log).await,
                };
                (kind, client)
            }));
        }
    }
    writer.await.unwrap();
    let reference = non_empty(log.state_at(u64::MAX, "user-1"));
    assert!(!reference.is_empty());
    for client in clients {
        let (kind, client) = client.await.unwrap();
        assert_eq!(non_empty(client.tables.clone()), reference, "{kind}");
        assert!(client.events > 0, "{kind}");
    }
}
