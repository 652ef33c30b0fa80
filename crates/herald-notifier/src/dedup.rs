//! "Already delivered" records: one KV key per (event, target), written after the platform
//! accepted the message and before the event is acknowledged.
//!
//! A redelivered event (after a nak, a crash or a re-drive) skips every target whose record
//! exists. The one window left: a crash after the platform accepted a message and before
//! its record was written resends that message once (at most one message per target in
//! flight at the moment of the crash).

use async_nats::jetstream::{self, kv};
use herald_core::streams::{self, ProvisionError, StreamSettings};
use sha2::{Digest, Sha256};

/// The KV bucket of delivery records (specified and provisioned by
/// [`herald_core::streams`]).
pub const BUCKET: &str = streams::NOTIFIED_BUCKET;

/// Why the delivery records could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Creating or opening the bucket failed.
    #[error("could not create or open KV bucket {BUCKET}")]
    Bucket(#[source] ProvisionError),
    /// Reading a record failed.
    #[error("could not read a delivery record")]
    Read(#[source] kv::EntryError),
    /// Writing a record failed.
    #[error("could not write a delivery record")]
    Write(#[source] kv::PutError),
}

/// The delivery records.
#[derive(Debug, Clone)]
pub struct Dedup {
    kv: kv::Store,
}

/// The record's key: a hash of the event's `Nats-Msg-Id` and the target, because KV keys
/// only allow `[-/_=.a-zA-Z0-9]` and event ids allow any printable ASCII.
pub fn key(msg_id: &str, target: &str) -> String {
    let mut h = Sha256::new();
    h.update(msg_id.as_bytes());
    h.update([0]);
    h.update(target.as_bytes());
    hex::encode(h.finalize())
}

impl Dedup {
    /// Opens the bucket, first creating (or updating) it to `settings` the way
    /// `herald provision` does ([`streams::ensure_notified`]).
    pub async fn open(
        js: &jetstream::Context,
        settings: &StreamSettings,
    ) -> Result<Self, DedupError> {
        let kv = streams::ensure_notified(js, settings)
            .await
            .map_err(DedupError::Bucket)?;
        Ok(Self { kv })
    }

    /// Whether `msg_id` was already delivered to `target`.
    pub async fn is_done(&self, msg_id: &str, target: &str) -> Result<bool, DedupError> {
        let entry = self
            .kv
            .entry(key(msg_id, target))
            .await
            .map_err(DedupError::Read)?;
        Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
    }

    /// Records that `msg_id` was delivered to `target`.
    pub async fn mark_done(&self, msg_id: &str, target: &str) -> Result<(), DedupError> {
        let value = format!("{msg_id} -> {target}");
        self.kv
            .put(key(msg_id, target), value.into())
            .await
            .map_err(DedupError::Write)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kv_safe_and_distinct() {
        let k = key("acme/id with spaces*>", "tg");
        assert_eq!(k.len(), 64);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            key("a", "bc"),
            key("ab", "c"),
            "the separator keeps pairs apart"
        );
    }
}
