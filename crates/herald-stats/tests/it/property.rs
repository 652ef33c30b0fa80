//! Property: after any insert/update/delete sequence, the document equals a plain recount of
//! the stream.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::helpers::*;

#[test]
fn counts_equal_a_recount_of_the_stream_for_random_cdc_sequences() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (nats, app, js) = rt.block_on(async {
        let nats = nats().await;
        let app = TestApp::spawn(&nats.url(), test_config()).await;
        let js = nats.jetstream().await;
        (nats, app, js)
    });
    let kv = rt.block_on(bucket(&js));
    let case = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 24,
        ..RunnerConfig::default()
    });
    let ops = proptest::collection::vec((0u8..10, any::<u16>(), any::<u8>()), 1..80);
    runner
        .run(&ops, |ops| {
            // A fresh tenant per case: same server, same aggregator, independent documents.
            case.set(case.get() + 1);
            let tenant = format!("case{}", case.get());
            let mut table = Table::new(&tenant, "leads");
            let events: Vec<_> = ops
                .iter()
                .map(|&(op, pick, status)| table.op(op, pick, status))
                .collect();
            let (got, want) = rt.block_on(async {
                let seqs = publish(&js, &events).await;
                let last = *seqs.last().unwrap();
                let d = doc_at(&kv, &tenant, "leads", last).await;
                (Recount::of(&d), recount(&js, &tenant, "leads").await)
            });
            prop_assert_eq!(got, want);
            Ok(())
        })
        .unwrap();
    rt.block_on(app.stop());
    drop(nats);
}
