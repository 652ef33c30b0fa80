//! The mirror across restarts: a gateway started after the oldest events left the stream
//! loads the rows a state writer left in `herald_state` (written here in the documented
//! format) plus the retained events; NATS restarts under an open `snapshot=1` stream; a
//! recreated stream resets it with a fresh snapshot; two gateways agree.

use std::collections::BTreeMap;

use herald_core::names::{TenantId, Topic};
use herald_core::state::{Change, Marker, Row, STATE_BUCKET, marker_key, row_key};
use herald_core::streams::EVENTS_STREAM;
use herald_test_support::wait;
use serde_json::json;

use crate::collections::{
    Client, Log, Published, app, change, cursor_of, get, loaded, non_empty, snapshot, token, write,
    write_end, write_with,
};
use crate::collections_stream::{follow_sse, sse_client};
use crate::helpers::{DEADLINE, TestApp, start_gateway_at};

/// Writes what a state writer would have written after applying the log's events up to
/// `rows_upto` with the marker at `applied` (a lower bound: rows may be ahead of it): the
/// last change of each key (a tombstone for a delete), `cleared` at the last truncate.
async fn write_state(app: &TestApp, log: &Log, applied: u64, rows_upto: u64) {
    write_rows(&app.nats.jetstream().await, log, (applied, rows_upto)).await;
}

/// [`write_state`] through `js`.
pub async fn write_rows(
    js: &async_nats::jetstream::Context,
    log: &Log,
    (applied, rows_upto): (u64, u64),
) {
    let kv = js.get_key_value(STATE_BUCKET).await.unwrap();
    let (tenant, topic) = (
        TenantId::parse("acme").unwrap(),
        Topic::parse("leads").unwrap(),
    );
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut cleared = 0;
    let published: Vec<Published> = log.0.lock().unwrap().clone();
    for p in published.iter().filter(|p| p.seq <= rows_upto) {
        match change(&p.topic, &p.action, &p.data) {
            Change::Upsert { key } => {
                let row = Row {
                    seq: p.seq,
                    data: Some(p.data.clone()),
                    deleted: false,
                    to: p.to.clone(),
                };
                rows.insert(key, row);
            }
            Change::Delete { key } => {
                let tomb = Row {
                    seq: p.seq,
                    data: None,
                    deleted: true,
                    to: None,
                };
                rows.insert(key, tomb);
            }
            Change::Clear => cleared = p.seq,
            _ => {}
        }
    }
    for (key, row) in &rows {
        let value = serde_json::to_vec(row).unwrap();
        kv.put(row_key(&tenant, &topic, key), value.into())
            .await
            .unwrap();
    }
    let marker = Marker {
        applied,
        cleared,
        epoch: epoch(js).await.to_string(),
    };
    kv.put(
        marker_key(&tenant, &topic),
        serde_json::to_vec(&marker).unwrap().into(),
    )
    .await
    .unwrap();
}

/// 300 changes over 200 keys, then 300 over keys 0–9 only: keys 10 and up that are in the
/// final table were last written by the first 300 (checked).
async fn rows_only_before_retention(js: &async_nats::jetstream::Context, log: &Log) {
    write(js.clone(), log.clone(), 11, 300, 200).await;
    write(js.clone(), log.clone(), 13, 300, 10).await;
    let old = log.state_at(u64::MAX, "user-1")["leads"]
        .keys()
        .filter(|k| k.parse::<u32>().unwrap() >= 10)
        .count();
    assert!(old > 20, "only {old} rows of the first writes are left");
}

/// The epoch of `HERALD_EVENTS`.
pub async fn epoch(js: &async_nats::jetstream::Context) -> herald_core::cursor::Epoch {
    let mut stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    herald_core::cursor::Epoch::from_created(stream.info().await.unwrap().created)
}

/// The snapshot once the gateway has seen `seq`.
async fn snapshot_at_least(
    app: &TestApp,
    seq: u64,
) -> (herald_core::cursor::Cursor, crate::collections::Tables) {
    loop {
        let (cursor, tables) = snapshot(app, &token(), "leads", 1000).await;
        if cursor.seq >= seq {
            return (cursor, tables);
        }
    }
}

