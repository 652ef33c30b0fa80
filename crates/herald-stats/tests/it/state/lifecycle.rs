//! Crashes, retention, late writers, a recreated stream and a NATS restart.

use herald_core::state::{Marker, Row, marker_key, row_key};
use herald_core::streams::{EVENTS_STREAM, StreamSettings};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::*;

const COLS: [(&str, &str, &str); 1] = [("acme", "leads", "id")];

/// `n` random upserts and deletes over `keys` keys, applied to `reference` as they are made.
fn ops(rng: &mut StdRng, reference: &mut Reference, n: usize, keys: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let k = rng.gen_range(0..keys);
            let (action, data) = if rng.gen_bool(0.7) {
                ("upsert", json!({"id": k, "v": i}))
            } else {
                ("delete", json!({"id": k}))
            };
            reference.apply(action, &data);
            event("acme", "leads", action, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_way_and_restarted_stays_exact() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let mut rng = StdRng::seed_from_u64(3);
    let mut reference = Reference::new("id");
    let mut last = 0;
    for round in 0..3 {
        last = publish_all(&js, &ops(&mut rng, &mut reference, 3000, 400)).await;
        let w = Running::spawn(&js, &COLS);
        // Kill it once it is busy: some rows written, the marker not yet at the end.
        eventually(&format!("round {round}: the writer is mid-way"), || async {
            w.metrics.events.get() >= 500
        })
        .await;
        w.abort().await;
        let applied = load(&js, "acme", "leads")
            .await
            .marker
            .map_or(0, |m| m.applied);
        assert!(
            applied < last,
            "round {round}: killed before the end ({applied} < {last})"
        );
    }
    let w = Running::spawn(&js, &COLS);
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(live(&stored), reference.rows);
    w.stop().await;
}

#[tokio::test]
async fn the_rows_outlive_the_events_retention_and_a_marker_behind_it_is_reported() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let mut rng = StdRng::seed_from_u64(5);
    let mut reference = Reference::new("id");
    let w = Running::spawn(&js, &COLS);
    let last = publish_all(&js, &ops(&mut rng, &mut reference, 300, 50)).await;
    caught_up(&js, "acme", "leads", last).await;
    w.stop().await;
    let events = js.get_stream(EVENTS_STREAM).await.unwrap();
    events.purge().await.unwrap();
    assert_eq!(live(&load(&js, "acme", "leads").await), reference.rows);
    // A writer after retention removed everything it had applied: nothing is missing.
    let w = Running::spawn(&js, &COLS);
    let last = publish_all(&js, &ops(&mut rng, &mut reference, 100, 50)).await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(live(&stored), reference.rows);
    assert_eq!(w.metrics.behind_retention.get(), 0);
    w.stop().await;
    // Events removed before any writer applied them: reported, and the writer goes on.
    publish_all(&js, &ops(&mut rng, &mut reference, 10, 50)).await;
    events.purge().await.unwrap();
    let w = Running::spawn(&js, &COLS);
    let last = publish_all(
        &js,
        &[event("acme", "leads", "insert", json!({"id": "after"}))],
    )
    .await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert!(stored.live().contains_key("after"));
    assert_eq!(w.metrics.behind_retention.get(), 1);
    w.stop().await;
}

