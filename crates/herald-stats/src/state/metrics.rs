//! The state writer's Prometheus metrics, registered in the aggregator's registry
//! (`herald_stats_state_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `reason` label of `herald_stats_state_unkeyed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UnkeyedLabels {
    /// `missing`, `not_scalar`, `too_long` (see `herald_core::state::Unkeyed`), or
    /// `malformed` (the payload is not a JSON event envelope).
    pub reason: String,
}

/// The state writer's metrics; cheap to clone (every field shares its value).
#[derive(Clone, Debug, Default)]
pub struct StateMetrics {
    /// Collection events read from the stream (including ones read again after a restart).
    pub events: Counter,
    /// Events whose change is now stored: rows written (upserts, tombstones), truncates
    /// recorded, and changes superseded by a later one of the same batch.
    pub applied: Counter,
    /// Events whose row already held a later (or the same) sequence: applied before, by this
    /// writer or another one.
    pub skipped_stale: Counter,
    /// Compare-and-set conflicts on rows and markers (another writer got there first).
    pub conflicts: Counter,
    /// Upserts and deletes without a usable key, by reason: changed nothing.
    pub unkeyed: Family<UnkeyedLabels, Counter>,
    /// Collection events whose action changes nothing (neither upsert, delete nor truncate).
    pub ignored: Counter,
    /// Collection events not yet read, as of the last one read.
    pub lag: Gauge,
    /// Collections whose marker was behind the stream's first sequence: events were removed
    /// by retention before the writer applied them.
    pub behind_retention: Counter,
    /// Collections purged because their marker named another stream epoch (or none).
    pub epoch_purges: Counter,
    /// Times the writer started over after an error (NATS away, stream recreated).
    pub restarts: Counter,
}

impl StateMetrics {
    /// Registers every metric in `r` under `state_*`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "state_events",
            "Collection events read by the state writer",
            self.events.clone(),
        );
        r.register(
            "state_applied",
            "Collection events whose change is stored in herald_state",
            self.applied.clone(),
        );
        r.register(
            "state_skipped_stale",
            "Collection events whose row already held a later sequence",
            self.skipped_stale.clone(),
        );
        r.register(
            "state_conflicts",
            "Compare-and-set conflicts on collection rows and markers",
            self.conflicts.clone(),
        );
        r.register(
            "state_unkeyed",
            "Collection upserts and deletes without a usable key, by reason",
            self.unkeyed.clone(),
        );
        r.register(
            "state_ignored",
            "Collection events whose action changes no row",
            self.ignored.clone(),
        );
        r.register(
            "state_lag_events",
            "Collection events not yet read by the state writer",
            self.lag.clone(),
        );
        r.register(
            "state_behind_retention",
            "Collections whose marker was behind the stream's first sequence",
            self.behind_retention.clone(),
        );
        r.register(
            "state_epoch_purges",
            "Collections purged because the stream epoch changed",
            self.epoch_purges.clone(),
        );
        r.register(
            "state_restarts",
            "Times the state writer started over after an error",
            self.restarts.clone(),
        );
    }

    /// Counts `n` unkeyed events of `reason`.
    pub fn count_unkeyed(&self, reason: &str, n: u64) {
        self.unkeyed
            .get_or_create(&UnkeyedLabels {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }
}
