//! Unit tests of the mirror: live application, the loading hand-off, cuts.

use herald_core::state::{CollectionConfig, StateConfig};
use serde_json::json;

use super::*;

fn collections() -> Arc<Collections> {
    let cfg = StateConfig {
        collections: [(
            "acme".to_owned(),
            [("leads".to_owned(), CollectionConfig { key: "id".into() })].into(),
        )]
        .into(),
    };
    Arc::new(cfg.collections().unwrap())
}

fn frame(seq: u64, topic: &str, action: &str, data: serde_json::Value) -> Arc<EventFrame> {
    let body = json!({"data": data}).to_string();
    let subject = format!("herald.events.acme.{topic}.{action}");
    Arc::new(EventFrame::new(Cursor::new(seq, Epoch(1)), &subject, body.as_bytes()).unwrap())
}

/// Hands `frame` to the mirror as the hub does.
fn on(m: &mut Mirror, frame: &Arc<EventFrame>, to: Audience, head: u64) -> Applied {
    let prepared = Prepared::of(&Arc::clone(m.collections()), frame, to);
    m.on_event(prepared, head)
}

fn leads() -> CollectionId {
    (
        TenantId::parse("acme").unwrap(),
        Topic::parse("leads").unwrap(),
    )
}

fn keys(cut: &Cut) -> Vec<String> {
    cut.tables
        .get(&leads())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn live_mirror() -> Mirror {
    let mut m = Mirror::new(collections());
    m.begin(Epoch(1), 0);
    let ticket = m.ticket().unwrap();
    assert!(m.ticket().is_none(), "one loader per load");
    assert!(m.finish(ticket, Loaded::default(), 0));
    m
}

#[test]
fn events_change_rows_in_stream_order() {
    let mut m = live_mirror();
    on(
        &mut m,
        &frame(1, "leads", "insert", json!({"id": 1})),
        None,
        1,
    );
    on(
        &mut m,
        &frame(2, "leads", "insert", json!({"id": 2})),
        None,
        2,
    );
    on(
        &mut m,
        &frame(3, "deals", "insert", json!({"id": 3})),
        None,
        3,
    );
    on(
        &mut m,
        &frame(4, "leads", "delete", json!({"id": 1})),
        None,
        4,
    );
    let before = m.cut(Cursor::new(4, Epoch(1))).unwrap();
    on(&mut m, &frame(5, "leads", "truncate", json!(null)), None, 5);
    on(
        &mut m,
        &frame(6, "leads", "upsert", json!({"id": "x"})),
        None,
        6,
    );
    let after = m.cut(Cursor::new(6, Epoch(1))).unwrap();
    // A cut is unaffected by later changes.
    assert_eq!(keys(&before), ["2"]);
    assert_eq!(keys(&after), ["x"]);
    assert!(m.unchanged_since(&[leads()], 6));
    assert!(!m.unchanged_since(&[leads()], 5));
}

#[test]
fn a_load_goes_live_once_the_head_reaches_what_it_read() {
    let mut m = Mirror::new(collections());
    assert!(!m.is_live());
    m.begin(Epoch(1), 10);
    let ticket = m.ticket().unwrap();
    // The tail delivers 11 and 12 while the load reads up to 12.
    let queued = on(
        &mut m,
        &frame(11, "leads", "insert", json!({"id": "a"})),
        None,
        11,
    );
    assert_eq!(queued, Applied::Queued);
    let mut table = Table::new();
    for key in ["a", "old"] {
        let row = MirrorRow {
            seq: 11,
            data: Arc::from(serde_json::value::to_raw_value(&json!({"id": key})).unwrap()),
            to: None,
        };
        table.insert(key.to_owned(), row);
    }
    let loaded = Loaded {
        tables: [(leads(), table)].into(),
        upto: 12,
    };
    assert!(
        !m.finish(ticket, loaded, 11),
        "the head is behind what the load read"
    );
    assert!(m.cut(Cursor::new(11, Epoch(1))).is_none());
    // 12 was read by the load (a delete of `old`): not applied twice; 13 is new.
    let live = on(
        &mut m,
        &frame(12, "leads", "delete", json!({"id": "old"})),
        None,
        12,
    );
    assert_eq!(live, Applied::Live);
    on(
        &mut m,
        &frame(13, "leads", "insert", json!({"id": "b"})),
        None,
        13,
    );
    assert_eq!(
        keys(&m.cut(Cursor::new(13, Epoch(1))).unwrap()),
        ["a", "b", "old"]
    );
}

#[test]
fn a_stale_load_is_ignored() {
    let mut m = Mirror::new(collections());
    m.begin(Epoch(1), 0);
    let old = m.ticket().unwrap();
    m.begin(Epoch(2), 0);
    assert!(!m.finish(old, Loaded::default(), 0));
    assert!(!m.is_live());
    let new = m.ticket().unwrap();
    assert!(m.finish(new, Loaded::default(), 0));
}

#[test]
fn a_row_is_visible_to_its_audience_only() {
    let row = |to: Audience| MirrorRow {
        seq: 1,
        data: Arc::from(RawValue::NULL.to_owned()),
        to,
    };
    let some = row(Some(vec![Arc::from("u-1"), Arc::from("u-2")].into()));
    assert!(some.visible_to("u-2") && !some.visible_to("u-3"));
    assert!(row(None).visible_to("anyone"));
    // A present header that names nobody: nobody.
    assert!(!row(Some(Vec::<Arc<str>>::new().into())).visible_to("u-1"));
}

#[test]
fn rows_keep_the_audience_of_the_event_that_wrote_them() {
    let mut m = live_mirror();
    let to: crate::frame::Audience = vec![Arc::from("u-7")].into();
    on(
        &mut m,
        &frame(1, "leads", "insert", json!({"id": 1})),
        Some(to),
        1,
    );
    let cut = m.cut(Cursor::new(1, Epoch(1))).unwrap();
    let row = &cut.tables[&leads()]["1"];
    assert!(row.visible_to("u-7") && !row.visible_to("u-1"));
}

#[test]
fn a_load_that_falls_too_far_behind_starts_again() {
    let mut m = Mirror::new(collections());
    m.begin(Epoch(1), 0);
    let first = m.ticket().unwrap();
    let one = frame(1, "leads", "insert", json!({"id": 1}));
    for seq in 1..=MAX_QUEUED as u64 {
        assert_eq!(on(&mut m, &one, None, seq), Applied::Queued);
    }
    assert_eq!(on(&mut m, &one, None, 0), Applied::Restarted);
    let second = m.ticket().unwrap();
    assert_ne!(first, second);
    assert!(!m.finish(first, Loaded::default(), 1));
    assert!(m.finish(second, Loaded::default(), 1));
}
