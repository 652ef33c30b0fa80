//! Stream and bucket specifications, and idempotent provisioning.
//!
//! Whichever service starts first creates (or updates) `HERALD_EVENTS`, `HERALD_DLQ` and the
//! KV bucket `herald_stats`; the others find them as configured. Running [`provision`] any
//! number of times, from any number of processes at once, converges on the same state.

use std::time::Duration;

use async_nats::jetstream::{
    self, kv,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use serde::{Deserialize, Serialize};

use crate::cursor::Epoch;
use crate::subject;

/// The stream that holds every event.
pub const EVENTS_STREAM: &str = "HERALD_EVENTS";
/// The stream that holds events a consumer gave up on.
pub const DLQ_STREAM: &str = "HERALD_DLQ";
/// The KV bucket of live stats documents.
pub const STATS_BUCKET: &str = "herald_stats";

/// Retention and replication of Herald's streams. Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSettings {
    /// How long events are kept (`HERALD_STREAM__MAX_AGE`, e.g. `7d`). Default 7 days.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// The most bytes `HERALD_EVENTS` may hold before the oldest events are discarded;
    /// -1 for no limit. Default 1 GiB.
    pub max_bytes: i64,
    /// The most events `HERALD_EVENTS` may hold; -1 for no limit. Default -1.
    pub max_msgs: i64,
    /// The window in which a repeated `Nats-Msg-Id` is stored once. Default 15 min, longer
    /// than Sequin's 10 min maximum retry backoff.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// Replicas per stream: 1 on one server, 3 on a cluster. Default 1.
    pub replicas: usize,
    /// How long dead letters are kept. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub dlq_max_age: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            max_msgs: -1,
            duplicate_window: Duration::from_secs(15 * 60),
            replicas: 1,
            dlq_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl StreamSettings {
    /// The `HERALD_EVENTS` stream configuration.
    pub fn events_config(&self) -> stream::Config {
        stream::Config {
            name: EVENTS_STREAM.to_owned(),
            description: Some("Herald events: herald.events.<tenant>.<topic>.<action>".into()),
            subjects: vec![subject::EVENTS_ALL.to_owned()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            max_messages: self.max_msgs,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            allow_direct: true,
            ..Default::default()
        }
    }

    /// The `HERALD_DLQ` stream configuration.
    pub fn dlq_config(&self) -> stream::Config {
        stream::Config {
            name: DLQ_STREAM.to_owned(),
            description: Some("Herald dead letters: herald.dlq.<service>.<tenant>".into()),
            subjects: vec![subject::DLQ_ALL.to_owned()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            max_age: self.dlq_max_age,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// The `herald_stats` KV bucket configuration.
    pub fn stats_config(&self) -> kv::Config {
        kv::Config {
            bucket: STATS_BUCKET.to_owned(),
            description: "Herald live stats: <tenant>.<topic> -> stats document".into(),
            history: 1,
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Creating or updating a stream failed.
    #[error("could not create or update stream {name}")]
    Stream {
        /// The stream.
        name: &'static str,
        /// The cause.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    /// Creating or updating the KV bucket failed.
    #[error("could not create or update KV bucket {STATS_BUCKET}")]
    Bucket(#[source] jetstream::context::CreateKeyValueError),
}

/// What provisioning found: the identity of the events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// The epoch of `HERALD_EVENTS` (changes when the stream is recreated).
    pub epoch: Epoch,
}

/// Creates or updates `HERALD_EVENTS`, `HERALD_DLQ` and `herald_stats` to match `settings`.
pub async fn provision(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Provisioned, ProvisionError> {
    let events = js
        .create_or_update_stream(settings.events_config())
        .await
        .map_err(|source| ProvisionError::Stream {
            name: EVENTS_STREAM,
            source,
        })?;
    js.create_or_update_stream(settings.dlq_config())
        .await
        .map_err(|source| ProvisionError::Stream {
            name: DLQ_STREAM,
            source,
        })?;
    js.create_or_update_key_value(settings.stats_config())
        .await
        .map_err(ProvisionError::Bucket)?;
    tracing::debug!(stream = EVENTS_STREAM, created = %events.created, "streams provisioned");
    Ok(Provisioned {
        epoch: Epoch::from_created(events.created),
    })
}
