//! Server-side filters (`actions`, `where`) on every transport, live and resumed from the ring
//! and from JetStream: exactly the matching events, in order, once; bad filters are 400s.

use std::time::Duration;

use futures::StreamExt;
use herald_core::cursor::Cursor;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_core::streams::StreamSettings;
use serde_json::{Value, json};

use crate::helpers::{SseClient, TestApp, test_config};
use crate::scenario::{acme_token, each_event, get_with, poll_json, resumes, with_ring, ws_seq};

/// The filter every test uses, as a query string.
const QUERY: &str = "topics=jobs&actions=insert,update&where=data.status:active&where=data.n:5";

/// One published event: its sequence, its `data.key` and whether [`QUERY`] lets it through.
#[derive(Debug, Clone)]
struct Published {
    seq: u64,
    key: String,
    matches: bool,
}

/// Publishes an `acme` event with `action` on `topic`; returns its sequence.
async fn publish(app: &TestApp, topic: &str, action: &str, data: Value) -> u64 {
    let event = Event::new(
        EventId::generate(),
        TenantId::parse("acme").unwrap(),
        Topic::parse(topic).unwrap(),
        Action::parse(action).unwrap(),
        "/test",
        data,
    );
    let js = app.nats.jetstream().await;
    herald_core::publish::publish_event(&js, &event)
        .await
        .unwrap()
        .sequence
}

/// Publishes a mix of events on `jobs` and `other`, some inside [`QUERY`] and most outside
/// (wrong topic, action, status, number, or a string `n`); ends with a non-matching one.
async fn publish_mix(app: &TestApp, round: u64) -> Vec<Published> {
    let cases: [(&str, &str, Value, bool); 9] = [
        ("jobs", "insert", json!({"status": "active", "n": 5}), true),
        ("jobs", "delete", json!({"status": "active", "n": 5}), false),
        (
            "other",
            "insert",
            json!({"status": "active", "n": 5}),
            false,
        ),
        (
            "jobs",
            "update",
            json!({"status": "active", "n": "5"}),
            true,
        ),
        ("jobs", "update", json!({"status": "done", "n": 5}), false),
        ("jobs", "insert", json!({"status": "active", "n": 6}), false),
        (
            "jobs",
            "update",
            json!({"status": "active", "n": 5.0, "r": round}),
            true,
        ),
        ("jobs", "insert", json!({"status": "active"}), false),
        (
            "jobs",
            "insert",
            json!({"status": ["active"], "n": 5}),
            false,
        ),
    ];
    let mut out = Vec::new();
    for (i, (topic, action, mut data, matches)) in cases.into_iter().enumerate() {
        // Long-poll events carry no cursor: the key tells them apart.
        let key = format!("{round}-{i}");
        data["key"] = key.clone().into();
        let seq = publish(app, topic, action, data).await;
        out.push(Published { seq, key, matches });
    }
    out
}

/// The sequences of the matching events after `cursor`.
fn matching_after(published: &[Published], cursor: u64) -> Vec<u64> {
    published
        .iter()
        .filter(|p| p.matches && p.seq > cursor)
        .map(|p| p.seq)
        .collect()
}

/// The `data.key`s of the matching events after `cursor`.
fn keys_after(published: &[Published], cursor: u64) -> Vec<String> {
    published
        .iter()
        .filter(|p| p.matches && p.seq > cursor)
        .map(|p| p.key.clone())
        .collect()
}

/// A matching event published now (nothing outside the filter may come before it).
async fn marker(app: &TestApp) -> u64 {
    let data = json!({"status": "active", "n": 5, "marker": true});
    publish(app, "jobs", "insert", data).await
}

/// Every event an SSE client receives until `n` have come.
async fn sse_seqs(sse: &mut SseClient, n: usize) -> Vec<u64> {
    let events = sse.events(n).await.unwrap();
    events.iter().map(|e| e.seq()).collect()
}

/// The events of `n` WebSocket `event` frames.
async fn ws_seqs(ws: &mut crate::helpers::WsClient, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        seqs.push(ws_seq(&ws.expect("event").await.unwrap()));
    }
    seqs
}

/// A subscribe frame with [`QUERY`]'s filter.
fn subscribe(since: &str) -> Value {
    json!({"op": "subscribe", "topics": ["jobs"], "since": since,
           "actions": ["insert", "update"], "where": ["data.status:active", "data.n:5"]})
}

