//! Collections (`proto/state.md`): the gateway's mirror, `GET /v1/snapshot` and `snapshot=1`
//! on SSE, WebSocket and long-poll, checked against a reference table built from what a
//! publisher wrote, while it writes: a snapshot is exactly the state at its cursor, and a
//! client that applies a snapshot then the stream ends with the reference table, with every
//! event after the snapshot's cursor applied once, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use herald_core::cursor::Cursor;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_core::publish::event_message;
use herald_core::state::{Change, CollectionConfig, KeyPath, StateConfig};
use herald_core::streams::StreamSettings;
use herald_test_support::wait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{DEADLINE, TestApp, test_config, token_for};

/// acme `leads` keyed by `id`, acme `services` keyed by `name`.
pub fn state() -> StateConfig {
    let topics = [
        ("leads".to_owned(), CollectionConfig { key: "id".into() }),
        (
            "services".to_owned(),
            CollectionConfig { key: "name".into() },
        ),
    ];
    StateConfig {
        collections: [("acme".to_owned(), topics.into_iter().collect())].into(),
    }
}

/// A gateway with [`state`]'s collections, its mirror loaded.
pub async fn app() -> TestApp {
    app_with(test_config(), StreamSettings::default()).await
}

pub async fn app_with(cfg: herald_gateway::Config, settings: StreamSettings) -> TestApp {
    let app = TestApp::spawn_with_state(cfg, settings, state()).await;
    loaded(&app).await;
    app
}

/// Waits until the gateway's mirror is loaded (`/v1/snapshot` is not 503).
pub async fn loaded(app: &TestApp) {
    wait::until("the mirror to load", DEADLINE, || async {
        let resp = get(app, &token(), "/v1/snapshot?topics=leads").await;
        resp.0 == 200
    })
    .await;
}

/// A token for user `user-1` of acme, every topic.
pub fn token() -> String {
    TestApp::token("acme", &["*"], 3600)
}

/// `GET path` with `token`: status and JSON body.
pub async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One published change.
#[derive(Debug, Clone)]
pub struct Published {
    pub seq: u64,
    /// The CloudEvent id.
    pub id: String,
    pub topic: String,
    pub action: String,
    pub data: Value,
    pub to: Option<Vec<String>>,
}

/// Every change published, in stream order: the reference.
#[derive(Debug, Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<Published>>>);

/// A table per topic: key → row.
pub type Tables = BTreeMap<String, BTreeMap<String, Value>>;

impl Log {
    pub fn push(&self, p: Published) {
        self.0.lock().unwrap().push(p);
    }

    /// The sequence of the event with CloudEvent `id`, once recorded.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.seq)
    }

    /// Every recorded sequence, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|p| p.seq).collect()
    }

    pub fn last_seq(&self) -> u64 {
        self.0.lock().unwrap().last().map_or(0, |p| p.seq)
    }

    pub fn len(&self) -> usize {
        // (used by the stream tests to open clients at moments spread over the writes)
        self.0.lock().unwrap().len()
    }

    /// The tables after the event at `seq`, as `user` sees them (rows written with an
    /// audience that does not name the user are absent).
    pub fn state_at(&self, seq: u64, user: &str) -> Tables {
        type Audienced = BTreeMap<String, (Value, Option<Vec<String>>)>;
        let mut tables: BTreeMap<String, Audienced> = BTreeMap::new();
        for p in self.0.lock().unwrap().iter().filter(|p| p.seq <= seq) {
            let table = tables.entry(p.topic.clone()).or_default();
            match change(&p.topic, &p.action, &p.data) {
                Change::Upsert { key } => {
                    table.insert(key, (p.data.clone(), p.to.clone()));
                }
                Change::Delete { key } => {
                    table.remove(&key);
                }
                Change::Clear => table.clear(),
                _ => {}
            }
        }
        tables
            .into_iter()
            .map(|(topic, rows)| {
                let rows = rows
                    .into_iter()
                    .filter(|(_, (_, to))| {
                        to.as_ref().is_none_or(|to| to.iter().any(|u| u == user))
                    })
                    .map(|(k, (v, _))| (k, v))
                    .collect();
                (topic, rows)
            })
            .collect()
    }
}

