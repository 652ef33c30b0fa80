//! The Herald CLI.
//!
//! | module | command |
//! |---|---|
//! | [`up`] | `herald up`: nats-server plus every service in one process |
//! | [`nats_server`] | spawning the local nats-server |
//! | [`dev`] | the demo tenant, sources and keys used when nothing is configured |

pub mod dev;
pub mod nats_server;
pub mod up;
