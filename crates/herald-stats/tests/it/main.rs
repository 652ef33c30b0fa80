//! Stats-aggregator integration tests, against a real nats-server, real HTTP, and (for
//! crashes) the real binary.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too; a panic is a test failure

mod helpers;

mod counting;
mod exactly_once;
mod frozen;
mod ops;
mod property;
mod rebuild;
mod shutdown;
mod state;
