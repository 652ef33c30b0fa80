//! Private events (`Herald-To`): on SSE, WebSocket and long-poll, live and resumed from the
//! ring and from JetStream, and in history, every client receives exactly the events its
//! token's `sub`, its topics and its filter allow — no more, no less, in order, once.
//!
//! Events are published as ingest stores them (proto/subjects.md): the envelope as the body,
//! the audience in the `Herald-To` header.

use std::time::Duration;

use futures::StreamExt;
use herald_core::cursor::Cursor;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_core::streams::StreamSettings;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, WsClient, test_config, token_for};
use crate::scenario::{get_with, poll_json, resumes, with_ring};

const USERS: [&str; 4] = ["u-1", "u-2", "u-3", "u-4"];
/// Ids in audiences besides [`USERS`]: nobody connects as them.
const STRANGERS: [&str; 2] = ["u-x", "u-1x"];
const TOPICS: [&str; 2] = ["t1", "t2"];
const ACTIONS: [&str; 3] = ["insert", "update", "delete"];

/// A filter: `actions` and a `where=data.k:…`. Every one lets `insert` with `k = a` through
/// (the markers).
#[derive(Debug, Clone, Copy)]
struct Filter {
    actions: Option<&'static [&'static str]>,
    k: Option<&'static str>,
}

const FILTERS: [Filter; 5] = [
    Filter {
        actions: None,
        k: None,
    },
    Filter {
        actions: Some(&["insert"]),
        k: None,
    },
    Filter {
        actions: Some(&["insert", "update"]),
        k: None,
    },
    Filter {
        actions: None,
        k: Some("a"),
    },
    Filter {
        actions: Some(&["insert"]),
        k: Some("a"),
    },
];

/// One published event.
#[derive(Debug, Clone)]
struct Published {
    seq: u64,
    key: String,
    topic: &'static str,
    action: &'static str,
    k: &'static str,
    to: Option<Vec<&'static str>>,
}

/// A client: who it is, what its token grants, what it asks for.
#[derive(Debug, Clone)]
struct Client {
    user: &'static str,
    /// The token's topics (`*` or `t1`).
    grant: &'static str,
    /// Requested topics (none: everything granted).
    topics: Option<&'static [&'static str]>,
    filter: Filter,
}

impl Client {
    fn random(rng: &mut StdRng, user: &'static str) -> Self {
        let grant = if rng.gen_bool(0.2) { "t1" } else { "*" };
        let topics: Option<&'static [&'static str]> =
            [None, Some(&["t1"][..]), Some(&["t1", "t2"][..])][rng.gen_range(0..3)];
        let topics = if grant == "t1" { None } else { topics };
        Self {
            user,
            grant,
            topics,
            filter: FILTERS[rng.gen_range(0..FILTERS.len())],
        }
    }

    fn token(&self) -> String {
        token_for(self.user, "acme", &[self.grant], 3600, SECRET)
    }

    /// Whether the client may and wants to receive `e`.
    fn wants(&self, e: &Published) -> bool {
        let granted = self.grant == "*" || self.grant == e.topic;
        let asked = self.topics.is_none_or(|t| t.contains(&e.topic));
        let addressed = e.to.as_ref().is_none_or(|to| to.contains(&self.user));
        let action = self.filter.actions.is_none_or(|a| a.contains(&e.action));
        let k = self.filter.k.is_none_or(|k| k == e.k);
        granted && asked && addressed && action && k
    }

    /// The keys it must receive after `cursor`, in order.
    fn expected(&self, published: &[Published], cursor: u64) -> Vec<String> {
        published
            .iter()
            .filter(|e| e.seq > cursor && self.wants(e))
            .map(|e| e.key.clone())
            .collect()
    }

    /// The query string of SSE, long-poll and history.
    fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(t) = self.topics {
            q.push(format!("topics={}", t.join(",")));
        }
        if let Some(a) = self.filter.actions {
            q.push(format!("actions={}", a.join(",")));
        }
        if let Some(k) = self.filter.k {
            q.push(format!("where=data.k:{k}"));
        }
        q.join("&")
    }

    fn subscribe(&self, since: &str) -> Value {
        let mut frame = json!({"op": "subscribe", "since": since});
        if let Some(t) = self.topics {
            frame["topics"] = json!(t);
        }
        if let Some(a) = self.filter.actions {
            frame["actions"] = json!(a);
        }
        if let Some(k) = self.filter.k {
            frame["where"] = json!([format!("data.k:{k}")]);
        }
        frame
    }
}

