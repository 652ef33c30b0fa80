//! Resuming: from the ring, from JetStream, the hand-off under load, resets, restarts.

use std::time::Duration;

use herald_core::cursor::{Cursor, Epoch};
use herald_core::streams::StreamSettings;
use herald_test_support::wait;
use rand::Rng;
use serde_json::json;

use crate::helpers::{KillableGateway, SseClient, TestApp, duplicates, test_config};
use crate::scenario::{acme_token, next_seqs, resumes, resumes_exactly_then_live, with_ring};

/// Publishes `n` events and waits until a live client saw them (so the tail has them).
async fn publish_seen(app: &TestApp, token: &str, n: usize) -> Vec<u64> {
    let mut watcher = app.sse(token, "", None).await;
    let mut seqs = Vec::new();
    for i in 0..n {
        seqs.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    let seen = next_seqs(&mut watcher, n).await;
    assert_eq!(seen, seqs);
    seqs
}

/// `sse` gets exactly `missed`, then a live event; its one resume was served from `source`.
async fn missed_then_live(app: &TestApp, sse: &mut SseClient, missed: &[u64], source: &str) {
    let got = next_seqs(sse, missed.len()).await;
    assert_eq!(got, missed.to_vec());
    let live = app.publish("acme", "leads", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), live);
    assert_eq!(resumes(app, source).await, 1.0);
}

#[tokio::test]
async fn resume_inside_the_ring_sends_exactly_the_missed_events_then_live() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let seqs = publish_seen(&app, &token, 5).await;
    let epoch = app.epoch().await;
    let cursor = Cursor::new(seqs[1], epoch).to_string();
    let mut sse = app.sse(&token, "", Some(&cursor)).await;
    missed_then_live(&app, &mut sse, &seqs[2..], "memory").await;
}

#[tokio::test]
async fn resume_beyond_the_ring_replays_from_jetstream_then_live() {
    let app = with_ring(2).await;
    let token = acme_token();
    let seqs = publish_seen(&app, &token, 6).await;
    let cursor = Cursor::new(seqs[0], app.epoch().await).to_string();
    // `since` works too when there is no Last-Event-ID.
    let mut sse = app.sse(&token, &format!("since={cursor}"), None).await;
    missed_then_live(&app, &mut sse, &seqs[1..], "jetstream").await;
}

#[tokio::test]
async fn last_event_id_wins_over_since() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let seqs = publish_seen(&app, &token, 3).await;
    let epoch = app.epoch().await;
    let since = Cursor::new(seqs[0], epoch);
    let header = Cursor::new(seqs[1], epoch).to_string();
    let mut sse = app
        .sse(&token, &format!("since={since}"), Some(&header))
        .await;
    assert_eq!(sse.event().await.unwrap().seq(), seqs[2]);
}

#[tokio::test]
async fn the_hand_off_never_gaps_or_duplicates_under_concurrent_publishing() {
    let mut cfg = test_config();
    cfg.ring_events = 16; // some resumes come from the ring, the others from JetStream
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = acme_token();
    let epoch = app.epoch().await;
    let js = app.nats.jetstream().await;
    // Every acme sequence ever published; other tenants' events interleave with them.
    let mut acme: Vec<u64> = Vec::new();
    for iteration in 0..25 {
        acme.push(app.publish("acme", "leads", json!({"it": iteration})).await);
        let publisher = {
            let js = js.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..50 {
                    let tenant = if rand::thread_rng().gen_bool(0.3) {
                        "evil"
                    } else {
                        "acme"
                    };
                    let seq = crate::helpers::publish(&js, tenant, "leads", json!({"i": i})).await;
                    if tenant == "acme" {
                        mine.push(seq);
                    }
                    if rand::thread_rng().gen_bool(0.2) {
                        tokio::task::yield_now().await;
                    }
                }
                mine
            })
        };
        // Connect at a random moment while the publisher runs (randomized timing, not
        // synchronisation), from a random earlier cursor.
        let delay = rand::thread_rng().gen_range(0..25);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // Even iterations resume from close by (mostly the ring), odd ones from far back.
        let reach = if iteration % 2 == 0 { 3 } else { 40 };
        let back = rand::thread_rng().gen_range(0..acme.len().min(reach));
        let from = acme[acme.len() - 1 - back];
        let cursor = Cursor::new(from, epoch).to_string();
        let mut sse = app.sse(&token, "", Some(&cursor)).await;
        acme.extend(publisher.await.unwrap());
        let last = *acme.last().unwrap();
        let mut got = Vec::new();
        while got.last().copied() != Some(last) {
            got.push(sse.event().await.unwrap().seq());
        }
        let expected: Vec<u64> = acme.iter().copied().filter(|s| *s > from).collect();
        assert!(
            duplicates(&got).is_empty(),
            "iteration {iteration}: duplicates {:?}",
            duplicates(&got)
        );
        assert_eq!(got, expected, "iteration {iteration}: gap or disorder");
    }
    let memory = resumes(&app, "memory").await;
    let jetstream = resumes(&app, "jetstream").await;
    assert!(
        memory + jetstream >= 1.0,
        "resumes were served ({memory} memory, {jetstream} JetStream)"
    );
}

