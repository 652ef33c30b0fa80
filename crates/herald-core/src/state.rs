//! Collections: the last value per key of a declared topic (`proto/state.md`).
//!
//! A topic declared in `[state.collections.<tenant>.<topic>]` with a `key` (a dotted path into
//! the event's `data`) is a **collection**. Every event on it is one [`Change`]:
//! `insert`/`update`/`read`/`upsert` replace the row under its key, `delete` removes it,
//! `truncate`/`reset` clears the collection; other actions change nothing. This module holds
//! the rules and the stored shapes, shared by everything that applies them: the state writer
//! (stats-aggregator, into the KV bucket `herald_state`), the gateway's in-memory mirror, and
//! the tests' reference tables.
//!
//! KV layout (bucket [`STATE_BUCKET`], history 1):
//! - `<tenant>.<topic>.r.<base64url(key)>` → [`Row`]: `{"seq":…,"data":…}` or, once deleted,
//!   `{"seq":…,"deleted":true}` (a tombstone, so a slower writer can never resurrect it);
//! - `<tenant>.<topic>.m` → [`Marker`]: `{"applied":…,"cleared":…,"epoch":"…"}`.
//!
//! A row is applied only if its event's stream sequence is above the row's `seq` (written with
//! compare-and-set), so any number of writers, restarts and redeliveries apply each event
//! exactly once. `cleared` is the sequence of the last truncate: rows with a lower `seq` are
//! absent. `applied` is a lower bound: every event of the collection up to it is reflected.

use std::collections::BTreeMap;
use std::collections::HashMap;

use async_nats::jetstream::kv;
use async_nats::jetstream::stream::StorageType;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{TenantId, Topic};
use crate::streams::StreamSettings;

/// The KV bucket of collection rows and markers.
pub const STATE_BUCKET: &str = "herald_state";

/// The longest row key, in bytes (its base64 form goes into a KV key).
pub const MAX_KEY_BYTES: usize = 256;

/// The most segments a key path may have.
pub const MAX_PATH_SEGMENTS: usize = 8;

/// The `[state]` section shared by every service: which topics are collections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// `tenant` → `topic` → collection (`HERALD_STATE__COLLECTIONS='{acme={leads={key="id"}}}'`).
    pub collections: BTreeMap<String, BTreeMap<String, CollectionConfig>>,
}

/// One collection's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// The dotted path into the event's `data` that holds the row's key, e.g. `id` or
    /// `record.pk` (a string, number or boolean there; anything else leaves the event unkeyed).
    pub key: String,
}

/// Why the `[state]` section is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateConfigError {
    /// A tenant or topic is not a valid name.
    #[error("state.collections: {0}")]
    Name(String),
    /// A key path is empty, has an empty segment or too many segments.
    #[error(
        "state.collections.{tenant}.{topic}.key {key:?} is not a dotted path of 1 to \
         {MAX_PATH_SEGMENTS} non-empty segments"
    )]
    Key {
        /// The tenant.
        tenant: String,
        /// The topic.
        topic: String,
        /// The path given.
        key: String,
    },
}

impl StateConfig {
    /// The collections, validated.
    pub fn collections(&self) -> Result<Collections, StateConfigError> {
        let mut by_topic = HashMap::new();
        for (tenant, topics) in &self.collections {
            let tenant_id = TenantId::parse(tenant.clone())
                .map_err(|e| StateConfigError::Name(e.to_string()))?;
            for (topic, cfg) in topics {
                let topic_id = Topic::parse(topic.clone())
                    .map_err(|e| StateConfigError::Name(e.to_string()))?;
                let path = KeyPath::parse(&cfg.key).ok_or_else(|| StateConfigError::Key {
                    tenant: tenant.clone(),
                    topic: topic.clone(),
                    key: cfg.key.clone(),
                })?;
                by_topic.insert((tenant_id.clone(), topic_id), path);
            }
        }
        Ok(Collections { by_topic })
    }
}

/// The validated set of collections: which `(tenant, topic)` is one, and its key path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collections {
    by_topic: HashMap<(TenantId, Topic), KeyPath>,
}

impl Collections {
    /// The key path of `tenant`'s `topic`, if it is a collection.
    pub fn get(&self, tenant: &TenantId, topic: &Topic) -> Option<&KeyPath> {
        self.by_topic.get(&(tenant.clone(), topic.clone()))
    }

    /// Whether `tenant`'s `topic` is a collection.
    pub fn contains(&self, tenant: &TenantId, topic: &Topic) -> bool {
        self.get(tenant, topic).is_some()
    }

    /// Every collection, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TenantId, &Topic, &KeyPath)> {
        self.by_topic.iter().map(|((t, p), k)| (t, p, k))
    }

    /// Whether no collection is declared.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// How many collections are declared.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }
}

