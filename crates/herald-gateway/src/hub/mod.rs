//! The in-process fan-out: subscribers indexed by (tenant, topic), and the ring buffer.
//!
//! The tail hands every event to [`Hub::publish`] in stream order. Registration and
//! publication take the same lock, which is what makes the replay hand-off exact: a new
//! subscriber receives, through its queue, every event with a sequence above the `head` it was
//! registered at, and nothing at or below it; whatever lies between its cursor and `head` comes
//! from the ring (copied under that same lock) or from a JetStream replay that stops at `head`.
//!
//! The hub also keeps the current stats document of each tenant and topic (`stats_docs`),
//! fed by the one stats watch of the process ([`crate::stats_feed`]), and sends each new version to the `$stats` subscribers whose
//! scope holds its topic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use herald_core::state::Collections;
use tokio::sync::{Notify, mpsc};

use crate::auth::TopicSet;
use crate::filter::Filter;
use crate::frame::{Control, EventFrame, Frame, ResetReason, StatsFrame};
use crate::metrics::Metrics;
use crate::mirror::{self, Cut, Loaded, Mirror, Ticket};

mod index;
mod ring;
mod stats_docs;

use index::TenantIndex;
use ring::Ring;

/// Why the hub closed a subscriber's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its queue was full: the client is too slow.
    Overflow,
}

/// What a new subscriber must be sent before its live queue.
#[derive(Debug)]
pub enum Backlog {
    /// Nothing: no cursor was given, or nothing happened since.
    Nothing,
    /// These events, from the ring buffer.
    Ring(Vec<Arc<EventFrame>>),
    /// The cursor is older than the ring: replay `(cursor, head]` from JetStream.
    Replay(Cursor),
    /// The cursor is past the last event this process has seen: either the stream holds it
    /// and the tail has not caught up (another gateway delivered it), or it is past the
    /// stream's end. Only the stream can tell ([`crate::replay::stream_holds`]).
    Ahead(Cursor),
    /// The cursor cannot be resumed.
    Reset(ResetReason),
}

/// What the ring holds of a history read ([`Hub::recent`]).
#[derive(Debug)]
pub struct Recent {
    /// The stream epoch.
    pub epoch: Epoch,
    /// The last sequence published: the stream position of the read.
    pub head: u64,
    /// The ring holds every event in `(floor, head]`; older ones are only in JetStream.
    pub floor: u64,
    /// The matching events found, oldest first.
    pub events: Vec<Arc<EventFrame>>,
}

/// What a subscriber's queue carries.
#[derive(Debug)]
pub enum Queued {
    /// A frame for the client.
    Frame(Frame),
    /// The process is shutting down ([`Hub::drain`]): time to pick a moment to end.
    Drain,
    /// A snapshot-mode subscriber's fresh snapshot, cut when the mirror went live after a
    /// reset: every later event follows it in the queue.
    Snapshot(Cut),
}

/// A registered subscriber. Unregisters itself when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    /// Live frames with sequence above [`Subscription::head`], and the drain notice.
    pub rx: mpsc::Receiver<Queued>,
    /// The stream epoch at registration.
    pub epoch: Epoch,
    /// The last sequence published before registration.
    pub head: u64,
    /// Whether the feed was live at registration.
    pub live: bool,
    /// What to send before the live queue.
    pub backlog: Backlog,
    tenant: TenantId,
    /// Snapshot mode: every collection at [`Subscription::head`], cut under the registration
    /// lock; `None` while the mirror loads (a [`Queued::Snapshot`] follows once it is live).
    pub cut: Option<Cut>,
    closed: Arc<OnceLock<Closed>>,
}

impl Subscription {
    /// Why the queue was closed by the hub, if it was.
    pub fn closed(&self) -> Option<Closed> {
        self.closed.get().copied()
    }

