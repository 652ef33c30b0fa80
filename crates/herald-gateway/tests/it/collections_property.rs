//! The property of collections, end to end: 10,000 random inserts, updates, deletes (and a
//! few truncates) over 500 keys, with clients taking paged snapshots and opening `snapshot=1`
//! SSE and WebSocket streams at random moments, across a gateway restart, a NATS restart and
//! a gateway restart after the oldest events left the stream. Every snapshot equals the
//! reference at its cursor; every streaming client (reconnecting with its cursor whenever its
//! connection ends, and taking the fresh snapshot a `reset` brings) ends with the reference
//! table, every event applied after its snapshot, once, in order.
//!
//! The state writer (the stats-aggregator) runs throughout: a restarted gateway's mirror
//! comes from the rows it wrote in `herald_state` plus the retained events.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use herald_core::cursor::Cursor;
use herald_core::streams::StreamSettings;
use herald_test_support::wait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::clients::SseClient;
use crate::collections::{
    Client, Log, Published, Tables, add_page, cursor_of, is_end, non_empty, publish_change_id,
    random_change, state, token, write_end,
};
use crate::collections_restart::{applied_js, epoch, state_writer_at};
use crate::helpers::{DEADLINE, Gateway, start_gateway_at, test_config};

/// Operations in all.
const OPS: usize = 10_000;
/// Keys they touch.
const KEYS: u32 = 500;
/// Events the stream retains (so the last restart comes after retention).
const RETAINED: i64 = 3_000;

/// Where clients find the gateway (it moves on every restart).
type Addr = watch::Receiver<SocketAddr>;

/// The sequence of the writer's last event, once written (0 before): a client is done once
/// it has everything up to it (its snapshot may be past the end marker).
type End = watch::Receiver<u64>;

/// Whether `client` has everything up to the end.
fn done(client: &Client, end: &End) -> bool {
    let end = *end.borrow();
    end > 0 && client.cursor.is_some() && client.last_seq >= end
}

/// Starts a gateway with the collections and waits until its mirror is loaded.
async fn gateway(url: &str, settings: &StreamSettings) -> Gateway {
    // Every client is the same user: lift the per-user cap.
    let mut cfg = test_config();
    cfg.limits.per_user = 1_000;
    let gw = start_gateway_at(url.to_owned(), &cfg, settings, &state()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/snapshot?topics=leads", gw.addr);
    wait::until("the mirror to load", DEADLINE, || async {
        let resp = http.get(&url).bearer_auth(token()).send().await;
        resp.is_ok_and(|r| r.status() == 200)
    })
    .await;
    gw
}

/// A client's wait before it reconnects: until the gateway moved, or a short while (a
/// client's reconnect backoff).
async fn backoff(addr: &mut Addr, used: SocketAddr) {
    if *addr.borrow() != used {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), addr.changed()).await;
}

/// A whole paged snapshot from the gateway at `addr` (limit `limit`), or `None` if it failed
/// half-way (a restart): the caller starts again.
async fn paged(http: &reqwest::Client, at: SocketAddr, limit: usize) -> Option<(Cursor, Tables)> {
    let base = format!("http://{at}/v1/snapshot?topics=leads&limit={limit}");
    let get = |url: String| async move {
        let resp = http.get(url).bearer_auth(token()).send().await.ok()?;
        (resp.status() == 200).then_some(())?;
        resp.json::<Value>().await.ok()
    };
    let mut page = get(base.clone()).await?;
    let cursor = cursor_of(&page["cursor"]);
    let mut tables = Tables::new();
    loop {
        assert_eq!(cursor_of(&page["cursor"]), cursor);
        add_page(&mut tables, &page);
        if page["more"] == false {
            return Some((cursor, tables));
        }
        let after = page["after"].as_str()?.to_owned();
        page = get(format!("{base}&cursor={cursor}&after={after}")).await?;
    }
}

/// Takes one paged snapshot, trying again until one completes.
async fn snapshot_client(mut addr: Addr, limit: usize) -> (Cursor, Tables) {
    let http = reqwest::Client::new();
    loop {
        let at = *addr.borrow_and_update();
        if let Some(done) = paged(&http, at, limit).await {
            return done;
        }
        tracing::info!(limit, "snapshot client starts again");
        backoff(&mut addr, at).await;
    }
}

/// How a connection ended.
enum Ended {
    /// The writer's end came.
    Done,
    /// The connection ended first: reconnect.
    Lost,
}