#[tokio::test]
async fn a_cursor_older_than_retention_gets_reset_then_live() {
    let mut cfg = test_config();
    cfg.ring_events = 2;
    let settings = StreamSettings {
        max_msgs: 5,
        ..StreamSettings::default()
    };
    let app = TestApp::spawn_with(cfg, settings).await;
    let token = acme_token();
    let seqs = publish_seen(&app, &token, 10).await;
    let epoch = app.epoch().await;
    let cursor = Cursor::new(seqs[1], epoch).to_string();
    let mut sse = app.sse(&token, "", Some(&cursor)).await;
    let reset = sse.next().await.unwrap().unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json()["reason"], "out_of_retention");
    assert_eq!(
        reset.id.as_deref(),
        Some(Cursor::new(seqs[9], epoch).to_string().as_str())
    );
    let live = app.publish("acme", "leads", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), live);
    assert_eq!(app.metric("herald_gateway_resets_total").await, 1.0);
}

#[tokio::test]
async fn a_cursor_from_another_epoch_gets_reset() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let epoch = app.epoch().await;
    let foreign = Cursor::new(3, Epoch(epoch.0.wrapping_add(1))).to_string();
    let mut sse = app.sse(&token, "", Some(&foreign)).await;
    let reset = sse.next().await.unwrap().unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.json()["reason"], "epoch_mismatch");
}

#[tokio::test]
async fn a_stream_recreated_while_running_resets_connected_clients() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let old = app.epoch().await;
    let mut sse = app.sse(&token, "", None).await;
    app.publish("acme", "leads", json!({})).await;
    let before = sse.event().await.unwrap();
    assert_eq!(before.cursor().epoch, old);
    app.nats
        .jetstream()
        .await
        .delete_stream(herald_core::streams::EVENTS_STREAM)
        .await
        .unwrap();
    let (reset, _) = sse.until("reset").await.unwrap();
    assert_eq!(reset.json()["reason"], "epoch_mismatch");
    let new = app.epoch().await;
    assert_ne!(new, old);
    assert_eq!(reset.cursor().epoch, new);
    app.wait_ready().await;
    let seq = app.publish("acme", "leads", json!({})).await;
    let ev = loop {
        let ev = sse.next().await.unwrap().unwrap();
        if ev.event.is_none() {
            break ev;
        }
    };
    assert_eq!(ev.cursor(), Cursor::new(seq, new));
    // The old cursor is recognised as foreign.
    let mut again = app.sse(&token, "", before.id.as_deref()).await;
    assert_eq!(
        again.until("reset").await.unwrap().0.json()["reason"],
        "epoch_mismatch"
    );
}

