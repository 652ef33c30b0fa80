//! Reading, writing and watching documents in the KV bucket `herald_stats`.
//!
//! This is the part other services use: the gateway serves [`read`] as `GET /v1/stats` and
//! forwards [`watch`] to clients subscribed to live stats.

use async_nats::jetstream::{self, kv};
use futures::{Stream, StreamExt};
use herald_core::names::{TenantId, Topic};
use herald_core::streams::STATS_BUCKET;

use crate::doc::{self, StatsDoc};

/// A document and the KV revision it was read at (the revision a compare-and-set write
/// must name).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The document.
    pub doc: StatsDoc,
    /// Its KV revision.
    pub revision: u64,
}

/// Why a document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket does not exist (yet) or NATS is unreachable.
    #[error("cannot open KV bucket {STATS_BUCKET}")]
    Bucket(#[source] jetstream::context::KeyValueError),
    /// Reading a key failed.
    #[error("cannot read stats document {key}")]
    Read {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: kv::EntryError,
    },
    /// A stored value is not a stats document (written by something else).
    #[error("stats document {key} is not valid JSON of the documented shape")]
    Decode {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Someone else wrote the key since it was read: re-read and re-apply.
    #[error("stats document {key} changed since revision {revision}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the write expected.
        revision: u64,
    },
    /// Writing failed for another reason (timeout, NATS away).
    #[error("cannot write stats document {key}")]
    Write {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: kv::UpdateError,
    },
    /// Starting a watch failed.
    #[error("cannot watch stats documents")]
    Watch(#[source] kv::WatchError),
}

/// Opens the `herald_stats` bucket (provisioned by `herald_core::streams::provision`).
pub async fn bucket(js: &jetstream::Context) -> Result<kv::Store, StoreError> {
    js.get_key_value(STATS_BUCKET)
        .await
        .map_err(StoreError::Bucket)
}

/// The current document of `tenant`/`topic`, with its revision; `None` if nothing has been
/// counted for it yet (or it was deleted).
pub async fn read(
    kv: &kv::Store,
    tenant: &TenantId,
    topic: &Topic,
) -> Result<Option<Snapshot>, StoreError> {
    match read_key(kv, &doc::key(tenant, topic)).await? {
        Stored::Absent | Stored::Deleted(_) => Ok(None),
        Stored::Undecodable { revision: _, error } => Err(error),
        Stored::Doc(snapshot) => Ok(Some(snapshot)),
    }
}

/// What a key holds, for writers: every case carries the revision a write must name.
#[derive(Debug)]
pub(crate) enum Stored {
    /// The key never existed (a write names revision 0).
    Absent,
    /// The key was deleted or purged at this revision.
    Deleted(u64),
    /// The value is not a stats document (it is recounted, never a reason to stall).
    Undecodable {
        /// The value's revision.
        revision: u64,
        /// Why it did not decode.
        error: StoreError,
    },
    /// A document.
    Doc(Snapshot),
}

impl Stored {
    /// The revision a compare-and-set write over this value must name.
    pub(crate) fn revision(&self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::Deleted(revision) | Self::Undecodable { revision, .. } => *revision,
            Self::Doc(snapshot) => snapshot.revision,
        }
    }
}

pub(crate) async fn read_key(kv: &kv::Store, key: &str) -> Result<Stored, StoreError> {
    let entry = kv.entry(key).await.map_err(|source| StoreError::Read {
        key: key.to_owned(),
        source,
    })?;
    let Some(entry) = entry else {
        return Ok(Stored::Absent);
    };
    let revision = entry.revision;
    if entry.operation != kv::Operation::Put {
        return Ok(Stored::Deleted(revision));
    }
    Ok(match decode(key, &entry.value) {
        Ok(doc) => Stored::Doc(Snapshot { doc, revision }),
        Err(error) => Stored::Undecodable { revision, error },
    })
}

fn decode(key: &str, value: &[u8]) -> Result<StatsDoc, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Decode {
        key: key.to_owned(),
        source,
    })
}

/// Writes `doc` if the key is still at `revision` (0 = the key must not exist); returns the
/// new revision. [`StoreError::Conflict`] if someone else wrote it first.
pub async fn write(kv: &kv::Store, doc: &StatsDoc, revision: u64) -> Result<u64, StoreError> {
    let key = doc.key();
    // `update` with revision 0 is a create: JetStream checks the subject's last sequence is 0.
    match kv.update(&key, doc.to_bytes(), revision).await {
        Ok(rev) => Ok(rev),
        Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
            Err(StoreError::Conflict { key, revision })
        }
        Err(source) => Err(StoreError::Write { key, source }),
    }
}

/// One change seen by [`watch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A document was written (or was current when the watch started).
    Put(Box<Snapshot>),
    /// A document was deleted (e.g. by an operator before a recount).
    Deleted {
        /// The key, `<tenant>.<topic>`.
        key: String,
    },
}

/// Every document of `tenant`: first the current ones, then each new version as it is
/// written. A value that is not a valid document is reported as an error item, and the
/// stream goes on.
pub async fn watch(
    kv: &kv::Store,
    tenant: &TenantId,
) -> Result<impl Stream<Item = Result<Update, StoreError>> + Send + use<>, StoreError> {
    // With history: the current document of every key first, then each new version.
    let watch = kv
        .watch_with_history(format!("{tenant}.>"))
        .await
        .map_err(StoreError::Watch)?;
    Ok(watch.filter_map(|entry| async move {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                tracing::warn!(error = %herald_core::error_chain(&err), "stats watch error");
                return None;
            }
        };
        Some(match entry.operation {
            kv::Operation::Put => decode(&entry.key, &entry.value).map(|doc| {
                Update::Put(Box::new(Snapshot {
                    doc,
                    revision: entry.revision,
                }))
            }),
            kv::Operation::Delete | kv::Operation::Purge => Ok(Update::Deleted { key: entry.key }),
        })
    }))
}
