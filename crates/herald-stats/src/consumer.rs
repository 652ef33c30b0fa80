//! The durable consumer loop: pull a batch, fold it per document, write, then ack.
//!
//! A batch is at most `batch_size` messages, or what arrived within `flush_interval` of its
//! first message. Messages are acknowledged only after the write that covers them
//! succeeded; if a document cannot be written its messages are nak'd with `retry_delay`, and
//! their redelivery finds them counted or not by the document's `last_seq`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::{self, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use herald_core::cursor::Epoch;
use herald_core::service::ServiceContext;
use herald_core::streams::EVENTS_STREAM;
use herald_core::{error_chain, subject};
use tokio_util::sync::CancellationToken;

use crate::apply::{self, Env, Work};
use crate::config::Config;
use crate::coverage::{Carry, Coverage, Mark};
use crate::fold::RawEvent;
use crate::metrics::Metrics;
use crate::store::{self, Snapshot};

/// How long to wait before retrying to set up the consumer, or after a consumer error.
const RETRY: Duration = Duration::from_millis(500);
/// Beyond this many cached documents the cache is dropped (it is only a shortcut).
const MAX_CACHED: usize = 100_000;

/// Runs the aggregator until `ctx.shutdown` fires; an in-flight batch is finished (written
/// and acknowledged) first. `consuming` is true while a consumer is attached.
pub async fn run(
    ctx: ServiceContext,
    cfg: Arc<Config>,
    metrics: Metrics,
    consuming: Arc<AtomicBool>,
) {
    let Some(provisioned) =
        herald_core::nats::provision_until_ready(&ctx.js, &ctx.streams, &ctx.shutdown).await
    else {
        return;
    };
    tracing::info!(epoch = %provisioned.epoch, "streams ready");
    let mut cache = HashMap::new();
    while !ctx.shutdown.is_cancelled() {
        match attach(&ctx, &cfg).await {
            Ok((stream, consumer, kv, epoch)) => {
                let mut agg = Aggregator {
                    cfg: Arc::clone(&cfg),
                    kv,
                    stream,
                    epoch,
                    metrics: metrics.clone(),
                    cache: std::mem::take(&mut cache),
                    carry: None,
                };
                consuming.store(true, Ordering::Relaxed);
                agg.consume(&consumer, &ctx.shutdown).await;
                consuming.store(false, Ordering::Relaxed);
                cache = agg.cache;
            }
            Err(err) => tracing::warn!(error = %err, "cannot attach the stats consumer; retrying"),
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => {}
            () = tokio::time::sleep(RETRY) => {}
        }
    }
    // Acks are fire-and-forget publishes: flush them before the process may exit, or the
    // last batch's acks can be lost and its events redelivered (skipped by `last_seq`, but
    // the ack floor would lag the documents after a clean stop).
    if let Err(err) = ctx.client.flush().await {
        tracing::warn!(error = %err, "could not flush the last acknowledgements");
    }
    tracing::info!("stats consumer stopped");
}

type Attached = (
    jetstream::stream::Stream,
    PullConsumer,
    jetstream::kv::Store,
    Epoch,
);

/// Opens the stream, the bucket and (creating or updating it) the durable consumer.
async fn attach(ctx: &ServiceContext, cfg: &Config) -> Result<Attached, String> {
    let stream = ctx
        .js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| error_chain(&e))?;
    let epoch = Epoch::from_created(stream.cached_info().created);
    let kv = store::bucket(&ctx.js).await.map_err(|e| error_chain(&e))?;
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(cfg.consumer.clone()),
            description: Some("Herald stats-aggregator".into()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: cfg.ack_wait,
            // Unlimited: nothing an event carries can fail folding, and dropping an event
            // after N attempts would make the counts wrong for good.
            max_deliver: -1,
            filter_subject: subject::EVENTS_ALL.into(),
            max_ack_pending: cfg.max_ack_pending,
            ..Default::default()
        })
        .await
        .map_err(|e| error_chain(&e))?;
    Ok((stream, consumer, kv, epoch))
}

struct Aggregator {
    cfg: Arc<Config>,
    kv: jetstream::kv::Store,
    stream: jetstream::stream::Stream,
    epoch: Epoch,
    metrics: Metrics,
    cache: HashMap<String, Snapshot>,
    carry: Option<Carry>,
}

