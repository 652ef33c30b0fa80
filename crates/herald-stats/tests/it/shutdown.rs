//! The real binary on SIGTERM mid-stream: the batch in flight is written and acknowledged
//! (the consumer's ack floor is exactly where the document stands), the process exits 0
//! within a bound, and a restarted aggregator finishes with exact counts.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::helpers::*;
use herald_test_support::process::{self, ServiceProcess, sigterm};

/// Events published before the aggregator starts.
const EVENTS: usize = 3000;
/// How long the process may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(5);

fn spawn(url: &str) -> ServiceProcess {
    process::spawn(stats_spec(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_stream_finishes_the_batch_and_exits_0() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    let mut rng = StdRng::seed_from_u64(11);
    let events = Table::new("acme", "leads").random(&mut rng, EVENTS);
    let last = *publish(&js, &events).await.last().unwrap();

    let mut child = spawn(&nats.url());
    eventually("the aggregator makes progress", || async {
        doc(&kv, "acme", "leads")
            .await
            .is_some_and(|d| d.last_seq > 0)
    })
    .await;
    sigterm(&child);
    let status = child
        .wait_exit(EXIT_BOUND)
        .await
        .expect("the aggregator exits within the bound after SIGTERM");
    assert!(status.success(), "exit status {status}");

    // Everything written was acknowledged before exiting (after SIGKILL the ack floor may lag
    // the document; after SIGTERM it must not).
    let stopped_at = doc(&kv, "acme", "leads").await.unwrap().last_seq;
    let stream = js.get_stream("HERALD_EVENTS").await.unwrap();
    let info = stream.consumer_info("stats").await.unwrap().clone();
    assert_eq!(
        info.ack_floor.stream_sequence, stopped_at,
        "the ack floor is where the document stands"
    );
    eprintln!("SIGTERM after {stopped_at} of {last} events");

    let survivor = spawn(&nats.url());
    let d = doc_at(&kv, "acme", "leads", last).await;
    assert_eq!(Recount::of(&d), recount(&js, "acme", "leads").await);
    drop(survivor);
}
