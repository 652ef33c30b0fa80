//! Herald's benchmarks: a load generator on 127.0.0.1 against real services and a real
//! nats-server, bounded in count and time.
//!
//! | module | scenario |
//! |---|---|
//! | [`ingest`] | D: signed webhooks/s at N concurrent requests vs raw JetStream publishes/s |
//! | [`report`] | machine-readable JSON plus a short table under `bench/results/` |

pub mod ingest;
pub mod report;
