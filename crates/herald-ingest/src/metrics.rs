//! Prometheus metrics of ingest, in a registry of its own.

use std::sync::Arc;
use std::time::Duration;

use herald_core::service::metrics_registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    source: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// Ingest's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    events: Family<SourceLabels, Counter>,
    duplicates: Family<SourceLabels, Counter>,
    publish_seconds: Histogram,
    /// The HTTP server's header timeouts and refused connections.
    pub server: herald_core::serve::ServerMetrics,
}

/// The label used for requests to a source that is not configured (bounded cardinality).
pub const UNKNOWN_SOURCE: &str = "_unknown";
/// The label used for the publish API.
pub const PUBLISH_API: &str = "_publish_api";

impl Metrics {
    /// Creates the metrics and registers them in a new registry.
    pub fn new() -> (Self, Arc<Registry>) {
        let metrics = Self {
            requests: Family::default(),
            events: Family::default(),
            duplicates: Family::default(),
            publish_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            server: herald_core::serve::ServerMetrics::default(),
        };
        let mut registry = metrics_registry("herald_ingest", Some(&metrics.server));
        registry.register(
            "requests",
            "Requests by source and HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "events_stored",
            "Events acknowledged by JetStream (including duplicates)",
            metrics.events.clone(),
        );
        registry.register(
            "duplicates",
            "Events JetStream recognised as retries (stored once)",
            metrics.duplicates.clone(),
        );
        registry.register(
            "publish_seconds",
            "Time from the first publish to the last PubAck of a request",
            metrics.publish_seconds.clone(),
        );
        (metrics, Arc::new(registry))
    }

    /// The counters of one source (or [`PUBLISH_API`]), looked up once so that the request
    /// path only increments them.
    pub fn source(&self, source: &str) -> SourceMetrics {
        let labels = SourceLabels {
            source: source.to_owned(),
        };
        SourceMetrics {
            ok: self
                .requests
                .get_or_create(&RequestLabels {
                    source: source.to_owned(),
                    status: 200,
                })
                .clone(),
            events: self.events.get_or_create(&labels).clone(),
            duplicates: self.duplicates.get_or_create(&labels).clone(),
        }
    }

    /// Counts a finished request.
    pub fn request(&self, source: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                source: source.to_owned(),
                status,
            })
            .inc();
    }

    /// Records how long a request's publishes took.
    pub fn observe_publish(&self, elapsed: Duration) {
        self.publish_seconds.observe(elapsed.as_secs_f64());
    }
}

/// One source's counters: handles into [`Metrics`]' families, cheap to clone.
#[derive(Clone, Debug)]
pub struct SourceMetrics {
    ok: Counter,
    events: Counter,
    duplicates: Counter,
}

impl SourceMetrics {
    /// Counts a request answered 200.
    pub fn ok(&self) {
        self.ok.inc();
    }

    /// Counts an acknowledged event.
    pub fn event(&self, duplicate: bool) {
        self.events.inc();
        if duplicate {
            self.duplicates.inc();
        }
    }
}
