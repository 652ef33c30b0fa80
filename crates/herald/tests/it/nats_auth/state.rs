//! Collections under auth: the stats identity runs the state writer (ordered consumer over
//! several topics, its recreation under a name, CAS writes, the purge when the stream is
//! recreated); the gateway reads `herald_state` (direct gets, a watch, an ordered pull
//! consumer) and cannot write it.

use std::future::IntoFuture;

use async_nats::jetstream::consumer;
use futures::StreamExt;
use herald_core::state::{CollectionConfig, Marker, Row, StateConfig, marker_key, row_key};
use herald_stats::config::StateWriterConfig;
use herald_stats::state::store;
use herald_stats::state::{StateMetrics, StateWriter};
use tokio_util::sync::CancellationToken;

use super::*;

const STATE_STREAM: &str = "KV_herald_state";

fn collections() -> herald_core::state::Collections {
    let mut cfg = StateConfig::default();
    for topic in ["leads", "deals"] {
        cfg.collections
            .entry("acme".into())
            .or_default()
            .insert(topic.into(), CollectionConfig { key: "id".into() });
    }
    cfg.collections().unwrap()
}

async fn publish(js: &jetstream::Context, topic: &str, id: u64) -> u64 {
    let subject = format!("herald.events.acme.{topic}.insert");
    let payload = serde_json::json!({"data": {"id": id}}).to_string();
    js.publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// Waits until `acme`/`topic` holds row `id` written by the event at `seq`.
async fn row_written(kv: &kv::Store, topic: &str, id: u64, seq: u64) {
    let key = row_key(
        &"acme".parse().unwrap(),
        &topic.parse().unwrap(),
        &id.to_string(),
    );
    herald_test_support::wait::until(&format!("row {key}"), DEADLINE * 3, || async {
        let at = store::read::<Row>(kv, &key).await.unwrap();
        at.value.is_some_and(|r| r.seq == seq)
    })
    .await;
}

#[tokio::test]
async fn stats_runs_the_state_writer_under_its_own_identity() {
    let (nats, ids) = provisioned().await;
    let admin = nats.jetstream().await;
    let kv = admin.get_key_value(STATE_BUCKET).await.unwrap();
    let stats = As::connect(&nats.url(), &ids, "stats").await;
    let metrics = StateMetrics::default();
    let cfg = StateWriterConfig::default();
    let writer = StateWriter::new(stats.js.clone(), collections(), cfg, metrics.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.run(stop.clone()));
    let seq = publish(&admin, "leads", 1).await;
    row_written(&kv, "leads", 1, seq).await;
    let seq = publish(&admin, "deals", 2).await;
    row_written(&kv, "deals", 2, seq).await;
    // Its ordered consumer, deleted under it, is recreated under a name.
    let events = admin.get_stream(EVENTS_STREAM).await.unwrap();
    let names: Vec<String> = events.consumer_names().map(|n| n.unwrap()).collect().await;
    for name in names {
        events.delete_consumer(&name).await.unwrap();
    }
    let seq = publish(&admin, "leads", 3).await;
    row_written(&kv, "leads", 3, seq).await;
    // The stream recreated: the writer purges the collections and starts over.
    admin.delete_stream(EVENTS_STREAM).await.unwrap();
    let epoch = streams::apply(&admin, &StreamSettings::default())
        .await
        .unwrap()
        .epoch
        .to_string();
    let seq = publish(&admin, "leads", 4).await;
    row_written(&kv, "leads", 4, seq).await;
    let mkey = marker_key(&"acme".parse().unwrap(), &"leads".parse().unwrap());
    herald_test_support::wait::until("the new epoch's marker", DEADLINE * 3, || async {
        let at = store::read::<Marker>(&kv, &mkey).await.unwrap();
        at.value.is_some_and(|m| m.epoch == epoch)
    })
    .await;
    assert!(metrics.epoch_purges.get() >= 2, "both collections purged");
    stop.cancel();
    task.await.unwrap();
    let log = nats.log_tail();
    assert!(
        !log.contains("Violation"),
        "the writer needed no more rights:\n{log}"
    );
}

#[tokio::test]
async fn gateway_reads_collection_state_but_cannot_write_it() {
    let (nats, ids) = provisioned().await;
    let admin_kv = nats
        .jetstream()
        .await
        .get_key_value(STATE_BUCKET)
        .await
        .unwrap();
    admin_kv
        .put(
            "acme.leads.m",
            r#"{"applied":1,"cleared":0,"epoch":"00000000"}"#.into(),
        )
        .await
        .unwrap();
    let mut gateway = As::connect(&nats.url(), &ids, "gateway").await;
    let bucket = gateway.js.get_key_value(STATE_BUCKET).await.unwrap();
    let entry = bucket.entry("acme.leads.m").await.expect("a direct get");
    assert!(entry.is_some());
    let mut watch = bucket.watch_with_history("acme.>").await.expect("a watch");
    let first = tokio::time::timeout(DEADLINE, watch.next())
        .await
        .unwrap_or_else(|_| panic!("the watch delivers\n{}", nats.log_tail()));
    assert_eq!(first.unwrap().unwrap().key, "acme.leads.m");
    let stream = gateway.js.get_stream(STATE_STREAM).await.unwrap();
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "$KV.herald_state.acme.>".into(),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("an ordered pull consumer: {e}\n{}", nats.log_tail()));
    let mut messages = ordered.messages().await.unwrap();
    let first = tokio::time::timeout(DEADLINE, messages.next())
        .await
        .unwrap();
    assert_eq!(
        first.unwrap().unwrap().subject.as_str(),
        "$KV.herald_state.acme.leads.m"
    );

    gateway
        .refused(
            "$KV.herald_state.acme.leads.m",
            bucket.put("acme.leads.m", "{}".into()),
        )
        .await;
    gateway
        .refused(
            "$JS.API.STREAM.PURGE.KV_herald_state",
            stream.purge().into_future(),
        )
        .await;
}
