//! Many random operations, two writers at once, and a backlog for one writer (its rate).

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::*;

const COLS: [(&str, &str, &str); 1] = [("acme", "leads", "id")];

/// `n` random operations on `keys` keys of acme/leads, and the table they leave.
fn random_ops(seed: u64, n: usize, keys: u64) -> (Vec<Event>, Reference) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reference = Reference::new("id");
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let k = rng.gen_range(0..keys);
        let (action, data) = match rng.gen_range(0..100) {
            0..55 => {
                let verbs = ["insert", "update", "read", "upsert"];
                (verbs[rng.gen_range(0..4)], json!({"id": k, "v": i}))
            }
            55..85 => ("delete", json!({"id": k})),
            85 => ("truncate", json!(null)),
            86..92 => ("viewed", json!({"id": k})),
            _ => ("insert", json!({"v": i})),
        };
        reference.apply(action, &data);
        events.push(event("acme", "leads", action, data));
    }
    (events, reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_at_once_over_10000_random_ops_on_500_keys_equal_the_reference() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let (events, reference) = random_ops(16, 10_000, 500);
    let a = Running::spawn(&js, &COLS);
    let b = Running::spawn(&js, &COLS);
    let last = publish_all(&js, &events).await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(
        live(&stored),
        reference.rows,
        "exact once the marker says so"
    );
    let conflicts = a.metrics.conflicts.get() + b.metrics.conflicts.get();
    let stale = a.metrics.skipped_stale.get() + b.metrics.skipped_stale.get();
    let read = a.metrics.events.get() + b.metrics.events.get();
    eprintln!(
        "two writers: {read} events read, {conflicts} CAS conflicts, {stale} stale rows skipped"
    );
    assert!(read > 10_000, "both writers read events");
    a.stop().await;
    b.stop().await;
    let stored = load(&js, "acme", "leads").await;
    assert_eq!(
        live(&stored),
        reference.rows,
        "and still exact after both stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_applies_a_backlog_of_10000_events_exactly() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let (events, reference) = random_ops(7, 10_000, 5_000);
    let last = publish_all(&js, &events).await;
    let started = Instant::now();
    let w = Running::spawn(&js, &COLS);
    let stored = caught_up(&js, "acme", "leads", last).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(live(&stored), reference.rows);
    let written = stored.rows.len();
    eprintln!(
        "one writer: 10000 events in {elapsed:.2}s = {:.0} events/s ({written} keys stored, {:.0} rows/s)",
        10_000.0 / elapsed,
        w.metrics.applied.get() as f64 / elapsed,
    );
    w.stop().await;
}
