//! The state writer: every collection (`[state.collections]`, `proto/state.md`) kept as rows
//! in the KV bucket `herald_state`, exactly, by any number of writers.
//!
//! Each writer reads the collection topics from `HERALD_EVENTS` with an ordered consumer of
//! its own (no durable consumer: nothing is acknowledged), starting after the lowest marker's
//! `applied`. Per batch it keeps the last change of each row key ([`plan`]), then writes each
//! row with compare-and-set on its KV revision, only if the event's sequence is above the
//! stored row's ([`store::apply_row`]); a delete writes a tombstone, a truncate raises the
//! marker's `cleared`. The markers' `applied` is raised (never lowered) once the rows are
//! written. A crash, a restart or a second writer therefore only repeats writes that the
//! sequence check turns into no-ops.
//!
//! | module | what it holds |
//! |---|---|
//! | [`plan`] | a batch of events reduced to the rows and truncates to store |
//! | [`store`] | rows and markers in `herald_state`: CAS writes, purge, [`store::load`] |
//! | [`writer`] | [`StateWriter`]: attach, consume, write, raise markers, start over |
//! | [`metrics`] | `herald_stats_state_*` |

pub mod metrics;
pub mod plan;
pub mod store;
pub mod writer;

pub use metrics::StateMetrics;
pub use writer::{StateWriter, WriterError};
