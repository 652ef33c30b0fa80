//! Dev-only helpers for Herald's tests.
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
//! | [`process`] | free ports and signals for tests that run the real binaries |
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

pub use nats::NatsServer;

/// The workspace root (where `Cargo.toml` and `.venv/` live).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}
