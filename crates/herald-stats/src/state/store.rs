//! Rows and markers in the KV bucket `herald_state`, read and written with compare-and-set
//! (layout: `proto/state.md`, `herald_core::state`).

use std::collections::BTreeMap;

use async_nats::jetstream::{self, kv};
use futures::TryStreamExt;
use herald_core::names::{TenantId, Topic};
use herald_core::state::{self, Marker, Row, STATE_BUCKET};

/// The stream behind the `herald_state` bucket.
pub const STATE_STREAM: &str = "KV_herald_state";

/// How many compare-and-set conflicts one key may meet before the writer gives up on it
/// (and starts over).
const MAX_ATTEMPTS: usize = 16;

/// Why reading or writing the bucket failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket (or its stream) does not exist yet, or NATS is unreachable.
    #[error("cannot open KV bucket {STATE_BUCKET}")]
    Bucket(#[source] async_nats::Error),
    /// Reading a key failed.
    #[error("cannot read {key} from {STATE_BUCKET}")]
    Read {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: kv::EntryError,
    },
    /// Writing a key failed for another reason than a conflict.
    #[error("cannot write {key} to {STATE_BUCKET}")]
    Write {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: kv::UpdateError,
    },
    /// Other writers won every attempt.
    #[error("{key} kept changing under {MAX_ATTEMPTS} compare-and-set attempts")]
    Contended {
        /// The key.
        key: String,
    },
    /// Purging a collection's keys failed.
    #[error("cannot purge {prefix}> from {STATE_BUCKET}")]
    Purge {
        /// The collection's key prefix.
        prefix: String,
        /// The cause.
        #[source]
        source: async_nats::Error,
    },
    /// Listing a collection's keys failed.
    #[error("cannot list {STATE_BUCKET}")]
    List(#[source] async_nats::Error),
}

/// What a key holds, with the revision a compare-and-set write over it must name (0: the key
/// does not exist).
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    /// The decoded value; `None` if absent, deleted or not decodable (then overwritten).
    pub value: Option<T>,
    /// The KV revision.
    pub revision: u64,
}

/// Opens the `herald_state` bucket (provisioned by `herald_core::streams::provision`).
pub async fn bucket(js: &jetstream::Context) -> Result<kv::Store, StoreError> {
    js.get_key_value(STATE_BUCKET)
        .await
        .map_err(|e| StoreError::Bucket(e.into()))
}

/// Reads `key` and decodes it as `T`.
pub async fn read<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
) -> Result<At<T>, StoreError> {
    let entry = kv.entry(key).await.map_err(|source| StoreError::Read {
        key: key.to_owned(),
        source,
    })?;
    let Some(entry) = entry else {
        return Ok(At {
            value: None,
            revision: 0,
        });
    };
    let value = match entry.operation {
        kv::Operation::Put => match serde_json::from_slice(&entry.value) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(key, error = %err, "herald_state value of an unknown shape; it is overwritten");
                None
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => None,
    };
    Ok(At {
        value,
        revision: entry.revision,
    })
}

/// Writes `value` under `key` if the key is still at `revision` (0: create only). `Ok(None)`
/// on a conflict.
pub async fn write<T: serde::Serialize>(
    kv: &kv::Store,
    key: &str,
    value: &T,
    revision: u64,
) -> Result<Option<u64>, StoreError> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| unreachable!("rows serialise"));
    match kv.update(key, bytes.into(), revision).await {
        Ok(revision) => Ok(Some(revision)),
        Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
        Err(source) => Err(StoreError::Write {
            key: key.to_owned(),
            source,
        }),
    }
}

/// What applying one row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Whether the row was written (false: the stored row was as recent or more).
    pub written: bool,
    /// The stored row's sequence and revision afterwards.
    pub seq: u64,
    /// The stored row's KV revision afterwards.
    pub revision: u64,
    /// Compare-and-set conflicts met.
    pub conflicts: u64,
}

/// Stores `row` under `key` unless the stored row's sequence is at least `row.seq`.
/// `known` is the stored `(seq, revision)` this writer last saw, if any: a stale one only
/// costs a conflict and a read.
pub async fn apply_row(
    kv: &kv::Store,
    key: &str,
    row: &Row,
    mut known: Option<(u64, u64)>,
) -> Result<Applied, StoreError> {
    let mut conflicts = 0;
    for _ in 0..MAX_ATTEMPTS {
        let (seq, revision) = match known.take() {
            Some(known) => known,
            None => {
                let at = read::<Row>(kv, key).await?;
                (at.value.map_or(0, |r| r.seq), at.revision)
            }
        };
        if row.seq <= seq {
            return Ok(Applied {
                written: false,
                seq,
                revision,
                conflicts,
            });
        }
        match write(kv, key, row, revision).await? {
            Some(revision) => {
                return Ok(Applied {
                    written: true,
                    seq: row.seq,
                    revision,
                    conflicts,
                });
            }
            None => conflicts += 1,
        }
    }
    Err(StoreError::Contended {
        key: key.to_owned(),
    })
}

