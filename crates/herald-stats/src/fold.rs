//! Folding one event into a document: the counting rules, in one place.
//!
//! | action | `total`, `by_action` | `rows` | group-by field `f` |
//! |---|---|---|---|
//! | `insert`, `read` | +1 | +1 | +1 for the value of `data.f` |
//! | `update` | +1 | — | if `changes` has `f` and its bucket differs from `data.f`'s: −1 old, +1 new |
//! | `delete` | +1 | −1 | −1 for the value of `data.f` (the deleted row) |
//! | anything else | +1 | — | — |
//!
//! Nothing an event carries can make folding fail: a payload that is not an event envelope
//! counts like one without `data` (its field values are `_missing`).

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_core::names::Action;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::doc::{self, COMPLEX, MAX_LABEL_LEN, MISSING, MinuteBucket, NULL, OTHER, StatsDoc};

/// One stored event, as the aggregator sees it.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The `HERALD_EVENTS` stream sequence.
    pub seq: u64,
    /// When the stream stored it.
    pub time: OffsetDateTime,
    /// The action (from the subject, which is authoritative).
    pub action: Action,
    /// The message payload: the event envelope JSON.
    pub payload: Bytes,
}

/// The two parts of the envelope counting needs; everything else is ignored, so an event
/// with unexpected extra or missing attributes still counts.
#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    data: Value,
    #[serde(default)]
    changes: Value,
}

/// What folding an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folded {
    /// Counted, and the payload was an event envelope (a JSON object).
    Counted,
    /// Counted, but the payload was not a JSON object: field values count as `_missing`.
    Malformed,
    /// Already counted (`seq` at or below `last_seq`); nothing changed.
    Skipped,
}

/// Applies `event` to `doc` if it is newer than `doc.last_seq`. `max_values` caps the
/// distinct keys per map (further ones count under `_other`).
pub fn apply(doc: &mut StatsDoc, event: &RawEvent, max_values: usize) -> Folded {
    if event.seq <= doc.last_seq {
        return Folded::Skipped;
    }
    let (body, folded) = match serde_json::from_slice::<Body>(&event.payload) {
        Ok(body) => (body, Folded::Counted),
        Err(_) => (Body::default(), Folded::Malformed),
    };
    doc.total += 1;
    let action = bucket(&doc.by_action, event.action.as_str(), max_values);
    *doc.by_action.entry(action).or_insert(0) += 1;
    match event.action.as_str() {
        "insert" | "read" => {
            doc.rows += 1;
            for (field, counts) in &mut doc.group_by {
                add(counts, label(body.data.get(field)), 1, max_values);
            }
        }
        "delete" => {
            doc.rows -= 1;
            for (field, counts) in &mut doc.group_by {
                add(counts, label(body.data.get(field)), -1, max_values);
            }
        }
        "update" => {
            for (field, counts) in &mut doc.group_by {
                let Some(old) = body.changes.get(field) else {
                    continue;
                };
                let (old, new) = (label(Some(old)), label(body.data.get(field)));
                if old != new {
                    add(counts, old, -1, max_values);
                    add(counts, new, 1, max_values);
                }
            }
        }
        _ => {}
    }
    count_rate(doc, event.time);
    doc.last_seq = event.seq;
    doc.cursor = format!("{}-{}", event.seq, doc.epoch);
    doc.last_event_at = Some(event.time);
    folded
}