/// A dotted path into an event's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(Vec<String>);

impl KeyPath {
    /// Parses `a.b.c`; `None` if empty, with an empty segment or too long.
    pub fn parse(path: &str) -> Option<Self> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.is_empty()
            || segments.len() > MAX_PATH_SEGMENTS
            || segments.iter().any(String::is_empty)
        {
            return None;
        }
        Some(Self(segments))
    }

    /// The row key in `data`: a string as is, a number or boolean in its JSON form.
    pub fn key_of(&self, data: &Value) -> Result<String, Unkeyed> {
        let mut at = data;
        for segment in &self.0 {
            at = match at {
                Value::Object(map) => map.get(segment).ok_or(Unkeyed::Missing)?,
                _ => return Err(Unkeyed::Missing),
            };
        }
        let key = match at {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return Err(Unkeyed::Missing),
            Value::Array(_) | Value::Object(_) => return Err(Unkeyed::NotScalar),
        };
        if key.is_empty() {
            return Err(Unkeyed::Missing);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(Unkeyed::TooLong);
        }
        Ok(key)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Why an upsert or delete event has no usable key: it changes nothing, and is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unkeyed {
    /// Nothing (or `null`, or `""`) at the key path.
    Missing,
    /// An object or array at the key path.
    NotScalar,
    /// A key longer than [`MAX_KEY_BYTES`].
    TooLong,
}

impl Unkeyed {
    /// A short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NotScalar => "not_scalar",
            Self::TooLong => "too_long",
        }
    }
}

/// What one event does to its collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `insert`, `update`, `read` (Sequin backfill) or `upsert`: the row under `key` becomes
    /// the event's `data`.
    Upsert {
        /// The row key.
        key: String,
    },
    /// `delete`: the row under `key` is removed.
    Delete {
        /// The row key.
        key: String,
    },
    /// `truncate` or `reset`: every row is removed.
    Clear,
    /// Another action: nothing changes.
    Ignored,
    /// An upsert or delete without a usable key: nothing changes.
    Unkeyed(Unkeyed),
}

impl Change {
    /// What an event with `action` and `data` does to a collection keyed by `path`.
    pub fn of(path: &KeyPath, action: &str, data: &Value) -> Self {
        match action {
            "insert" | "update" | "read" | "upsert" => match path.key_of(data) {
                Ok(key) => Self::Upsert { key },
                Err(why) => Self::Unkeyed(why),
            },
            "delete" => match path.key_of(data) {
                Ok(key) => Self::Delete { key },
                Err(why) => Self::Unkeyed(why),
            },
            "truncate" | "reset" => Self::Clear,
            _ => Self::Ignored,
        }
    }
}

/// A stored row: the value under one key and the stream sequence of the event that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The `HERALD_EVENTS` sequence of the event that wrote this row.
    pub seq: u64,
    /// The row (the event's `data`); absent on a tombstone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// True on a tombstone: the row was deleted by the event at `seq`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The audience of the event that wrote the row (its `Herald-To` header): only these
    /// users' snapshots hold it. Absent for a row everyone on the topic may see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
}

impl Row {
    /// Whether this row is present in a collection cleared at `cleared`.
    pub fn is_live(&self, cleared: u64) -> bool {
        !self.deleted && self.seq > cleared
    }
}

/// A collection's progress marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Marker {
    /// Every event of the collection up to this sequence is reflected in its rows.
    pub applied: u64,
    /// The sequence of the last `truncate`/`reset`: rows with a lower `seq` are absent.
    pub cleared: u64,
    /// The `HERALD_EVENTS` epoch the sequences belong to (8 hex digits).
    pub epoch: String,
}

/// The KV key prefix of `tenant`'s `topic`: `<tenant>.<topic>.`.
pub fn prefix(tenant: &TenantId, topic: &Topic) -> String {
    format!("{tenant}.{topic}.")
}

/// The KV key of a row: `<tenant>.<topic>.r.<base64url(key)>`.
pub fn row_key(tenant: &TenantId, topic: &Topic, key: &str) -> String {
    format!(
        "{tenant}.{topic}.r.{}",
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    )
}

/// The KV key of a collection's [`Marker`]: `<tenant>.<topic>.m`.
pub fn marker_key(tenant: &TenantId, topic: &Topic) -> String {
    format!("{tenant}.{topic}.m")
}

