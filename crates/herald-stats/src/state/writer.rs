//! [`StateWriter`]: the loop that keeps `herald_state` up to date with the collections'
//! events, starting over (with backoff) whenever NATS fails it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::stream::DirectGetErrorKind;
use async_nats::jetstream::{self, Message, kv};
use futures::StreamExt;
use herald_core::cursor::Epoch;
use herald_core::names::{TenantId, Topic};
use herald_core::retry::{Backoff, Policy};
use herald_core::state::{self, Collections, Marker};
use herald_core::streams::EVENTS_STREAM;
use herald_core::subject::EVENTS_PREFIX;
use tokio_util::sync::CancellationToken;

use super::metrics::StateMetrics;
use super::plan::{CollectionId, Plan};
use super::store::{self, At, STATE_STREAM, StoreError};
use crate::config::StateWriterConfig;

/// Beyond this many cached row positions the cache is dropped (it only saves reads).
const MAX_CACHED: usize = 200_000;
/// How often a marker that names another epoch (or none) is re-examined before giving up.
const MAX_ATTEMPTS: usize = 16;

/// Why a writer's session ended (it then starts over).
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// `HERALD_EVENTS` could not be opened, inspected or consumed.
    #[error("cannot read stream {EVENTS_STREAM}")]
    Stream(#[source] async_nats::Error),
    /// Reading or writing `herald_state` failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `HERALD_EVENTS` was recreated (or a marker reset) under the writer.
    #[error("the stream epoch changed under the state writer")]
    EpochChanged,
    /// The ordered consumer ended.
    #[error("the state writer's consumer ended")]
    ConsumerEnded,
}

fn stream_error(err: impl Into<async_nats::Error>) -> WriterError {
    WriterError::Stream(err.into())
}

/// Keeps the collections' rows and markers in `herald_state`; see [`crate::state`].
#[derive(Clone)]
pub struct StateWriter {
    js: jetstream::Context,
    collections: Arc<Collections>,
    cfg: StateWriterConfig,
    metrics: StateMetrics,
}

impl StateWriter {
    /// A writer of `collections` on `js` (does nothing until [`StateWriter::run`]).
    pub fn new(
        js: jetstream::Context,
        collections: Collections,
        cfg: StateWriterConfig,
        metrics: StateMetrics,
    ) -> Self {
        Self {
            js,
            collections: Arc::new(collections),
            cfg,
            metrics,
        }
    }

    /// Writes until `shutdown` fires (the batch in flight is written and the markers raised
    /// first). Any failure (NATS away, the stream recreated) starts it over after a backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.collections.is_empty() {
            return;
        }
        let policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
        let mut backoff = Backoff::new(policy.with_jitter());
        while !shutdown.is_cancelled() {
            let result = match Session::attach(&self).await {
                Ok(mut session) => {
                    backoff.reset();
                    session.consume(&shutdown).await
                }
                Err(err) => Err(err),
            };
            match result {
                Ok(()) => break,
                Err(err) => {
                    self.metrics.restarts.inc();
                    let what = "state writer stopped; starting over";
                    if !backoff.wait(&shutdown, what, &err).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("state writer stopped");
    }
}

/// One attachment to the stream: the writer's position and what it knows of the bucket.
struct Session<'a> {
    w: &'a StateWriter,
    kv: kv::Store,
    events: jetstream::stream::Stream,
    epoch: String,
    /// The subjects of the collection topics.
    filters: Vec<String>,
    /// Every collection event up to here is stored (by this writer).
    position: u64,
    /// The start sequence of the consumer.
    start: u64,
    markers: HashMap<CollectionId, At<Marker>>,
    /// Row key → the stored row's `(seq, revision)` as last seen.
    rows: HashMap<String, (u64, u64)>,
    last_raise: Instant,
}

impl<'a> Session<'a> {
    /// Opens the stream and the bucket, and makes every marker name the stream's epoch
    /// (purging a collection whose marker names another).
    async fn attach(w: &'a StateWriter) -> Result<Self, WriterError> {
        let events = w.js.get_stream(EVENTS_STREAM).await.map_err(stream_error)?;
        let info = events.cached_info();
        let epoch = Epoch::from_created(info.created).to_string();
        let first = info.state.first_sequence;
        let kv = store::bucket(&w.js).await?;
        let kv_stream =
            w.js.get_stream(STATE_STREAM)
                .await
                .map_err(|e| StoreError::Bucket(e.into()))?;
        let mut filters: Vec<String> = w
            .collections
            .iter()
            .map(|(tenant, topic, _)| format!("{EVENTS_PREFIX}.{tenant}.{topic}.>"))
            .collect();
        filters.sort();
        let mut session = Self {
            w,
            kv,
            events,
            epoch,
            filters,
            position: 0,
            start: 0,
            markers: HashMap::new(),
            rows: HashMap::new(),
            last_raise: Instant::now(),
        };
        for (tenant, topic, _) in w.collections.iter() {
            let marker = session.ensure_marker(&kv_stream, tenant, topic).await?;
            session
                .markers
                .insert((tenant.clone(), topic.clone()), marker);
        }
        session.start = session.start_after(first);
        session.position = session.start - 1;
        tracing::info!(epoch = %session.epoch, start = session.start, collections = w.collections.len(), "state writer attached");
        Ok(session)
    }

