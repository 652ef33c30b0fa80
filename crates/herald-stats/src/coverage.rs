//! Which stream sequences a batch is known to hold *all* messages of.
//!
//! The consumer numbers every delivery (`consumer_sequence`, redeliveries included) and
//! hands out first deliveries in stream order. So when two messages have consecutive
//! consumer sequences and are both first deliveries, no deliverable message lies between
//! their stream sequences: nobody — not this instance, not another one sharing the consumer —
//! received anything in between. A run of such messages is a *segment*; inside a segment, a
//! topic's events in hand are all its events, and no stream read is needed to prove there is
//! no gap. Outside segments (redeliveries, deliveries that went to another instance) the
//! aggregator asks the stream instead (see [`crate::apply`]).

/// Where one delivery sits: its consumer and stream sequence and how often it was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The consumer's delivery sequence.
    pub consumer_seq: u64,
    /// The stream sequence.
    pub stream_seq: u64,
    /// Delivery attempts (1 = first delivery).
    pub delivered: i64,
}

/// The last segment of a fully successful batch, which the next batch may extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carry {
    start: u64,
    end_consumer_seq: u64,
}

/// Inclusive stream-sequence ranges fully held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    segments: Vec<(u64, u64)>,
    carry: Option<Carry>,
}

impl Coverage {
    /// Coverage of a batch. `carry` (from [`Coverage::carry`] of the previous batch, only if
    /// every document of that batch was written) lets the first segment reach back into it.
    pub fn build(marks: &[Mark], carry: Option<Carry>) -> Self {
        let mut marks: Vec<Mark> = marks.iter().filter(|m| m.delivered == 1).copied().collect();
        marks.sort_by_key(|m| m.consumer_seq);
        let mut segments: Vec<(u64, u64)> = Vec::new();
        let mut last_consumer_seq = None;
        for m in &marks {
            let continues = last_consumer_seq.is_some_and(|c: u64| m.consumer_seq == c + 1);
            match segments.last_mut() {
                Some(seg) if continues => seg.1 = m.stream_seq,
                _ => {
                    let start = match carry {
                        Some(c)
                            if segments.is_empty() && m.consumer_seq == c.end_consumer_seq + 1 =>
                        {
                            c.start
                        }
                        _ => m.stream_seq,
                    };
                    segments.push((start, m.stream_seq));
                }
            }
            last_consumer_seq = Some(m.consumer_seq);
        }
        let carry = match (segments.last(), last_consumer_seq) {
            (Some(&(start, _)), Some(end_consumer_seq)) => Some(Carry {
                start,
                end_consumer_seq,
            }),
            _ => None,
        };
        Self { segments, carry }
    }

    /// Whether every stream sequence in `from..=to` is inside one segment (trivially true
    /// for an empty range).
    pub fn covers(&self, from: u64, to: u64) -> bool {
        from > to || self.segments.iter().any(|&(s, e)| s <= from && to <= e)
    }

    /// What the next batch may extend, if this batch's documents were all written.
    pub fn carry(&self) -> Option<Carry> {
        self.carry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(consumer_seq: u64, stream_seq: u64, delivered: i64) -> Mark {
        Mark {
            consumer_seq,
            stream_seq,
            delivered,
        }
    }

    #[test]
    fn consecutive_first_deliveries_form_segments() {
        // Consumer seq 4 went to another instance; 7 is a redelivery.
        let c = Coverage::build(
            &[
                m(1, 10, 1),
                m(2, 11, 1),
                m(3, 15, 1),
                m(5, 20, 1),
                m(6, 21, 1),
                m(7, 3, 2),
            ],
            None,
        );
        assert_eq!(c.segments, [(10, 15), (20, 21)]);
        assert!(
            c.covers(12, 14),
            "sequences 12-14 were never delivered: nothing to miss"
        );
        assert!(!c.covers(14, 19), "16-19 may have gone to another instance");
        assert!(!c.covers(2, 9));
        assert!(c.covers(5, 4), "empty range");
    }

    #[test]
    fn a_carry_extends_only_a_directly_following_batch() {
        let first = Coverage::build(&[m(1, 10, 1), m(2, 11, 1)], None);
        let next = Coverage::build(&[m(3, 12, 1)], first.carry());
        assert_eq!(next.segments, [(10, 12)]);
        let gap = Coverage::build(&[m(4, 12, 1)], first.carry());
        assert_eq!(gap.segments, [(12, 12)]);
        let redelivered = Coverage::build(&[m(3, 12, 2)], first.carry());
        assert!(redelivered.segments.is_empty());
        assert_eq!(redelivered.carry(), None);
    }
}
