//! The durable JetStream consumers.
//!
//! Two durable pull consumers share one [`Handler`]: `notifier` on `HERALD_EVENTS` (filter
//! subjects from the rules, recreated when a reload changes them) and `notifier-redrive` on
//! `HERALD_DLQ` (re-driven dead letters, for one target each).
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use herald_core::retry::{Backoff, Policy};
use herald_core::streams::{DLQ_STREAM, EVENTS_STREAM};
use herald_core::subject;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::dlq;
use crate::handler::Handler;
use crate::rules::Rules;

/// Which consumer a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `HERALD_EVENTS`: route through every rule.
    Events,
    /// A re-driven dead letter: only the target (and rule) in its headers.
    Redrive,
}

/// The rules in force, swapped whole on reload.
pub type SharedRules = Arc<RwLock<Arc<Rules>>>;

/// The consumer for `source`, created or updated to `filters`.
async fn ensure(
    js: &jetstream::Context,
    cfg: &Config,
    source: Source,
    filters: Vec<String>,
) -> Result<consumer::PullConsumer, async_nats::Error> {
    let (stream, name, deliver_policy) = match source {
        // A new notifier does not notify about the stream's history.
        Source::Events => (
            EVENTS_STREAM,
            cfg.consumer.clone(),
            consumer::DeliverPolicy::New,
        ),
        Source::Redrive => (
            DLQ_STREAM,
            format!("{}-redrive", cfg.consumer),
            consumer::DeliverPolicy::All,
        ),
    };
    let stream = js.get_stream_no_info(stream).await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name),
            description: Some("Herald notifier".into()),
            filter_subjects: filters,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            max_deliver: cfg.max_deliver,
            max_ack_pending: i64::try_from(cfg.max_in_flight).unwrap_or(i64::MAX),
            deliver_policy,
            ..Default::default()
        })
        .await?;
    Ok(consumer)
}

/// The redrive consumer's filter.
pub fn redrive_filter() -> String {
    format!("{}.{}.>", subject::DLQ_PREFIX, dlq::REDRIVE_SERVICE)
}

/// Pulls from `source`'s consumer and spawns a handler per message until `shutdown`;
/// recreates the consumer when `filters` change or the pull fails. Sets `ready` once the
/// consumer exists (or there is nothing to consume).
pub async fn run(
    handler: Arc<Handler>,
    source: Source,
    mut filters: watch::Receiver<Vec<String>>,
    ready: watch::Sender<bool>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(Policy::doubling(
        Duration::from_millis(100),
        Duration::from_secs(5),
    ));
    loop {
        let subjects = filters.borrow_and_update().clone();
        if subjects.is_empty() {
            let _ = ready.send(true);
            tracing::info!(
                ?source,
                "no rules: nothing to consume; idling until the rules change"
            );
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = filters.changed() => if changed.is_err() { return },
            }
            continue;
        }
        let consumer = match ensure(&handler.js, &handler.cfg, source, subjects.clone()).await {
            Ok(c) => c,
            Err(err) => {
                let what = format!("cannot create the {source:?} consumer");
                if !backoff.wait(&shutdown, &what, &*err).await {
                    return;
                }
                continue;
            }
        };
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(err) => {
                let what = format!("cannot pull from the {source:?} consumer");
                if !backoff.wait(&shutdown, &what, &err).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        let _ = ready.send(true);
        tracing::info!(?source, filters = ?subjects, "consuming");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = filters.changed() => {
                    if changed.is_err() { return }
                    break;
                }
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        let handler = handler.clone();
                        tracker.spawn(async move { handler.handle(msg, source).await });
                    }
                    Some(Err(err)) => {
                        tracing::warn!(?source, %err, "pull failed; re-creating the consumer");
                        break;
                    }
                    None => break,
                },
            }
        }
    }
}
