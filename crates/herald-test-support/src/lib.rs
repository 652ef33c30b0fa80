//! Dev-only helpers for Herald's tests. nats-server, the real binaries and whole stacks are
//! started by [`herald_launch`] (the one harness, also used by `herald up`, chaos, bench and
//! the browser e2e); this crate wraps it so a test fails with a clear message.
//!
//! | module | what it holds |
//! |---|---|
//! | [`cluster`] | [`cluster::NatsCluster`]: a real JetStream cluster of `nats-server` nodes on loopback, whose nodes a test can kill and restart |
//! | [`nats`] | [`NatsServer`]: a real `nats-server -js` on a free port with a temp store, that a test can stop, kill and restart |
//! | [`freeze`] | [`freeze::Frozen`]: a nats-server stopped with SIGSTOP (sockets open, silent) until thawed |
//! | [`fixtures`] | the payloads and signature vectors from `fixtures/` |
//! | [`webhook`] | building signed webhook requests for every scheme ingest accepts |
//! | [`net`] | loopback listeners on free ports |
//! | [`proxy`] | [`proxy::Proxy`]: a TCP proxy that can delay, drop, half-open or blackhole connections |
//! | [`process`] | the real-binary spawner for tests, free ports and signals |
//! | [`wait`] | waiting for a condition under a deadline |
//! | [`service`] | the config and context to start any service on 127.0.0.1:0 |
//! | [`fake`] | fake Telegram Bot API and Slack servers: real HTTP, scriptable, recording |
//!
//! Never mock NATS: every test that touches JetStream starts a [`NatsServer`].

pub mod cluster;
pub mod fake;
pub mod fixtures;
pub mod freeze;
pub mod nats;
pub mod net;
pub mod process;
pub mod proxy;
pub mod service;
pub mod wait;
pub mod webhook;

pub use herald_launch::nats::workspace_root;
pub use herald_launch::{Component, Stack, StackOptions};
pub use nats::NatsServer;
