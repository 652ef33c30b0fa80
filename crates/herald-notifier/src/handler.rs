//! What happens to each event (or re-driven dead letter): route it, skip targets that
//! already have it, hold targets in quiet hours, queue one job per remaining target, keep the
//! message alive with progress acks while the jobs wait for rate limits, then:
//! - every target delivered (or dead-lettered) → ack;
//! - some target must retry → nak with the platform's `retry_after` or the backoff
//!   (targets already delivered are skipped on redelivery);
//! - the last allowed delivery failed → dead-letter those targets with the reason, then ack.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use herald_core::event::Event;
use herald_core::names::TenantId;
use herald_core::subject;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::consumer::{SharedRules, Source};
use crate::dedup::Dedup;
use crate::dlq::{self, NewDeadLetter};
use crate::metrics::Metrics;
use crate::rules::{Delivery, Rules};
use crate::worker::{Dispatcher, Job, Outcome};

/// What the handler needs.
pub struct Handler {
    /// JetStream (for dead letters).
    pub js: jetstream::Context,
    /// The rules in force.
    pub rules: SharedRules,
    /// The per-target workers.
    pub dispatcher: Dispatcher,
    /// Delivery records.
    pub dedup: Dedup,
    /// Counters.
    pub metrics: Metrics,
    /// Settings.
    pub cfg: Arc<Config>,
}

struct Failure {
    delivery: Option<Delivery>,
    reason: String,
}

/// Where a message came from: what its dead letters say.
struct Origin {
    /// The stream, subject and sequence of the event (a re-drive carries them in headers).
    stream: String,
    subject: String,
    sequence: u64,
    /// The stream and sequence of the message consumed (for a re-drive, the re-drive).
    consumed: (String, u64),
    deliveries: i64,
    payload: bytes::Bytes,
}

/// What became of an event's targets so far.
#[derive(Default)]
struct Settlement {
    pending: Vec<(Delivery, oneshot::Receiver<Outcome>)>,
    retries: Vec<Failure>,
    dead: Vec<Failure>,
    retry_after: Option<Duration>,
}

impl Settlement {
    fn retry(&mut self, delivery: Delivery, after: Option<Duration>, reason: String) {
        self.retry_after = self.retry_after.max(after);
        self.retries.push(Failure {
            delivery: Some(delivery),
            reason,
        });
    }

    fn dead(&mut self, delivery: Option<Delivery>, reason: String) {
        self.dead.push(Failure { delivery, reason });
    }
}

impl Origin {
    /// Where `msg` (stream `stream`, sequence `seq`, delivered `delivered` times) came from.
    fn of(
        msg: &async_nats::Message,
        source: Source,
        stream: String,
        seq: u64,
        delivered: i64,
    ) -> Self {
        match source {
            Source::Events => Origin {
                stream: stream.clone(),
                subject: msg.subject.to_string(),
                sequence: seq,
                consumed: (stream, seq),
                deliveries: delivered,
                payload: msg.payload.clone(),
            },
            Source::Redrive => Origin {
                stream: header(msg, dlq::header::STREAM).unwrap_or_else(|| stream.clone()),
                subject: header(msg, dlq::header::SUBJECT)
                    .unwrap_or_else(|| msg.subject.to_string()),
                sequence: header(msg, dlq::header::SEQUENCE)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(seq),
                consumed: (stream, seq),
                deliveries: delivered,
                payload: msg.payload.clone(),
            },
        }
    }
}

/// A header's value, if the message has it.
fn header(msg: &async_nats::Message, name: &str) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// The targets the event goes to: a re-drive's one target (dead-lettered again when its rule
/// no longer sends there), or every matching rule's.
fn deliveries(
    rules: &Rules,
    msg: &async_nats::Message,
    source: Source,
    event: &Event,
    settlement: &mut Settlement,
) -> Vec<Delivery> {
    match (
        source,
        header(msg, dlq::header::RULE),
        header(msg, dlq::header::TARGET),
    ) {
        (Source::Redrive, Some(rule), Some(target)) => match rules.delivery(&rule, &target) {
            Some(d) => vec![d],
            None => {
                let reason =
                    format!("re-driven, but rule {rule:?} no longer sends to target {target:?}");
                settlement.dead(None, reason);
                vec![]
            }
        },
        // New events, and re-driven events that were unusable as a whole: every rule.
        _ => rules.route(event),
    }
}

