//! Replays from JetStream, for cursors older than the ring buffer.
//!
//! A replay reads the tenant's events in `(cursor, head]` (the live queue has everything
//! after `head`) in chunks: for each chunk it takes a slot from a semaphore, creates an
//! ordered consumer filtered to the tenant from the next sequence, reads up to
//! [`CHUNK`] events into memory, deletes the consumer and gives the slot back. So at most
//! `max_replays` replay consumers exist at once, a reconnect storm queues instead of creating
//! thousands, and a client that stops reading holds neither a slot nor a consumer.
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
use tokio::sync::Semaphore;

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
}

/// What resuming from a cursor older than the ring takes.
pub enum Plan {
    /// The cursor cannot be resumed.
    Reset(ResetReason),
    /// Nothing to replay: the cursor is at or after `head`.
    Empty,
    /// Events to replay.
    Replay(Box<Replay>),
}

/// A replay in progress.
pub struct Replay {
    stream: jetstream::stream::Stream,
    slots: Arc<Semaphore>,
    filter: String,
    next_seq: u64,
    until: u64,
    epoch: Epoch,
    buffer: VecDeque<Arc<EventFrame>>,
    done: bool,
}

/// Checks that `since` can be resumed and plans a replay of `tenant`'s events in
/// `(since, until]`.
#[tracing::instrument(skip_all, fields(tenant = %tenant, since = %since, until))]
pub async fn plan(
    js: &jetstream::Context,
    slots: &Arc<Semaphore>,
    tenant: &TenantId,
    since: Cursor,
    until: u64,
) -> Result<Plan, ReplayError> {
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let info = stream.info().await?;
    if Epoch::from_created(info.created) != since.epoch {
        return Ok(Plan::Reset(ResetReason::EpochMismatch));
    }
    if since.seq.saturating_add(1) < info.state.first_sequence {
        return Ok(Plan::Reset(ResetReason::OutOfRetention));
    }
    if since.seq >= until {
        return Ok(Plan::Empty);
    }
    Ok(Plan::Replay(Box::new(Replay {
        stream,
        slots: Arc::clone(slots),
        filter: subject::tenant_filter(tenant),
        next_seq: since.seq + 1,
        until,
        epoch: since.epoch,
        buffer: VecDeque::new(),
        done: false,
    })))
}

/// Whether the stream holds `cursor`: same epoch and a sequence at or below its last one.
/// A cursor past the hub's head is usually one another gateway delivered before this one's
/// tail caught up; one past the stream's end never came from this stream.
pub async fn stream_holds(js: &jetstream::Context, cursor: Cursor) -> Result<bool, ReplayError> {
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let info = stream.info().await?;
    Ok(Epoch::from_created(info.created) == cursor.epoch && cursor.seq <= info.state.last_sequence)
}

impl Replay {
    /// The next replayed event, `None` once the replay reached `until`. Cancel-safe: what a
    /// cancelled chunk already read is kept, and the next chunk starts after it.
    pub async fn next(&mut self) -> Option<Result<Arc<EventFrame>, ReplayError>> {
        loop {
            if let Some(frame) = self.buffer.pop_front() {
                return Some(Ok(frame));
            }
            if self.done {
                return None;
            }
            if let Err(err) = self.fill().await {
                return Some(Err(err));
            }
        }
    }

    /// Reads the next chunk into the buffer, holding a slot and a consumer only meanwhile.
    async fn fill(&mut self) -> Result<(), ReplayError> {
        let Ok(_slot) = Arc::clone(&self.slots).acquire_owned().await else {
            // The semaphore is never closed.
            return Err(ReplayError::Timeout);
        };
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: self.filter.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.next_seq,
                },
                ..Default::default()
            })
            .await?;
        let name = consumer.cached_info().name.clone();
        let result = if consumer.cached_info().num_pending == 0 {
            self.done = true;
            Ok(())
        } else {
            self.read_chunk(consumer).await
        };
        // Ordered consumers linger for 30 s when merely dropped: delete it now.
        if let Err(err) = self.stream.delete_consumer(&name).await {
            tracing::debug!(error = %herald_core::error_chain(&err), "deleting a replay consumer failed");
        }
        result
    }

    async fn read_chunk(
        &mut self,
        consumer: jetstream::consumer::Consumer<OrderedConfig>,
    ) -> Result<(), ReplayError> {
        let mut messages = consumer.messages().await?;
        for _ in 0..CHUNK {
            let msg = match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
                Err(_) => return Err(ReplayError::Timeout),
                Ok(None) => {
                    self.done = true;
                    return Ok(());
                }
                Ok(Some(Err(err))) => return Err(err.into()),
                Ok(Some(Ok(msg))) => msg,
            };
            let Ok(info) = msg.info() else { continue };
            let (seq, pending) = (info.stream_sequence, info.pending);
            if seq > self.until {
                self.done = true;
                return Ok(());
            }
            self.next_seq = seq + 1;
            let cursor = Cursor::new(seq, self.epoch);
            match EventFrame::new(cursor, msg.subject.as_str(), &msg.payload) {
                Ok(frame) => self.buffer.push_back(Arc::new(frame)),
                Err(err) => tracing::warn!(seq, %err, "skipping an undeliverable stored message"),
            }
            // Every event up to `until` is already stored, so no pending message means the
            // replay has seen all of them.
            if pending == 0 || seq >= self.until {
                self.done = true;
                return Ok(());
            }
        }
        Ok(())
    }
}
