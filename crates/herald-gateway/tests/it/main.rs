//! Gateway integration tests: a real nats-server, the gateway in-process, real HTTP, SSE and
//! WebSocket clients.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too; a panic is a test failure

mod accept;
mod audience;
mod auth;
mod bounds;
mod clients;
mod clock_skew;
mod collections;
mod collections_property;
mod collections_restart;
mod collections_stream;
mod filters;
mod frozen;
mod helpers;
mod history;
mod isolation;
mod jwks;
mod limits;
mod opening;
mod ops;
mod origin;
mod outage;
mod poll;
mod presence;
mod public;
mod resume;
mod scenario;
mod server;
mod shutdown;
mod sse;
mod stats;
mod ws;
