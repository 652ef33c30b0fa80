//! Exactly once under crashes and concurrency: SIGKILL mid-batch, two instances at once.

use std::collections::BTreeMap;

use futures::StreamExt;
use herald_stats::store::Update;
use rand::SeedableRng;
use rand::rngs::StdRng;

use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// Publishes chunks of random events for two topics, interleaved, until `until` fires (or
/// after `max_rounds`); returns the last stream sequence of each topic.
async fn load(
    js: async_nats::jetstream::Context,
    seed: u64,
    max_rounds: usize,
    chunk: usize,
    until: CancellationToken,
) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut leads, mut deals) = (Table::new("acme", "leads"), Table::new("acme", "deals"));
    let (mut last_leads, mut last_deals) = (0, 0);
    for _ in 0..max_rounds {
        if until.is_cancelled() {
            break;
        }
        let mut events = leads.random(&mut rng, chunk);
        events.extend(deals.random(&mut rng, chunk / 4));
        let seqs = publish(&js, &events).await;
        last_leads = seqs[chunk - 1];
        last_deals = *seqs.last().unwrap();
    }
    (last_leads, last_deals)
}

async fn assert_exact(js: &async_nats::jetstream::Context, last: (u64, u64)) {
    let kv = bucket(js).await;
    for (p, seq) in [("leads", last.0), ("deals", last.1)] {
        let d = doc_at(&kv, "acme", p, seq).await;
        assert_eq!(Recount::of(&d), recount(js, "acme", p).await, "acme.{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_many_times_under_load_keeps_counts_exact() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    let stop_load = CancellationToken::new();
    let loader = tokio::spawn(load(js.clone(), 7, 100_000, 100, stop_load.clone()));
    let mut progress = 0;
    for _ in 0..8 {
        assert!(!loader.is_finished(), "the load outlasts the kills");
        let child = Child::spawn(&nats.url());
        // Kill it as soon as it has written something new: it is mid-stream, with
        // batches being folded, written and acknowledged.
        eventually("the aggregator makes progress", || async {
            doc(&kv, "acme", "leads")
                .await
                .is_some_and(|d| d.last_seq > progress)
        })
        .await;
        child.kill().await;
        progress = doc(&kv, "acme", "leads").await.unwrap().last_seq;
    }
    stop_load.cancel();
    let last = loader.await.unwrap();
    let survivor = Child::spawn(&nats.url());
    assert_exact(&js, last).await;
    survivor.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_the_consumer_count_exactly() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let mut cfg = test_config();
    // Small batches, so both instances get a share of every topic and race on its document.
    cfg.batch_size = 5;
    let a = TestApp::spawn(&nats.url(), cfg.clone()).await;
    let b = TestApp::spawn(&nats.url(), cfg).await;
    a.wait_ready().await;
    b.wait_ready().await;
    // Every version either instance writes, in KV order.
    let (targets_tx, mut targets) = tokio::sync::watch::channel((u64::MAX, u64::MAX));
    let mut versions = herald_stats::watch(&bucket(&js).await, &tenant("acme"))
        .await
        .unwrap()
        .boxed();
    let watcher = tokio::spawn(async move {
        let mut seen: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let done = |seen: &BTreeMap<String, Vec<(u64, u64)>>, (l, d): (u64, u64)| {
            let at = |k: &str| seen.get(k).and_then(|v| v.last()).map(|v| v.0);
            at("acme.leads") == Some(l) && at("acme.deals") == Some(d)
        };
        while !done(&seen, *targets.borrow_and_update()) {
            tokio::select! {
                Some(update) = versions.next() => {
                    if let Update::Put(s) = update.unwrap() {
                        seen.entry(s.doc.key()).or_default().push((s.doc.last_seq, s.doc.total));
                    }
                }
                Ok(()) = targets.changed() => {}
            }
        }
        seen
    });
    let last = load(js.clone(), 11, 40, 100, CancellationToken::new()).await;
    targets_tx.send(last).unwrap();
    assert_exact(&js, last).await;
    let seen = tokio::time::timeout(DEADLINE, watcher)
        .await
        .unwrap()
        .unwrap();
    for (key, versions) in &seen {
        assert!(
            versions
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "{key}: every written version moves forward, none overwrites a newer one: {versions:?}"
        );
    }
    for app in [&a, &b] {
        assert!(
            app.metric("herald_stats_messages_received_total").await > 0,
            "both instances took part"
        );
    }
    let conflicts = a.metric("herald_stats_cas_conflicts_total").await
        + b.metric("herald_stats_cas_conflicts_total").await;
    let filled = a.metric("herald_stats_events_gap_filled_total").await
        + b.metric("herald_stats_events_gap_filled_total").await;
    eprintln!(
        "two instances: {conflicts} CAS conflicts, {filled} events gap-filled from the stream"
    );
    assert!(
        filled > 0,
        "each instance counted events delivered to the other"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_catch_up_loses_and_doubles_nothing() {
    let mut nats = nats().await;
    let first = load(nats.jetstream().await, 3, 20, 100, CancellationToken::new()).await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let kv = bucket(&nats.jetstream().await).await;
    eventually("catching up", || async {
        doc(&kv, "acme", "leads").await.is_some()
    })
    .await;
    nats.restart().await;
    let js = nats.jetstream().await;
    // The restarted server keeps its store; more events arrive after it is back.
    let mut rng = <StdRng as SeedableRng>::seed_from_u64(5);
    let mut other = Table::new("acme", "other");
    let seqs = publish(&js, &other.random(&mut rng, 50)).await;
    assert_exact(&js, first).await;
    let d = doc_at(&bucket(&js).await, "acme", "other", *seqs.last().unwrap()).await;
    assert_eq!(Recount::of(&d), recount(&js, "acme", "other").await);
    app.stop().await;
}