/// Raises the marker under `key` to at least `applied` and `cleared` (never lowers either).
/// `known` is the marker this writer last read or wrote. Returns the stored marker and its
/// revision, and the conflicts met; `Ok(None)` if the stored marker names another epoch
/// than `epoch` (or there is none): the collection was reset under the writer.
pub async fn raise_marker(
    kv: &kv::Store,
    key: &str,
    applied: u64,
    cleared: u64,
    epoch: &str,
    mut known: Option<At<Marker>>,
) -> Result<(Option<At<Marker>>, u64), StoreError> {
    let mut conflicts = 0;
    for _ in 0..MAX_ATTEMPTS {
        let at = match known.take() {
            Some(at) => at,
            None => read::<Marker>(kv, key).await?,
        };
        let Some(stored) = at.value.as_ref().filter(|m| m.epoch == epoch) else {
            return Ok((None, conflicts));
        };
        let raised = Marker {
            applied: stored.applied.max(applied),
            cleared: stored.cleared.max(cleared),
            epoch: epoch.to_owned(),
        };
        if &raised == stored {
            return Ok((Some(at), conflicts));
        }
        match write(kv, key, &raised, at.revision).await? {
            Some(revision) => {
                let at = At {
                    value: Some(raised),
                    revision,
                };
                return Ok((Some(at), conflicts));
            }
            None => conflicts += 1,
        }
    }
    Err(StoreError::Contended {
        key: key.to_owned(),
    })
}

/// Removes every key of `tenant`'s `topic` stored at or below the bucket stream's sequence
/// `upto` (rows and marker), in one request; later writes are kept.
pub async fn purge(
    stream: &jetstream::stream::Stream,
    tenant: &TenantId,
    topic: &Topic,
    upto: u64,
) -> Result<u64, StoreError> {
    let prefix = state::prefix(tenant, topic);
    let purged = stream
        .purge()
        .filter(format!("$KV.{STATE_BUCKET}.{prefix}>"))
        .sequence(upto + 1)
        .await
        .map_err(|e| StoreError::Purge {
            prefix: prefix.clone(),
            source: e.into(),
        })?;
    Ok(purged.purged)
}

/// A collection as stored: its marker and every row by row key (tombstones and rows hidden
/// by `cleared` included; see [`Row::is_live`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// The marker, if any.
    pub marker: Option<Marker>,
    /// The rows, by row key (decoded from the KV key).
    pub rows: BTreeMap<String, Row>,
}

impl Stored {
    /// The rows present in the collection: neither deleted nor cleared.
    pub fn live(&self) -> BTreeMap<String, Row> {
        let cleared = self.marker.as_ref().map_or(0, |m| m.cleared);
        self.rows
            .iter()
            .filter(|(_, row)| row.is_live(cleared))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }
}

/// Reads `tenant`'s `topic` as stored, from the bucket's stream `KV_herald_state` (for
/// tests and tools; the gateway keeps its own mirror).
pub async fn load(
    js: &jetstream::Context,
    tenant: &TenantId,
    topic: &Topic,
) -> Result<Stored, StoreError> {
    let list = |e: async_nats::Error| StoreError::List(e);
    let stream = js
        .get_stream(STATE_STREAM)
        .await
        .map_err(|e| list(e.into()))?;
    let prefix = format!("$KV.{STATE_BUCKET}.");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("{prefix}{}>", state::prefix(tenant, topic)),
            deliver_policy: jetstream::consumer::DeliverPolicy::LastPerSubject,
            ..Default::default()
        })
        .await
        .map_err(|e| list(e.into()))?;
    let name = consumer.cached_info().name.clone();
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer.messages().await.map_err(|e| list(e.into()))?;
    let mut stored = Stored::default();
    while pending > 0 {
        let Some(msg) = messages.try_next().await.map_err(|e| list(e.into()))? else {
            break;
        };
        pending = msg.info().map_or(0, |i| i.pending);
        let deleted = msg
            .headers
            .as_ref()
            .is_some_and(|h| h.get("KV-Operation").is_some());
        let Some(key) = msg.subject.strip_prefix(prefix.as_str()) else {
            continue;
        };
        if deleted {
            continue;
        }
        if key == state::marker_key(tenant, topic) {
            stored.marker = serde_json::from_slice(&msg.payload).ok();
        } else if let Some(row_key) = state::decode_row_key(tenant, topic, key)
            && let Ok(row) = serde_json::from_slice(&msg.payload)
        {
            stored.rows.insert(row_key, row);
        }
    }
    drop(messages);
    // Best effort: an ordered consumer also goes away by itself once inactive.
    let _ = stream.delete_consumer(&name).await;
    Ok(stored)
}
