//! The gateway's Prometheus metrics, registered in a registry of its own.

use std::fmt::Write as _;
use std::sync::Arc;

use herald_core::service::metrics_registry;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A delivery transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Server-sent events (`/v1/stream`).
    Sse,
    /// WebSocket (`/v1/ws`).
    Ws,
    /// Long-poll (`/v1/poll`).
    Poll,
}

impl EncodeLabelValue for Transport {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Sse => "sse",
            Self::Ws => "ws",
            Self::Poll => "poll",
        })
    }
}

/// Labels by transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TransportLabels {
    /// The transport.
    pub transport: Transport,
}

/// Where a resume was served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeSource {
    /// The in-memory ring buffer.
    Memory,
    /// A replay from JetStream.
    Jetstream,
}

impl EncodeLabelValue for ResumeSource {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Self::Memory => "memory",
            Self::Jetstream => "jetstream",
        })
    }
}

/// Labels by resume source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResumeLabels {
    /// The source.
    pub source: ResumeSource,
}

/// Every gateway metric.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open connections by transport.
    pub connections: Family<TransportLabels, Gauge>,
    /// Events written to clients, by transport.
    pub delivered: Family<TransportLabels, Counter>,
    /// Resumes by source.
    pub resumes: Family<ResumeLabels, Counter>,
    /// `reset` messages sent.
    pub resets: Counter,
    /// Messages read from JetStream by replays (only the subscribed topics' events).
    pub replay_messages: Counter,
    /// Clients disconnected with `overflow`.
    pub overflows: Counter,
    /// Connections refused by a limit (429 or 503).
    pub rejected: Counter,
    /// Events in the stream not yet seen by the tail.
    pub lag: Gauge,
    /// Events received by the tail.
    pub tailed: Counter,
    /// Stats document versions received by the stats watch.
    pub stats_documents: Counter,
    /// Connections closed for sending no whole request head within `head_timeout`.
    pub head_timeouts: Counter,
    /// Connections closed because a write made no progress for `write_timeout`.
    pub write_timeouts: Counter,
    /// WebSocket connections closed for 2.5 heartbeats of silence (no pong).
    pub silent_peers: Counter,
    /// Connections refused at accept because a connection cap was full, by cap.
    pub refused_connections: Family<herald_core::serve::RefusedLabels, Counter>,
    /// Rows the collection mirror holds, over every collection.
    pub mirror_rows: Gauge,
    /// Snapshots served (`/v1/snapshot` pages and stream snapshots).
    pub snapshots: Counter,
}

impl Metrics {
    /// The metrics and a registry of their own that holds them (prefix `herald_gateway`).
    pub fn new() -> (Self, Arc<Registry>) {
        let m = Self::default();
        let mut r = metrics_registry("herald_gateway", None);
        r.register(
            "connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "events_delivered",
            "Events written to clients",
            m.delivered.clone(),
        );
        r.register("resumes", "Resumes served, by source", m.resumes.clone());
        r.register("resets", "Reset messages sent to clients", m.resets.clone());
        r.register(
            "replay_messages",
            "Messages read from JetStream by replays",
            m.replay_messages.clone(),
        );
        r.register(
            "overflows",
            "Clients disconnected for being too slow",
            m.overflows.clone(),
        );
        r.register(
            "rejected_connections",
            "Connections refused by a limit",
            m.rejected.clone(),
        );
        r.register(
            "mirror_rows",
            "Rows the collection mirror holds",
            m.mirror_rows.clone(),
        );
        r.register(
            "snapshot_pages",
            "Snapshot pages served by GET /v1/snapshot and long-poll snapshots",
            m.snapshots.clone(),
        );
        r.register(
            "lag_events",
            "Events in the stream the tail has not seen yet",
            m.lag.clone(),
        );
        r.register(
            "tailed_events",
            "Events received from JetStream by the tail",
            m.tailed.clone(),
        );
        r.register(
            "stats_documents",
            "Stats document versions received from herald_stats",
            m.stats_documents.clone(),
        );
        r.register(
            "head_timeouts",
            "Connections closed for sending no whole request head in time",
            m.head_timeouts.clone(),
        );
        r.register(
            "write_timeouts",
            "Connections closed because a write made no progress in time",
            m.write_timeouts.clone(),
        );
        r.register(
            "silent_peers",
            "WebSocket connections closed after 2.5 heartbeats without a frame or pong",
            m.silent_peers.clone(),
        );
        r.register(
            "refused_connections",
            "Connections refused at accept because a connection cap was full, by cap",
            m.refused_connections.clone(),
        );
        (m, Arc::new(r))
    }

    /// Counts one open connection of `transport` until the guard drops.
    pub fn connection(self: &Arc<Self>, transport: Transport) -> ConnectionGuard {
        self.connections
            .get_or_create(&TransportLabels { transport })
            .inc();
        ConnectionGuard {
            metrics: Arc::clone(self),
            transport,
        }
    }

    /// Counts `n` events delivered over `transport`.
    pub fn delivered(&self, transport: Transport, n: u64) {
        self.delivered
            .get_or_create(&TransportLabels { transport })
            .inc_by(n);
    }

    /// Counts a resume from `source`.
    pub fn resumed(&self, source: ResumeSource) {
        self.resumes.get_or_create(&ResumeLabels { source }).inc();
    }
}

/// Decrements the connection gauge on drop.
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .connections
            .get_or_create(&TransportLabels {
                transport: self.transport,
            })
            .dec();
    }
}
