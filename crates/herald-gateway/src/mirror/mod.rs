//! The gateway's mirror of every collection (`proto/state.md`, "The gateway's mirror").
//!
//! Each gateway holds every declared collection in memory, applied from its one tail in
//! stream order **inside the hub** (under the lock that orders fan-out), so a snapshot and its
//! cursor are cut atomically with a subscription: whatever the snapshot holds is at or below
//! the subscription's head, and the subscription's queue carries every later event.
//!
//! Tables are persistent maps ([`imbl::OrdMap`]): cutting a snapshot ([`Mirror::cut`]) clones
//! one map per collection in O(1) under the lock; paging and serializing happen outside it,
//! and a later write copies only the path it changes.
//!
//! At start, and whenever the hub resets (a recreated stream, or events that expired while
//! the tail was away), the mirror is **loading** ([`load`]): the tail's collection events are
//! queued, the rows are read from the `herald_state` KV bucket and the events after its
//! markers are replayed; the loaded tables then take the queued events and the mirror goes
//! live once the hub's head has reached everything the load read.

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use herald_core::state::{Change, Collections};
use serde_json::value::RawValue;

use crate::frame::EventFrame;

pub mod load;

/// The users a row is visible to (its event's `Herald-To` audience); `None`: everyone, an
/// empty audience: nobody.
pub type Audience = Option<crate::frame::Audience>;

/// One row as the mirror holds it.
#[derive(Debug, Clone)]
pub struct MirrorRow {
    /// The stream sequence of the event that wrote it.
    pub seq: u64,
    /// The row (the event's `data`), as JSON text.
    pub data: Arc<RawValue>,
    /// Who may see it.
    pub to: Audience,
}

impl MirrorRow {
    /// Whether `user` may see this row.
    pub fn visible_to(&self, user: &str) -> bool {
        self.to
            .as_ref()
            .is_none_or(|to| to.iter().any(|u| &**u == user))
    }
}

/// One collection's rows by key (bytewise order).
pub type Table = imbl::OrdMap<String, MirrorRow>;

/// A collection: its tenant and topic.
pub type CollectionId = (TenantId, Topic);

/// Every collection's rows at one stream position.
#[derive(Debug, Clone)]
pub struct Cut {
    /// The position: the state after the event at this cursor.
    pub cursor: Cursor,
    /// The tables (an absent collection is empty).
    pub tables: Arc<HashMap<CollectionId, Table>>,
}

/// What a collection's event does, worked out before the hub's lock is taken (parsing the
/// body and rendering the row are the costly part): applying it under the lock is a map
/// update.
#[derive(Debug)]
pub struct Prepared {
    seq: u64,
    id: CollectionId,
    change: Change,
    /// The row (the event's `data`) for an upsert.
    data: Arc<RawValue>,
    to: Audience,
}

impl Prepared {
    /// The change `frame` (with audience `to`) makes, if it is a collection's event.
    pub fn of(collections: &Collections, frame: &EventFrame, to: Audience) -> Option<Self> {
        let path = collections.get(&frame.tenant, &frame.topic)?;
        let null = serde_json::Value::Null;
        let data = frame.fields().and_then(|f| f.get("data")).unwrap_or(&null);
        let change = Change::of(path, frame.action.as_str(), data);
        let data = match change {
            Change::Upsert { .. } => serde_json::value::to_raw_value(data)
                .map(Arc::from)
                .unwrap_or_else(|_| Arc::from(RawValue::NULL.to_owned())),
            _ => Arc::from(RawValue::NULL.to_owned()),
        };
        Some(Self {
            seq: frame.seq(),
            id: (frame.tenant.clone(), frame.topic.clone()),
            change,
            data,
            to,
        })
    }
}

/// What a finished load read: the tables at `upto` (every collection event up to it is in).
#[derive(Debug, Default)]
pub struct Loaded {
    /// The live rows of each collection.
    pub tables: HashMap<CollectionId, Table>,
    /// The stream position the tables reflect.
    pub upto: u64,
}

/// Collection events the mirror queues while loading before it gives up on the load under
/// way and starts another (which reads them from the stream instead).
pub const MAX_QUEUED: usize = 100_000;

/// What [`Mirror::on_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied to the live tables (or not a collection's event).
    Applied,
    /// Queued: the mirror is loading.
    Queued,
    /// The mirror went live with it.
    Live,
    /// The queue was full: a new load is due.
    Restarted,
}

/// Which load a loader runs (a newer reset makes an older loader's result void).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The load's number.
    pub generation: u64,
    /// The stream epoch it loads.
    pub epoch: Epoch,
}

#[derive(Debug)]
enum Phase {
    /// Applied from the tail; events at or below `upto` were already applied by the load.
    Live { upto: u64 },
    /// Being loaded: the tail's collection events wait in `queue`.
    Loading {
        ticket: Ticket,
        spawned: bool,
        queue: Vec<Prepared>,
        ready: Option<Loaded>,
    },
}

/// The mirror, held inside the hub's lock.
#[derive(Debug)]
pub struct Mirror {
    collections: Arc<Collections>,
    tables: HashMap<CollectionId, Table>,
    /// The sequence of the last change to each collection (for pages of expired snapshots).
    changed: HashMap<CollectionId, u64>,
    phase: Phase,
    generation: u64,
}