/// Publishes an `acme` event the way ingest stores it; returns its sequence.
async fn publish(app: &TestApp, e: &Published) -> u64 {
    let mut data = json!({"k": e.k, "key": e.key});
    if e.key.starts_with("marker") {
        data["marker"] = true.into();
    }
    let event = Event::new(
        EventId::generate(),
        TenantId::parse("acme").unwrap(),
        Topic::parse(e.topic).unwrap(),
        Action::parse(e.action).unwrap(),
        "/test",
        data,
    );
    let mut msg = herald_core::publish::event_message(&event);
    if let Some(to) = &e.to {
        msg = msg.header("Herald-To", to.join(",").as_str());
    }
    let js = app.nats.jetstream().await;
    let ack = js.send_publish(event.subject(), msg).await.unwrap();
    ack.await.unwrap().sequence
}

/// `n` random events, then one marker per user (private to it, passing every filter): the
/// last event each client must receive.
async fn publish_round(app: &TestApp, rng: &mut StdRng, round: u32, n: usize) -> Vec<Published> {
    let everyone: Vec<&'static str> = USERS.iter().chain(&STRANGERS).copied().collect();
    let mut out = Vec::new();
    for i in 0..n {
        let to = rng.gen_bool(0.6).then(|| {
            let size = rng.gen_range(1..=3);
            everyone.choose_multiple(rng, size).copied().collect()
        });
        let mut e = Published {
            seq: 0,
            key: format!("{round}-{i}"),
            topic: TOPICS.choose(rng).copied().unwrap(),
            action: ACTIONS.choose(rng).copied().unwrap(),
            k: ["a", "b"].choose(rng).copied().unwrap(),
            to,
        };
        e.seq = publish(app, &e).await;
        out.push(e);
    }
    for user in USERS {
        let mut marker = Published {
            seq: 0,
            key: format!("marker-{round}-{user}"),
            topic: "t1",
            action: "insert",
            k: "a",
            to: Some(vec![user]),
        };
        marker.seq = publish(app, &marker).await;
        out.push(marker);
    }
    out
}

fn is_marker(key: &str) -> bool {
    key.starts_with("marker")
}

/// The `data.key`s an SSE client receives up to its marker.
async fn sse_keys(app: &TestApp, c: &Client, since: &str) -> Vec<String> {
    let mut sse = app.sse(&c.token(), &c.query(), Some(since)).await;
    let mut keys = Vec::new();
    loop {
        let ev = sse.event().await.unwrap();
        let key = ev.json()["data"]["key"].as_str().unwrap().to_owned();
        keys.push(key.clone());
        if is_marker(&key) {
            return keys;
        }
    }
}

/// The `data.key`s a WebSocket receives up to its marker (`cursor` frames are skipped).
async fn ws_keys(ws: &mut WsClient) -> Vec<String> {
    let mut keys = Vec::new();
    loop {
        let frame = ws.next().await.unwrap().expect("open");
        match frame["type"].as_str() {
            Some("cursor") => continue,
            Some("event") => {}
            _ => panic!("unexpected frame {frame}"),
        }
        let key = frame["event"]["data"]["key"].as_str().unwrap().to_owned();
        keys.push(key.clone());
        if is_marker(&key) {
            return keys;
        }
    }
}

/// The `data.key`s long-polls from `since` receive up to the marker.
async fn poll_keys(app: &TestApp, c: &Client, since: &str) -> Vec<String> {
    let (token, mut cursor, mut keys) = (c.token(), since.to_owned(), Vec::<String>::new());
    while !keys.last().is_some_and(|k| is_marker(k)) {
        let q = format!("{}&since={cursor}&wait=5", c.query());
        let body = poll_json(app, &token, &q).await;
        assert!(body.get("reset").is_none(), "{body}");
        for e in body["events"].as_array().unwrap() {
            assert!(e.get("to").is_none(), "{e}");
            keys.push(e["data"]["key"].as_str().unwrap().to_owned());
        }
        cursor = body["cursor"].as_str().unwrap().to_owned();
    }
    keys
}

/// Every transport (a random client per user and transport), from `since` (at `cursor`),
/// receives exactly what it may and wants after it, in order, once.
async fn every_client_gets_its_own(
    app: &TestApp,
    rng: &mut StdRng,
    published: &[Published],
    cursor: u64,
) {
    let since = Cursor::new(cursor, app.epoch().await).to_string();
    for user in USERS {
        let c = Client::random(rng, user);
        let expected = c.expected(published, cursor);
        assert_eq!(sse_keys(app, &c, &since).await, expected, "SSE {c:?}");
        let c = Client::random(rng, user);
        let mut ws = app.ws(&c.token()).await.unwrap();
        ws.send(c.subscribe(&since)).await;
        let expected = c.expected(published, cursor);
        assert_eq!(ws_keys(&mut ws).await, expected, "WS {c:?}");
        let c = Client::random(rng, user);
        let expected = c.expected(published, cursor);
        assert_eq!(poll_keys(app, &c, &since).await, expected, "poll {c:?}");
    }
}

