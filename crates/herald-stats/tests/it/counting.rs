//! What gets counted, and how odd input is bucketed without stalling the consumer.

use std::time::Duration;

use futures::StreamExt;
use herald_core::cursor::Epoch;
use herald_core::streams::EVENTS_STREAM;
use herald_stats::doc::{COMPLEX, MISSING, NULL};
use herald_stats::store::Update;
use serde_json::json;

use crate::helpers::*;

async fn epoch(js: &async_nats::jetstream::Context) -> Epoch {
    Epoch::from_created(
        js.get_stream(EVENTS_STREAM)
            .await
            .unwrap()
            .cached_info()
            .created,
    )
}

#[tokio::test]
async fn cdc_transitions_move_counts_and_the_cursor_is_the_last_event() {
    let nats = nats().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let js = nats.jetstream().await;
    let mut t = Table::new("acme", "leads");
    // insert new (id 1), insert contacted (id 2), update id 1 new → won, delete id 2.
    let events = [t.op(0, 0, 0), t.op(0, 0, 1), t.op(4, 0, 2), t.op(8, 1, 0)];
    assert_eq!(events[2].changes, Some(json!({"status": "new"})));
    let seqs = publish(&js, &events).await;
    let d = doc_at(&bucket(&js).await, "acme", "leads", seqs[3]).await;
    assert_eq!(d.group_by["status"], [("won".to_owned(), 1)].into());
    assert_eq!((d.total, d.rows), (4, 1));
    assert_eq!(
        d.by_action,
        [
            ("insert".into(), 2),
            ("update".into(), 1),
            ("delete".into(), 1)
        ]
        .into()
    );
    assert_eq!(d.cursor, format!("{}-{}", seqs[3], epoch(&js).await));
    assert_eq!(d.rates.last_1h, 4);
    assert_eq!(Recount::of(&d), recount(&js, "acme", "leads").await);

    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proto/stats.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let value = serde_json::to_value(&d).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "document does not match proto/stats.schema.json: {errors:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn odd_input_lands_in_documented_buckets_and_never_stalls_the_consumer() {
    let nats = nats().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let js = nats.jetstream().await;
    let mut t = Table::new("acme", "leads");
    let mut events = vec![t.op(0, 0, 4), t.op(0, 0, 5), t.op(0, 0, 6)]; // missing, null, 7
    let mut complex = t.op(0, 0, 0);
    complex.data["status"] = json!({"nested": true});
    events.push(complex);
    let mut verb = t.op(0, 0, 0);
    verb.action = "archived".parse().unwrap();
    events.push(verb);
    publish(&js, &events).await;
    // Not an envelope at all, and a subject that names no valid tenant.
    js.publish("herald.events.acme.leads.insert", "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("herald.events.bad$tenant.leads.insert", "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Still flowing afterwards.
    let last = publish(&js, &[t.op(0, 0, 0)]).await[0];
    let d = doc_at(&bucket(&js).await, "acme", "leads", last).await;
    let status = &d.group_by["status"];
    assert_eq!(
        status[MISSING], 2,
        "absent field + unparsable payload: {status:?}"
    );
    assert_eq!(
        (status[NULL], status["7"], status[COMPLEX], status["new"]),
        (1, 1, 1, 1)
    );
    assert_eq!(d.by_action["archived"], 1);
    assert_eq!(d.by_action["insert"], 6);
    assert_eq!(d.total, 7);
    eventually("metrics count the odd ones", || async {
        app.metric("herald_stats_events_malformed_total").await == 1
            && app.metric("herald_stats_messages_foreign_total").await == 1
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn each_document_tracks_its_own_sequence_across_interleaved_topics_and_tenants() {
    let nats = nats().await;
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    let mut tables = [
        Table::new("acme", "leads"),
        Table::new("acme", "deals"),
        Table::new("globex", "leads"),
    ];
    let mut events = Vec::new();
    for i in 0..30u8 {
        events.push(tables[usize::from(i % 3)].op(i % 10, u16::from(i), i));
    }
    let seqs = publish(&js, &events).await;
    for (k, (t, p)) in [("acme", "leads"), ("acme", "deals"), ("globex", "leads")]
        .into_iter()
        .enumerate()
    {
        let own_last = seqs.iter().skip(k).step_by(3).max().copied().unwrap();
        let d = doc_at(&kv, t, p, own_last).await;
        assert_eq!(
            d.last_seq, own_last,
            "{t}.{p} advances only on its own events"
        );
        assert_eq!(Recount::of(&d), recount(&js, t, p).await, "{t}.{p}");
    }
    assert!(
        doc(&kv, "acme", "deals").await.unwrap().group_by.is_empty(),
        "no fields configured for deals"
    );
    app.stop().await;
}

#[tokio::test]
async fn read_and_watch_serve_snapshots_then_live_documents() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    assert_eq!(
        herald_stats::read(&kv, &tenant("acme"), &topic("leads"))
            .await
            .unwrap(),
        None
    );
    let mut live = herald_stats::watch(&kv, &tenant("acme"))
        .await
        .unwrap()
        .boxed();
    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let mut t = Table::new("acme", "leads");
    let mut other = Table::new("globex", "leads");
    publish(&js, &[other.op(0, 0, 0)]).await;
    let mut last = 0;
    for i in 0..5 {
        last = publish(&js, &[t.op(0, 0, i)]).await[0];
        // Each event is its own batch here, so each is its own version.
        let next = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .unwrap()
            .unwrap();
        let Update::Put(snapshot) = next.unwrap() else {
            panic!("expected a document")
        };
        assert_eq!(
            snapshot.doc.tenant.as_str(),
            "acme",
            "only the watched tenant"
        );
        assert_eq!(snapshot.doc.last_seq, last);
        assert_eq!(snapshot.doc.total, u64::from(i) + 1);
    }
    let snapshot = herald_stats::read(&kv, &tenant("acme"), &topic("leads"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.doc.last_seq, last);
    assert!(snapshot.revision > 0);
    // A watch opened now starts with the current document.
    let mut late = herald_stats::watch(&kv, &tenant("acme"))
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(30), late.next())
        .await
        .unwrap()
        .unwrap();
    let Update::Put(current) = first.unwrap() else {
        panic!("expected the current document first")
    };
    assert_eq!(current.doc.last_seq, last);
    app.stop().await;
}

#[tokio::test]
async fn a_value_that_is_not_a_document_is_recounted_over_not_a_stuck_consumer() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let kv = bucket(&js).await;
    kv.put("acme.leads", "garbage".into()).await.unwrap();
    let err = herald_stats::read(&kv, &tenant("acme"), &topic("leads"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, herald_stats::store::StoreError::Decode { .. }),
        "{err}"
    );

    let app = TestApp::spawn(&nats.url(), test_config()).await;
    let mut t = Table::new("acme", "leads");
    let seqs = publish(&js, &[t.op(0, 0, 0), t.op(0, 0, 1)]).await;
    let d = doc_at(&kv, "acme", "leads", seqs[1]).await;
    assert_eq!(Recount::of(&d), recount(&js, "acme", "leads").await);
    app.stop().await;
}