impl Mirror {
    /// An empty mirror of `collections`, loading until the first [`Mirror::begin`].
    pub fn new(collections: Arc<Collections>) -> Self {
        Self {
            collections,
            tables: HashMap::new(),
            changed: HashMap::new(),
            phase: Phase::Loading {
                ticket: Ticket {
                    generation: 0,
                    epoch: Epoch(0),
                },
                // Nothing to load before the tail has reached the stream.
                spawned: true,
                queue: Vec::new(),
                ready: None,
            },
            generation: 0,
        }
    }

    /// The declared collections.
    pub fn collections(&self) -> &Arc<Collections> {
        &self.collections
    }

    /// Starts a new load for `epoch` (the hub was reset or started). With no collection
    /// declared the mirror is live at once.
    pub fn begin(&mut self, epoch: Epoch, head: u64) {
        self.generation += 1;
        self.tables.clear();
        self.changed.clear();
        if self.collections.is_empty() {
            self.phase = Phase::Live { upto: head };
            return;
        }
        self.phase = Phase::Loading {
            ticket: Ticket {
                generation: self.generation,
                epoch,
            },
            spawned: false,
            queue: Vec::new(),
            ready: None,
        };
    }

    /// The load to run, once per load.
    pub fn ticket(&mut self) -> Option<Ticket> {
        match &mut self.phase {
            Phase::Loading {
                ticket, spawned, ..
            } if !*spawned => {
                *spawned = true;
                Some(*ticket)
            }
            _ => None,
        }
    }

    /// The current load's number.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the mirror is live (snapshots can be cut).
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live { .. })
    }

    /// Applies (or queues, while loading) the event the tail delivered at `head`: `None` for
    /// an event of no collection.
    pub fn on_event(&mut self, event: Option<Prepared>, head: u64) -> Applied {
        let live = |went: bool| if went { Applied::Live } else { Applied::Queued };
        let Some(event) = event else {
            return match self.phase {
                Phase::Loading { .. } => live(self.try_finish(head)),
                Phase::Live { .. } => Applied::Applied,
            };
        };
        if let Phase::Live { upto } = self.phase {
            if event.seq > upto {
                self.apply(event);
            }
            return Applied::Applied;
        }
        if let Phase::Loading { queue, ticket, .. } = &mut self.phase {
            if queue.len() >= MAX_QUEUED {
                let epoch = ticket.epoch;
                tracing::warn!(
                    queued = MAX_QUEUED,
                    "the collections load is too slow; starting it again"
                );
                self.begin(epoch, head);
                return Applied::Restarted;
            }
            queue.push(event);
        }
        live(self.try_finish(head))
    }

    /// Hands over a finished load; `true` when the mirror went live with it (it waits for
    /// the hub's head to reach what the load read).
    pub fn finish(&mut self, ticket: Ticket, loaded: Loaded, head: u64) -> bool {
        match &mut self.phase {
            Phase::Loading {
                ticket: current,
                ready,
                ..
            } if *current == ticket => {
                *ready = Some(loaded);
                self.try_finish(head)
            }
            _ => false,
        }
    }

    fn try_finish(&mut self, head: u64) -> bool {
        let Phase::Loading { ready, queue, .. } = &mut self.phase else {
            return false;
        };
        if ready.as_ref().is_none_or(|r| r.upto > head) {
            return false;
        }
        let (Some(loaded), queue) = (ready.take(), std::mem::take(queue)) else {
            return false;
        };
        self.tables = loaded.tables;
        for event in queue {
            if event.seq > loaded.upto {
                self.apply(event);
            }
        }
        // Conservatively: pages of snapshots cut before the load are not served.
        for (tenant, topic, _) in self.collections.iter() {
            self.changed.insert((tenant.clone(), topic.clone()), head);
        }
        self.phase = Phase::Live { upto: loaded.upto };
        true
    }

    /// Applies one event in stream order (every earlier one is in).
    fn apply(&mut self, event: Prepared) {
        let Prepared {
            seq,
            id,
            change,
            data,
            to,
        } = event;
        let table = self.tables.entry(id.clone()).or_default();
        match change {
            Change::Upsert { key } => {
                table.insert(key, MirrorRow { seq, data, to });
            }
            Change::Delete { key } => {
                table.remove(&key);
            }
            Change::Clear => *table = Table::new(),
            Change::Ignored | Change::Unkeyed(_) => return,
        }
        self.changed.insert(id, seq);
    }

    /// Every collection at `cursor` (the hub's head), or `None` while loading. O(number of
    /// collections).
    pub fn cut(&self, cursor: Cursor) -> Option<Cut> {
        self.is_live().then(|| Cut {
            cursor,
            tables: Arc::new(self.tables.clone()),
        })
    }

    /// Whether none of `ids` changed after `seq` (a snapshot cut at `seq` equals the current
    /// state of these collections).
    pub fn unchanged_since(&self, ids: &[CollectionId], seq: u64) -> bool {
        self.is_live()
            && ids
                .iter()
                .all(|id| self.changed.get(id).is_none_or(|&c| c <= seq))
    }

    /// Rows held, over every collection (for the metric).
    pub fn rows(&self) -> usize {
        self.tables.values().map(Table::len).sum()
    }
}

#[cfg(test)]
mod tests;