/// What an event of `topic` does, with [`state`]'s keys.
pub fn change(topic: &str, action: &str, data: &Value) -> Change {
    let key = if topic == "services" { "name" } else { "id" };
    Change::of(&KeyPath::parse(key).unwrap(), action, data)
}

/// Publishes a change of acme `topic` (with `Herald-To: to`); returns its sequence.
pub async fn publish_change(
    js: &jetstream::Context,
    topic: &str,
    action: &str,
    data: Value,
    to: Option<&[&str]>,
) -> u64 {
    publish_change_id(js, topic, action, data, to).await.0
}

/// [`publish_change`], returning the CloudEvent id too.
pub async fn publish_change_id(
    js: &jetstream::Context,
    topic: &str,
    action: &str,
    data: Value,
    to: Option<&[&str]>,
) -> (u64, String) {
    let event = Event::new(
        EventId::generate(),
        TenantId::parse("acme").unwrap(),
        Topic::parse(topic).unwrap(),
        Action::parse(action).unwrap(),
        "/test",
        data,
    );
    let mut msg = event_message(&event);
    if let Some(to) = to {
        msg = msg.header("Herald-To", to.join(","));
    }
    let seq = js
        .send_publish(event.subject(), msg)
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    (seq, event.id.to_string())
}

/// A random change of `leads` over `keys` keys: mostly upserts, some deletes, rarely a
/// truncate; with `private`, now and then one for `user-2` only.
pub fn random_change(
    rng: &mut StdRng,
    keys: u32,
    n: u64,
    private: bool,
) -> (String, Value, Option<Vec<String>>) {
    let key = rng.gen_range(0..keys);
    let roll = rng.gen_range(0..1000);
    let (action, data) = match roll {
        0..=2 => ("truncate", json!({})),
        3..=299 => ("delete", json!({"id": key})),
        300..=349 => ("ping", json!({"id": key, "n": n})),
        350..=599 => ("insert", json!({"id": key, "n": n})),
        _ => ("update", json!({"id": key, "n": n, "s": format!("v{n}")})),
    };
    let to = (private && rng.gen_range(0..20) == 0).then(|| vec!["user-2".to_owned()]);
    (action.to_owned(), data, to)
}

/// Publishes `n` random changes of `leads`, some private to `user-2`, recording each in `log`.
pub async fn write(js: jetstream::Context, log: Log, seed: u64, n: u64, keys: u32) {
    write_with(js, log, (seed, true), n, keys).await;
}

/// Publishes `n` random changes of `leads` (`private`: some for `user-2` only), recording each
/// in `log`.
pub async fn write_with(
    js: jetstream::Context,
    log: Log,
    (seed, private): (u64, bool),
    n: u64,
    keys: u32,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..n {
        let (action, data, to) = random_change(&mut rng, keys, i, private);
        let to_ref: Option<Vec<&str>> = to.as_ref().map(|t| t.iter().map(String::as_str).collect());
        let (seq, id) =
            publish_change_id(&js, "leads", &action, data.clone(), to_ref.as_deref()).await;
        log.push(Published {
            seq,
            id,
            topic: "leads".into(),
            action,
            data,
            to,
        });
    }
}

/// Publishes the end marker (a change of nothing that readers stop at), recording it.
pub async fn write_end(js: &jetstream::Context, log: &Log) {
    let end = json!({"id": 0, "end": true});
    let (seq, id) = publish_change_id(js, "leads", "ping", end.clone(), None).await;
    log.push(Published {
        seq,
        id,
        topic: "leads".into(),
        action: "ping".into(),
        data: end,
        to: None,
    });
}