#[tokio::test]
async fn a_gateway_started_after_retention_loads_kv_rows_and_the_retained_events() {
    let mut app = app().await;
    let js = app.nats.jetstream().await;
    let log = Log::default();
    rows_only_before_retention(&js, &log).await;
    let seqs: Vec<u64> = log.0.lock().unwrap().iter().map(|p| p.seq).collect();
    // The writer's marker says 300 applied; its rows are ahead, at 400 (a lower bound).
    let (applied, rows_upto) = (seqs[299], seqs[399]);
    write_state(&app, &log, applied, rows_upto).await;
    app.stop_gateway().await;
    // The oldest events leave the stream: only the KV rows remember them.
    let mut stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    stream.purge().sequence(applied + 1).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.first_sequence,
        applied + 1
    );
    app.restart_gateway().await;
    loaded(&app).await;
    let last = log.last_seq();
    let (cursor, tables) = snapshot_at_least(&app, last).await;
    assert_eq!(cursor.seq, last);
    assert_eq!(non_empty(tables), non_empty(log.state_at(last, "user-1")));
    // And it follows on from there.
    write(js.clone(), log.clone(), 12, 200, 40).await;
    let last = log.last_seq();
    let (_, tables) = snapshot_at_least(&app, last).await;
    assert_eq!(non_empty(tables), non_empty(log.state_at(last, "user-1")));
}