    /// The sequence to read from: after the lowest `applied`, and no earlier than the
    /// stream's first sequence (a marker behind it is logged and counted).
    fn start_after(&self, first: u64) -> u64 {
        let mut start = u64::MAX;
        for ((tenant, topic), at) in &self.markers {
            let applied = at.value.as_ref().map_or(0, |m| m.applied);
            if applied.saturating_add(1) < first {
                self.w.metrics.behind_retention.inc();
                tracing::error!(%tenant, %topic, applied, first, "collection marker is behind the stream's first sequence: events were removed before the state writer applied them; continuing from the first sequence");
            }
            start = start.min(applied.saturating_add(1));
        }
        start.max(first).max(1)
    }

    /// The marker of `tenant`'s `topic`, naming this stream's epoch: when it names another
    /// (or none), the collection's keys written so far are purged and a fresh marker created.
    async fn ensure_marker(
        &self,
        kv_stream: &jetstream::stream::Stream,
        tenant: &TenantId,
        topic: &Topic,
    ) -> Result<At<Marker>, WriterError> {
        let key = state::marker_key(tenant, topic);
        for _ in 0..MAX_ATTEMPTS {
            // The bucket's last sequence *before* the marker is read: a writer that creates the
            // fresh marker after this read writes its marker and rows above it, so the purge
            // below cannot remove them.
            let last = kv_stream
                .get_info()
                .await
                .map_err(|e| StoreError::Bucket(e.into()))?
                .state
                .last_sequence;
            let at = store::read::<Marker>(&self.kv, &key).await?;
            if at.value.as_ref().is_some_and(|m| m.epoch == self.epoch) {
                return Ok(at);
            }
            self.check_epoch().await?;
            let purged = store::purge(kv_stream, tenant, topic, last).await?;
            if let Some(old) = &at.value {
                self.w.metrics.epoch_purges.inc();
                tracing::warn!(%tenant, %topic, old = %old.epoch, new = %self.epoch, purged, "the stream was recreated: collection purged, rebuilt from the new stream");
            } else if purged > 0 {
                self.w.metrics.epoch_purges.inc();
                tracing::warn!(%tenant, %topic, purged, "collection keys without a marker purged");
            }
            let fresh = Marker {
                applied: 0,
                cleared: 0,
                epoch: self.epoch.clone(),
            };
            if let Some(revision) = store::write(&self.kv, &key, &fresh, 0).await? {
                let value = Some(fresh);
                return Ok(At { value, revision });
            }
            self.w.metrics.conflicts.inc();
        }
        Err(StoreError::Contended { key }.into())
    }

    /// Fails with [`WriterError::EpochChanged`] if `HERALD_EVENTS` is no longer the stream
    /// this session attached to (the ordered consumer would follow a recreated stream).
    /// Returns the stream's last sequence.
    async fn check_epoch(&self) -> Result<u64, WriterError> {
        let info = self.events.get_info().await.map_err(stream_error)?;
        if Epoch::from_created(info.created).to_string() == self.epoch {
            Ok(info.state.last_sequence)
        } else {
            Err(WriterError::EpochChanged)
        }
    }

    /// Moves the position up to the stream's `last` sequence if no collection event lies
    /// between them, so a quiet collection's `applied` follows the stream (and is not
    /// reported behind retention when the stream moves on). `last` was read before the
    /// lookups: an event at or below it that they do not find does not exist.
    async fn advance_idle(&mut self, last: u64) -> Result<(), WriterError> {
        if self.position >= last {
            return Ok(());
        }
        for filter in &self.filters {
            let next = self
                .events
                .direct_get_next_for_subject(filter, Some(self.position + 1))
                .await;
            match next {
                Ok(msg) if msg.sequence <= last => return Ok(()),
                Ok(_) => {}
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => {}
                Err(err) => return Err(stream_error(err)),
            }
        }
        self.position = last;
        Ok(())
    }

    /// Creates the ordered consumer over every collection topic, from `start`.
    async fn messages(&self) -> Result<Ordered, WriterError> {
        let mut filters = self.filters.clone();
        let mut config = OrderedConfig {
            description: Some("Herald state writer".into()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: self.start,
            },
            ..Default::default()
        };
        if filters.len() == 1 {
            config.filter_subject = filters.remove(0);
        } else {
            config.filter_subjects = filters;
        }
        let consumer = self
            .events
            .create_consumer(config)
            .await
            .map_err(stream_error)?;
        consumer.messages().await.map_err(stream_error)
    }