#[tokio::test]
async fn a_tombstone_beats_a_late_older_insert() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let w = Running::spawn(&js, &COLS);
    let insert = event("acme", "leads", "insert", json!({"id": 1, "v": "old"}));
    let delete = event("acme", "leads", "delete", json!({"id": 1}));
    let inserted = publish_all(&js, std::slice::from_ref(&insert)).await;
    let deleted = publish_all(&js, &[delete]).await;
    let stored = caught_up(&js, "acme", "leads", deleted).await;
    assert!(stored.rows["1"].deleted && stored.rows["1"].seq == deleted);
    w.stop().await;
    // A slower writer still holding the insert: its write is refused by the row's seq.
    let kv = store::bucket(&js).await.unwrap();
    let key = row_key(&tenant("acme"), &topic("leads"), "1");
    let late = Row {
        seq: inserted,
        data: Some(insert.data.clone()),
        deleted: false,
        to: None,
    };
    let applied = store::apply_row(&kv, &key, &late, None).await.unwrap();
    assert!(!applied.written);
    // A writer that starts over from the beginning (marker wound back) skips it too.
    let mkey = marker_key(&tenant("acme"), &topic("leads"));
    let at = store::read::<Marker>(&kv, &mkey).await.unwrap();
    let rewound = Marker {
        applied: 0,
        ..at.value.unwrap()
    };
    store::write(&kv, &mkey, &rewound, at.revision)
        .await
        .unwrap()
        .unwrap();
    let w = Running::spawn(&js, &COLS);
    let stored = caught_up(&js, "acme", "leads", deleted).await;
    assert!(stored.live().is_empty(), "still deleted: {stored:?}");
    assert!(w.metrics.skipped_stale.get() >= 1);
    w.stop().await;
}

#[tokio::test]
async fn a_recreated_stream_purges_the_collection_and_starts_over() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let w = Running::spawn(&js, &COLS);
    let events: Vec<_> = (0..3)
        .map(|i| event("acme", "leads", "insert", json!({"id": i})))
        .collect();
    let last = publish_all(&js, &events).await;
    assert_eq!(caught_up(&js, "acme", "leads", last).await.rows.len(), 3);
    js.delete_stream(EVENTS_STREAM).await.unwrap();
    let provisioned = herald_core::streams::provision(&js, &StreamSettings::default())
        .await
        .unwrap();
    let epoch = provisioned.epoch.to_string();
    let seq = publish_all(
        &js,
        &[event("acme", "leads", "insert", json!({"id": "new"}))],
    )
    .await;
    eventually("the collection holds only the new stream's row", || async {
        let stored = load(&js, "acme", "leads").await;
        stored
            .marker
            .as_ref()
            .is_some_and(|m| m.epoch == epoch && m.applied >= seq)
            && stored.rows.keys().collect::<Vec<_>>() == ["new"]
    })
    .await;
    assert!(w.metrics.epoch_purges.get() >= 1);
    w.stop().await;
}

#[tokio::test]
async fn the_writer_carries_on_after_nats_restarts() {
    let mut nats = nats().await;
    let js = nats.jetstream().await;
    let mut rng = StdRng::seed_from_u64(9);
    let mut reference = Reference::new("id");
    let w = Running::spawn(&js, &COLS);
    let last = publish_all(&js, &ops(&mut rng, &mut reference, 200, 30)).await;
    caught_up(&js, "acme", "leads", last).await;
    nats.restart().await;
    let js = nats.jetstream().await;
    let batch = ops(&mut rng, &mut reference, 200, 30);
    let last = publish_all(&js, &batch).await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(live(&stored), reference.rows);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_collections_declared_in_the_environment_and_survives_sigkill() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let spec = || {
        stats_spec(&nats.url())
            .env("HERALD_STATE__COLLECTIONS", "{acme={leads={key=\"id\"}}}")
            .env("HERALD_STATE_WRITER__MARKER_INTERVAL", "50ms")
    };
    let mut rng = StdRng::seed_from_u64(11);
    let mut reference = Reference::new("id");
    let last = publish_all(&js, &ops(&mut rng, &mut reference, 5000, 300)).await;
    let mut child = herald_test_support::process::spawn(spec());
    let kv = store::bucket(&js).await.unwrap();
    let mkey = marker_key(&tenant("acme"), &topic("leads"));
    eventually("the binary's writer has raised the marker", || async {
        store::read::<Marker>(&kv, &mkey)
            .await
            .unwrap()
            .value
            .is_some_and(|m| m.applied > 0)
    })
    .await;
    child.kill().await;
    let more = publish_all(&js, &ops(&mut rng, &mut reference, 500, 300)).await;
    let mut child = herald_test_support::process::spawn(spec());
    let stored = caught_up(&js, "acme", "leads", more.max(last)).await;
    assert_eq!(live(&stored), reference.rows);
    child.kill().await;
}