/// Each transport, started from `since` (at `cursor`), receives exactly the matching events
/// after it, in order, once, then the marker.
async fn every_transport_gets(app: &TestApp, since: &str, published: &[Published], cursor: u64) {
    let expected = matching_after(published, cursor);
    let token = acme_token();
    let mut sse = app.sse(&token, QUERY, Some(since)).await;
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(subscribe(since)).await;
    assert_eq!(sse_seqs(&mut sse, expected.len()).await, expected, "SSE");
    assert_eq!(
        ws_seqs(&mut ws, expected.len()).await,
        expected,
        "WebSocket"
    );
    let polled = poll_keys(app, since, expected.len()).await;
    assert_eq!(polled, keys_after(published, cursor), "long-poll");
    let mark = marker(app).await;
    assert_eq!(
        sse.event().await.unwrap().seq(),
        mark,
        "SSE: nothing else before"
    );
    assert_eq!(ws_seq(&ws.expect("event").await.unwrap()), mark, "WS");
}

/// Long-polls from `since` until `n` events came (checking each against [`QUERY`]); their
/// `data.key`s.
async fn poll_keys(app: &TestApp, since: &str, n: usize) -> Vec<String> {
    let (token, mut cursor, mut keys) = (acme_token(), since.to_owned(), Vec::new());
    while keys.len() < n {
        let body = poll_json(app, &token, &format!("{QUERY}&since={cursor}&wait=5")).await;
        assert!(body.get("reset").is_none(), "{body}");
        for data in each_event(&body, &["data"]) {
            assert_eq!(data["status"], "active", "{body}");
            assert!(
                data["n"].as_f64() == Some(5.0) || data["n"] == "5",
                "{body}"
            );
            keys.push(data["key"].as_str().unwrap().to_owned());
        }
        cursor = body["cursor"].as_str().unwrap().to_owned();
    }
    keys
}

#[tokio::test]
async fn live_sse_ws_and_poll_get_exactly_the_matching_events_in_order() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    // The head before anything is published: every transport starts there.
    let mut sse = app.sse(&token, QUERY, None).await;
    let start = sse.hello.as_ref().unwrap().id.clone().unwrap();
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(subscribe(&start)).await;
    let published = publish_mix(&app, 0).await;
    let expected = matching_after(&published, 0);
    assert_eq!(sse_seqs(&mut sse, expected.len()).await, expected, "SSE");
    assert_eq!(ws_seqs(&mut ws, expected.len()).await, expected, "WS");
    assert_eq!(
        poll_keys(&app, &start, expected.len()).await,
        keys_after(&published, 0)
    );
    let mark = marker(&app).await;
    assert_eq!(sse.event().await.unwrap().seq(), mark);
    assert_eq!(ws_seq(&ws.expect("event").await.unwrap()), mark);
}

#[tokio::test]
async fn a_resume_from_the_ring_gets_exactly_the_matching_events_after_the_cursor() {
    let app = TestApp::spawn().await;
    let published = seen_mix(&app).await;
    // From a non-matching event in the middle.
    let cursor = published[4].seq;
    let since = Cursor::new(cursor, app.epoch().await).to_string();
    every_transport_gets(&app, &since, &published, cursor).await;
    assert_eq!(resumes(&app, "memory").await, 3.0);
    assert_eq!(resumes(&app, "jetstream").await, 0.0);
}

#[tokio::test]
async fn a_resume_from_jetstream_gets_exactly_the_matching_events_after_the_cursor() {
    let app = with_ring(2).await;
    let published = seen_mix(&app).await;
    let cursor = published[1].seq;
    let since = Cursor::new(cursor, app.epoch().await).to_string();
    every_transport_gets(&app, &since, &published, cursor).await;
    assert_eq!(resumes(&app, "jetstream").await, 3.0);
}

#[tokio::test]
async fn after_a_restart_a_filtered_resume_replays_from_jetstream() {
    let mut app = TestApp::spawn().await;
    let published = seen_mix(&app).await;
    app.restart_gateway().await;
    let since = Cursor::new(0, app.epoch().await).to_string();
    every_transport_gets(&app, &since, &published, 0).await;
    assert_eq!(resumes(&app, "jetstream").await, 3.0);
}

/// Publishes the mix twice and waits until the gateway has seen all of it.
async fn seen_mix(app: &TestApp) -> Vec<Published> {
    let mut watcher = app.sse(&acme_token(), "", None).await;
    let mut published = publish_mix(app, 1).await;
    published.extend(publish_mix(app, 2).await);
    let all: Vec<u64> = published.iter().map(|p| p.seq).collect();
    assert_eq!(sse_seqs(&mut watcher, all.len()).await, all);
    published
}

#[tokio::test]
async fn history_pages_hold_only_matching_events_from_the_ring_and_from_jetstream() {
    for ring in [10_000, 2] {
        let app = with_ring(ring).await;
        let published = seen_mix(&app).await;
        let expected = matching_after(&published, 0);
        let resp = get_with(&app, &format!("/v1/history?{QUERY}&limit=4"), &acme_token()).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let seqs: Vec<u64> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cursor"].as_str().unwrap().parse::<Cursor>().unwrap().seq)
            .collect();
        assert_eq!(seqs, expected[expected.len() - 4..], "ring {ring}: {body}");
        assert_eq!(body["more"], true);
    }
}

