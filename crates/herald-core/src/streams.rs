//! Stream and bucket specifications, and idempotent provisioning.
//!
//! `herald provision` (the admin identity), or whichever service starts first when its NATS
//! identity may, creates (or updates) `HERALD_EVENTS`, `HERALD_DLQ` and the KV buckets
//! `herald_stats`, `herald_state` (collections, see [`crate::state`]) and `herald_presence` (who is connected, across gateways); the others find them as configured. The notifier's KV bucket
//! `herald_notified` is specified here too: `herald provision` creates it with the rest, and
//! the notifier (the only identity that may look it up) ensures it with [`ensure_notified`]. Running [`provision`] any number of
//! times, from any number of processes at once, converges on the same state, and a stream
//! that already matches is only looked up, never written.

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
/// The KV bucket of the notifier's delivery records: (event, target) pairs already delivered.
pub const NOTIFIED_BUCKET: &str = "herald_notified";
/// The KV bucket of presence: `<tenant>.<topic>.<gateway-id>` → the users that gateway has
/// connected to the topic. Entries expire after `presence_ttl`; each gateway rewrites its own
/// well before, so a gateway that dies takes its users with it within the TTL.
pub const PRESENCE_BUCKET: &str = "herald_presence";

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
    /// How long the notifier's delivery records (KV `herald_notified`) are kept
    /// (`HERALD_STREAM__DEDUP_TTL`). Must cover every redelivery (`max_deliver` × the longest
    /// backoff); never less than `duplicate_window` is used. Default 24 h.
    #[serde(with = "humantime_serde")]
    pub dedup_ttl: Duration,
    /// How long a gateway's presence entry (KV `herald_presence`) lives without being
    /// rewritten (`HERALD_STREAM__PRESENCE_TTL`): the longest a dead gateway's users still
    /// count as connected. Gateways rewrite theirs every third of it. At least 1 s is used.
    /// Default 15 s.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
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
            dedup_ttl: Duration::from_secs(24 * 3600),
            presence_ttl: Duration::from_secs(15),
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

    /// The `herald_notified` KV bucket configuration: records kept for `dedup_ttl`, and at
    /// least the duplicate window (a re-published event must still find its records).
    pub fn notified_config(&self) -> kv::Config {
        kv::Config {
            bucket: NOTIFIED_BUCKET.to_owned(),
            description: "Herald notifier: (event, target) pairs already delivered".into(),
            history: 1,
            max_age: self.dedup_ttl.max(self.duplicate_window),
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

impl StreamSettings {
    /// The presence TTL in use: `presence_ttl`, at least 1 s.
    pub fn presence_ttl(&self) -> Duration {
        self.presence_ttl.max(Duration::from_secs(1))
    }

    /// The `herald_presence` KV bucket configuration: entries expire after
    /// [`StreamSettings::presence_ttl`]. File storage, although presence is rebuilt within a
    /// TTL anyway: a memory bucket vanishes when nats-server restarts, only the admin identity
    /// may create it again, and every gateway stayed not-ready until someone ran `herald
    /// provision` (found by the chaos soak, which restarts NATS).
    pub fn presence_config(&self) -> kv::Config {
        kv::Config {
            bucket: PRESENCE_BUCKET.to_owned(),
            description: "Herald presence: <tenant>.<topic>.<gateway> -> members".into(),
            history: 1,
            max_age: self.presence_ttl(),
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Looking a stream up (STREAM.INFO) failed for another reason than "not found".
    #[error("could not look up stream {name}")]
    Lookup {
        /// The stream.
        name: String,
        /// The cause.
        #[source]
        source: jetstream::context::GetStreamError,
    },
    /// A stream does not exist and could not be created: with a least-privilege NATS identity
    /// this is expected until an admin provisions the streams.
    #[error(
        "stream {name} does not exist and could not be created (a service's own NATS identity \
         may not create streams: run `herald provision` with the admin identity)"
    )]
    Create {
        /// The stream.
        name: String,
        /// The cause.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    /// A stream differs from the settings and could not be updated ([`apply`] only).
    #[error("could not update stream {name} to the configured settings (differs: {differs:?})")]
    Update {
        /// The stream.
        name: String,
        /// The settings that differ.
        differs: Vec<&'static str>,
        /// The cause.
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    /// A KV bucket does not exist and could not be created.
    #[error(
        "KV bucket {bucket} does not exist and could not be created (a service's own NATS \
         identity may not create it: run `herald provision` with the admin identity)"
    )]
    Bucket {
        /// The bucket.
        bucket: String,
        /// The cause.
        #[source]
        source: jetstream::context::CreateKeyValueError,
    },
    /// A KV bucket exists but could not be opened.
    #[error("could not open KV bucket {bucket}")]
    Open {
        /// The bucket.
        bucket: String,
        /// The cause.
        #[source]
        source: jetstream::context::KeyValueError,
    },
}

/// What provisioning found: the identity of the events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// The epoch of `HERALD_EVENTS` (changes when the stream is recreated).
    pub epoch: Epoch,
}

/// Makes `HERALD_EVENTS`, `HERALD_DLQ`, `herald_stats`, `herald_state` and `herald_presence`
/// match `settings`.
///
/// Each stream is looked up first (STREAM.INFO, which every Herald identity may do): one
/// that exists with the configured settings is left alone, so a service whose NATS identity
/// may not create or update streams starts normally once an admin has provisioned them. A
/// missing stream is created and a differing one updated; if the update is refused (no
/// right, or a setting JetStream cannot change), a warning names the stream and the service
/// goes on with its current settings.
pub async fn provision(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Provisioned, ProvisionError> {
    converge(js, settings, false).await
}

/// Like [`provision`], but a stream that differs and cannot be updated is an error, and the
/// notifier's `herald_notified` bucket is ensured too: what `herald provision` (the admin
/// identity) runs.
pub async fn apply(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Provisioned, ProvisionError> {
    let provisioned = converge(js, settings, true).await?;
    ensure_notified(js, settings).await?;
    Ok(provisioned)
}

/// Makes the notifier's `herald_notified` bucket match `settings` (see [`provision`]) and
/// returns it. Only the notifier's NATS identity (and the admin's) may look it up.
pub async fn ensure_notified(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<kv::Store, ProvisionError> {
    ensure_bucket(js, settings.notified_config()).await?;
    js.get_key_value(NOTIFIED_BUCKET)
        .await
        .map_err(|source| ProvisionError::Open {
            bucket: NOTIFIED_BUCKET.to_owned(),
            source,
        })
}

async fn converge(
    js: &jetstream::Context,
    settings: &StreamSettings,
    strict: bool,
) -> Result<Provisioned, ProvisionError> {
    let events = ensure_stream(js, settings.events_config(), strict).await?;
    ensure_stream(js, settings.dlq_config(), strict).await?;
    ensure_bucket(js, settings.stats_config()).await?;
    ensure_bucket(js, settings.state_config()).await?;
    ensure_bucket(js, settings.presence_config()).await?;
    tracing::debug!(stream = EVENTS_STREAM, created = %events.created, "streams provisioned");
    Ok(Provisioned {
        epoch: Epoch::from_created(events.created),
    })
}

/// The stream `want.name`, created or updated to `want` (see [`provision`]).
async fn ensure_stream(
    js: &jetstream::Context,
    want: stream::Config,
    strict: bool,
) -> Result<stream::Info, ProvisionError> {
    let name = want.name.clone();
    let have = match js.get_stream(&name).await {
        Ok(stream) => stream.cached_info().clone(),
        Err(err) if is_not_found(&err) => {
            let created =
                js.create_stream(want)
                    .await
                    .map_err(|source| ProvisionError::Create {
                        name: name.clone(),
                        source,
                    })?;
            tracing::info!(stream = %name, "stream created");
            return Ok(created.cached_info().clone());
        }
        Err(source) => return Err(ProvisionError::Lookup { name, source }),
    };
    let diff = stream_differences(&have.config, &want);
    if diff.is_empty() {
        return Ok(have);
    }
    match js.update_stream(&want).await {
        Ok(info) => {
            tracing::info!(stream = %name, changed = ?diff, "stream updated");
            Ok(info)
        }
        Err(source) if strict => Err(ProvisionError::Update {
            name,
            differs: diff,
            source,
        }),
        Err(err) => {
            tracing::warn!(
                stream = %name, differs = ?diff, error = %crate::error_chain(&err),
                "stream differs from the configured settings and could not be updated; \
                 going on with its current settings (run `herald provision` with the admin \
                 NATS identity to apply them)"
            );
            Ok(have)
        }
    }
}

/// The KV bucket `want.bucket`, created or updated to `want` (see [`provision`]).
async fn ensure_bucket(js: &jetstream::Context, want: kv::Config) -> Result<(), ProvisionError> {
    let bucket = want.bucket.clone();
    let stream_name = format!("KV_{bucket}");
    let have = match js.get_stream(&stream_name).await {
        Ok(stream) => stream.cached_info().config.clone(),
        Err(err) if is_not_found(&err) => {
            js.create_key_value(want)
                .await
                .map_err(|source| ProvisionError::Bucket {
                    bucket: bucket.clone(),
                    source,
                })?;
            tracing::info!(%bucket, "KV bucket created");
            return Ok(());
        }
        Err(source) => {
            return Err(ProvisionError::Lookup {
                name: stream_name,
                source,
            });
        }
    };
    let mut diff = Vec::new();
    if have.max_messages_per_subject != want.history {
        diff.push("history");
    }
    if have.num_replicas != want.num_replicas.max(1) {
        diff.push("num_replicas");
    }
    if have.storage != want.storage {
        diff.push("storage");
    }
    if have.max_age != want.max_age {
        diff.push("max_age");
    }
    if diff.is_empty() {
        return Ok(());
    }
    if let Err(err) = js.update_key_value(want).await {
        tracing::warn!(
            %bucket, differs = ?diff, error = %crate::error_chain(&err),
            "KV bucket differs from the configured settings and could not be updated; going on \
             with its current settings (run `herald provision` with the admin NATS identity)"
        );
    }
    Ok(())
}

/// Whether a lookup failed because the stream does not exist.
fn is_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// The settings Herald configures on which `have` differs from `want`.
fn stream_differences(have: &stream::Config, want: &stream::Config) -> Vec<&'static str> {
    let mut diff = Vec::new();
    let mut check = |field: &'static str, same: bool| {
        if !same {
            diff.push(field);
        }
    };
    check("subjects", have.subjects == want.subjects);
    check("retention", have.retention == want.retention);
    check("discard", have.discard == want.discard);
    check("storage", have.storage == want.storage);
    check("max_age", have.max_age == want.max_age);
    // The server reports an unset (0) limit as -1.
    let limit = |v: i64| if v == 0 { -1 } else { v };
    check("max_bytes", limit(have.max_bytes) == limit(want.max_bytes));
    check(
        "max_messages",
        limit(have.max_messages) == limit(want.max_messages),
    );
    check(
        "duplicate_window",
        have.duplicate_window == want.duplicate_window,
    );
    check(
        "num_replicas",
        have.num_replicas == want.num_replicas.max(1),
    );
    check("allow_direct", have.allow_direct == want.allow_direct);
    check("description", have.description == want.description);
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_stream_has_no_differences() {
        let s = StreamSettings::default();
        assert!(stream_differences(&s.events_config(), &s.events_config()).is_empty());
        let longer = StreamSettings {
            max_age: Duration::from_secs(1),
            replicas: 3,
            ..StreamSettings::default()
        };
        assert_eq!(
            stream_differences(&s.events_config(), &longer.events_config()),
            ["max_age", "num_replicas"]
        );
    }

    #[test]
    fn delivery_records_outlive_the_duplicate_window() {
        let s = StreamSettings::default();
        assert_eq!(s.notified_config().bucket, NOTIFIED_BUCKET);
        assert_eq!(s.notified_config().max_age, Duration::from_secs(24 * 3600));
        let short = StreamSettings {
            dedup_ttl: Duration::from_secs(60),
            ..StreamSettings::default()
        };
        assert_eq!(short.notified_config().max_age, short.duplicate_window);
    }

    #[test]
    fn presence_entries_expire_after_the_ttl_never_under_a_second() {
        let s = StreamSettings::default();
        assert_eq!(s.presence_config().bucket, PRESENCE_BUCKET);
        // A memory bucket would not survive a nats-server restart (and only admin recreates it).
        assert_eq!(s.presence_config().storage, StorageType::File);
        assert_eq!(s.presence_config().max_age, Duration::from_secs(15));
        let tiny = StreamSettings {
            presence_ttl: Duration::from_millis(10),
            ..StreamSettings::default()
        };
        assert_eq!(tiny.presence_config().max_age, Duration::from_secs(1));
    }

    #[test]
    fn a_limit_the_server_reports_as_unset_is_no_difference() {
        // HERALD_DLQ leaves max_bytes and max_messages at 0; the server answers -1. Counting
        // that as a difference made every service try STREAM.UPDATE (refused to them).
        let s = StreamSettings::default();
        let mut served = s.dlq_config();
        served.max_bytes = -1;
        served.max_messages = -1;
        assert!(stream_differences(&served, &s.dlq_config()).is_empty());
    }
}
