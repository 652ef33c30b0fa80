//! Gateway integration tests: a real nats-server, the gateway in-process, real HTTP, SSE and
//! WebSocket clients.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too; a panic is a test failure

mod auth;
mod helpers;
mod isolation;
mod limits;
mod ops;
mod outage;
mod poll;
mod resume;
mod sse;
mod ws;
