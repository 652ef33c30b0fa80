//! The ring buffer of recent events that serves most resumes from memory.

use std::collections::VecDeque;
use std::sync::Arc;

use herald_core::names::TenantId;

use crate::auth::TopicSet;
use crate::frame::EventFrame;

/// Recent events, bounded by count and bytes. Holds every event with a sequence in
/// `(floor, head]`.
pub(super) struct Ring {
    events: VecDeque<Arc<EventFrame>>,
    bytes: usize,
    floor: u64,
    max_events: usize,
    max_bytes: usize,
}

impl Ring {
    /// An empty ring of at most `max_events` events (at least one) and `max_bytes` bytes.
    pub(super) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            floor: 0,
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    pub(super) fn push(&mut self, frame: Arc<EventFrame>) {
        self.bytes += frame.size();
        self.events.push_back(frame);
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            match self.events.pop_front() {
                Some(old) => {
                    self.bytes -= old.size();
                    self.floor = old.seq();
                }
                None => break,
            }
        }
    }

    pub(super) fn reset(&mut self, floor: u64) {
        self.events.clear();
        self.bytes = 0;
        self.floor = floor;
    }

    /// Events after `seq` for `tenant`/`topics`; `None` if `seq` is below the floor.
    pub(super) fn after(
        &self,
        seq: u64,
        tenant: &TenantId,
        topics: &TopicSet,
    ) -> Option<Vec<Arc<EventFrame>>> {
        if seq < self.floor {
            return None;
        }
        let start = self.events.partition_point(|e| e.seq() <= seq);
        Some(
            self.events
                .range(start..)
                .filter(|e| &e.tenant == tenant && topics.contains(&e.topic))
                .cloned()
                .collect(),
        )
    }

    /// Every event with a sequence at or below this one is outside the ring.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    /// The newest `n` events of `tenant`/`topics` with a sequence at or below `upper`,
    /// oldest first.
    pub(super) fn latest(
        &self,
        upper: u64,
        tenant: &TenantId,
        topics: &TopicSet,
        n: usize,
    ) -> Vec<Arc<EventFrame>> {
        let end = self.events.partition_point(|e| e.seq() <= upper);
        let mut found: Vec<Arc<EventFrame>> = self
            .events
            .range(..end)
            .rev()
            .filter(|e| &e.tenant == tenant && topics.contains(&e.topic))
            .take(n)
            .cloned()
            .collect();
        found.reverse();
        found
    }
}
