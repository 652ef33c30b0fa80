//! Ingest integration tests, against a real nats-server and real HTTP.
#![allow(clippy::unwrap_used)]

mod helpers;
mod migration;

mod audience;
mod cdc;
mod clock_skew;
mod dedup;
mod failures;
mod frozen;
mod names;
mod properties;
mod publish_api;
mod shutdown;
mod signatures;
mod startup;
mod store_full;