#[tokio::test]
async fn without_its_kv_rows_a_gateway_after_retention_would_miss_rows() {
    // The control for the test above: with no marker, the load replays what the stream
    // retains, and the purged events' rows are gone (so the test above can fail).
    let mut app = app().await;
    let js = app.nats.jetstream().await;
    let log = Log::default();
    rows_only_before_retention(&js, &log).await;
    let applied = log.0.lock().unwrap()[299].seq;
    app.stop_gateway().await;
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    stream.purge().sequence(applied + 1).await.unwrap();
    app.restart_gateway().await;
    loaded(&app).await;
    let (_, tables) = snapshot_at_least(&app, log.last_seq()).await;
    assert_ne!(
        non_empty(tables),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
}

#[tokio::test]
async fn a_snapshot_stream_lives_through_a_nats_restart() {
    let mut app = app().await;
    let log = Log::default();
    let js = app.nats.jetstream().await;
    write_with(js.clone(), log.clone(), (21, false), 300, 50).await;
    let mut sse = app.sse(&token(), "topics=leads&snapshot=1", None).await;
    let mut client = Client::default();
    app.nats.restart().await;
    let js = app.nats.jetstream().await;
    // Writes resume once JetStream answers again.
    wait::until("JetStream to answer", DEADLINE, || async {
        js.get_stream(EVENTS_STREAM).await.is_ok()
    })
    .await;
    write_with(js.clone(), log.clone(), (22, false), 300, 50).await;
    write_end(&js, &log).await;
    follow_sse(&mut sse, &mut client).await;
    assert_eq!(client.resets, 0);
    assert_eq!(
        non_empty(client.tables),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
    // A new snapshot agrees.
    let (_, tables) = snapshot_at_least(&app, log.last_seq()).await;
    assert_eq!(
        non_empty(tables),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
}

#[tokio::test]
async fn a_recreated_stream_resets_a_snapshot_stream_with_a_fresh_snapshot() {
    let app = app().await;
    let js = app.nats.jetstream().await;
    let log = Log::default();
    write_with(js.clone(), log.clone(), (31, false), 100, 20).await;
    let mut sse = app.sse(&token(), "topics=leads&snapshot=1", None).await;
    // Read the first snapshot, then recreate the stream.
    let msg = sse.next().await.unwrap().unwrap();
    assert_eq!(msg.event.as_deref(), Some("snapshot"));
    js.delete_stream(EVENTS_STREAM).await.unwrap();
    // The gateway provisions it again; the old epoch's writes are gone.
    let fresh = Log::default();
    wait::until("the stream to be recreated", DEADLINE, || async {
        js.get_stream(EVENTS_STREAM).await.is_ok()
    })
    .await;
    write_with(js.clone(), fresh.clone(), (32, false), 50, 20).await;
    write_end(&js, &fresh).await;
    let mut client = Client::default();
    // Skip the rest of the old snapshot and its events until the reset.
    loop {
        let msg = sse.next().await.unwrap().unwrap();
        if msg.event.as_deref() == Some("reset") {
            client.resets += 1;
            break;
        }
    }
    follow_sse(&mut sse, &mut client).await;
    assert_eq!(
        non_empty(client.tables),
        non_empty(fresh.state_at(u64::MAX, "user-1"))
    );
}

#[tokio::test]
async fn a_cursor_that_cannot_be_resumed_gets_a_reset_then_a_fresh_snapshot() {
    let app = app().await;
    let js = app.nats.jetstream().await;
    let log = Log::default();
    write_with(js.clone(), log.clone(), (41, false), 50, 10).await;
    let last = log.last_seq();
    snapshot_at_least(&app, last).await;
    // Another epoch's cursor: reset, then a snapshot.
    let mut sse = app
        .sse(&token(), "topics=leads&snapshot=1", Some("5-0badbeef"))
        .await;
    let msg = sse.next().await.unwrap().unwrap();
    assert_eq!(msg.event.as_deref(), Some("reset"), "{msg:?}");
    let mut client = Client::default();
    let writer = {
        let (js, log) = (js.clone(), log.clone());
        tokio::spawn(async move { write_end(&js, &log).await })
    };
    follow_sse(&mut sse, &mut client).await;
    writer.await.unwrap();
    assert_eq!(
        non_empty(client.tables),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
    // A cursor of this epoch resumes without a snapshot.
    let mut sse = app
        .sse(
            &token(),
            "topics=leads&snapshot=1",
            Some(&format!("{}-{}", last, app.epoch().await)),
        )
        .await;
    crate::collections::publish_change(&js, "leads", "insert", json!({"id": 1}), None).await;
    let msg = sse.next().await.unwrap().unwrap();
    assert_eq!(msg.event, None, "an event, no snapshot: {msg:?}");
    assert!(msg.seq() > last);
}

#[tokio::test]
async fn non_collection_topics_stream_as_usual_beside_a_snapshot() {
    let app = app().await;
    let js = app.nats.jetstream().await;
    let (status, body) = get(&app, &token(), "/v1/stream?topics=deals&snapshot=1").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "not_a_collection");
    let mut sse = app
        .sse(&token(), "topics=leads,deals&snapshot=1", None)
        .await;
    let msg = sse.next().await.unwrap().unwrap();
    assert_eq!(msg.event.as_deref(), Some("snapshot"));
    assert_eq!(msg.json()["topics"], json!({"leads": {}}));
    crate::helpers::publish(&js, "acme", "deals", json!({"x": 1})).await;
    let ev = sse.event().await.unwrap();
    assert_eq!(ev.json()["topic"], "deals");
}

#[tokio::test]
async fn two_gateways_give_identical_snapshots() {
    let app = app().await;
    let second = start_gateway_at(app.nats.url(), &app.cfg, &app.settings, &app.state).await;
    let log = Log::default();
    write(app.nats.jetstream().await, log.clone(), 51, 500, 30).await;
    let last = log.last_seq();
    let at = |addr: std::net::SocketAddr| {
        let http = app.http.clone();
        async move {
            loop {
                let body: serde_json::Value = http
                    .get(format!("http://{addr}/v1/snapshot?topics=leads,services"))
                    .bearer_auth(token())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if body["cursor"].is_string() && cursor_of(&body["cursor"]).seq >= last {
                    return body;
                }
            }
        }
    };
    let (one, two) = (at(app.gw.addr).await, at(second.addr).await);
    assert_eq!(one, two);
    assert!(!one["topics"]["leads"].as_object().unwrap().is_empty());
}

#[tokio::test]
async fn a_gateway_restart_under_open_snapshot_streams_loses_nothing() {
    let mut app = app().await;
    let log = Log::default();
    let js = app.nats.jetstream().await;
    write_with(js.clone(), log.clone(), (61, false), 200, 30).await;
    let before = sse_client_until_restart(&app).await;
    // Rows for the new gateway come from the KV and the stream; no writer runs here, so
    // only the stream: a marker-less load replays it all.
    app.restart_gateway().await;
    loaded(&app).await;
    let writer = {
        let (js, log) = (js.clone(), log.clone());
        tokio::spawn(async move {
            write_with(js.clone(), log.clone(), (62, false), 300, 30).await;
            write_end(&js, &log).await;
        })
    };
    // The old stream ended with `reconnect`; a client reconnects without its cursor
    // (snapshot=1 again) and converges.
    drop(before);
    let client = sse_client(&app, "topics=leads&snapshot=1").await;
    writer.await.unwrap();
    assert_eq!(
        non_empty(client.tables),
        non_empty(log.state_at(u64::MAX, "user-1"))
    );
}

/// An SSE snapshot stream, opened and read past its snapshot.
async fn sse_client_until_restart(app: &TestApp) -> crate::helpers::SseClient {
    let mut sse = app.sse(&token(), "topics=leads&snapshot=1", None).await;
    let msg = sse.next().await.unwrap().unwrap();
    assert_eq!(msg.event.as_deref(), Some("snapshot"));
    sse
}

/// The stats-aggregator (its state writer) on the app's NATS, with the same collections.
async fn state_writer(
    app: &TestApp,
) -> herald_test_support::service::TestService<herald_stats::App> {
    state_writer_at(&app.nats.url(), &app.settings, &app.state).await
}

/// The stats-aggregator (its state writer) on the NATS server at `url`.
pub async fn state_writer_at(
    url: &str,
    settings: &herald_core::streams::StreamSettings,
    state: &herald_core::state::StateConfig,
) -> herald_test_support::service::TestService<herald_stats::App> {
    let mut cfg = herald_stats::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    cfg.state_writer.marker_interval = std::time::Duration::from_millis(100);
    let common = herald_core::service::CommonConfig {
        nats: herald_core::nats::NatsConfig {
            url: url.to_owned(),
            ..Default::default()
        },
        stream: settings.clone(),
        state: state.clone(),
        ..Default::default()
    };
    herald_test_support::service::TestService::start_with(cfg, &common).await
}

/// Waits until the state writer's marker of acme/leads says `seq` is applied.
async fn applied(app: &TestApp, seq: u64) {
    applied_js(&app.nats.jetstream().await, seq).await;
}

/// [`applied`] through `js`.
pub async fn applied_js(js: &async_nats::jetstream::Context, seq: u64) {
    let key = marker_key(
        &TenantId::parse("acme").unwrap(),
        &Topic::parse("leads").unwrap(),
    );
    wait::until("the state writer to apply every event", DEADLINE, || {
        let (js, key) = (js.clone(), key.clone());
        async move {
            let Ok(kv) = js.get_key_value(STATE_BUCKET).await else {
                return false;
            };
            let Ok(Some(entry)) = kv.entry(key).await else {
                return false;
            };
            serde_json::from_slice::<Marker>(&entry.value).is_ok_and(|m| m.applied >= seq)
        }
    })
    .await;
}

#[tokio::test]
async fn a_gateway_started_after_retention_loads_what_the_state_writer_wrote() {
    let mut app = app().await;
    let mut writer = state_writer(&app).await;
    let js = app.nats.jetstream().await;
    let log = Log::default();
    rows_only_before_retention(&js, &log).await;
    let seqs = log.seqs();
    applied(&app, log.last_seq()).await;
    writer.stop(DEADLINE).await;
    // 100 more events the writer never saw, then the oldest events leave the stream.
    write(js.clone(), log.clone(), 14, 100, 10).await;
    app.stop_gateway().await;
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    stream.purge().sequence(seqs[449]).await.unwrap();
    app.restart_gateway().await;
    loaded(&app).await;
    let last = log.last_seq();
    let (cursor, tables) = snapshot_at_least(&app, last).await;
    assert_eq!(cursor.seq, last);
    assert_eq!(non_empty(tables), non_empty(log.state_at(last, "user-1")));
    // Private rows the writer stored are private in the snapshot too.
    let user2 = crate::helpers::token_for("user-2", "acme", &["*"], 60, crate::helpers::SECRET);
    let (_, body) = get(&app, &user2, "/v1/snapshot?topics=leads&limit=10000").await;
    let theirs: Vec<&String> = body["topics"]["leads"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let want = log.state_at(last, "user-2");
    assert_eq!(theirs.len(), want["leads"].len());
}