#[tokio::test]
async fn after_a_gateway_restart_the_client_resumes_with_last_event_id() {
    let mut app = TestApp::spawn().await;
    let token = acme_token();
    let mut sse = app.sse(&token, "", None).await;
    let mut all = Vec::new();
    for i in 0..3 {
        all.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    let first = next_seqs(&mut sse, 3).await;
    assert_eq!(first, all);
    app.stop_gateway().await;
    let (bye, _) = sse.until("reconnect").await.unwrap();
    assert_eq!(bye.json()["reason"], "draining");
    for i in 3..6 {
        all.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    app.restart_gateway().await;
    resumes_exactly_then_live(&app, &token, &sse, &all[3..]).await;
}

#[tokio::test]
async fn a_reconnect_storm_queues_for_replay_slots_and_every_client_gets_its_events() {
    let mut cfg = test_config();
    cfg.ring_events = 2;
    cfg.max_replays = 1;
    cfg.limits.per_user = 100;
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let token = acme_token();
    let seqs = publish_seen(&app, &token, 8).await;
    let epoch = app.epoch().await;
    let storm = (0..20).map(|i| {
        let from = seqs[i % 4];
        let (app, token, seqs) = (&app, &token, &seqs);
        async move {
            let cursor = Cursor::new(from, epoch).to_string();
            let mut sse = app.sse(token, "", Some(&cursor)).await;
            let want = seqs.iter().filter(|s| **s > from).count();
            let got = next_seqs(&mut sse, want).await;
            (from, got)
        }
    });
    for (from, got) in futures::future::join_all(storm).await {
        let expected: Vec<u64> = seqs.iter().copied().filter(|s| *s > from).collect();
        assert_eq!(got, expected, "resume from {from}");
    }
    assert_eq!(resumes(&app, "jetstream").await, 20.0);
}

#[tokio::test]
async fn a_long_replay_runs_in_chunks_and_leaves_no_consumer_behind() {
    let app = with_ring(10).await;
    let token = acme_token();
    let total = herald_gateway::replay::CHUNK * 2 + 50;
    let seqs = publish_seen(&app, &token, total).await;
    let epoch = app.epoch().await;
    let mut sse = app
        .sse(&token, "", Some(&Cursor::new(seqs[0], epoch).to_string()))
        .await;
    let got = next_seqs(&mut sse, total - 1).await;
    assert_eq!(got, seqs[1..].to_vec());
    let js = app.nats.jetstream().await;
    let mut stream = js
        .get_stream(herald_core::streams::EVENTS_STREAM)
        .await
        .unwrap();
    let consumers = stream.info().await.unwrap().state.consumer_count;
    assert_eq!(consumers, 1, "only the tail's consumer remains");
}

#[tokio::test]
async fn after_a_gateway_crash_the_client_resumes_with_last_event_id() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let mut crashing = KillableGateway::start(&app.nats, &app.cfg, &app.settings).await;
    let url = format!("http://{}/v1/stream", crashing.addr);
    let connect = |last_id: Option<String>| {
        let mut req = app.http.get(&url).bearer_auth(&token);
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send()
    };
    // Wait until the second gateway follows the stream (its /readyz).
    let ready_url = format!("http://{}/readyz", crashing.addr);
    wait::until(
        "the second gateway to become ready",
        crate::helpers::DEADLINE,
        || async {
            let r = app.http.get(&ready_url).send().await.map(|r| r.status());
            matches!(r, Ok(s) if s == 200)
        },
    )
    .await;
    let mut sse = crate::helpers::SseClient::new(connect(None).await.unwrap());
    let mut all = Vec::new();
    for i in 0..3 {
        all.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    let first = next_seqs(&mut sse, 3).await;
    assert_eq!(first, all);

    crashing.kill().await;
    match sse.next().await {
        Ok(None) | Err(_) => {}
        Ok(Some(ev)) => panic!("a crashed gateway sends nothing, got {ev:?}"),
    }
    for i in 3..6 {
        all.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    // The client reconnects to another instance (the TestApp's) with its Last-Event-ID.
    resumes_exactly_then_live(&app, &token, &sse, &all[3..]).await;
}