/// The row key a KV key of `tenant`'s `topic` encodes, if it is a row key.
pub fn decode_row_key(tenant: &TenantId, topic: &Topic, kv_key: &str) -> Option<String> {
    let encoded = kv_key
        .strip_prefix(&prefix(tenant, topic))?
        .strip_prefix("r.")?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

impl StreamSettings {
    /// The `herald_state` KV bucket configuration.
    pub fn state_config(&self) -> kv::Config {
        kv::Config {
            bucket: STATE_BUCKET.to_owned(),
            description: "Herald collections: <tenant>.<topic>.r.<key> rows, .m markers".into(),
            history: 1,
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(tenant: &str, topic: &str) -> (TenantId, Topic) {
        (
            TenantId::parse(tenant).unwrap(),
            Topic::parse(topic).unwrap(),
        )
    }

    #[test]
    fn actions_map_to_changes() {
        let path = KeyPath::parse("id").unwrap();
        let row = json!({"id": 4711, "name": "Ada"});
        for action in ["insert", "update", "read", "upsert"] {
            assert_eq!(
                Change::of(&path, action, &row),
                Change::Upsert { key: "4711".into() }
            );
        }
        assert_eq!(
            Change::of(&path, "delete", &row),
            Change::Delete { key: "4711".into() }
        );
        assert_eq!(Change::of(&path, "truncate", &json!(null)), Change::Clear);
        assert_eq!(Change::of(&path, "reset", &json!({})), Change::Clear);
        assert_eq!(Change::of(&path, "ping", &row), Change::Ignored);
    }

    #[test]
    fn keys_are_scalars_at_the_path() {
        let path = KeyPath::parse("record.pk").unwrap();
        let key = |data: Value| path.key_of(&data);
        assert_eq!(key(json!({"record": {"pk": "a-1"}})), Ok("a-1".into()));
        assert_eq!(key(json!({"record": {"pk": 7.5}})), Ok("7.5".into()));
        assert_eq!(key(json!({"record": {"pk": true}})), Ok("true".into()));
        assert_eq!(key(json!({"record": {}})), Err(Unkeyed::Missing));
        assert_eq!(key(json!({"record": {"pk": null}})), Err(Unkeyed::Missing));
        assert_eq!(key(json!({"record": {"pk": ""}})), Err(Unkeyed::Missing));
        assert_eq!(key(json!({"record": 3})), Err(Unkeyed::Missing));
        assert_eq!(key(json!({"record": {"pk": [1]}})), Err(Unkeyed::NotScalar));
        let long = "x".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(key(json!({"record": {"pk": long}})), Err(Unkeyed::TooLong));
    }

    #[test]
    fn bad_paths_and_names_are_refused() {
        for bad in [
            "",
            ".",
            "a..b",
            "a.",
            &["s"; MAX_PATH_SEGMENTS + 1].join("."),
        ] {
            assert!(KeyPath::parse(bad).is_none(), "{bad:?}");
        }
        let cfg = |tenant: &str, topic: &str, key: &str| StateConfig {
            collections: [(
                tenant.to_owned(),
                [(topic.to_owned(), CollectionConfig { key: key.into() })].into(),
            )]
            .into(),
        };
        assert!(cfg("acme", "leads", "id").collections().is_ok());
        assert!(matches!(
            cfg("ac.me", "leads", "id").collections(),
            Err(StateConfigError::Name(_))
        ));
        assert!(matches!(
            cfg("acme", "le*ds", "id").collections(),
            Err(StateConfigError::Name(_))
        ));
        assert!(matches!(
            cfg("acme", "leads", "a..b").collections(),
            Err(StateConfigError::Key { .. })
        ));
        let ok = cfg("acme", "leads", "id").collections().unwrap();
        let (t, p) = names("acme", "leads");
        assert_eq!(ok.get(&t, &p).unwrap().to_string(), "id");
        assert!(!ok.contains(&t, &Topic::parse("other").unwrap()));
    }

    #[test]
    fn row_keys_round_trip_any_string() {
        let (t, p) = names("acme", "leads");
        for key in ["4711", "a.b*c>d", "ünï cødé", "a/b=c", "-"] {
            let kv = row_key(&t, &p, key);
            assert!(
                kv.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{kv}"
            );
            assert_eq!(decode_row_key(&t, &p, &kv).as_deref(), Some(key));
        }
        assert_eq!(decode_row_key(&t, &p, &marker_key(&t, &p)), None);
    }

    #[test]
    fn rows_and_markers_have_the_documented_shape() {
        let row: Row = serde_json::from_value(json!({"seq": 9, "data": {"id": 1}})).unwrap();
        assert!(row.is_live(0) && !row.is_live(9));
        let tomb = Row {
            seq: 10,
            data: None,
            deleted: true,
            to: None,
        };
        assert_eq!(
            serde_json::to_value(&tomb).unwrap(),
            json!({"seq": 10, "deleted": true})
        );
        assert!(!tomb.is_live(0));
        let marker: Marker = serde_json::from_value(json!({"applied": 5})).unwrap();
        assert_eq!(marker.cleared, 0);
    }
}
