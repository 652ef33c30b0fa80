//! What the rows hold after each kind of change, through the aggregator's own writer.

use async_nats::HeaderMap;
use herald_core::service::ServiceError;
use herald_stats::App;
use herald_stats::config::ConfigError;
use serde_json::json;

use super::*;

#[tokio::test]
async fn inserts_updates_deletes_and_truncates_leave_exactly_the_reference_rows() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let cols = [("acme", "leads", "id"), ("acme", "services", "meta.name")];
    let app = TestApp::spawn_with_state(&nats.url(), test_config(), state_config(&cols)).await;
    let mut leads = Reference::new("id");
    let mut services = Reference::new("meta.name");
    let script: Vec<(&str, &str, Value)> = vec![
        ("leads", "insert", json!({"id": 1, "name": "Ada"})),
        ("leads", "insert", json!({"id": 2, "name": "Bob"})),
        ("leads", "update", json!({"id": 1, "name": "Ada L."})),
        (
            "services",
            "upsert",
            json!({"meta": {"name": "api"}, "up": true}),
        ),
        ("leads", "delete", json!({"id": 2})),
        ("leads", "read", json!({"id": "3", "name": "Cy"})),
        ("leads", "truncate", json!(null)),
        ("leads", "insert", json!({"id": 4, "name": "Di"})),
        ("leads", "viewed", json!({"id": 4})),
        (
            "services",
            "upsert",
            json!({"meta": {"name": "db"}, "up": false}),
        ),
        ("leads", "update", json!({"id": 4, "name": "Di M."})),
        ("leads", "insert", json!({"id": 5})),
        ("leads", "delete", json!({"id": 5})),
        ("services", "delete", json!({"meta": {"name": "api"}})),
        ("leads", "upsert", json!({"id": true, "flag": 1})),
    ];
    let mut events = Vec::new();
    for (p, action, data) in &script {
        let reference = if *p == "leads" {
            &mut leads
        } else {
            &mut services
        };
        reference.apply(action, data);
        events.push(event("acme", p, action, data.clone()));
    }
    // Another tenant's topic of the same name is not a collection.
    events.push(event("other", "leads", "insert", json!({"id": 9})));
    let last = publish_all(&js, &events).await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(live(&stored), leads.rows);
    let marker = stored.marker.unwrap();
    assert_eq!(marker.cleared, last - 9, "the truncate's sequence");
    assert!(stored.rows["5"].deleted, "a delete is a tombstone");
    assert_eq!(stored.rows["4"].seq, last - 5);
    let stored = caught_up(&js, "acme", "services", last).await;
    assert_eq!(live(&stored), services.rows);
    assert!(load(&js, "other", "leads").await.marker.is_none());
    // Fourteen changes (each written, replaced by a later one, or hidden by the truncate).
    assert_eq!(app.metric("herald_stats_state_applied_total").await, 14);
    assert_eq!(app.metric("herald_stats_state_ignored_total").await, 1);
    assert_eq!(app.metric("herald_stats_state_events_total").await, 15);
    app.stop().await;
}

#[tokio::test]
async fn a_row_keeps_the_audience_of_the_event_that_wrote_it() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let cols = [("acme", "leads", "id")];
    let app = TestApp::spawn_with_state(&nats.url(), test_config(), state_config(&cols)).await;
    let mut headers = HeaderMap::new();
    headers.insert("Herald-To", "u-1, u-2");
    let e = event("acme", "leads", "insert", json!({"id": 1}));
    publish_with(&js, &e, headers).await;
    let e = event("acme", "leads", "insert", json!({"id": 2}));
    let last = publish_with(&js, &e, HeaderMap::new()).await;
    let stored = caught_up(&js, "acme", "leads", last).await;
    assert_eq!(stored.rows["1"].to, Some(vec!["u-1".into(), "u-2".into()]));
    assert_eq!(stored.rows["2"].to, None);
    app.stop().await;
}

#[tokio::test]
async fn unkeyed_events_are_counted_by_reason_and_change_nothing() {
    let nats = nats().await;
    let js = nats.jetstream().await;
    let cols = [("acme", "leads", "id")];
    let app = TestApp::spawn_with_state(&nats.url(), test_config(), state_config(&cols)).await;
    let long = "k".repeat(herald_core::state::MAX_KEY_BYTES + 1);
    let events = [
        event("acme", "leads", "insert", json!({"id": 1})),
        event("acme", "leads", "insert", json!({"name": "no id"})),
        event("acme", "leads", "update", json!({"id": null})),
        event("acme", "leads", "delete", json!({"id": {"nested": 1}})),
        event("acme", "leads", "insert", json!({"id": long})),
    ];
    publish_all(&js, &events).await;
    let ack = js
        .publish("herald.events.acme.leads.insert", "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let stored = caught_up(&js, "acme", "leads", ack.sequence).await;
    assert_eq!(stored.rows.keys().collect::<Vec<_>>(), ["1"]);
    let text = app.metrics().await;
    for (reason, n) in [
        ("missing", 2),
        ("not_scalar", 1),
        ("too_long", 1),
        ("malformed", 1),
    ] {
        let line = format!("herald_stats_state_unkeyed_total{{reason=\"{reason}\"}} {n}");
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_collection_declaration_refuses_to_build() {
    let nats = nats().await;
    let mut common = herald_test_support::service::common_config(&nats);
    common.state = state_config(&[("acme", "leads", "a..b")]);
    let built = herald_test_support::service::build::<App>(test_config(), &common).await;
    let Err(err) = built else {
        panic!("a key path with an empty segment is refused")
    };
    assert!(matches!(err, ServiceError::Config(ConfigError::State(_))));
    assert!(
        err.to_string().contains("state.collections.acme.leads.key"),
        "{err}"
    );
}
