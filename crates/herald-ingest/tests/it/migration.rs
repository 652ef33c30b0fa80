//! The switch from the old dedup key `<tenant>/<id>` to the scoped one, with
//! `legacy_dedup_until` (docs/ingest.md, "Migrating from the old key").

use herald_core::event::Event;
use herald_core::streams::{self, StreamSettings};
use herald_test_support::{NatsServer, fixtures};
use serde_json::Value;
use time::OffsetDateTime;

use crate::helpers::{API_KEY, TestApp, test_config};

/// What an older ingest stored for the CRM's insert: no `via`, `Nats-Msg-Id: <tenant>/<id>`.
async fn stored_by_old_herald(nats: &NatsServer, source: &str) -> u64 {
    let js = nats.jetstream().await;
    streams::provision(&js, &StreamSettings::default())
        .await
        .unwrap();
    let msg = fixtures::json("sequin/insert.json");
    let event = Event::new(
        herald_core::event::EventId::parse(msg["metadata"]["idempotency_key"].as_str().unwrap())
            .unwrap(),
        "acme".parse().unwrap(),
        "leads".parse().unwrap(),
        "insert".parse().unwrap(),
        source,
        msg["record"].clone(),
    );
    herald_core::publish::publish_with_id(
        &js,
        event.subject(),
        async_nats::HeaderMap::new(),
        &event.legacy_msg_id(),
        event.to_bytes(),
    )
    .await
    .unwrap()
    .sequence
}

async fn crm_insert(app: &TestApp) -> Value {
    let resp = app.sequin(fixtures::bytes("sequin/insert.json")).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["events"][0].clone()
}

/// The migration note: a retry of an event an older Herald stored just before the upgrade
/// is still recognised while `legacy_dedup_until` lies ahead.
#[tokio::test]
async fn old_dedup_keys_are_honoured_until_legacy_dedup_until() {
    let nats = NatsServer::start().await;
    let original = stored_by_old_herald(&nats, "/webhooks/crm").await;
    let mut cfg = test_config();
    cfg.legacy_dedup_until = Some(OffsetDateTime::now_utc() + time::Duration::hours(1));
    let app = TestApp::spawn_on(nats, cfg).await;
    let retry = crm_insert(&app).await;
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["seq"], original);
    assert_eq!(app.stored_count().await, 1);
}

/// The old key must not re-open the hijack: an old event from another door (here one the
/// publish API stored with its default source) is not this source's original.
#[tokio::test]
async fn old_dedup_keys_from_another_source_are_not_honoured() {
    let nats = NatsServer::start().await;
    stored_by_old_herald(&nats, "/apps/acme").await;
    let mut cfg = test_config();
    cfg.legacy_dedup_until = Some(OffsetDateTime::now_utc() + time::Duration::hours(1));
    let app = TestApp::spawn_on(nats, cfg).await;
    assert_eq!(crm_insert(&app).await["duplicate"], false);
    // The publish API still stores its own events (its key is the scoped one).
    let resp = app
        .publish(
            API_KEY,
            serde_json::json!({"topic": "leads", "action": "insert", "id": "fresh"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.stored_count().await, 3);
}

/// Without the setting (or after it), the switch is what the docs say: the old copy is not
/// recognised and the retry is stored again.
#[tokio::test]
async fn without_legacy_dedup_until_an_old_copy_is_stored_again() {
    let nats = NatsServer::start().await;
    stored_by_old_herald(&nats, "/webhooks/crm").await;
    let mut cfg = test_config();
    cfg.legacy_dedup_until = Some(OffsetDateTime::now_utc() - time::Duration::seconds(1));
    let app = TestApp::spawn_on(nats, cfg).await;
    assert_eq!(crm_insert(&app).await["duplicate"], false);
    assert_eq!(app.stored_count().await, 2);
}
