//! The checker's unit tests: each violation kind found on hand-made evidence.
use super::*;
use herald_core::cursor::Cursor;

use crate::client::Got;
use crate::plan::Transport;

fn stored(seq: u64, tenant: &str, topic: &str, action: &str) -> Stored {
    Stored {
        seq,
        id: format!("{ID_PREFIX}{seq}"),
        tenant: tenant.into(),
        topic: topic.into(),
        action: action.into(),
    }
}

fn sent(tenant: &'static str, topic: &'static str, action: &'static str, acked: bool) -> Sent {
    Sent {
        tenant,
        topic,
        action,
        attempts: 1,
        acked,
        refused: None,
    }
}

#[test]
fn webhook_check_finds_lost_duplicated_and_phantom_events() {
    let mut ledger = BTreeMap::new();
    ledger.insert(
        format!("{ID_PREFIX}1"),
        sent("alpha", "leads", "insert", true),
    );
    ledger.insert(
        format!("{ID_PREFIX}2"),
        sent("alpha", "leads", "insert", true),
    );
    ledger.insert(
        format!("{ID_PREFIX}3"),
        sent("alpha", "leads", "insert", false),
    );
    let mut dup = stored(4, "alpha", "leads", "insert");
    dup.id = format!("{ID_PREFIX}1");
    let events = vec![
        stored(1, "alpha", "leads", "insert"),
        dup,
        stored(9, "alpha", "leads", "insert"),
    ];
    let kinds: Vec<_> = webhooks(&ledger, &events)
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert!(kinds.contains(&"webhook_duplicated"), "{kinds:?}");
    assert!(kinds.contains(&"webhook_lost"), "{kinds:?}");
    assert!(kinds.contains(&"phantom_event"), "{kinds:?}");
    assert_eq!(
        kinds.len(),
        3,
        "an unacknowledged webhook may be absent: {kinds:?}"
    );
}

#[test]
fn client_check_finds_gaps_duplicates_and_foreign_events() {
    let epoch = Epoch(7);
    let events = vec![
        stored(1, "alpha", "leads", "insert"),
        stored(2, "beta", "leads", "insert"),
        stored(3, "alpha", "leads", "insert"),
        stored(4, "alpha", "leads", "insert"),
    ];
    let spec = ClientSpec {
        name: "c".into(),
        transport: Transport::Sse,
        tenant: "alpha",
        topics: vec!["leads"],
    };
    let got = |seq: u64, tenant: &str| Got {
        cursor: Cursor::new(seq, epoch),
        id: format!("{ID_PREFIX}{seq}"),
        tenant: tenant.into(),
        topic: "leads".into(),
    };
    let perfect = ClientLog {
        received: vec![got(1, "alpha"), got(3, "alpha"), got(4, "alpha")],
        ..Default::default()
    };
    let (verdict, vs) = client(&spec, &perfect, &events, epoch);
    assert!(vs.is_empty(), "{vs:?}");
    assert_eq!((verdict.expected, verdict.received), (3, 3));

    let broken = ClientLog {
        received: vec![
            got(1, "alpha"),
            got(2, "beta"),
            got(1, "alpha"),
            got(4, "alpha"),
        ],
        ..Default::default()
    };
    let kinds: Vec<_> = client(&spec, &broken, &events, epoch)
        .1
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert!(kinds.contains(&"client_gap"), "{kinds:?}");
    assert!(kinds.contains(&"client_duplicate"), "{kinds:?}");
    assert!(kinds.contains(&"client_foreign_event"), "{kinds:?}");
}

#[test]
fn stats_check_compares_with_the_recount() {
    let events = vec![
        stored(1, "alpha", "leads", "insert"),
        stored(2, "alpha", "leads", "delete"),
    ];
    let r = recount(&events, "alpha", "leads");
    assert_eq!(r.total, 2);
    assert!(stats("alpha", "leads", Some(&r), &r).is_empty());
    let mut off = r.clone();
    off.total = 3;
    assert_eq!(
        stats("alpha", "leads", Some(&off), &r)[0].kind,
        "stats_wrong"
    );
    assert_eq!(stats("alpha", "leads", None, &r)[0].kind, "stats_missing");
}

#[test]
fn notification_check_allows_one_repeat_per_kill_and_target() {
    let events = vec![
        stored(1, "alpha", "leads", "insert"),
        stored(2, "alpha", "deals", "delete"),
    ];
    let accepted = vec![
        ("1001".to_owned(), format!("event {ID_PREFIX}1")),
        (
            "1001".to_owned(),
            format!("*2 events*\n\nevent {ID_PREFIX}1"),
        ),
    ];
    let dead = vec![DeadLetter {
        id: format!("{ID_PREFIX}2"),
        target: "dead-telegram".into(),
    }];
    let (v, vs) = notifications(&events, &accepted, &dead, 1);
    assert!(vs.is_empty(), "{vs:?}");
    assert_eq!(
        (v.expected, v.sent, v.dead_lettered, v.crash_window_repeats),
        (2, 1, 1, 1)
    );
    let kinds: Vec<_> = notifications(&events, &accepted, &dead, 0)
        .1
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, ["notification_duplicated"]);
    let kinds: Vec<_> = notifications(&events, &[], &[], 0)
        .1
        .into_iter()
        .map(|v| v.kind)
        .collect();
    assert_eq!(kinds, ["notification_lost", "notification_lost"]);
}

#[test]
fn ids_are_found_in_digests() {
    assert_eq!(
        ids_in("*3 events*\n\nevent evt-1\n\nevent evt-22"),
        ["evt-1", "evt-22"]
    );
}
