//! NATS frozen (SIGSTOP) while the aggregator is mid-batch, for longer than `ack_wait`: its
//! KV writes and acks wait in the socket, its pull requests go unanswered, and the server's
//! ack timers run out the moment it resumes. The counts must still be exact: every event
//! counted once, including those published during the freeze.

use std::time::Duration;

use herald_test_support::freeze::until_silent_for;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::helpers::*;

const ACK_WAIT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_nats_frozen_longer_than_ack_wait_mid_batch_keeps_counts_exact() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let mut producer = nats.jetstream().await;
    producer.set_timeout(Duration::from_secs(60));
    let cfg = herald_stats::Config {
        ack_wait: ACK_WAIT,
        ..test_config()
    };
    let app = TestApp::spawn(&nats.url(), cfg).await;
    app.wait_ready().await;
    let mut rng = StdRng::seed_from_u64(14);
    let mut leads = Table::new("acme", "leads");
    publish(&js, &leads.random(&mut rng, 200)).await;

    // Frozen while the aggregator is still folding and writing what came before.
    let frozen = nats.freeze();
    let readyz = format!("{}/readyz", app.base);
    until_silent_for(&app.http, &readyz, ACK_WAIT).await;
    let during = leads.random(&mut rng, 50);
    let during = tokio::spawn(async move { publish(&producer, &during).await });
    until_silent_for(&app.http, &readyz, 3 * ACK_WAIT).await;
    frozen.thaw();

    during.await.unwrap();
    let last = *publish(&js, &leads.random(&mut rng, 50))
        .await
        .last()
        .unwrap();
    app.wait_ready().await;
    let kv = bucket(&js).await;
    let doc = doc_at(&kv, "acme", "leads", last).await;
    assert_eq!(Recount::of(&doc), recount(&js, "acme", "leads").await);
    assert_eq!(doc.total, 300, "every event counted once");
}
