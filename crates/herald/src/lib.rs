//! The Herald CLI.
//!
//! | module | command |
//! |---|---|
//! | [`up`] | `herald up`: nats-server plus every service in one process |
//! | [`demo`] | `herald up --demo`: Sequin-style traffic for a fake `leads` table |
//! | [`token`] | `herald token`: mint a gateway JWT |
//! | [`send`] | `herald send`: sign a payload with any scheme and post it |
//! | [`ops`] | `herald tail`, `herald dlq list|replay`, `herald provision` |
//! | [`probe`] | `herald probe`: the container healthcheck |
//! | [`dev`] | the demo tenant, sources and keys used when nothing is configured |

pub mod demo;
pub mod dev;
pub mod ops;
pub mod probe;
pub mod send;
pub mod token;
pub mod up;