#[tokio::test]
async fn the_cursor_moves_past_filtered_out_events() {
    let mut cfg = test_config();
    cfg.heartbeat = Duration::from_millis(200);
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = acme_token();
    let opener = app.sse(&token, "", None).await;
    let start = opener.hello.as_ref().unwrap().id.clone().unwrap();
    let resp = app.stream(&token, "topics=jobs&actions=read", None).await;
    assert_eq!(resp.status(), 200);
    let published = publish_mix(&app, 0).await;
    let last = published.last().unwrap().seq;
    let last = Cursor::new(last, app.epoch().await).to_string();
    // SSE: a heartbeat carries the id past the filtered-out events (no event fires).
    let want = format!("id: {last}\n: hb\n\n");
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(&want) {
        let chunk = tokio::time::timeout(crate::helpers::DEADLINE, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        assert!(
            seen.matches("data: ").count() <= 1,
            "only the opening status: {seen}"
        );
    }
    // WebSocket: a `cursor` frame with a heartbeat.
    let mut ws = app.ws(&token).await.unwrap();
    let frame = json!({"op": "subscribe", "topics": ["jobs"], "since": start, "actions": ["read"]});
    ws.send(frame).await;
    loop {
        let frame = ws.expect("cursor").await.unwrap();
        if frame["cursor"] == last.as_str() {
            break;
        }
    }
    // Long-poll: the answer's cursor is past them although no event matched.
    let q = format!("topics=jobs&actions=read&since={start}&wait=1");
    let body = poll_json(&app, &token, &q).await;
    assert_eq!(body["events"], json!([]), "{body}");
    assert_eq!(body["cursor"], last.as_str(), "{body}");
}

#[tokio::test]
async fn bad_filters_are_refused_with_a_precise_400() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let long = format!("where=data.s:{}", "x".repeat(300));
    let cases = [
        ("where=data.status", "where must be path:value"),
        (
            "where=a:1&where=b:2&where=c:3&where=d:4&where=e:5",
            "at most 4 where conditions",
        ),
        ("actions=in%20sert", "invalid action \"in sert\""),
        ("actions=", "actions must name at least one action"),
        ("where=data..s:1", "invalid where path \"data..s\""),
        ("where=a.b.c.d.e.f.g.h.i:1", "at most 8 segments"),
        (long.as_str(), "at most 256 characters"),
    ];
    for (query, message) in cases {
        for path in ["/v1/stream", "/v1/poll", "/v1/history"] {
            let resp = get_with(&app, &format!("{path}?{query}"), &token).await;
            assert_eq!(resp.status(), 400, "{path}?{query}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_request", "{body}");
            let got = body["error"]["message"].as_str().unwrap();
            assert!(got.contains(message), "{path}?{query}: {got}");
        }
    }
    // A WebSocket takes its filter in the subscribe frame; a bad one is an error frame.
    let resp = get_with(&app, "/v1/ws?where=data.s:1", &token).await;
    assert_eq!(resp.status(), 400);
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["jobs"], "where": ["nope"]}))
        .await;
    let err = ws.expect("error").await.unwrap();
    assert_eq!(err["code"], "bad_request");
    assert!(
        err["message"].as_str().unwrap().contains("path:value"),
        "{err}"
    );
}

#[tokio::test]
async fn a_websocket_subscribe_with_a_new_filter_continues_from_the_cursor_with_it() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(&acme_token()).await.unwrap();
    let start = Cursor::new(0, app.epoch().await).to_string();
    ws.send(json!({"op": "subscribe", "topics": ["jobs"], "since": start, "actions": ["delete"]}))
        .await;
    let first = publish_mix(&app, 1).await;
    // Once this delete arrives, the subscription has looked at everything before it.
    let last = publish(&app, "jobs", "delete", json!({})).await;
    assert_eq!(ws_seqs(&mut ws, 2).await, vec![first[1].seq, last]);
    ws.send(json!({"op": "subscribe", "topics": ["jobs"], "actions": ["insert"]}))
        .await;
    let second = publish_mix(&app, 2).await;
    let inserts: Vec<u64> = second
        .iter()
        .filter(|p| [0, 5, 7, 8].contains(&(p.key.as_bytes()[2] - b'0')))
        .map(|p| p.seq)
        .collect();
    // Without `since`: from the previous subscription's cursor, so none of round 1 again.
    assert_eq!(
        ws_seqs(&mut ws, inserts.len()).await,
        inserts,
        "inserts only"
    );
    let mark = marker(&app).await;
    assert_eq!(ws_seqs(&mut ws, 1).await, vec![mark], "nothing else");
}
