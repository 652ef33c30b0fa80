//! Recounting from the stream: automatically after a group-by change, and on demand while
//! the aggregator runs.

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::helpers::*;
use herald_test_support::process::{self, ServiceSpec};

#[tokio::test]
async fn adding_a_group_by_field_recounts_the_document_from_the_stream() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    let mut plain = test_config();
    plain.group_by.clear();
    let app = TestApp::spawn(&nats.url(), plain).await;
    let mut rng = StdRng::seed_from_u64(1);
    let mut t = Table::new("acme", "leads");
    let seqs = publish(&js, &t.random(&mut rng, 200)).await;
    let before = doc_at(&kv, "acme", "leads", *seqs.last().unwrap()).await;
    assert!(before.group_by.is_empty());
    app.stop().await;

    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let last = publish(&js, &t.random(&mut rng, 1)).await[0];
    let after = doc_at(&kv, "acme", "leads", last).await;
    assert!(after.group_by.contains_key("status"));
    assert_eq!(Recount::of(&after), recount(&js, "acme", "leads").await);
    assert_eq!(
        after.total,
        before.total + 1,
        "recounted, not counted on top"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_while_the_aggregator_runs_does_not_double_count() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let loader = {
        let js = js.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(9);
            let mut t = Table::new("acme", "leads");
            let mut last = 0;
            for _ in 0..30 {
                last = *publish(&js, &t.random(&mut rng, 50)).await.last().unwrap();
            }
            last
        })
    };
    let cfg = test_config();
    let mut rebuilt = 0;
    while !loader.is_finished() || rebuilt == 0 {
        let d = herald_stats::rebuild::rebuild(&js, &cfg, &tenant("acme"), &topic("leads"))
            .await
            .unwrap();
        assert!(d.total > 0 || rebuilt == 0);
        rebuilt += 1;
    }
    let last = loader.await.unwrap();
    let d = doc_at(&bucket(&js).await, "acme", "leads", last).await;
    assert_eq!(
        Recount::of(&d),
        recount(&js, "acme", "leads").await,
        "after {rebuilt} rebuilds"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_rebuild_command_recounts_one_document_and_exits() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let mut rng = StdRng::seed_from_u64(4);
    let mut t = Table::new("acme", "leads");
    let last = *publish(&js, &t.random(&mut rng, 120)).await.last().unwrap();
    let mut spec = ServiceSpec::new("stats rebuild", env!("CARGO_BIN_EXE_herald-stats"))
        .env("HERALD_NATS__URL", nats.url())
        .env("HERALD_GROUP_BY", r#"["leads.status"]"#);
    spec.args = ["rebuild", "--tenant", "acme", "--topic", "leads"]
        .map(Into::into)
        .to_vec();
    let status = process::spawn(spec)
        .wait_exit(DEADLINE)
        .await
        .expect("rebuild exits");
    assert!(status.success(), "{status}");
    let d = doc(&bucket(&js).await, "acme", "leads")
        .await
        .expect("a document");
    assert_eq!(d.last_seq, last);
    assert_eq!(Recount::of(&d), recount(&js, "acme", "leads").await);
}
