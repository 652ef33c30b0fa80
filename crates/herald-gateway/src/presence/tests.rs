//! The registry without NATS: membership, announcements, feeds, other gateways' entries.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;

use super::*;
use crate::config::TenantTopics;

fn registry(ttl: Duration) -> Arc<Presence> {
    let table = BTreeMap::from([(
        "acme".to_owned(),
        TenantTopics {
            topics: vec!["lobby".into(), "room".into()],
        },
    )]);
    let topics = TopicMap::parse("presence", &table).unwrap();
    Presence::new(topics, "gw-self".into(), ttl, Duration::from_millis(10))
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn topic(t: &str) -> Topic {
    Topic::parse(t).unwrap()
}

fn only(ts: &[&str]) -> TopicSet {
    TopicSet::Only(ts.iter().map(|t| topic(t)).collect())
}

fn body(frame: &Arc<StatsFrame>) -> serde_json::Value {
    serde_json::from_slice(&frame.json).unwrap()
}

fn entry(key: &str, members: &[&str], age: Duration, op: kv::Operation) -> kv::Entry {
    kv::Entry {
        bucket: "herald_presence".into(),
        key: key.into(),
        value: serde_json::to_vec(&serde_json::json!({ "members": members }))
            .unwrap()
            .into(),
        revision: 1,
        delta: 0,
        created: (SystemTime::now() - age).into(),
        operation: op,
        seen_current: true,
    }
}

#[test]
fn a_user_counts_once_however_many_sessions_and_leaves_with_the_last() {
    let p = registry(Duration::from_secs(15));
    let a1 = p.attach(&acme(), Some("u1"), &only(&["lobby"]), false, false);
    let a2 = p.attach(&acme(), Some("u1"), &TopicSet::All, false, false);
    let b = p.attach(
        &acme(),
        Some("u2"),
        &only(&["lobby", "other"]),
        false,
        false,
    );
    let anon = p.attach(&acme(), None, &only(&["lobby"]), false, false);
    let members = |t: &str| p.members(&acme(), &topic(t));
    assert_eq!(members("lobby"), BTreeSet::from(["u1".into(), "u2".into()]));
    assert_eq!(members("room"), BTreeSet::from(["u1".into()]));
    assert!(members("other").is_empty(), "not a presence topic");
    drop((a1, anon));
    assert_eq!(members("lobby").len(), 2, "u1 still has a session");
    drop(a2);
    assert_eq!(members("lobby"), BTreeSet::from(["u2".into()]));
    assert!(members("room").is_empty());
    drop(b);
    assert!(p.lock().local.is_empty());
}

#[tokio::test]
async fn feeds_open_with_a_snapshot_then_get_joins_and_leaves_with_subs_only_if_allowed() {
    let p = registry(Duration::from_secs(15));
    let _u1 = p.attach(&acme(), Some("u1"), &only(&["lobby"]), false, false);
    p.sweep_and_announce();
    let mut full = p.attach(&acme(), Some("w"), &only(&["lobby"]), true, true);
    let mut counts = p.attach(&acme(), None, &only(&["lobby"]), true, false);
    let snap = body(&full.next().await);
    assert_eq!(
        snap,
        serde_json::json!({"topic":"lobby","count":1,"joined":["u1"],"left":[],"snapshot":true}),
        "the snapshot is what was announced: w's own join is not announced yet"
    );
    assert_eq!(body(&counts.next().await)["joined"], serde_json::json!([]));
    let u2 = p.attach(&acme(), Some("u2"), &only(&["lobby"]), false, false);
    p.sweep_and_announce();
    let change = body(&full.next().await);
    assert_eq!(change["count"], 3);
    assert_eq!(change["joined"], serde_json::json!(["u2", "w"]));
    let change = body(&counts.next().await);
    assert_eq!(
        (
            change["count"].as_u64(),
            change["joined"].as_array().map(Vec::len)
        ),
        (Some(3), Some(0))
    );
    drop(u2);
    p.sweep_and_announce();
    let change = full.next().await;
    assert_eq!(body(&change)["left"], serde_json::json!(["u2"]));
    assert!(String::from_utf8_lossy(&change.sse).starts_with("event: presence\ndata: {"));
    assert!(String::from_utf8_lossy(&change.ws).starts_with("{\"type\":\"presence\","));
}

#[test]
fn a_leave_and_join_within_one_debounce_announce_nothing() {
    let p = registry(Duration::from_secs(15));
    let a = p.attach(&acme(), Some("u1"), &only(&["lobby"]), false, false);
    p.sweep_and_announce();
    drop(a);
    let _b = p.attach(&acme(), Some("u1"), &only(&["lobby"]), false, false);
    assert!(p.lock().announce().is_empty());
}

#[tokio::test(start_paused = true)]
async fn other_gateways_entries_count_until_deleted_or_expired() {
    let ttl = Duration::from_secs(3);
    let p = registry(ttl);
    let put = kv::Operation::Put;
    p.apply(&entry(
        "acme.lobby.gw-a",
        &["u1", "u2"],
        Duration::ZERO,
        put,
    ));
    p.apply(&entry(
        "acme.lobby.gw-b",
        &["u2", "u3"],
        Duration::from_secs(1),
        put,
    ));
    p.apply(&entry(
        "acme.lobby.gw-self",
        &["ghost"],
        Duration::ZERO,
        put,
    ));
    p.apply(&entry(
        "acme.lobby.gw-old",
        &["old"],
        Duration::from_secs(4),
        put,
    ));
    p.apply(&entry("not a key", &["x"], Duration::ZERO, put));
    let members = || p.members(&acme(), &topic("lobby"));
    assert_eq!(
        members().len(),
        3,
        "own entry and expired ones ignored: {:?}",
        members()
    );
    p.apply(&entry(
        "acme.lobby.gw-a",
        &[],
        Duration::ZERO,
        kv::Operation::Delete,
    ));
    assert_eq!(members(), BTreeSet::from(["u2".into(), "u3".into()]));
    // gw-b's entry was a second old: it expires two seconds from now.
    tokio::time::advance(Duration::from_millis(1900)).await;
    p.sweep_and_announce();
    assert_eq!(members().len(), 2);
    tokio::time::advance(Duration::from_millis(200)).await;
    p.sweep_and_announce();
    assert!(members().is_empty());
    assert!(p.lock().announced.is_empty());
}

#[test]
fn topic_maps_refuse_invalid_names() {
    let bad = BTreeMap::from([(
        "acme".to_owned(),
        TenantTopics {
            topics: vec!["a.b".into()],
        },
    )]);
    let err = TopicMap::parse("public", &bad).unwrap_err().to_string();
    assert!(
        err.contains("[gateway.public]") && err.contains("a.b"),
        "{err}"
    );
    let star = BTreeMap::from([(
        "acme".to_owned(),
        TenantTopics {
            topics: vec!["*".into()],
        },
    )]);
    assert!(TopicMap::parse("presence", &star).is_err());
}
