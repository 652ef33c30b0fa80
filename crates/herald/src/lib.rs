//! The Herald CLI.
//!
//! | module | command |
//! |---|---|
//! | [`cli`] | the command line: parses and dispatches to the modules below |
//! | [`up`] | `herald up`: nats-server plus every service in one process |
//! | [`demo`] | `herald up --demo`: Sequin-style traffic for a fake `leads` table |
//! | [`token`] | `herald token`: mint a gateway JWT |
//! | [`send`] | `herald send`: sign a payload with any scheme and post it |
//! | [`tail`] | `herald tail`: follow a tenant's events from a cursor (from NATS) |
//! | [`dlq`] | `herald dlq list|replay`: the notifier's dead letters |
//! | [`provision`] | `herald provision`: create or update the streams and buckets |
//! | [`nats_args`] | `--config`: where those three find NATS |
//! | [`probe`] | `herald probe`: the container healthcheck |
//! | [`dev`] | the demo tenant, sources and keys used when nothing is configured |

pub mod cli;
pub mod demo;
pub mod dev;
pub mod dlq;
pub mod nats_args;
pub mod probe;
pub mod provision;
pub mod send;
pub mod tail;
pub mod token;
pub mod up;
