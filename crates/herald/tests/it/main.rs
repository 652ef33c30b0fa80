//! `herald up` end to end: the real binary, a real nats-server, the README's own examples.
#![allow(clippy::unwrap_used)]

mod audience;
mod cli;
mod cluster;
mod deploy;
mod deploy_nats;
mod dev_credentials;
mod docs;
mod example_config;
mod nats_auth;
mod partition;
mod presence;
mod services;
mod shutdown;
mod slowloris;
mod sse;
mod up;
