//! Prometheus metrics of the aggregator, in a registry of its own.

use std::sync::Arc;
use std::time::Duration;

use herald_core::service::metrics_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The aggregator's metrics; cheap to clone (every field shares its value).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Messages received from the durable consumer (including redeliveries).
    pub received: Counter,
    /// Events counted into a document whose write succeeded.
    pub applied: Counter,
    /// Of `applied`: events read from the stream to fill a gap (delivered to another
    /// instance, or awaiting redelivery) rather than received from the consumer.
    pub gap_filled: Counter,
    /// Received events already counted (redeliveries, or applied by another instance).
    pub skipped: Counter,
    /// Applied events whose payload was not an event envelope (counted as `_missing`).
    pub malformed: Counter,
    /// Messages on subjects that name no valid tenant and topic (acknowledged, not counted).
    pub foreign: Counter,
    /// Documents written.
    pub writes: Counter,
    /// Compare-and-set conflicts (another writer got there first; re-read and re-applied).
    pub cas_conflicts: Counter,
    /// Document writes that failed (their events are redelivered later).
    pub failed_writes: Counter,
    /// Events in `HERALD_EVENTS` not yet delivered to the consumer, as of the last batch.
    pub lag: Gauge,
    /// Time to fold and write one batch.
    pub batch_seconds: Histogram,
    /// The HTTP server's header timeouts and refused connections.
    pub server: herald_core::serve::ServerMetrics,
    /// The state writer's metrics (`herald_stats_state_*`).
    pub state: crate::state::StateMetrics,
}

impl Metrics {
    /// Creates the metrics and registers them in a new registry (prefix `herald_stats`).
    pub fn new() -> (Self, Arc<Registry>) {
        let m = Self {
            received: Counter::default(),
            applied: Counter::default(),
            gap_filled: Counter::default(),
            skipped: Counter::default(),
            malformed: Counter::default(),
            foreign: Counter::default(),
            writes: Counter::default(),
            cas_conflicts: Counter::default(),
            failed_writes: Counter::default(),
            lag: Gauge::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            server: herald_core::serve::ServerMetrics::default(),
            state: crate::state::StateMetrics::default(),
        };
        let mut r = metrics_registry("herald_stats", Some(&m.server));
        r.register(
            "messages_received",
            "Messages received from the durable consumer",
            m.received.clone(),
        );
        r.register(
            "events_applied",
            "Events counted into a written document",
            m.applied.clone(),
        );
        r.register(
            "events_gap_filled",
            "Applied events read from the stream to close a gap",
            m.gap_filled.clone(),
        );
        r.register(
            "events_skipped",
            "Received events that were already counted",
            m.skipped.clone(),
        );
        r.register(
            "events_malformed",
            "Applied events whose payload was not an envelope",
            m.malformed.clone(),
        );
        r.register(
            "messages_foreign",
            "Messages on subjects without a valid tenant and topic",
            m.foreign.clone(),
        );
        r.register("writes", "Stats documents written", m.writes.clone());
        r.register(
            "cas_conflicts",
            "Compare-and-set conflicts on stats documents",
            m.cas_conflicts.clone(),
        );
        r.register(
            "failed_writes",
            "Document writes that failed; their events are redelivered",
            m.failed_writes.clone(),
        );
        r.register(
            "lag_events",
            "Events not yet delivered to the stats consumer",
            m.lag.clone(),
        );
        r.register(
            "batch_seconds",
            "Time to fold and write one batch",
            m.batch_seconds.clone(),
        );
        m.state.register(&mut r);
        (m, Arc::new(r))
    }

    /// Records how long a batch took.
    pub fn observe_batch(&self, elapsed: Duration) {
        self.batch_seconds.observe(elapsed.as_secs_f64());
    }
}
