//! Herald ingest: receives webhooks, CDC changes and events from a team's own services,
//! verifies every request, and answers 2xx only once JetStream has acknowledged every event.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | sources (tenant, format, verification, secrets), API keys, limits |
//! | [`verify`] | Standard Webhooks / HMAC-SHA256 / bearer verification → [`verify::Verified`] |
//! | [`formats`] | Sequin, Debezium, CloudEvents and plain JSON → [`herald_core::event::Event`]s |
//! | [`audience`] | private events: `to` / a source's audience path → the `Herald-To` header |
//! | [`publish`] | pipelined publishes with `Nats-Msg-Id`, then every PubAck |
//! | [`full`] | out of space: the store-full latch and ingest's `/readyz` |
//! | [`legacy`] | honouring the old `<tenant>/<id>` dedup key during a migration window |
//! | [`routes`] | `POST /v1/webhooks/{source}`, `POST /v1/events` |
//! | [`error`] | [`error::ApiError`]: one status and code per failure, JSON bodies |
//! | [`metrics`] | Prometheus counters and the publish-latency histogram |
//! | [`app`] | [`App`]: build, then run until the shutdown token fires |

pub mod app;
pub mod audience;
pub mod config;
pub mod error;
pub mod formats;
pub mod full;
pub mod legacy;
pub mod metrics;
pub mod publish;
pub mod routes;
pub mod verify;

pub use app::{App, Error};
pub use config::Config;