/// Each user's history (a random client each) holds exactly its events, newest last.
async fn histories_hold_only_their_own(app: &TestApp, rng: &mut StdRng, published: &[Published]) {
    for user in USERS {
        let c = Client::random(rng, user);
        let path = format!("/v1/history?{}&limit=500", c.query());
        let resp = get_with(app, &path, &c.token()).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let keys: Vec<String> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["data"]["key"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, c.expected(published, 0), "history {c:?}");
    }
}

/// Live clients (one per user and transport, opened at the start), then resumes from random
/// cursors, then history.
async fn isolation(app: &TestApp, seed: u64) {
    // On failure: rerun with HERALD_AUDIENCE_SEED=<seed>.
    eprintln!("audience isolation seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Cursor::new(0, app.epoch().await).to_string();
    // Live: every client is open before anything is published.
    let mut live = Vec::new();
    for user in USERS {
        let c = Client::random(&mut rng, user);
        let sse = app.sse(&c.token(), &c.query(), None).await;
        let w = Client::random(&mut rng, user);
        let mut ws = app.ws(&w.token()).await.unwrap();
        ws.send(w.subscribe(&start)).await;
        live.push((c, sse, w, ws));
    }
    let published = publish_round(app, &mut rng, 1, 48).await;
    for (c, mut sse, w, mut ws) in live {
        let mut keys = Vec::new();
        while !keys.last().is_some_and(|k: &String| is_marker(k)) {
            let ev = sse.event().await.unwrap();
            keys.push(ev.json()["data"]["key"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            keys,
            c.expected(&published, 0),
            "live SSE {c:?} (seed {seed})"
        );
        assert_eq!(
            ws_keys(&mut ws).await,
            w.expected(&published, 0),
            "live WS {w:?} (seed {seed})"
        );
    }
    // Long-poll from the start (nothing was published before it).
    for user in USERS {
        let c = Client::random(&mut rng, user);
        let got = poll_keys(app, &c, &start).await;
        assert_eq!(got, c.expected(&published, 0), "poll {c:?} (seed {seed})");
    }
    // Resumes from cursors before the markers.
    let last = published[published.len() - USERS.len() - 1].seq;
    for cursor in [0, published[0].seq, rng.gen_range(1..last), last] {
        every_client_gets_its_own(app, &mut rng, &published, cursor).await;
    }
    histories_hold_only_their_own(app, &mut rng, &published).await;
}

/// A random seed, or `HERALD_AUDIENCE_SEED` to replay a failure.
fn seed() -> u64 {
    std::env::var("HERALD_AUDIENCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test]
async fn every_client_gets_exactly_its_events_live_and_resumed_from_the_ring() {
    let seed = seed();
    let app = TestApp::spawn().await;
    isolation(&app, seed).await;
    assert!(resumes(&app, "memory").await > 0.0);
    assert_eq!(resumes(&app, "jetstream").await, 0.0, "seed {seed}");
}

#[tokio::test]
async fn every_client_gets_exactly_its_events_resumed_from_jetstream() {
    let seed = seed();
    // Two events in the ring: every resume before the markers replays from JetStream, and
    // history reads JetStream too.
    let app = with_ring(2).await;
    isolation(&app, seed).await;
    assert_eq!(resumes(&app, "memory").await, 0.0, "seed {seed}");
    assert!(resumes(&app, "jetstream").await >= 12.0);
}

/// Events private to someone else move the cursor like filtered-out ones: the SSE heartbeat's
/// `id:`, the WebSocket `cursor` frame and the long-poll cursor pass them, with no event.
#[tokio::test]
async fn the_cursor_moves_past_events_private_to_others() {
    let mut cfg = test_config();
    cfg.heartbeat = Duration::from_millis(200);
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = token_for("u-2", "acme", &["*"], 3600, SECRET);
    let start = Cursor::new(0, app.epoch().await).to_string();
    let resp = app.stream(&token, "topics=t1", Some(&start)).await;
    assert_eq!(resp.status(), 200);
    let mut last = 0;
    for i in 0..3 {
        let e = Published {
            seq: 0,
            key: format!("p-{i}"),
            topic: "t1",
            action: "insert",
            k: "a",
            to: Some(vec!["u-1", "u-3"]),
        };
        last = publish(&app, &e).await;
    }
    let last = Cursor::new(last, app.epoch().await).to_string();
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
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["t1"], "since": start}))
        .await;
    loop {
        let frame = ws.expect("cursor").await.unwrap();
        if frame["cursor"] == last.as_str() {
            break;
        }
    }
    let body = poll_json(&app, &token, &format!("topics=t1&since={start}&wait=1")).await;
    assert_eq!(body["events"], json!([]), "{body}");
    assert_eq!(body["cursor"], last.as_str(), "{body}");
    // The audience sees them, without learning who else did.
    let mine = token_for("u-3", "acme", &["*"], 3600, SECRET);
    let body = poll_json(&app, &mine, &format!("topics=t1&since={start}&wait=1")).await;
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{body}");
    assert!(!body.to_string().contains("u-1"), "{body}");
}
