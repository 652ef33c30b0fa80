//! One batch of collection events reduced to what must be stored.
//!
//! A row's stored value depends only on the last event that touched it (an upsert's `data`
//! or a tombstone, with that event's sequence), so a batch keeps one pending row per key: the
//! latest. A truncate in the batch makes every earlier pending row of its collection moot
//! (the marker's `cleared` hides it), so those are not written at all.

use std::collections::HashMap;

use async_nats::HeaderMap;
use herald_core::names::{TenantId, Topic};
use herald_core::state::{self, Change, Collections, Row};
use serde::Deserialize;
use serde_json::Value;

use crate::apply::parse_subject;

/// The header that names an event's audience: comma-separated user ids.
pub const TO_HEADER: &str = herald_core::audience::HEADER;

/// The reason label of an event whose payload is not a JSON event envelope.
pub const MALFORMED: &str = "malformed";

/// One collection: its tenant and topic.
pub type CollectionId = (TenantId, Topic);

/// What a batch changes.
#[derive(Debug, Default)]
pub struct Plan {
    /// The latest pending row per KV key, with its collection.
    pub rows: HashMap<String, (CollectionId, Row)>,
    /// Per collection, the sequence of the batch's last truncate.
    pub clears: HashMap<CollectionId, u64>,
    /// Collection events in the batch.
    pub events: u64,
    /// Events whose change a later event of the batch replaced (applied in effect).
    pub superseded: u64,
    /// Truncates (and resets) in the batch.
    pub truncates: u64,
    /// Events whose action changes nothing.
    pub ignored: u64,
    /// Upserts and deletes without a usable key, by reason.
    pub unkeyed: HashMap<&'static str, u64>,
}

/// The part of an event envelope the writer reads.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    data: Value,
}

impl Plan {
    /// Adds the event at stream sequence `seq` (events arrive in stream order). Events on
    /// subjects of no collection are not counted.
    pub fn add(
        &mut self,
        collections: &Collections,
        subject: &str,
        seq: u64,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) {
        let Some((tenant, topic, action)) = parse_subject(subject) else {
            return;
        };
        let Some(path) = collections.get(&tenant, &topic) else {
            return;
        };
        self.events += 1;
        let (data, malformed) = match serde_json::from_slice::<Envelope>(payload) {
            Ok(envelope) => (envelope.data, false),
            Err(_) => (Value::Null, true),
        };
        let (key, row) = match Change::of(path, action.as_str(), &data) {
            Change::Upsert { key } => (
                key,
                Row {
                    seq,
                    data: Some(data),
                    deleted: false,
                    to: audience(headers),
                },
            ),
            Change::Delete { key } => (
                key,
                Row {
                    seq,
                    data: None,
                    deleted: true,
                    to: audience(headers),
                },
            ),
            Change::Clear => {
                self.truncates += 1;
                self.clears.insert((tenant, topic), seq);
                return;
            }
            Change::Ignored => {
                self.ignored += 1;
                return;
            }
            Change::Unkeyed(why) => {
                let reason = if malformed { MALFORMED } else { why.as_str() };
                *self.unkeyed.entry(reason).or_default() += 1;
                return;
            }
        };
        let kv_key = state::row_key(&tenant, &topic, &key);
        if self.rows.insert(kv_key, ((tenant, topic), row)).is_some() {
            self.superseded += 1;
        }
    }

    /// Drops pending rows that a later truncate of their collection hides; returns how many.
    pub fn drop_cleared(&mut self) -> u64 {
        let before = self.rows.len();
        let clears = &self.clears;
        self.rows
            .retain(|_, (id, row)| clears.get(id).is_none_or(|&cleared| row.seq > cleared));
        (before - self.rows.len()) as u64
    }
}

/// The audience in the `Herald-To` header (see [`herald_core::audience::ids`]): `None` for a
/// public event; a present header that names nobody gives an empty audience (a row nobody's
/// snapshot holds), exactly as the gateway reads it.
pub fn audience(headers: Option<&HeaderMap>) -> Option<Vec<String>> {
    herald_core::audience::ids(headers).map(|ids| ids.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use herald_core::state::{CollectionConfig, StateConfig};
    use serde_json::json;

    use super::*;

    fn collections() -> Collections {
        StateConfig {
            collections: [(
                "acme".to_owned(),
                [("leads".to_owned(), CollectionConfig { key: "id".into() })].into(),
            )]
            .into(),
        }
        .collections()
        .unwrap()
    }

    fn add(plan: &mut Plan, action: &str, seq: u64, data: Value) {
        let payload = serde_json::to_vec(&json!({"data": data})).unwrap();
        let subject = format!("herald.events.acme.leads.{action}");
        plan.add(&collections(), &subject, seq, None, &payload);
    }

    #[test]
    fn the_last_change_per_key_wins_and_truncates_hide_earlier_rows() {
        let mut plan = Plan::default();
        add(&mut plan, "insert", 1, json!({"id": 1, "n": "a"}));
        add(&mut plan, "update", 2, json!({"id": 1, "n": "b"}));
        add(&mut plan, "insert", 3, json!({"id": 2}));
        add(&mut plan, "truncate", 4, json!(null));
        add(&mut plan, "delete", 5, json!({"id": 2}));
        add(&mut plan, "viewed", 6, json!({"id": 2}));
        add(&mut plan, "insert", 7, json!({"name": "no id"}));
        plan.add(
            &collections(),
            "herald.events.acme.other.insert",
            8,
            None,
            b"{}",
        );
        plan.add(
            &collections(),
            "herald.events.acme.leads.insert",
            9,
            None,
            b"not json",
        );
        assert_eq!(plan.events, 8);
        assert_eq!(plan.superseded, 2);
        assert_eq!(plan.ignored, 1);
        assert_eq!(plan.unkeyed[MALFORMED], 1);
        assert_eq!(plan.unkeyed["missing"], 1);
        assert_eq!(plan.drop_cleared(), 1);
        assert_eq!(plan.rows.len(), 1);
        let (_, row) = plan.rows.values().next().unwrap();
        assert!(row.deleted && row.seq == 5);
    }

    #[test]
    fn the_audience_header_is_a_comma_separated_list() {
        let mut headers = HeaderMap::new();
        headers.insert(TO_HEADER, " u-1, u-2 ,,");
        assert_eq!(
            audience(Some(&headers)),
            Some(vec!["u-1".into(), "u-2".into()])
        );
        let mut empty = HeaderMap::new();
        empty.insert(TO_HEADER, " , ");
        assert_eq!(audience(Some(&empty)), Some(vec![]));
        assert_eq!(audience(None), None);
    }
}