    /// Replaces the topic set (WebSocket `subscribe`/`unsubscribe`), atomically with respect
    /// to publication, so topics kept across the change miss nothing.
    pub fn set_topics(&self, topics: TopicSet) {
        self.hub.set_topics(self.id, topics);
    }

    /// Sets which topics' stats documents it receives (`None`: none); the current ones are
    /// queued at once.
    pub fn set_stats(&self, scope: Option<TopicSet>) {
        self.hub.set_stats(self.id, scope);
    }

    /// The tenant it is registered for.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Whether `topic` of its tenant is a collection.
    pub fn is_collection(&self, topic: &Topic) -> bool {
        self.hub.collections.contains(&self.tenant, topic)
    }

    /// The cursor of the registration point.
    pub fn head_cursor(&self) -> Cursor {
        Cursor::new(self.head, self.epoch)
    }

    /// Whether the process is shutting down ([`Hub::drain`]).
    pub fn draining(&self) -> bool {
        self.hub.draining.load(Ordering::Acquire)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

struct Entry {
    tenant: TenantId,
    topics: TopicSet,
    /// The topics whose stats documents it receives (`$stats`), if any.
    stats: Option<TopicSet>,
    tx: mpsc::Sender<Queued>,
    closed: Arc<OnceLock<Closed>>,
    /// Snapshot mode: a reset is followed by a fresh snapshot.
    snapshots: bool,
    /// Snapshot mode, waiting for the mirror to go live to get its snapshot.
    awaiting: bool,
}

struct Inner {
    epoch: Option<Epoch>,
    head: u64,
    live: bool,
    ring: Ring,
    subs: HashMap<u64, Entry>,
    index: HashMap<TenantId, TenantIndex>,
    /// The current stats document of each tenant and topic.
    stats: HashMap<TenantId, HashMap<Topic, Arc<StatsFrame>>>,
    /// The subscribers of each tenant that receive stats documents.
    stats_subs: HashMap<TenantId, HashSet<u64>>,
    /// Every collection, applied in stream order ([`crate::mirror`]).
    mirror: Mirror,
    next_id: u64,
}

/// The fan-out. One per gateway process, fed by the tail.
pub struct Hub {
    inner: Mutex<Inner>,
    /// The declared collections.
    collections: Arc<Collections>,
    metrics: Arc<Metrics>,
    published: Notify,
    /// Wakes the mirror's loader when a load is due.
    load_due: Notify,
    /// Set once by [`Hub::drain`]; read by every session, without the lock.
    draining: AtomicBool,
}

impl Hub {
    /// An empty hub whose ring holds at most `ring_events` events and `ring_bytes` bytes.
    pub fn new(ring_events: usize, ring_bytes: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_collections(ring_events, ring_bytes, metrics, Arc::default())
    }

    /// An empty hub that mirrors `collections`.
    pub fn with_collections(
        ring_events: usize,
        ring_bytes: usize,
        metrics: Arc<Metrics>,
        collections: Arc<Collections>,
    ) -> Arc<Self> {
        Arc::new(Self {
            collections: Arc::clone(&collections),
            inner: Mutex::new(Inner {
                epoch: None,
                head: 0,
                live: false,
                ring: Ring::new(ring_events, ring_bytes),
                subs: HashMap::new(),
                index: HashMap::new(),
                stats: HashMap::new(),
                stats_subs: HashMap::new(),
                mirror: Mirror::new(collections),
                next_id: 0,
            }),
            metrics,
            published: Notify::new(),
            load_due: Notify::new(),
            draining: AtomicBool::new(false),
        })
    }

    /// Starts the drain: every session picks a moment within its drain window to end with
    /// `reconnect`. The flag is set first, then every queue gets a [`Queued::Drain`] to wake
    /// idle sessions; a session whose queue is full is busy and sees the flag on its next
    /// call, and a session opened later sees it at once. (Sessions do not each watch the
    /// shutdown token: that costs two lock round trips per delivered frame.)
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        let inner = self.lock();
        for entry in inner.subs.values() {
            let _ = entry.tx.try_send(Queued::Drain);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (no multi-step invariants are
        // left half-done by anything that can panic), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current epoch, or `None` before the tail first reached the stream.
    pub fn epoch(&self) -> Option<Epoch> {
        self.lock().epoch
    }

    /// The last published position.
    pub fn head(&self) -> Option<Cursor> {
        let inner = self.lock();
        inner.epoch.map(|e| Cursor::new(inner.head, e))
    }

    /// Whether the feed is live.
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// Open subscriptions.
    pub fn subscribers(&self) -> usize {
        self.lock().subs.len()
    }

    /// The newest `n` events of `tenant`/`topics` passing `filter` the ring holds at or below
    /// `upper` (`None`: the head), read under the publication lock, so the answer and its head
    /// are one moment. `None` if the stream has not been reached yet.
    pub fn recent(
        &self,
        (tenant, topics, filter): (&TenantId, &TopicSet, &Filter),
        upper: Option<u64>,
        n: usize,
    ) -> Option<Recent> {
        let inner = self.lock();
        let epoch = inner.epoch?;
        let upper = upper.map_or(inner.head, |u| u.min(inner.head));
        Some(Recent {
            epoch,
            head: inner.head,
            floor: inner.ring.floor(),
            events: inner.ring.latest(upper, (tenant, topics, filter), n),
        })
    }

    /// Registers a subscriber for `tenant`/`topics` with a queue of `capacity`, resuming
    /// after `since`. `None` if the stream has not been reached yet.
    pub fn subscribe(
        self: &Arc<Self>,
        tenant: TenantId,
        topics: TopicSet,
        since: Option<Cursor>,
        capacity: usize,
    ) -> Option<Subscription> {
        self.subscribe_with(tenant, topics, since, capacity, false)
    }

    /// [`Hub::subscribe`], in snapshot mode when `snapshots`: the subscription carries every
    /// collection at its head ([`Subscription::cut`]), and after a reset its queue carries a
    /// fresh one.
    pub fn subscribe_with(
        self: &Arc<Self>,
        tenant: TenantId,
        topics: TopicSet,
        since: Option<Cursor>,
        capacity: usize,
        snapshots: bool,
    ) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let closed = Arc::new(OnceLock::new());
        let mut inner = self.lock();
        let epoch = inner.epoch?;
        let backlog = match since {
            None => Backlog::Nothing,
            Some(c) if c.epoch != epoch => Backlog::Reset(ResetReason::EpochMismatch),
            Some(c) if c.seq > inner.head => Backlog::Ahead(c),
            Some(c) => match inner.ring.after(c.seq, &tenant, &topics) {
                Some(events) if events.is_empty() => Backlog::Nothing,
                Some(events) => Backlog::Ring(events),
                None => Backlog::Replay(c),
            },
        };
        let cut = if snapshots {
            inner.mirror.cut(Cursor::new(inner.head, epoch))
        } else {
            None
        };
        let id = inner.next_id;
        inner.next_id += 1;
        inner
            .index
            .entry(tenant.clone())
            .or_default()
            .add(id, &topics);
        inner.subs.insert(
            id,
            Entry {
                tenant: tenant.clone(),
                topics,
                stats: None,
                tx,
                closed: Arc::clone(&closed),
                snapshots,
                awaiting: snapshots && cut.is_none(),
            },
        );
        Some(Subscription {
            hub: Arc::clone(self),
            id,
            rx,
            epoch,
            head: inner.head,
            live: inner.live,
            backlog,
            tenant,
            cut,
            closed,
        })
    }

    fn set_topics(&self, id: u64, topics: TopicSet) {
        let mut inner = self.lock();
        let Inner { subs, index, .. } = &mut *inner;
        if let Some(entry) = subs.get_mut(&id) {
            let idx = index.entry(entry.tenant.clone()).or_default();
            idx.remove(id, &entry.topics);
            idx.add(id, &topics);
            entry.topics = topics;
        }
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        Self::remove_locked(&mut inner, id);
    }

    fn remove_locked(inner: &mut Inner, id: u64) -> Option<Entry> {
        let entry = inner.subs.remove(&id)?;
        if entry.stats.is_some() {
            Self::unlist_stats(inner, &entry.tenant, id);
        }
        if let Some(idx) = inner.index.get_mut(&entry.tenant) {
            idx.remove(id, &entry.topics);
            if idx.is_empty() {
                inner.index.remove(&entry.tenant);
            }
        }
        Some(entry)
    }

    /// Queues `frame` for `id`; a full queue closes it with [`Closed::Overflow`].
    fn offer(inner: &mut Inner, id: u64, frame: Frame, metrics: &Metrics) {
        let Some(entry) = inner.subs.get(&id) else {
            return;
        };
        match entry.tx.try_send(Queued::Frame(frame)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let _ = entry.closed.set(Closed::Overflow);
                metrics.overflows.inc();
                Self::remove_locked(inner, id);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Self::remove_locked(inner, id);
            }
        }
    }

    /// Starts (or restarts, after an outage) at `epoch` with the next event expected after
    /// `head`; returns the position to follow the stream from.
    ///
    /// A new epoch (the stream was recreated) empties the ring and sends `reset` to everyone.
    /// So does a `first_seq` past `head + 1`: events expired while the tail was away, and
    /// connected clients must not silently miss them.
    pub fn start(&self, epoch: Epoch, head: u64, first_seq: u64) -> u64 {
        let mut inner = self.lock();
        let first = inner.epoch.is_none();
        let reset = match inner.epoch {
            None => {
                inner.epoch = Some(epoch);
                inner.head = head;
                inner.ring.reset(head);
                None
            }
            Some(old) if old != epoch => {
                inner.epoch = Some(epoch);
                inner.head = head;
                inner.ring.reset(head);
                Some(ResetReason::EpochMismatch)
            }
            Some(_) if first_seq > inner.head + 1 => {
                let floor = first_seq - 1;
                inner.head = floor;
                inner.ring.reset(floor);
                Some(ResetReason::OutOfRetention)
            }
            Some(_) => None,
        };
        if let Some(reason) = reset {
            self.metrics.resets.inc();
            let control = Control::Reset {
                reason,
                cursor: Cursor::new(inner.head, epoch),
            };
            self.broadcast_locked(&mut inner, &control);
        }
        if first || reset.is_some() {
            // The mirror missed events (or has none yet): load it again; snapshot-mode
            // subscribers get a fresh snapshot after their `reset`.
            let head = inner.head;
            inner.mirror.begin(epoch, head);
            for entry in inner.subs.values_mut() {
                entry.awaiting |= entry.snapshots;
            }
            self.after_mirror_change(&mut inner, true);
            self.load_due.notify_one();
        }
        inner.head
    }

    /// Marks the feed live or degraded, telling every subscriber on a change.
    pub fn set_live(&self, live: bool) {
        let mut inner = self.lock();
        if inner.live != live {
            inner.live = live;
            self.broadcast_locked(&mut inner, &Control::Status { live });
        }
    }

    fn broadcast_locked(&self, inner: &mut Inner, control: &Control) {
        let ids: Vec<u64> = inner.subs.keys().copied().collect();
        for id in ids {
            Self::offer(inner, id, Frame::Control(control.clone()), &self.metrics);
        }
    }

    /// Publishes the next event in stream order. Sequences at or below the head are ignored.
    /// A collection's event is applied to the mirror under the same lock (with its audience,
    /// which the row keeps).
    pub fn publish(&self, frame: Arc<EventFrame>) {
        let prepared = mirror::Prepared::of(&self.collections, &frame, frame.audience.clone());
        let mut inner = self.lock();
        if frame.seq() <= inner.head {
            return;
        }
        inner.head = frame.seq();
        inner.ring.push(Arc::clone(&frame));
        let head = inner.head;
        let went_live = match inner.mirror.on_event(prepared, head) {
            mirror::Applied::Live => true,
            mirror::Applied::Queued | mirror::Applied::Applied => false,
            mirror::Applied::Restarted => {
                self.load_due.notify_one();
                false
            }
        };
        let ids: Vec<u64> = match inner.index.get(&frame.tenant) {
            None => Vec::new(),
            Some(idx) => idx
                .all
                .iter()
                .chain(idx.by_topic.get(&frame.topic).into_iter().flatten())
                .copied()
                .collect(),
        };
        for id in ids {
            Self::offer(
                &mut inner,
                id,
                Frame::Event(Arc::clone(&frame)),
                &self.metrics,
            );
        }
        self.after_mirror_change(&mut inner, went_live);
        drop(inner);
        self.published.notify_waiters();
    }

    /// The declared collections.
    pub fn collections(&self) -> &Arc<Collections> {
        &self.collections
    }

    /// The load to run, once per load ([`crate::mirror::load::Loader`]).
    pub fn mirror_ticket(&self) -> Option<Ticket> {
        self.lock().mirror.ticket()
    }

    /// The next load to run: waits until one is due.
    pub async fn next_mirror_load(&self) -> Ticket {
        loop {
            if let Some(ticket) = self.mirror_ticket() {
                return ticket;
            }
            self.load_due.notified().await;
        }
    }

    /// The current load's number (a loader whose ticket is older gives up).
    pub fn mirror_generation(&self) -> u64 {
        self.lock().mirror.generation()
    }

    /// Whether the mirror is live (snapshots can be cut).
    pub fn mirror_live(&self) -> bool {
        self.lock().mirror.is_live()
    }

    /// Hands a finished load to the mirror.
    pub fn finish_load(&self, ticket: Ticket, loaded: Loaded) {
        let mut inner = self.lock();
        let head = inner.head;
        let went_live = inner.mirror.finish(ticket, loaded, head);
        self.after_mirror_change(&mut inner, went_live);
    }

    /// Every collection at the head, or `None` while the mirror loads (or before the stream
    /// was reached).
    pub fn snapshot(&self) -> Option<Cut> {
        let inner = self.lock();
        let epoch = inner.epoch?;
        inner.mirror.cut(Cursor::new(inner.head, epoch))
    }

    /// Every collection as it was at `cursor`, if none of `ids` changed since (so the current
    /// tables are that snapshot's).
    pub fn snapshot_unchanged_since(
        &self,
        cursor: Cursor,
        ids: &[mirror::CollectionId],
    ) -> Option<Cut> {
        let inner = self.lock();
        if inner.epoch != Some(cursor.epoch) || cursor.seq > inner.head {
            return None;
        }
        if !inner.mirror.unchanged_since(ids, cursor.seq) {
            return None;
        }
        inner.mirror.cut(cursor)
    }

    /// Once the mirror went live, queues a fresh snapshot for every subscriber awaiting one;
    /// updates the mirror's row gauge.
    fn after_mirror_change(&self, inner: &mut Inner, went_live: bool) {
        self.metrics
            .mirror_rows
            .set(i64::try_from(inner.mirror.rows()).unwrap_or(i64::MAX));
        if !went_live {
            return;
        }
        let Some(epoch) = inner.epoch else { return };
        let Some(cut) = inner.mirror.cut(Cursor::new(inner.head, epoch)) else {
            return;
        };
        let ids: Vec<u64> = inner
            .subs
            .iter()
            .filter(|(_, e)| e.awaiting)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(entry) = inner.subs.get_mut(&id) else {
                continue;
            };
            entry.awaiting = false;
            if let Err(mpsc::error::TrySendError::Full(_)) =
                entry.tx.try_send(Queued::Snapshot(cut.clone()))
            {
                let _ = entry.closed.set(Closed::Overflow);
                self.metrics.overflows.inc();
                Self::remove_locked(inner, id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
