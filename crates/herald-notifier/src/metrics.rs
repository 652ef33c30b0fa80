//! Prometheus counters, labelled by target kind (`telegram`, `slack`).

use std::sync::Arc;

use herald_core::service::metrics_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `telegram` or `slack`.
    pub kind: &'static str,
}

/// The `result` label of rules reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// The notifier's metrics. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Messages the platform accepted (a digest counts once).
    pub sent: Family<KindLabel, Counter>,
    /// Events delivered (a digest of 5 counts 5).
    pub events_delivered: Family<KindLabel, Counter>,
    /// Send attempts that failed (any reason).
    pub failed: Family<KindLabel, Counter>,
    /// (event, target) pairs put back for a later retry (429, 5xx, network, quiet hours).
    pub retried: Family<KindLabel, Counter>,
    /// (event, target) pairs dead-lettered.
    pub dead_lettered: Family<KindLabel, Counter>,
    /// Digest messages sent.
    pub digests: Family<KindLabel, Counter>,
    /// (event, target) pairs skipped because they were already delivered.
    pub duplicates_skipped: Family<KindLabel, Counter>,
    /// Rules reloads.
    pub reloads: Family<ResultLabel, Counter>,
    /// Rules in force.
    pub rules: Gauge,
    /// The HTTP server's header timeouts and refused connections.
    pub server: herald_core::serve::ServerMetrics,
}

impl Metrics {
    /// The metrics and a registry of their own that holds them.
    pub fn new() -> (Self, Arc<Registry>) {
        let m = Self::default();
        let mut r = metrics_registry("herald_notifier", Some(&m.server));
        r.register("sent", "Messages the platform accepted", m.sent.clone());
        r.register(
            "events_delivered",
            "Events delivered (a digest counts each event)",
            m.events_delivered.clone(),
        );
        r.register("failed", "Send attempts that failed", m.failed.clone());
        r.register(
            "retried",
            "Event deliveries put back for a retry",
            m.retried.clone(),
        );
        r.register(
            "dead_lettered",
            "Event deliveries dead-lettered",
            m.dead_lettered.clone(),
        );
        r.register("digests", "Digest messages sent", m.digests.clone());
        r.register(
            "duplicates_skipped",
            "Redelivered events skipped for targets that already have them",
            m.duplicates_skipped.clone(),
        );
        r.register("reloads", "Rules reloads", m.reloads.clone());
        r.register("rules", "Rules in force", m.rules.clone());
        (m, Arc::new(r))
    }

    /// Shorthand for a kind's counter in `family`.
    pub fn inc(family: &Family<KindLabel, Counter>, kind: &'static str) {
        family.get_or_create(&KindLabel { kind }).inc();
    }
}