/// The bucket a group-by value counts under.
pub fn label(value: Option<&Value>) -> String {
    match value {
        None => MISSING.to_owned(),
        Some(Value::Null) => NULL.to_owned(),
        Some(Value::String(s)) if s.len() <= MAX_LABEL_LEN => s.clone(),
        Some(Value::String(_)) => OTHER.to_owned(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Some(Value::Array(_) | Value::Object(_)) => COMPLEX.to_owned(),
    }
}

/// `label` if it is already counted or there is room for it, else `_other`.
fn bucket<V>(map: &BTreeMap<String, V>, label: &str, max_values: usize) -> String {
    if map.contains_key(label) || map.len() < max_values {
        label.to_owned()
    } else {
        OTHER.to_owned()
    }
}

fn add(counts: &mut BTreeMap<String, i64>, label: String, delta: i64, max_values: usize) {
    let key = bucket(counts, &label, max_values);
    let n = counts.entry(key.clone()).or_insert(0);
    *n += delta;
    if *n == 0 {
        counts.remove(&key);
    }
}

fn count_rate(doc: &mut StatsDoc, time: OffsetDateTime) {
    let minute = doc::minute_of(time);
    let minutes = &mut doc.rates.minutes;
    // Stream timestamps only move forward, but stay correct if a clock stepped back.
    match minutes.iter_mut().find(|b| b.start == minute) {
        Some(b) => b.count += 1,
        None => {
            minutes.push(MinuteBucket {
                start: minute,
                count: 1,
            });
            minutes.sort_by_key(|b| b.start);
        }
    }
    let newest = minutes.last().map_or(minute, |b| b.start);
    minutes.retain(|b| b.start > newest - doc::RATE_MINUTES * 60);
    let w = doc.windows_at(time.max(doc.last_event_at.unwrap_or(time)));
    (doc.rates.last_1m, doc.rates.last_5m, doc.rates.last_1h) = (w.last_1m, w.last_5m, w.last_1h);
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::cursor::Epoch;
    use serde_json::json;

    fn doc(fields: &[&str]) -> StatsDoc {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        StatsDoc::new(
            "acme".parse().unwrap(),
            "leads".parse().unwrap(),
            Epoch(1),
            &fields,
        )
    }

    fn ev(seq: u64, action: &str, body: Value) -> RawEvent {
        RawEvent {
            seq,
            time: OffsetDateTime::from_unix_timestamp(1_800_000_000 + seq as i64).unwrap(),
            action: action.parse().unwrap(),
            payload: serde_json::to_vec(&body).unwrap().into(),
        }
    }

    fn counts(d: &StatsDoc, field: &str) -> Vec<(String, i64)> {
        d.group_by[field]
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    #[test]
    fn cdc_transitions_move_one_count() {
        let mut d = doc(&["status"]);
        apply(
            &mut d,
            &ev(1, "insert", json!({"data": {"status": "new"}})),
            10,
        );
        apply(
            &mut d,
            &ev(2, "insert", json!({"data": {"status": "new"}})),
            10,
        );
        apply(
            &mut d,
            &ev(
                3,
                "update",
                json!({"data": {"status": "won"}, "changes": {"status": "new"}}),
            ),
            10,
        );
        // An update that did not change the field moves nothing.
        apply(
            &mut d,
            &ev(
                4,
                "update",
                json!({"data": {"status": "won"}, "changes": {"x": 1}}),
            ),
            10,
        );
        apply(
            &mut d,
            &ev(5, "delete", json!({"data": {"status": "new"}})),
            10,
        );
        assert_eq!(
            counts(&d, "status"),
            [("won".to_owned(), 1)],
            "zero counts are removed"
        );
        assert_eq!((d.total, d.rows, d.last_seq), (5, 1, 5));
        assert_eq!(d.by_action["update"], 2);
        assert_eq!(d.cursor, "5-00000001");
    }

    #[test]
    fn odd_values_have_documented_buckets() {
        let mut d = doc(&["status"]);
        let bodies = [
            json!({"data": {}}),
            json!({"data": {"status": null}}),
            json!({"data": {"status": 3}}),
            json!({"data": {"status": true}}),
            json!({"data": {"status": {"a": 1}}}),
            json!({"data": {"status": "x".repeat(MAX_LABEL_LEN + 1)}}),
            json!({"data": "not an object"}),
            json!([1, 2]),
        ];
        for (i, b) in bodies.into_iter().enumerate() {
            apply(&mut d, &ev(i as u64 + 1, "insert", b), 10);
        }
        let got = counts(&d, "status");
        let want = [
            ("3", 1),
            (COMPLEX, 1),
            (MISSING, 3),
            (NULL, 1),
            (OTHER, 1),
            ("true", 1),
        ];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v)));
    }

    #[test]
    fn malformed_payloads_and_unknown_actions_still_count() {
        let mut d = doc(&["status"]);
        let junk = RawEvent {
            payload: Bytes::from_static(b"\xffnot json"),
            ..ev(1, "insert", json!({}))
        };
        assert_eq!(apply(&mut d, &junk, 10), Folded::Malformed);
        assert_eq!(
            apply(
                &mut d,
                &ev(2, "shipped", json!({"data": {"status": "a"}})),
                10
            ),
            Folded::Counted
        );
        assert_eq!(d.group_by["status"][MISSING], 1);
        assert_eq!(d.by_action["shipped"], 1);
        assert_eq!((d.total, d.rows), (2, 1));
        assert_eq!(
            apply(&mut d, &ev(2, "insert", json!({})), 10),
            Folded::Skipped
        );
        assert_eq!(d.total, 2, "an already applied sequence is skipped");
    }

    #[test]
    fn distinct_values_are_capped_under_other() {
        let mut d = doc(&["status"]);
        for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
            apply(
                &mut d,
                &ev(i as u64 + 1, "insert", json!({"data": {"status": s}})),
                2,
            );
        }
        assert_eq!(
            counts(&d, "status"),
            [
                ("_other".to_owned(), 2),
                ("a".to_owned(), 1),
                ("b".to_owned(), 1)
            ]
        );
        // Removing a value that was counted under _other takes it from _other.
        apply(
            &mut d,
            &ev(5, "delete", json!({"data": {"status": "d"}})),
            2,
        );
        assert_eq!(d.group_by["status"][OTHER], 1);
    }

    #[test]
    fn rates_keep_an_hour_of_minute_buckets() {
        let mut d = doc(&[]);
        let t0: i64 = 1_799_999_940; // a whole minute
        for (seq, offset) in [(1, 0), (2, 30), (3, 65), (4, 3610)] {
            let mut e = ev(seq, "insert", json!({}));
            e.time = OffsetDateTime::from_unix_timestamp(t0 + offset).unwrap();
            apply(&mut d, &e, 10);
        }
        // The first minute fell out of the hour when the last event arrived.
        assert_eq!(
            d.rates.minutes,
            [
                MinuteBucket {
                    start: t0 + 60,
                    count: 1
                },
                MinuteBucket {
                    start: t0 + 3600,
                    count: 1
                }
            ]
        );
        assert_eq!(
            (d.rates.last_1m, d.rates.last_5m, d.rates.last_1h),
            (1, 1, 2)
        );
    }
}
