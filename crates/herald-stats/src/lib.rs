//! Herald stats-aggregator: exact live counters per tenant and topic, computed from
//! `HERALD_EVENTS` and kept in the JetStream KV bucket `herald_stats` under
//! `<tenant>.<topic>`.
//!
//! Exactly once, without a transaction spanning stream and bucket: each document stores the
//! stream sequence it has counted up to (`last_seq`) and is written with compare-and-set on
//! its KV revision; messages are acknowledged only after that write. A redelivered event at
//! or below `last_seq` is skipped, and before an event is applied every earlier event of its
//! topic is made sure to be counted (gaps are read from the stream), so neither a crash
//! mid-batch nor several instances sharing the durable consumer can lose or double an event.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`Config`]: listener, consumer, group-by fields, batching |
//! | [`doc`] | [`StatsDoc`]: the document (`proto/stats.schema.json`), rate windows |
//! | [`fold`] | the counting rules: one event into one document |
//! | [`coverage`] | which stream sequences a batch provably holds in full |
//! | [`apply`] | catching a document up in stream order, compare-and-set writes |
//! | [`consumer`] | the durable consumer loop: batch, fold, write, ack |
//! | [`store`] | [`store::read`], [`store::write`], [`store::watch`]: for the gateway too |
//! | [`rebuild`] | recounting documents from the stream while the aggregator runs |
//! | [`metrics`] | Prometheus counters: applied, skipped, conflicts, lag |
//! | [`state`] | the state writer: collections as rows in the KV bucket `herald_state` |
//! | [`app`] | [`App`]: build, then run until the shutdown token fires; [`StatsCommand`] (`rebuild`) |

pub mod app;
pub mod apply;
pub mod config;
pub mod consumer;
pub mod coverage;
pub mod doc;
pub mod fold;
pub mod metrics;
pub mod rebuild;
pub mod state;
pub mod store;

pub use app::{App, Error, StatsCommand};
pub use config::Config;
pub use doc::StatsDoc;
pub use store::{Snapshot, read, watch};