/// Whether a CloudEvent is the writer's last.
pub fn is_end(event: &Value) -> bool {
    event["data"]["end"] == true
}

/// The cursor of a JSON string.
pub fn cursor_of(v: &Value) -> Cursor {
    v.as_str().unwrap().parse().unwrap()
}

/// Every page of a snapshot of `topics` with `limit`: its cursor and its tables.
pub async fn snapshot(app: &TestApp, token: &str, topics: &str, limit: usize) -> (Cursor, Tables) {
    let (status, first) = get(
        app,
        token,
        &format!("/v1/snapshot?topics={topics}&limit={limit}"),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let cursor = cursor_of(&first["cursor"]);
    let mut tables = Tables::new();
    let mut page = first;
    loop {
        assert_eq!(
            cursor_of(&page["cursor"]),
            cursor,
            "every page has the snapshot's cursor"
        );
        let rows_on_page: usize = add_page(&mut tables, &page);
        assert!(
            rows_on_page <= limit,
            "{rows_on_page} rows on a page of {limit}"
        );
        if page["more"] == false {
            assert!(page.get("after").is_none());
            break;
        }
        let after = page["after"].as_str().unwrap().to_owned();
        let (status, next) = get(
            app,
            token,
            &format!("/v1/snapshot?topics={topics}&limit={limit}&cursor={cursor}&after={after}"),
        )
        .await;
        assert_eq!(status, 200, "{next}");
        page = next;
    }
    (cursor, tables)
}

/// Adds a page's rows to `tables`; returns how many it had. A row already there is a
/// duplicate across pages: a failure.
pub fn add_page(tables: &mut Tables, page: &Value) -> usize {
    let mut n = 0;
    for (topic, rows) in page["topics"].as_object().unwrap() {
        let table = tables.entry(topic.clone()).or_default();
        for (key, row) in rows.as_object().unwrap() {
            assert!(
                table.insert(key.clone(), row.clone()).is_none(),
                "row {key} of {topic} on two pages"
            );
            n += 1;
        }
    }
    n
}

/// `tables` without empty topics (a snapshot names every topic; the log only those written).
pub fn non_empty(tables: Tables) -> Tables {
    tables.into_iter().filter(|(_, t)| !t.is_empty()).collect()
}

/// A client's tables: replaced by a snapshot, then changed by each event in order, each
/// event's sequence above the snapshot's cursor and the previous event's.
#[derive(Debug, Default)]
pub struct Client {
    pub tables: Tables,
    pub cursor: Option<Cursor>,
    pub last_seq: u64,
    pub events: usize,
    /// `reset`s received (each followed by a fresh snapshot).
    pub resets: usize,
}

impl Client {
    /// A snapshot page (`{"cursor","topics","more"}`); the first page of a snapshot replaces
    /// the tables of its topics.
    pub fn snapshot_page(&mut self, page: &Value, first: bool) {
        let cursor = cursor_of(&page["cursor"]);
        if first {
            for topic in page["topics"].as_object().unwrap().keys() {
                self.tables.insert(topic.clone(), BTreeMap::new());
            }
        } else {
            assert_eq!(
                self.cursor,
                Some(cursor),
                "every page has the snapshot's cursor"
            );
        }
        self.cursor = Some(cursor);
        self.last_seq = cursor.seq;
        add_page(&mut self.tables, page);
    }

    /// An event (a CloudEvent) at `seq`.
    pub fn event(&mut self, seq: u64, event: &Value) {
        let snapshot = self.cursor.expect("a snapshot before any event").seq;
        assert!(
            seq > snapshot,
            "event {seq} is not after the snapshot at {snapshot}"
        );
        assert!(
            seq > self.last_seq,
            "event {seq} after {}: applied twice or out of order",
            self.last_seq
        );
        self.last_seq = seq;
        self.events += 1;
        let topic = event["topic"].as_str().unwrap();
        let action = event["action"].as_str().unwrap();
        let data = &event["data"];
        let table = self.tables.entry(topic.to_owned()).or_default();
        match change(topic, action, data) {
            Change::Upsert { key } => {
                table.insert(key, data.clone());
            }
            Change::Delete { key } => {
                table.remove(&key);
            }
            Change::Clear => table.clear(),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_snapshot_is_the_reference_at_its_cursor_while_a_publisher_writes() {
    let app = app().await;
    let log = Log::default();
    let writer = tokio::spawn(write(app.nats.jetstream().await, log.clone(), 1, 1500, 60));
    let mut seen = Vec::new();
    while !writer.is_finished() {
        seen.push(snapshot(&app, &token(), "leads", 1000).await);
    }
    writer.await.unwrap();
    seen.push(snapshot(&app, &token(), "leads", 1000).await);
    assert!(
        seen.len() >= 3,
        "only {} snapshots during the writes",
        seen.len()
    );
    for (cursor, tables) in &seen {
        assert_eq!(
            non_empty(tables.clone()),
            non_empty(log.state_at(cursor.seq, "user-1")),
            "the snapshot at {cursor}"
        );
    }
    // Once the gateway has seen the last write: the final table, with rows.
    let last = loop {
        let (cursor, tables) = snapshot(&app, &token(), "leads", 1000).await;
        if cursor.seq >= log.last_seq() {
            break tables;
        }
    };
    assert_eq!(
        non_empty(last.clone()),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
    assert!(!last["leads"].is_empty());
}

#[tokio::test]
async fn pages_of_one_snapshot_stay_consistent_while_writes_go_on() {
    let app = app().await;
    let log = Log::default();
    // Enough rows for many pages first.
    write(app.nats.jetstream().await, log.clone(), 2, 300, 200).await;
    let writer = tokio::spawn(write(app.nats.jetstream().await, log.clone(), 3, 600, 200));
    let mut checked = 0;
    while !writer.is_finished() || checked == 0 {
        let (cursor, tables) = snapshot(&app, &token(), "leads", 7).await;
        assert_eq!(non_empty(tables), non_empty(log_at(&log, cursor).await));
        checked += 1;
    }
    writer.await.unwrap();
    assert!(checked >= 2, "paged through {checked} snapshots only");
}

/// The reference at `cursor`, once the log holds it (the write's PubAck may come after the
/// gateway saw the event).
async fn log_at(log: &Log, cursor: Cursor) -> Tables {
    wait::until_sync("the writer to record the cursor's event", DEADLINE, || {
        log.last_seq() >= cursor.seq
    })
    .await;
    log.state_at(cursor.seq, "user-1")
}

#[tokio::test]
async fn rows_with_an_audience_are_in_their_users_snapshots_only() {
    let app = app().await;
    let js = app.nats.jetstream().await;
    publish_change(&js, "leads", "insert", json!({"id": 1, "who": "all"}), None).await;
    publish_change(
        &js,
        "leads",
        "insert",
        json!({"id": 2}),
        Some(&["user-2", "user-3"]),
    )
    .await;
    let last = publish_change(&js, "leads", "insert", json!({"id": 3}), Some(&["user-1"])).await;
    let rows = |user: &'static str| {
        let app = &app;
        async move {
            let token = token_for(user, "acme", &["*"], 60, crate::helpers::SECRET);
            loop {
                let (_, body) = get(app, &token, "/v1/snapshot?topics=leads").await;
                if body["cursor"].is_string() && cursor_of(&body["cursor"]).seq >= last {
                    let rows = body["topics"]["leads"].as_object().unwrap();
                    return rows.keys().cloned().collect::<Vec<String>>();
                }
            }
        }
    };
    assert_eq!(rows("user-1").await, ["1", "3"]);
    assert_eq!(rows("user-2").await, ["1", "2"]);
    assert_eq!(rows("user-9").await, ["1"]);
}

#[tokio::test]
async fn snapshot_requests_are_refused_precisely() {
    let mut cfg = test_config();
    cfg.snapshot_retained = 0;
    let app = app_with(cfg, StreamSettings::default()).await;
    let js = app.nats.jetstream().await;
    for i in 0..5 {
        publish_change(&js, "leads", "insert", json!({"id": i}), None).await;
    }
    let t = token();
    let code = |body: &Value| body["error"]["code"].as_str().map(str::to_owned);
    let (status, body) = get(&app, &t, "/v1/snapshot?topics=leads,deals").await;
    assert_eq!(
        (status, code(&body).as_deref()),
        (400, Some("not_a_collection")),
        "{body}"
    );
    let (status, body) = get(&app, &t, "/v1/snapshot?topics=leads&limit=0").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get(&app, &t, "/v1/snapshot?topics=leads&limit=10001").await;
    assert_eq!(status, 400, "{body}");
    let only_deals = TestApp::token("acme", &["deals"], 60);
    let (status, body) = get(&app, &only_deals, "/v1/snapshot?topics=leads").await;
    assert_eq!(
        (status, code(&body).as_deref()),
        (403, Some("topic_forbidden")),
        "{body}"
    );
    let (status, _) = get(&app, "nope", "/v1/snapshot?topics=leads").await;
    assert_eq!(status, 401);
    // A later page of a snapshot not kept (none are, here) after the collection changed.
    let (status, page) = get(&app, &t, "/v1/snapshot?topics=leads&limit=2").await;
    assert_eq!((status, &page["more"]), (200, &json!(true)), "{page}");
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let after = page["after"].as_str().unwrap().to_owned();
    // Unchanged since: the page is cut from the live tables.
    let (status, same) = get(
        &app,
        &t,
        &format!("/v1/snapshot?topics=leads&limit=2&cursor={cursor}&after={after}"),
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["cursor"], page["cursor"]);
    let seq = publish_change(&js, "leads", "insert", json!({"id": 99}), None).await;
    wait::until("the gateway to see the change", DEADLINE, || async {
        let (_, b) = get(&app, &t, "/v1/snapshot?topics=leads").await;
        b["cursor"].is_string() && cursor_of(&b["cursor"]).seq >= seq
    })
    .await;
    let (status, body) = get(
        &app,
        &t,
        &format!("/v1/snapshot?topics=leads&limit=2&cursor={cursor}&after={after}"),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_deref()),
        (410, Some("snapshot_expired")),
        "{body}"
    );
    let (status, body) = get(
        &app,
        &t,
        &format!("/v1/snapshot?topics=leads&limit=2&cursor={cursor}&after=%%%"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_kept_snapshot_serves_its_pages_after_the_collection_changed() {
    let app = app().await;
    let js = app.nats.jetstream().await;
    let mut last = 0;
    for i in 0..10 {
        last = publish_change(&js, "leads", "insert", json!({"id": i}), None).await;
    }
    let t = token();
    let (cursor, before) = loop {
        let (_, page) = get(&app, &t, "/v1/snapshot?topics=leads&limit=3").await;
        if cursor_of(&page["cursor"]).seq >= last {
            break (page["cursor"].as_str().unwrap().to_owned(), page);
        }
    };
    assert_eq!(before["more"], true);
    // Everything changes after the first page.
    publish_change(&js, "leads", "truncate", json!({}), None).await;
    let mut tables = Tables::new();
    add_page(&mut tables, &before);
    let mut after = before["after"].as_str().unwrap().to_owned();
    loop {
        let (status, page) = get(
            &app,
            &t,
            &format!("/v1/snapshot?topics=leads&limit=3&cursor={cursor}&after={after}"),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        add_page(&mut tables, &page);
        if page["more"] == false {
            break;
        }
        after = page["after"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        tables["leads"].len(),
        10,
        "the whole table as it was at {cursor}"
    );
}