impl Handler {
    fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Handles one message to the end: ack, nak with a delay, or dead letters then ack.
    #[tracing::instrument(skip_all, fields(seq, tenant, topic, action, event_id))]
    pub async fn handle(&self, msg: jetstream::Message, source: Source) {
        let (stream, seq, delivered) = match msg.info() {
            Ok(i) => (i.stream.to_owned(), i.stream_sequence, i.delivered),
            Err(err) => {
                tracing::warn!(%err, "not a JetStream message; ignored");
                return;
            }
        };
        let span = tracing::Span::current();
        span.record("seq", seq);
        let (msg, acker) = msg.split();
        let origin = Origin::of(&msg, source, stream, seq, delivered);
        let event: Event = match serde_json::from_slice(&msg.payload) {
            Ok(e) => e,
            Err(err) => return self.malformed(&msg, source, &acker, &origin, &err).await,
        };
        span.record("tenant", event.tenant.as_str());
        span.record("topic", event.topic.as_str());
        span.record("action", event.action.as_str());
        span.record("event_id", event.id.as_str());

        let rules = self.rules();
        let mut settlement = Settlement::default();
        let deliveries = deliveries(&rules, &msg, source, &event, &mut settlement);
        let event = Arc::new(event);
        self.dispatch(&rules, &event, deliveries, &mut settlement)
            .await;
        self.wait(&acker, &mut settlement).await;
        self.settle(&acker, &origin, &event.tenant, settlement)
            .await;
    }

    /// An event that does not parse: dead-lettered (then acked) under the tenant of its
    /// subject, or terminated when the subject names no tenant.
    async fn malformed(
        &self,
        msg: &async_nats::Message,
        source: Source,
        acker: &jetstream::message::Acker,
        origin: &Origin,
        err: &serde_json::Error,
    ) {
        let Some(tenant) = tenant_of(&msg.subject, source) else {
            tracing::error!(subject = %msg.subject, "malformed event on a foreign subject; terminated");
            let _ = acker.ack_with(AckKind::Term).await;
            return;
        };
        let failure = Failure {
            delivery: None,
            reason: format!("malformed event: {err}"),
        };
        if self.dead_letter(origin, &tenant, vec![failure]).await {
            ack(acker).await;
        } else {
            nak(acker, self.cfg.backoff_for(origin.deliveries)).await;
        }
    }

    /// Queues a job for every target that still needs the event; records the rest.
    async fn dispatch(
        &self,
        rules: &Rules,
        event: &Arc<Event>,
        deliveries: Vec<Delivery>,
        s: &mut Settlement,
    ) {
        let msg_id = event.msg_id();
        for d in deliveries {
            match self.dedup.is_done(&msg_id, &d.target.id).await {
                Ok(true) => {
                    Metrics::inc(
                        &self.metrics.duplicates_skipped,
                        d.target.destination.kind(),
                    );
                    tracing::debug!(target = %d.target.id, "already delivered; skipped");
                    continue;
                }
                Ok(false) => {}
                Err(err) => {
                    s.retry(d, None, herald_core::error_chain(&err));
                    continue;
                }
            }
            let quiet = d
                .target
                .quiet_hours
                .and_then(|q| q.remaining(OffsetDateTime::now_utc()));
            if let Some(left) = quiet {
                tracing::debug!(target = %d.target.id, ?left, "quiet hours; held");
                s.retry(d, Some(left), "quiet hours".into());
                continue;
            }
            match rules.render(&d, event) {
                Ok(text) => {
                    let (tx, rx) = oneshot::channel();
                    self.dispatcher.submit(Job {
                        event: event.clone(),
                        target: d.target.clone(),
                        text,
                        reply: tx,
                        solo: false,
                    });
                    s.pending.push((d, rx));
                }
                Err(err) => {
                    let reason = format!("template failed: {}", herald_core::error_chain(&err));
                    s.dead(Some(d), reason);
                }
            }
        }
    }

