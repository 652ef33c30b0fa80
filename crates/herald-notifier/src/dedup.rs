//! "Already delivered" records: one KV key per (event, target), written after the platform
//! accepted the message and before the event is acknowledged.
//!
//! A redelivered event (after a nak, a crash or a re-drive) skips every target whose record
//! exists. The one window left: a crash after the platform accepted a message and before
//! its record was written resends that message once (at most one message per target in
//! flight at the moment of the crash).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use sha2::{Digest, Sha256};

/// The KV bucket of delivery records.
pub const BUCKET: &str = "herald_notified";

/// Why the delivery records could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Creating or opening the bucket failed.
    #[error("could not create or open KV bucket {BUCKET}")]
    Bucket(#[source] jetstream::context::CreateKeyValueError),
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
    /// Creates (or updates) the bucket with records kept for `ttl`.
    pub async fn open(
        js: &jetstream::Context,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Self, DedupError> {
        let kv = js
            .create_or_update_key_value(kv::Config {
                bucket: BUCKET.to_owned(),
                description: "Herald notifier: (event, target) pairs already delivered".into(),
                history: 1,
                max_age: ttl,
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
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
