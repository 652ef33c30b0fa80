//! The notifier's integration tests: a real nats-server, real HTTP, fake Telegram and Slack.
#![allow(clippy::unwrap_used)]

mod consumer;
mod crash;
mod delivery;
mod dlq;
mod frozen;
mod helpers;
mod load;
mod ops;
mod redaction;
mod reload;
mod retry;
mod rules_text;
mod shutdown;
mod signals;
