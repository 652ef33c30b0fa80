//! The ring buffer of recent events that serves most resumes from memory.

use std::collections::VecDeque;
use std::sync::Arc;

use herald_core::names::TenantId;

use crate::auth::TopicSet;
use crate::filter::Filter;
use crate::frame::EventFrame;

/// Recent events, bounded by count and bytes. Holds every event with a sequence in
/// `(floor, head]`.
pub(super) struct Ring {
    events: VecDeque<Arc<EventFrame>>,
    /// Each event's size as counted when it came in, in the same order: a frame grows when its
    /// WebSocket rendering is first cached, and evicting its grown size would drive `bytes`
    /// below zero (a panic in debug builds, a wrapped count that empties the ring in release).
    sizes: VecDeque<usize>,
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
            sizes: VecDeque::new(),
            bytes: 0,
            floor: 0,
            max_events: max_events.max(1),
            max_bytes,
        }
    }

    pub(super) fn push(&mut self, frame: Arc<EventFrame>) {
        let size = frame.size();
        self.bytes += size;
        self.sizes.push_back(size);
        self.events.push_back(frame);
        while self.events.len() > self.max_events || self.bytes > self.max_bytes {
            match (self.events.pop_front(), self.sizes.pop_front()) {
                (Some(old), Some(size)) => {
                    self.bytes -= size;
                    self.floor = old.seq();
                }
                _ => break,
            }
        }
    }

    pub(super) fn reset(&mut self, floor: u64) {
        self.events.clear();
        self.sizes.clear();
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

    /// The newest `n` events of `tenant`/`topics` that pass `filter` with a sequence at or
    /// below `upper`, oldest first.
    pub(super) fn latest(
        &self,
        upper: u64,
        (tenant, topics, filter): (&TenantId, &TopicSet, &Filter),
        n: usize,
    ) -> Vec<Arc<EventFrame>> {
        let end = self.events.partition_point(|e| e.seq() <= upper);
        let mut found: Vec<Arc<EventFrame>> = self
            .events
            .range(..end)
            .rev()
            .filter(|e| &e.tenant == tenant && topics.contains(&e.topic) && filter.matches(e))
            .take(n)
            .cloned()
            .collect();
        found.reverse();
        found
    }
}

#[cfg(test)]
mod tests {
    use herald_core::cursor::{Cursor, Epoch};

    use super::*;

    fn frame(seq: u64) -> Arc<EventFrame> {
        let cursor = Cursor::new(seq, Epoch(1));
        Arc::new(EventFrame::new(cursor, "herald.events.acme.leads.insert", b"{}").unwrap())
    }

    #[test]
    fn a_frame_that_grew_after_it_came_in_is_evicted_at_the_size_it_was_counted() {
        // Sequences of two digits: every frame is the same size when it comes in.
        let one = frame(10).size();
        // Room for three frames as they come in.
        let mut ring = Ring::new(100, 3 * one);
        let frames: Vec<_> = (10..=12).map(frame).collect();
        for f in &frames {
            ring.push(Arc::clone(f));
            // A WebSocket client renders it: the frame now holds more bytes than were counted.
            f.ws_text();
        }
        assert!(frames[0].size() > one);
        for seq in 13..=60 {
            ring.push(frame(seq));
            assert_eq!(ring.bytes, ring.sizes.iter().sum::<usize>());
            assert_eq!(ring.events.len(), 3, "the byte bound keeps three frames");
        }
        assert_eq!(ring.floor(), 57);
    }
}
