//! Herald's one harness: how `herald up`, the tests, chaos, bench and the browser e2e start
//! nats-server and the real service binaries.
//!
//! | module | what it holds |
//! |---|---|
//! | [`nats`] | [`NatsServer`]: the one nats-server launcher (free or fixed port, store, `-c` configs, identities, cluster routes; ready from its log; stop, kill, restart) |
//! | [`identities`] | [`Identities`]: random passwords for the identities of `deploy/nats/auth.conf` |
//! | [`service`] | [`ServiceProcess`]: the one real-binary spawner (env, log file, signals, `/readyz`) |
//! | [`stack`] | [`Stack`]: nats-server and any services, each killable and restartable |
//! | [`process`] | signals, free ports, and "SIGTERM, then kill after a grace" |
//! | [`wait`] | the one wait loop: a condition under a deadline |
//!
//! The `herald-launch` binary starts a [`Stack`] from flags and takes line commands on stdin
//! (the browser e2e drives it).

pub mod identities;
pub mod nats;
pub mod process;
pub mod service;
pub mod stack;
pub mod wait;

pub use identities::Identities;
pub use nats::{NatsError, NatsOptions, NatsServer};
pub use process::Signal;
pub use service::{ServiceProcess, ServiceSpec, SpawnError};
pub use stack::{Component, Stack, StackError, StackOptions};