    /// Reads, writes and raises markers until shutdown (`Ok`) or an error.
    async fn consume(&mut self, shutdown: &CancellationToken) -> Result<(), WriterError> {
        let mut messages = self.messages().await?;
        let mut tick = tokio::time::interval(self.w.cfg.marker_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return self.raise_all().await,
                _ = tick.tick() => {
                    // Also when idle: the ordered consumer would follow a recreated stream
                    // from the old sequence without a word.
                    let last = self.check_epoch().await?;
                    self.advance_idle(last).await?;
                    self.raise_all().await?;
                    continue;
                }
                next = messages.next() => next,
            };
            let msg = match first {
                None => return Err(WriterError::ConsumerEnded),
                Some(msg) => msg.map_err(stream_error)?,
            };
            let (batch, failed) = self.gather(msg, &mut messages).await;
            self.process(&batch).await?;
            if let Some(err) = failed {
                return Err(err);
            }
            if self.last_raise.elapsed() >= self.w.cfg.marker_interval {
                self.raise_all().await?;
            }
        }
    }

    /// A batch: `first` and what follows within the flush interval, up to the batch size;
    /// with the consumer's error if one cut it short.
    async fn gather(
        &self,
        first: Message,
        messages: &mut Ordered,
    ) -> (Vec<Message>, Option<WriterError>) {
        let cfg = &self.w.cfg;
        let mut batch = Vec::with_capacity(cfg.batch_size.min(1024));
        batch.push(first);
        let deadline = tokio::time::Instant::now() + cfg.flush_interval;
        while batch.len() < cfg.batch_size {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(msg))) => batch.push(msg),
                Ok(Some(Err(err))) => return (batch, Some(stream_error(err))),
                Ok(None) => return (batch, Some(WriterError::ConsumerEnded)),
                Err(_elapsed) => break,
            }
        }
        (batch, None)
    }

    /// Stores one batch: its rows, then the markers of the collections it truncated.
    #[tracing::instrument(skip_all, fields(messages = batch.len()))]
    async fn process(&mut self, batch: &[Message]) -> Result<(), WriterError> {
        let mut plan = Plan::default();
        let mut last = self.position;
        for msg in batch {
            let Ok(info) = msg.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            plan.add(
                &self.w.collections,
                &msg.subject,
                seq,
                msg.headers.as_ref(),
                &msg.payload,
            );
            last = last.max(seq);
            let lag = i64::try_from(pending).unwrap_or(i64::MAX);
            self.w.metrics.lag.set(lag);
        }
        let m = &self.w.metrics;
        m.events.inc_by(plan.events);
        m.ignored.inc_by(plan.ignored);
        for (reason, n) in &plan.unkeyed {
            m.count_unkeyed(reason, *n);
        }
        let moot = plan.drop_cleared();
        m.applied.inc_by(plan.superseded + moot + plan.truncates);
        self.write_rows(std::mem::take(&mut plan.rows)).await?;
        self.position = last;
        if !plan.clears.is_empty() {
            self.check_epoch().await?;
            for (id, cleared) in plan.clears {
                self.raise(&id, cleared).await?;
            }
        }
        Ok(())
    }

    /// Writes the pending rows, `write_concurrency` at a time.
    async fn write_rows(
        &mut self,
        rows: HashMap<String, (CollectionId, state::Row)>,
    ) -> Result<(), WriterError> {
        if self.rows.len() > MAX_CACHED {
            self.rows.clear();
        }
        let kv = &self.kv;
        let cache = &self.rows;
        let jobs = rows.into_iter().map(|(key, (_, row))| {
            let known = cache.get(&key).copied();
            async move {
                let applied = store::apply_row(kv, &key, &row, known).await;
                (key, applied)
            }
        });
        let mut results =
            futures::stream::iter(jobs).buffer_unordered(self.w.cfg.write_concurrency);
        let mut seen = Vec::new();
        let m = &self.w.metrics;
        while let Some((key, applied)) = results.next().await {
            let applied = applied?;
            m.conflicts.inc_by(applied.conflicts);
            if applied.written {
                m.applied.inc();
            } else {
                m.skipped_stale.inc();
            }
            seen.push((key, (applied.seq, applied.revision)));
        }
        drop(results);
        self.rows.extend(seen);
        Ok(())
    }

    /// Raises every marker behind the writer's position (after checking the epoch).
    async fn raise_all(&mut self) -> Result<(), WriterError> {
        self.last_raise = Instant::now();
        let behind: Vec<CollectionId> = self
            .markers
            .iter()
            .filter(|(_, at)| at.value.as_ref().is_some_and(|m| m.applied < self.position))
            .map(|(id, _)| id.clone())
            .collect();
        if behind.is_empty() {
            return Ok(());
        }
        self.check_epoch().await?;
        for id in behind {
            self.raise(&id, 0).await?;
        }
        Ok(())
    }

    /// Raises the marker of `id` to the writer's position and `cleared`.
    async fn raise(&mut self, id: &CollectionId, cleared: u64) -> Result<(), WriterError> {
        let key = state::marker_key(&id.0, &id.1);
        let known = self.markers.get(id).cloned();
        let (at, conflicts) =
            store::raise_marker(&self.kv, &key, self.position, cleared, &self.epoch, known).await?;
        self.w.metrics.conflicts.inc_by(conflicts);
        let at = at.ok_or(WriterError::EpochChanged)?;
        self.markers.insert(id.clone(), at);
        Ok(())
    }
}
