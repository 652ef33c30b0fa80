//! The stats document: what `herald_stats` holds under `<tenant>.<topic>`.
//!
//! Its JSON shape is `proto/stats.schema.json`. Everything in it is a function of the
//! events of one tenant and topic in `HERALD_EVENTS`, up to and including `last_seq`, taken
//! in stream order — which is what makes it rebuildable and checkable against a recount.

use std::collections::BTreeMap;

use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The version of the document shape; bumped on incompatible changes.
pub const DOC_VERSION: u32 = 1;
/// Bucket: the group-by field is absent from `data` (or `data` is not an object, or the
/// event is not a valid envelope).
pub const MISSING: &str = "_missing";
/// Bucket: the group-by field is JSON `null`.
pub const NULL: &str = "_null";
/// Bucket: the group-by field is an object or an array.
pub const COMPLEX: &str = "_complex";
/// Bucket: the value is over the distinct-values cap (`max_values`) or longer than
/// [`MAX_LABEL_LEN`] bytes.
pub const OTHER: &str = "_other";
/// The longest string value counted under its own name.
pub const MAX_LABEL_LEN: usize = 128;
/// How many one-minute rate buckets a document keeps (one hour).
pub const RATE_MINUTES: i64 = 60;

/// Live counters of one tenant and topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsDoc {
    /// Always [`DOC_VERSION`].
    pub version: u32,
    /// The tenant.
    pub tenant: TenantId,
    /// The topic.
    pub topic: Topic,
    /// The epoch of `HERALD_EVENTS` the sequences refer to (8 hex digits). A document of
    /// another epoch belongs to a deleted stream and is recounted.
    pub epoch: String,
    /// The stream sequence of the last event of this topic applied (0 = none yet). Events at
    /// or below it are already counted.
    pub last_seq: u64,
    /// `<last_seq>-<epoch>`: the cursor this snapshot reflects. A client that loads the
    /// snapshot and then subscribes from this cursor misses nothing and counts nothing twice.
    pub cursor: String,
    /// Every event applied.
    pub total: u64,
    /// Events by action. Past `max_values` actions, further ones count under `_other`.
    pub by_action: BTreeMap<String, u64>,
    /// Live rows: `insert` and `read` add one, `delete` removes one (may go below zero when
    /// the stream no longer holds a row's insert).
    pub rows: i64,
    /// Per configured field: live rows by the value of `data.<field>`. Strings count under
    /// themselves, numbers and booleans under their JSON text, and the reserved buckets
    /// `_missing`, `_null`, `_complex`, `_other`. Zero counts are removed.
    pub group_by: BTreeMap<String, BTreeMap<String, i64>>,
    /// Event rates, by the stream's own timestamp of each event.
    pub rates: Rates,
    /// The stream timestamp of the last applied event.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_event_at: Option<OffsetDateTime>,
}

/// Events per one-minute bucket, and the sliding windows derived from them.
///
/// A bucket is a whole UTC minute of the stream timestamp (when JetStream stored the event;
/// identical on redelivery and rebuild, unlike the aggregator's clock). A window of `n`
/// minutes *as of* a time `t` is the minute containing `t` plus the `n − 1` minutes before
/// it. The stored `last_*` fields are as of `last_event_at`; readers wanting "now" call
/// [`StatsDoc::windows_at`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Non-empty buckets of the last hour, oldest first.
    pub minutes: Vec<MinuteBucket>,
    /// Events in the 1-minute window as of `last_event_at`.
    pub last_1m: u64,
    /// Events in the 5-minute window as of `last_event_at`.
    pub last_5m: u64,
    /// Events in the 60-minute window as of `last_event_at`.
    pub last_1h: u64,
}

/// Events stored during one UTC minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteBucket {
    /// The minute's start, in Unix seconds (a multiple of 60).
    pub start: i64,
    /// Events of this topic stored in that minute.
    pub count: u64,
}

/// Event counts over the three sliding windows, as of some time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// The current minute.
    pub last_1m: u64,
    /// The current minute and the four before it.
    pub last_5m: u64,
    /// The current minute and the 59 before it.
    pub last_1h: u64,
}