impl Aggregator {
    /// Consumes until shutdown or until the consumer must be set up again.
    async fn consume(&mut self, consumer: &PullConsumer, shutdown: &CancellationToken) {
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.cfg.batch_size)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "cannot pull from the stats consumer");
                return;
            }
        };
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                next = messages.next() => next,
            };
            let mut batch = Vec::with_capacity(self.cfg.batch_size);
            let mut restart = match first {
                None => return,
                Some(Ok(msg)) => {
                    batch.push(msg);
                    false
                }
                Some(Err(err)) => must_restart(&err),
            };
            let deadline = tokio::time::Instant::now() + self.cfg.flush_interval;
            while !restart && !batch.is_empty() && batch.len() < self.cfg.batch_size {
                match tokio::time::timeout_at(deadline, messages.next()).await {
                    Ok(Some(Ok(msg))) => batch.push(msg),
                    Ok(Some(Err(err))) => restart = must_restart(&err),
                    Ok(None) => restart = true,
                    Err(_elapsed) => break,
                }
            }
            if batch.is_empty() {
                // An error without messages: give NATS a moment instead of spinning.
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            } else {
                self.process(batch).await;
            }
            if restart {
                return;
            }
        }
    }

    /// Folds one batch into its documents, writes them, and acks or naks every message.
    #[tracing::instrument(skip_all, fields(messages = batch.len()))]
    async fn process(&mut self, batch: Vec<Message>) {
        let started = Instant::now();
        self.metrics.received.inc_by(batch.len() as u64);
        let (marks, work) = self.group(batch).await;
        let coverage = Coverage::build(&marks, self.carry.take());
        let jobs: Vec<_> = work
            .into_iter()
            .map(|(key, (mut w, msgs))| {
                w.events.sort_by_key(|e| e.seq);
                w.events.dedup_by_key(|e| e.seq);
                let cached = self.cache.remove(&key);
                (key, w, msgs, cached)
            })
            .collect();
        let env = Env {
            kv: &self.kv,
            history: &self.stream,
            epoch: self.epoch,
            max_values: self.cfg.max_values,
        };
        let coverage_ref = &coverage;
        let env_ref = &env;
        let results: Vec<_> = futures::stream::iter(jobs)
            .map(|(key, w, msgs, cached)| async move {
                let result = apply::settle(env_ref, &w, coverage_ref, None, cached).await;
                (key, w, msgs, result)
            })
            .buffer_unordered(self.cfg.write_concurrency)
            .collect()
            .await;
        let mut all_written = true;
        for (key, w, msgs, result) in results {
            match result {
                Ok(settled) => {
                    let m = &self.metrics;
                    m.applied.inc_by(settled.counts.applied);
                    m.gap_filled.inc_by(settled.counts.filled);
                    m.malformed.inc_by(settled.counts.malformed);
                    m.skipped.inc_by(settled.counts.skipped);
                    m.cas_conflicts.inc_by(settled.conflicts);
                    m.writes.inc_by(u64::from(settled.wrote));
                    self.cache.insert(key, settled.snapshot);
                    for msg in &msgs {
                        ack(msg, AckKind::Ack).await;
                    }
                }
                Err(err) => {
                    all_written = false;
                    self.metrics.failed_writes.inc();
                    tracing::warn!(
                        tenant = %w.tenant, topic = %w.topic, events = msgs.len(),
                        error = %error_chain(&err), "stats document not written; events will be redelivered"
                    );
                    for msg in &msgs {
                        ack(msg, AckKind::Nak(Some(self.cfg.retry_delay))).await;
                    }
                }
            }
        }
        if all_written {
            self.carry = coverage.carry();
        }
        if self.cache.len() > MAX_CACHED {
            self.cache.clear();
        }
        self.metrics.observe_batch(started.elapsed());
    }

    /// Splits a batch by document (`<tenant>.<topic>`), noting where each delivery sits.
    /// Messages that belong to no document are acknowledged here.
    async fn group(
        &self,
        batch: Vec<Message>,
    ) -> (Vec<Mark>, BTreeMap<String, (Work, Vec<Message>)>) {
        let mut marks = Vec::with_capacity(batch.len());
        let mut work: BTreeMap<String, (Work, Vec<Message>)> = BTreeMap::new();
        for msg in batch {
            let Ok(info) = msg.info() else {
                // Not a JetStream delivery: nothing to ack.
                continue;
            };
            let (seq, published, pending) = (info.stream_sequence, info.published, info.pending);
            marks.push(Mark {
                consumer_seq: info.consumer_sequence,
                stream_seq: seq,
                delivered: info.delivered,
            });
            self.metrics
                .lag
                .set(i64::try_from(pending).unwrap_or(i64::MAX));
            let Some((tenant, topic, action)) = apply::parse_subject(&msg.subject) else {
                self.metrics.foreign.inc();
                tracing::warn!(subject = %msg.subject, seq, "event subject names no valid tenant and topic; not counted");
                ack(&msg, AckKind::Ack).await;
                continue;
            };
            let key = crate::doc::key(&tenant, &topic);
            let event = RawEvent {
                seq,
                time: published,
                action,
                payload: msg.payload.clone(),
            };
            let entry = work.entry(key).or_insert_with(|| {
                let fields = self.cfg.fields_for(&topic);
                (
                    Work {
                        tenant,
                        topic,
                        fields,
                        events: Vec::new(),
                    },
                    Vec::new(),
                )
            });
            entry.0.events.push(event);
            entry.1.push(msg);
        }
        (marks, work)
    }
}

/// Logs a consumer error; true if the consumer must be set up again.
fn must_restart(err: &pull::MessagesError) -> bool {
    let restart = matches!(
        err.kind(),
        MessagesErrorKind::ConsumerDeleted
            | MessagesErrorKind::PushBasedConsumer
            | MessagesErrorKind::RequestLimitExceeded
    );
    tracing::warn!(error = %error_chain(err), restart, "stats consumer error");
    restart
}

async fn ack(msg: &Message, kind: AckKind) {
    if let Err(err) = msg.ack_with(kind).await {
        // The message is redelivered after ack_wait and then skipped or applied by last_seq.
        tracing::debug!(error = %err, "ack not sent");
    }
}
