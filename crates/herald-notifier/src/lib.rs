//! Herald's notifier: routed, rate-limited, retried Telegram and Slack notifications from
//! JetStream, with duplicate-free delivery and a dead-letter queue.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | [`Config`]: listener, rules file, consumer settings, tokens, rate limits, digests |
//! | [`rules`] | the rules file: targets, rules (tenant/topic/action + conditions), routing, filter subjects |
//! | [`template`] | minijinja templates escaping per markup (MarkdownV2, HTML, mrkdwn), clean truncation |
//! | [`targets`] | sending to Telegram (teloxide) and Slack (webhooks, `chat.postMessage`); error classes |
//! | [`limiter`] | sliding-window rate limits on tokio's clock |
//! | [`worker`] | one worker per target: limits, digests, delivery records, outcomes |
//! | [`consumer`] | the durable consumers (events, re-drives), recreated when the rules' filters change |
//! | [`handler`] | what happens to each event: route, skip delivered, queue, ack / nak with delay / DLQ |
//! | [`dedup`] | KV `herald_notified`: (event, target) pairs already delivered |
//! | [`dlq`] | dead letters: publish, [`dlq::list`], [`dlq::replay`] |
//! | [`metrics`] | Prometheus counters by target kind |
//! | [`app`] | [`App`]: build, run until the shutdown token fires, reload on SIGHUP |
//!
//! Delivery contract: an event is acknowledged only after every target it routes to has
//! accepted it (each recorded in `herald_notified` first) or has been dead-lettered with the
//! reason. Nothing is dropped silently.

pub mod app;
pub mod config;
pub mod consumer;
pub mod dedup;
pub mod dlq;
pub mod handler;
pub mod limiter;
pub mod metrics;
pub mod rules;
pub mod targets;
pub mod template;
pub mod worker;

pub use app::{App, Error, Reloader};
pub use config::Config;
