//! Replays from JetStream, for cursors older than the ring buffer.
//!
//! A replay reads the events of the subscribed topics in `(cursor, head]` (the live queue has
//! everything after `head`) in chunks. Each chunk runs as a task of its own: it takes a slot
//! from a semaphore, creates an ordered consumer filtered to the topics (one subject filter
//! per topic, or the tenant's filter for a wildcard subscription) from the next sequence,
//! reads up to [`CHUNK`] events into memory, deletes the consumer and only then gives the slot
//! back. So at most `max_replays` replay consumers exist at once, whatever the clients do: a
//! reconnect storm queues instead of creating thousands, and a client that stops reading, or
//! drops its subscription mid-chunk (a WebSocket `subscribe` replacing the previous one),
//! holds no consumer for longer than it takes to delete it. The stream lookups that plan a
//! replay take a slot too.
//!
//! JetStream silently clamps a start sequence older than the stream's first one; [`plan`]
//! detects that and answers `reset` instead.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::TenantId;
use herald_core::streams::EVENTS_STREAM;
use herald_core::subject;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::auth::TopicSet;
use crate::frame::{EventFrame, ResetReason};

/// The most events one chunk reads into memory.
pub const CHUNK: usize = 256;
/// The longest a replay waits for its next message before giving up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a replay failed. The client is asked to reconnect and try again.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The stream could not be looked up.
    #[error("looking up the events stream failed")]
    Stream(#[from] jetstream::context::GetStreamError),
    /// The stream info could not be read.
    #[error("reading the events stream info failed")]
    Info(#[from] jetstream::context::RequestError),
    /// The replay consumer could not be created.
    #[error("creating the replay consumer failed")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    /// The replay consumer's messages could not be read.
    #[error("reading the replay failed")]
    Messages(#[from] jetstream::consumer::StreamError),
    /// A message failed to arrive.
    #[error("the replay stalled")]
    Ordered(#[from] jetstream::consumer::pull::OrderedError),
    /// No message arrived within the idle timeout.
    #[error("the replay timed out")]
    Timeout,
    /// The chunk's task ended without an answer (the runtime is shutting down).
    #[error("the replay task ended")]
    Task,
}

/// What resuming from a cursor older than the ring takes.
pub enum Plan {
    /// The cursor cannot be resumed.
    Reset(ResetReason),
    /// Nothing to replay: the cursor is at or after `head`, or no topic is subscribed.
    Empty,
    /// Events to replay.
    Replay(Box<Replay>),
}

/// What every chunk of one replay shares.
#[derive(Clone)]
struct Source {
    stream: jetstream::stream::Stream,
    slots: Arc<Semaphore>,
    filters: Vec<String>,
    until: u64,
    epoch: Epoch,
    /// Messages read from JetStream (the `replay_messages` metric).
    read: Counter,
    /// Cancelled when the replay is dropped: a chunk still waiting for a slot gives up, one
    /// reading stops, deletes its consumer and frees its slot.
    cancel: CancellationToken,
}

/// One chunk's result.
struct Chunk {
    frames: Vec<Arc<EventFrame>>,
    next_seq: u64,
    done: bool,
}

/// A replay in progress.
pub struct Replay {
    source: Source,
    next_seq: u64,
    buffer: VecDeque<Arc<EventFrame>>,
    done: bool,
    pending: Option<JoinHandle<Result<Chunk, ReplayError>>>,
    _cancel_on_drop: DropGuard,
}

/// The subject filters for `topics` of `tenant`: the tenant's filter for a wildcard
/// subscription, else one filter per topic (none: nothing to replay).
pub fn filters(tenant: &TenantId, topics: &TopicSet) -> Vec<String> {
    match topics {
        TopicSet::All => vec![subject::tenant_filter(tenant)],
        TopicSet::Only(set) => set
            .iter()
            .map(|topic| subject::topic_filter(tenant, topic))
            .collect(),
    }
}

/// Where a replay reads and what it counts.
pub struct Target<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The subscribed topics: only their events are read.
    pub topics: &'a TopicSet,
    /// Counts every message read from JetStream.
    pub read: Counter,
}

/// Checks that `since` can be resumed and plans a replay of the target's events in
/// `(since, until]`.
#[tracing::instrument(skip_all, fields(tenant = %target.tenant, since = %since, until))]
pub async fn plan(
    js: &jetstream::Context,
    slots: &Arc<Semaphore>,
    target: Target<'_>,
    since: Cursor,
    until: u64,
) -> Result<Plan, ReplayError> {
    let (stream, info) = {
        let _slot = acquire(slots).await?;
        let mut stream = js.get_stream(EVENTS_STREAM).await?;
        let info = stream.info().await?.clone();
        (stream, info)
    };
    if Epoch::from_created(info.created) != since.epoch {
        return Ok(Plan::Reset(ResetReason::EpochMismatch));
    }
    if since.seq.saturating_add(1) < info.state.first_sequence {
        return Ok(Plan::Reset(ResetReason::OutOfRetention));
    }
    let filters = filters(target.tenant, target.topics);
    if since.seq >= until || filters.is_empty() {
        return Ok(Plan::Empty);
    }
    let cancel = CancellationToken::new();
    Ok(Plan::Replay(Box::new(Replay {
        source: Source {
            stream,
            slots: Arc::clone(slots),
            filters,
            until,
            epoch: since.epoch,
            read: target.read,
            cancel: cancel.clone(),
        },
        next_seq: since.seq + 1,
        buffer: VecDeque::new(),
        done: false,
        pending: None,
        _cancel_on_drop: cancel.drop_guard(),
    })))
}

/// Whether the stream holds `cursor`: same epoch and a sequence at or below its last one.
/// A cursor past the hub's head is usually one another gateway delivered before this one's
/// tail caught up; one past the stream's end never came from this stream.
pub async fn stream_holds(
    js: &jetstream::Context,
    slots: &Arc<Semaphore>,
    cursor: Cursor,
) -> Result<bool, ReplayError> {
    let _slot = acquire(slots).await?;
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let info = stream.info().await?;
    Ok(Epoch::from_created(info.created) == cursor.epoch && cursor.seq <= info.state.last_sequence)
}

async fn acquire(slots: &Arc<Semaphore>) -> Result<tokio::sync::OwnedSemaphorePermit, ReplayError> {
    // The semaphore is never closed.
    Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|_| ReplayError::Task)
}

impl Replay {
    /// The next replayed event, `None` once the replay reached `until`. Cancel-safe: a chunk
    /// being read carries on in its task, and the next call picks up its result.
    pub async fn next(&mut self) -> Option<Result<Arc<EventFrame>, ReplayError>> {
        loop {
            if let Some(frame) = self.buffer.pop_front() {
                return Some(Ok(frame));
            }
            if self.done {
                return None;
            }
            let (source, from) = (self.source.clone(), self.next_seq);
            let task = self
                .pending
                .get_or_insert_with(|| tokio::spawn(source.chunk(from)));
            let result = task.await;
            self.pending = None;
            match result {
                Ok(Ok(chunk)) => {
                    self.buffer.extend(chunk.frames);
                    self.next_seq = chunk.next_seq;
                    self.done = chunk.done;
                }
                Ok(Err(err)) => return Some(Err(err)),
                Err(_) => return Some(Err(ReplayError::Task)),
            }
        }
    }
}

impl Source {
    /// Reads the chunk starting at `from`, holding a slot for as long as its consumer exists.
    async fn chunk(self, from: u64) -> Result<Chunk, ReplayError> {
        let mut chunk = Chunk {
            frames: Vec::new(),
            next_seq: from,
            done: false,
        };
        let _slot = tokio::select! {
            slot = acquire(&self.slots) => slot?,
            () = self.cancel.cancelled() => return Ok(chunk),
        };
        if self.cancel.is_cancelled() {
            return Ok(chunk);
        }
        let name = format!("herald_replay_{:016x}", rand::random::<u64>());
        let created = self
            .stream
            .create_consumer(OrderedConfig {
                name: Some(name.clone()),
                filter_subjects: self.filters.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await;
        let result = match created {
            Err(err) => Err(err.into()),
            Ok(consumer) if consumer.cached_info().num_pending == 0 => {
                chunk.done = true;
                Ok(())
            }
            Ok(consumer) => {
                tokio::select! {
                    read = self.read_chunk(consumer, &mut chunk) => read,
                    () = self.cancel.cancelled() => Ok(()),
                }
            }
        };
        // Ordered consumers linger for 30 s when merely dropped: delete it before the slot
        // is given back (a failed create may still have created it).
        if let Err(err) = self.stream.delete_consumer(&name).await {
            tracing::debug!(error = %herald_core::error_chain(&err), "deleting a replay consumer failed");
        }
        result.map(|()| chunk)
    }

    async fn read_chunk(
        &self,
        consumer: jetstream::consumer::Consumer<OrderedConfig>,
        chunk: &mut Chunk,
    ) -> Result<(), ReplayError> {
        let mut messages = consumer.messages().await?;
        for _ in 0..CHUNK {
            let msg = match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
                Err(_) => return Err(ReplayError::Timeout),
                Ok(None) => {
                    chunk.done = true;
                    return Ok(());
                }
                Ok(Some(Err(err))) => return Err(err.into()),
                Ok(Some(Ok(msg))) => msg,
            };
            self.read.inc();
            let Ok(info) = msg.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > self.until {
                chunk.done = true;
                return Ok(());
            }
            chunk.next_seq = seq + 1;
            let cursor = Cursor::new(seq, self.epoch);
            match EventFrame::new(cursor, msg.subject.as_str(), &msg.payload) {
                Ok(frame) => {
                    let audience = crate::frame::audience(msg.headers.as_ref());
                    chunk.frames.push(Arc::new(frame.with_audience(audience)));
                }
                Err(err) => tracing::warn!(seq, %err, "skipping an undeliverable stored message"),
            }
            // Every event up to `until` is already stored, so no pending message means the
            // replay has seen all of them.
            if pending == 0 || seq >= self.until {
                chunk.done = true;
                return Ok(());
            }
        }
        Ok(())
    }
}