    /// Waits for every queued job, telling JetStream the event is still being worked on.
    async fn wait(&self, acker: &jetstream::message::Acker, s: &mut Settlement) {
        let (deliveries, receivers): (Vec<_>, Vec<_>) =
            std::mem::take(&mut s.pending).into_iter().unzip();
        let all = futures::future::join_all(receivers);
        tokio::pin!(all);
        let every = (self.cfg.ack_wait / 2).max(Duration::from_millis(500));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let outcomes = loop {
            tokio::select! {
                outcomes = &mut all => break outcomes,
                _ = progress.tick() => { let _ = acker.ack_with(AckKind::Progress).await; }
            }
        };
        for (d, outcome) in deliveries.into_iter().zip(outcomes) {
            match outcome {
                Ok(Outcome::Sent) => {}
                Ok(Outcome::Dead(reason)) => s.dead(Some(d), reason),
                Ok(Outcome::Retry { after, reason }) => s.retry(d, after, reason),
                // The worker stopped (shutdown): redeliver soon, here or elsewhere.
                Err(_) => s.retry(d, Some(Duration::ZERO), "notifier shutting down".into()),
            }
        }
    }

    /// Dead letters first, then ack (all settled) or nak with the longest delay asked for.
    async fn settle(
        &self,
        acker: &jetstream::message::Acker,
        origin: &Origin,
        tenant: &TenantId,
        mut s: Settlement,
    ) {
        let delivered = origin.deliveries;
        if delivered >= self.cfg.max_deliver {
            // JetStream will not deliver it again: what still fails is dead-lettered.
            for mut f in s.retries.drain(..) {
                f.reason = format!("gave up after {delivered} deliveries: {}", f.reason);
                s.dead.push(f);
            }
        }
        if !s.dead.is_empty() && !self.dead_letter(origin, tenant, s.dead).await {
            nak(acker, self.cfg.backoff_for(delivered)).await;
            return;
        }
        let Some(first) = s.retries.first() else {
            ack(acker).await;
            return;
        };
        for d in s.retries.iter().filter_map(|f| f.delivery.as_ref()) {
            Metrics::inc(&self.metrics.retried, d.target.destination.kind());
        }
        let delay = s
            .retry_after
            .unwrap_or_else(|| self.cfg.backoff_for(delivered));
        tracing::info!(?delay, targets = s.retries.len(), reason = %first.reason, "will retry");
        nak(acker, delay).await;
    }

    /// Publishes one dead letter per failure; false if any could not be stored.
    async fn dead_letter(
        &self,
        origin: &Origin,
        tenant: &TenantId,
        failures: Vec<Failure>,
    ) -> bool {
        for f in failures {
            let kind = f
                .delivery
                .as_ref()
                .map_or("none", |d| d.target.destination.kind());
            let target = f.delivery.as_ref().map(|d| d.target.id.to_string());
            let rule = f.delivery.as_ref().map(|d| d.rule.to_string());
            let dl = NewDeadLetter {
                tenant,
                reason: &f.reason,
                target: target.as_deref(),
                rule: rule.as_deref(),
                stream: &origin.stream,
                subject: &origin.subject,
                stream_sequence: origin.sequence,
                deliveries: origin.deliveries,
                payload: origin.payload.clone(),
                consumed: (&origin.consumed.0, origin.consumed.1),
            };
            match dlq::publish(&self.js, dl).await {
                Ok(()) => {
                    Metrics::inc(&self.metrics.dead_lettered, kind);
                    tracing::warn!(target = target.as_deref().unwrap_or("-"), reason = %f.reason, "dead-lettered");
                }
                Err(err) => {
                    tracing::error!(error = %herald_core::error_chain(&err), "dead letter not stored; the event will be redelivered");
                    return false;
                }
            }
        }
        true
    }
}

fn tenant_of(subject: &str, source: Source) -> Option<TenantId> {
    match source {
        Source::Events => subject::parse_event(subject).map(|s| s.tenant),
        Source::Redrive => subject
            .rsplit('.')
            .next()
            .and_then(|t| TenantId::parse(t).ok()),
    }
}

async fn ack(acker: &jetstream::message::Acker) {
    if let Err(err) = acker.ack().await {
        tracing::warn!(%err, "ack not sent; the event will be redelivered and skipped per target");
    }
}

async fn nak(acker: &jetstream::message::Acker, delay: Duration) {
    if let Err(err) = acker.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::warn!(%err, "nak not sent; the event will be redelivered after ack_wait");
    }
}