/// An SSE `snapshot=1` client that reconnects with its `Last-Event-ID` until the end; it
/// starts from `last_id` (a client back after a long absence) or without one.
async fn sse_client(mut addr: Addr, end: End, mut last_id: Option<String>) -> Client {
    let http = reqwest::Client::new();
    let mut client = Client::default();
    loop {
        let at = *addr.borrow_and_update();
        let mut req = http
            .get(format!("http://{at}/v1/stream?topics=leads&snapshot=1"))
            .bearer_auth(token());
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id.as_str());
        }
        if let Ok(resp) = req.send().await
            && resp.status() == 200
        {
            let mut sse = SseClient::new(resp);
            let ended = follow(&mut sse, &mut client, end.clone()).await;
            last_id = sse.last_id.clone().or(last_id);
            tracing::info!(
                ?last_id,
                last_seq = client.last_seq,
                "sse client connection over"
            );
            if let Ended::Done = ended {
                return client;
            }
        }
        backoff(&mut addr, at).await;
    }
}

/// Follows one SSE connection (see [`crate::collections_stream::follow_sse`]), tolerating its
/// end.
async fn follow(sse: &mut SseClient, client: &mut Client, mut end: End) -> Ended {
    let mut first_page = true;
    if sse.open().await.is_err() {
        return Ended::Lost;
    }
    loop {
        if first_page && done(client, &end) {
            return Ended::Done;
        }
        let next = tokio::select! {
            next = sse.next() => next,
            _ = end.changed() => continue,
        };
        let Ok(Some(msg)) = next else {
            return Ended::Lost;
        };
        match msg.event.as_deref() {
            None => {
                let event = msg.json();
                client.event(msg.seq(), &event);
                if is_end(&event) {
                    return Ended::Done;
                }
            }
            Some("snapshot") => {
                let page = msg.json();
                if first_page {
                    tracing::info!(cursor = %page["cursor"], "sse snapshot");
                }
                client.snapshot_page(&page, first_page);
                first_page = page["more"] == false;
            }
            Some("reset") => {
                tracing::info!(data = %msg.data, "sse reset");
                client.resets += 1;
                client.cursor = None;
            }
            Some("status") => {}
            Some("reconnect" | "overflow") => {
                tracing::info!(event = ?msg.event, data = %msg.data, "sse lost");
                return Ended::Lost;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A WebSocket `"snapshot":true` client that subscribes again with its cursor whenever its
/// connection ends, until the end.
async fn ws_client(mut addr: Addr, end: End) -> Client {
    let mut client = Client::default();
    let mut since: Option<String> = None;
    loop {
        let at = *addr.borrow_and_update();
        let ended = ws_connection(at, (&mut client, &mut since), end.clone()).await;
        if let Some(Ended::Done) = ended {
            return client;
        }
        tracing::info!(
            ?since,
            last_seq = client.last_seq,
            "ws client connection over"
        );
        backoff(&mut addr, at).await;
    }
}

/// One WebSocket connection; `None` if it could not be opened.
async fn ws_connection(
    at: SocketAddr,
    (client, since): (&mut Client, &mut Option<String>),
    mut end: End,
) -> Option<Ended> {
    let mut req = format!("ws://{at}/v1/ws").into_client_request().ok()?;
    let headers = req.headers_mut();
    headers.insert("Authorization", format!("Bearer {}", token()).parse().ok()?);
    headers.insert("Sec-WebSocket-Protocol", "herald.v1".parse().ok()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.ok()?;
    let mut subscribe = json!({"op": "subscribe", "topics": ["leads"], "snapshot": true});
    if let Some(cursor) = since.as_deref() {
        subscribe["since"] = cursor.into();
    }
    socket
        .send(tungstenite::Message::text(subscribe.to_string()))
        .await
        .ok()?;
    let mut first_page = true;
    loop {
        if first_page && done(client, &end) {
            return Some(Ended::Done);
        }
        let next = tokio::select! {
            next = tokio::time::timeout(DEADLINE, socket.next()) => next,
            _ = end.changed() => continue,
        };
        let Ok(Some(Ok(message))) = next else {
            return Some(Ended::Lost);
        };
        let tungstenite::Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).ok()?;
        match frame["type"].as_str() {
            Some("event") => {
                client.event(cursor_of(&frame["cursor"]).seq, &frame["event"]);
                *since = frame["cursor"].as_str().map(str::to_owned);
                if is_end(&frame["event"]) {
                    return Some(Ended::Done);
                }
            }
            Some("snapshot") => {
                client.snapshot_page(&frame, first_page);
                first_page = frame["more"] == false;
                if first_page {
                    *since = frame["cursor"].as_str().map(str::to_owned);
                }
            }
            Some("reset") => {
                client.resets += 1;
                client.cursor = None;
                *since = frame["cursor"].as_str().map(str::to_owned);
            }
            Some("status" | "cursor") => {}
            Some("reconnect" | "overflow") => {
                tracing::info!(%frame, "ws lost");
                return Some(Ended::Lost);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
}

/// What the clients of one run are.
enum Task {
    Snapshot(tokio::task::JoinHandle<(Cursor, Tables)>),
    Stream(&'static str, tokio::task::JoinHandle<Client>),
}

/// Spawns a random client.
fn spawn_client(rng: &mut StdRng, addr: &Addr, end: &End) -> Task {
    let (addr, end) = (addr.clone(), end.clone());
    match rng.gen_range(0..3) {
        0 => {
            let limit = [7, 100, 1000][rng.gen_range(0..3)];
            Task::Snapshot(tokio::spawn(snapshot_client(addr, limit)))
        }
        1 => Task::Stream("sse", tokio::spawn(sse_client(addr, end, None))),
        _ => Task::Stream("ws", tokio::spawn(ws_client(addr, end))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_ends_with_the_reference_across_restarts_and_retention() {
    herald_core::telemetry::init_for_tests();
    let mut nats = herald_test_support::NatsServer::start().await;
    let settings = StreamSettings {
        max_msgs: RETAINED,
        ..StreamSettings::default()
    };
    let mut gw = gateway(&nats.url(), &settings).await;
    let mut writer = state_writer_at(&nats.url(), &settings, &state()).await;
    let (addr_tx, addr) = watch::channel(gw.addr);
    let (end_tx, end) = watch::channel(0);
    let mut js = nats.jetstream().await;
    let log = Log::default();
    let mut rng = StdRng::seed_from_u64(4242);
    let mut tasks = Vec::new();
    for i in 0..OPS {
        if rng.gen_range(0..250) == 0 {
            tasks.push(spawn_client(&mut rng, &addr, &end));
        }
        if i % 1000 == 0 {
            tracing::info!(op = i, clients = tasks.len(), "property run");
        }
        match i {
            2_500 | 7_500 => {
                // The writer has written some rows (its marker lags), then a new gateway: the
                // second time after the oldest events left the stream (RETAINED < 7,500), so
                // its mirror is the rows plus the retained events.
                applied_js(&js, log.seqs()[i - 500]).await;
                gw.stop(DEADLINE).await;
                gw = gateway(&nats.url(), &settings).await;
                addr_tx.send(gw.addr).unwrap();
                // A snapshot at once: about 70 of its rows were last written before the
                // marker (and, the second time, their events have left the stream).
                tasks.push(Task::Snapshot(tokio::spawn(snapshot_client(
                    addr.clone(),
                    100,
                ))));
            }
            5_000 => {
                nats.restart().await;
                js = nats.jetstream().await;
                wait::until("JetStream to answer", DEADLINE, || async {
                    js.get_stream(herald_core::streams::EVENTS_STREAM)
                        .await
                        .is_ok()
                })
                .await;
            }
            8_000 => {
                // A client back with a cursor that left the stream: reset, then a snapshot.
                let stale = format!("{}-{}", log.seqs()[1_000], epoch(&js).await);
                tasks.push(Task::Stream(
                    "stale sse",
                    tokio::spawn(sse_client(addr.clone(), end.clone(), Some(stale))),
                ));
            }
            _ => {}
        }
        let (mut action, mut data, _) = random_change(&mut rng, KEYS, i as u64, false);
        // Truncates only early on, so old rows live on through the restarts.
        if action == "truncate" && i > 2_000 {
            (action, data) = ("update".into(), json!({"id": i as u32 % KEYS, "n": i}));
        }
        let (seq, id) = publish_change_id(&js, "leads", &action, data.clone(), None).await;
        log.push(Published {
            seq,
            id,
            topic: "leads".into(),
            action,
            data,
            to: None,
        });
    }
    write_end(&js, &log).await;
    end_tx.send(log.last_seq()).unwrap();
    let reference = non_empty(log.state_at(u64::MAX, "user-1"));
    let (mut snapshots, mut streams, mut resets) = (0, 0, 0);
    tracing::info!(last = log.last_seq(), "writes done");
    for (n, task) in tasks.into_iter().enumerate() {
        match task {
            Task::Snapshot(t) => {
                tracing::info!(n, "awaiting a snapshot client");
                let (cursor, tables) = t.await.unwrap();
                assert_eq!(
                    non_empty(tables),
                    non_empty(log.state_at(cursor.seq, "user-1")),
                    "the snapshot at {cursor}"
                );
                snapshots += 1;
            }
            Task::Stream(kind, t) => {
                tracing::info!(n, kind, "awaiting a stream client");
                let client = t.await.unwrap();
                assert_eq!(non_empty(client.tables), reference, "a {kind} client");
                resets += client.resets;
                streams += 1;
            }
        }
    }
    tracing::info!(snapshots, streams, resets, "clients checked");
    writer.stop(DEADLINE).await;
    assert!(
        snapshots >= 5 && streams >= 10,
        "{snapshots} snapshots, {streams} streams"
    );
    assert!(resets > 0, "no client resumed across retention");
}
