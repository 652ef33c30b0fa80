//! What every client records: per-client counters the orchestrator reads while the clients
//! run, and the correctness rules (each topic's events numbered `0, 1, 2, …` by the
//! publisher, so a client sees a gap or a duplicate the moment it happens).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One client's counters, written by that client only.
#[derive(Debug, Default)]
pub struct Slot {
    /// One more than the last event number received (0: none yet).
    pub next: AtomicU64,
    /// Events received.
    pub received: AtomicU64,
    /// Events skipped over (a number arrived before the one expected).
    pub gaps: AtomicU64,
    /// Events received twice (a number arrived that was already seen).
    pub duplicates: AtomicU64,
    /// Connections made (1 + reconnects).
    pub connects: AtomicU64,
    /// Control messages that mean lost continuity (`reset`, `overflow`).
    pub resets: AtomicU64,
    /// Bytes read from the socket (SSE clients: the whole response body and its chunk
    /// framing, heartbeats included).
    pub bytes: AtomicU64,
}

impl Slot {
    /// Records event number `n` of this client's topic, published at `sent_ns`.
    pub fn record(&self, n: u64, sent_ns: u64, latencies: Option<&mut Vec<u32>>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let next = self.next.load(Ordering::Relaxed);
        if next != 0 && n < next {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if next != 0 && n > next {
            self.gaps.fetch_add(n - next, Ordering::Relaxed);
        }
        self.next.store(n + 1, Ordering::Relaxed);
        if let Some(latencies) = latencies {
            let us = now_ns().saturating_sub(sent_ns) / 1_000;
            latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
}

/// Every client's slot, plus the switch that turns latency recording on.
#[derive(Debug)]
pub struct Board {
    /// One slot per client, by client index.
    pub slots: Vec<Slot>,
    /// Whether clients record latencies now.
    pub measuring: AtomicBool,
}

impl Board {
    /// A board for `clients` clients.
    pub fn new(clients: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: (0..clients).map(|_| Slot::default()).collect(),
            measuring: AtomicBool::new(false),
        })
    }

    /// The sum of one counter over every client.
    pub fn sum(&self, field: impl Fn(&Slot) -> &AtomicU64) -> u64 {
        self.slots
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }

    /// How many clients satisfy `done(index, slot)`.
    pub fn count(&self, done: impl Fn(usize, &Slot) -> bool) -> usize {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| done(*i, s))
            .count()
    }
}

/// Nanoseconds since the Unix epoch (the publisher and clients share the machine's clock).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Finds the bench's `"bn":<n>,"bt":<ns>` in an event's JSON without parsing all of it.
pub fn parse_marks(json: &[u8]) -> Option<(u64, u64)> {
    Some((
        number_after(json, b"\"bn\":")?,
        number_after(json, b"\"bt\":")?,
    ))
}

fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let at = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = hay[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&hay[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Latency percentiles (µs → ms) of a sorted sample: p50, p99, p99.9, max.
pub fn percentiles(sorted_us: &[u32]) -> [f64; 4] {
    let at = |q: f64| {
        if sorted_us.is_empty() {
            return f64::NAN;
        }
        let i = ((sorted_us.len() as f64 * q) as usize).min(sorted_us.len() - 1);
        f64::from(sorted_us[i]) / 1000.0
    };
    [at(0.50), at(0.99), at(0.999), at(1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_marks_inside_a_cloudevent() {
        let json = br#"{"id":"x","data":{"bn":42,"bt":1700000000123456789},"tenant":"t"}"#;
        assert_eq!(parse_marks(json), Some((42, 1_700_000_000_123_456_789)));
        assert_eq!(parse_marks(br#"{"data":{}}"#), None);
    }

    #[test]
    fn counts_gaps_and_duplicates() {
        let slot = Slot::default();
        for n in [0, 1, 3, 3, 2, 4] {
            slot.record(n, now_ns(), None);
        }
        assert_eq!(slot.gaps.load(Ordering::Relaxed), 1, "2 skipped once");
        assert_eq!(
            slot.duplicates.load(Ordering::Relaxed),
            2,
            "3 again, then 2 late"
        );
        assert_eq!(slot.next.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn percentiles_of_a_sample() {
        let sample: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
        let [p50, p99, p999, max] = percentiles(&sample);
        assert_eq!((p50, p99, p999, max), (501.0, 991.0, 1000.0, 1000.0));
    }
}