impl StatsDoc {
    /// An empty document for `tenant`/`topic` in the stream of `epoch`, counting `fields`.
    pub fn new(tenant: TenantId, topic: Topic, epoch: Epoch, fields: &[String]) -> Self {
        let epoch = epoch.to_string();
        Self {
            version: DOC_VERSION,
            cursor: format!("0-{epoch}"),
            tenant,
            topic,
            epoch,
            last_seq: 0,
            total: 0,
            by_action: BTreeMap::new(),
            rows: 0,
            group_by: fields
                .iter()
                .map(|f| (f.clone(), BTreeMap::new()))
                .collect(),
            rates: Rates::default(),
            last_event_at: None,
        }
    }

    /// The KV key of this document: `<tenant>.<topic>`.
    pub fn key(&self) -> String {
        key(&self.tenant, &self.topic)
    }

    /// The cursor this snapshot reflects, if the document's epoch is well-formed.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor.parse().ok()
    }

    /// Whether this document counts exactly `fields` in the stream of `epoch`; if not it
    /// must be recounted from the stream.
    pub fn matches(&self, epoch: Epoch, fields: &[String]) -> bool {
        self.version == DOC_VERSION
            && self.epoch == epoch.to_string()
            && self.group_by.len() == fields.len()
            && fields.iter().all(|f| self.group_by.contains_key(f))
    }

    /// The sliding windows as of `now` (e.g. the gateway's clock), from the stored buckets.
    pub fn windows_at(&self, now: OffsetDateTime) -> Windows {
        let current = minute_of(now);
        let sum = |n: i64| {
            self.rates
                .minutes
                .iter()
                .filter(|b| b.start <= current && b.start > current - n * 60)
                .map(|b| b.count)
                .sum()
        };
        Windows {
            last_1m: sum(1),
            last_5m: sum(5),
            last_1h: sum(60),
        }
    }

    /// Serializes the document (done once per write).
    pub fn to_bytes(&self) -> bytes::Bytes {
        // A struct of strings, numbers and maps with string keys always serializes.
        serde_json::to_vec(self)
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }
}

/// The KV key of the document of `tenant`/`topic`: `<tenant>.<topic>`.
pub fn key(tenant: &TenantId, topic: &Topic) -> String {
    format!("{tenant}.{topic}")
}

/// The tenant and topic of a document key `<tenant>.<topic>`; `None` for anything else.
pub fn parse_key(key: &str) -> Option<(TenantId, Topic)> {
    let (tenant, topic) = key.split_once('.')?;
    Some((TenantId::parse(tenant).ok()?, Topic::parse(topic).ok()?))
}

/// The start (Unix seconds) of the UTC minute containing `t`.
pub fn minute_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(60) * 60
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> StatsDoc {
        StatsDoc::new(
            "acme".parse().unwrap(),
            "leads".parse().unwrap(),
            Epoch(0xab),
            &["status".into()],
        )
    }

    #[test]
    fn a_new_document_is_empty_and_has_a_cursor() {
        let d = doc();
        assert_eq!(d.key(), "acme.leads");
        assert_eq!(
            parse_key("acme.leads"),
            Some((d.tenant.clone(), d.topic.clone()))
        );
        assert_eq!(parse_key("acme.leads.x"), None);
        assert_eq!(d.cursor, "0-000000ab");
        assert_eq!(d.cursor(), Some(Cursor::new(0, Epoch(0xab))));
        assert!(d.matches(Epoch(0xab), &["status".into()]));
        assert!(
            !d.matches(Epoch(0xac), &["status".into()]),
            "another stream"
        );
        assert!(
            !d.matches(Epoch(0xab), &["status".into(), "owner".into()]),
            "a new field"
        );
    }

    #[test]
    fn windows_count_the_current_minute_and_the_ones_before() {
        let mut d = doc();
        let now = OffsetDateTime::from_unix_timestamp(6000 + 30).unwrap();
        d.rates.minutes = vec![
            MinuteBucket {
                start: 6000 - 3600,
                count: 100,
            }, // outside the hour
            MinuteBucket {
                start: 6000 - 59 * 60,
                count: 7,
            },
            MinuteBucket {
                start: 6000 - 240,
                count: 5,
            },
            MinuteBucket {
                start: 6000 - 300,
                count: 3,
            }, // just outside 5 min
            MinuteBucket {
                start: 6000,
                count: 2,
            },
        ];
        let w = d.windows_at(now);
        assert_eq!(
            w,
            Windows {
                last_1m: 2,
                last_5m: 7,
                last_1h: 17
            }
        );
    }

    #[test]
    fn round_trips_through_json() {
        let mut d = doc();
        d.last_event_at = Some(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let back: StatsDoc = serde_json::from_slice(&d.to_bytes()).unwrap();
        assert_eq!(back, d);
    }
}
