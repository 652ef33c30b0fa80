//! Property: whatever the delivery schedule of the shared consumer — split between two
//! instances, cut into arbitrary batches, crashes that lose whole batches and redeliver them
//! later — catching documents up yields exactly the sequential fold of the stream.
//!
//! The stream here is an in-memory list standing in for `HERALD_EVENTS` reads; the same
//! property is checked end to end against a real nats-server in `tests/it/exactly_once.rs`.

use std::collections::BTreeMap;

use herald_core::cursor::Epoch;
use proptest::prelude::*;

use super::*;
use crate::coverage::Mark;

struct Stream(Vec<(String, RawEvent)>);

impl History for Stream {
    async fn next_after(
        &self,
        filter: &str,
        after: u64,
    ) -> Result<Option<RawEvent>, jetstream::stream::DirectGetError> {
        Ok(self
            .0
            .iter()
            .find(|(f, e)| f == filter && e.seq > after)
            .map(|(_, e)| e.clone()))
    }
}

const TOPICS: [&str; 3] = ["leads", "deals", "games"];

fn event(seq: u64, topic: usize, action: u8, status: u8) -> (usize, RawEvent) {
    let statuses = ["new", "won", "lost"];
    let (action, body) = match action % 4 {
        0 => (
            "insert",
            serde_json::json!({"data": {"status": statuses[status as usize % 3]}}),
        ),
        1 => (
            "update",
            serde_json::json!({"data": {"status": statuses[status as usize % 3]},
                               "changes": {"status": statuses[(status as usize + 1) % 3]}}),
        ),
        2 => (
            "delete",
            serde_json::json!({"data": {"status": statuses[status as usize % 3]}}),
        ),
        _ => ("viewed", serde_json::json!({})),
    };
    let raw = RawEvent {
        seq,
        time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + 7 * seq as i64)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        action: action.parse().unwrap_or_else(|_| invalid_action()),
        payload: serde_json::to_vec(&body).unwrap_or_default().into(),
    };
    (topic, raw)
}

fn fresh(topic: usize) -> StatsDoc {
    let topic = Topic::parse(TOPICS[topic]).unwrap_or_else(|_| unreachable!());
    let tenant = TenantId::parse("acme").unwrap_or_else(|_| unreachable!());
    StatsDoc::new(tenant, topic, Epoch(1), &["status".to_owned()])
}

/// One delivery: which event, consumer sequence, attempt.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    event: usize,
    consumer_seq: u64,
    delivered: i64,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_schedule_counts_exactly(
        ops in proptest::collection::vec((0usize..3, any::<u8>(), any::<u8>()), 1..60),
        schedule in proptest::collection::vec((0usize..2, 0u8..10), 1..60),
    ) {
        let events: Vec<(usize, RawEvent)> =
            ops.iter().enumerate().map(|(i, &(t, a, s))| event(i as u64 + 1, t, a, s)).collect();
        let stream = Stream(events.iter().map(|(t, e)| {
            let filter = herald_core::subject::topic_filter(&fresh(*t).tenant, &fresh(*t).topic);
            (filter, e.clone())
        }).collect());

        // Deliveries, per instance, in consumer order; batches end where the schedule says.
        let mut next_cseq = 0;
        let mut pending: Vec<(usize, i64)> = (0..events.len()).map(|i| (i, 1)).collect();
        let mut docs: BTreeMap<usize, StatsDoc> = BTreeMap::new();
        let mut carry: [Option<crate::coverage::Carry>; 2] = [None, None];
        let mut step = 0;
        while !pending.is_empty() {
            let (instance, knob) = schedule[step % schedule.len()];
            step += 1;
            // This instance pulls a batch of 1..=4 deliveries.
            let take = (usize::from(knob) % 4 + 1).min(pending.len());
            let batch: Vec<Delivery> = pending.drain(..take).map(|(event, delivered)| {
                next_cseq += 1;
                Delivery { event, consumer_seq: next_cseq, delivered }
            }).collect();
            // knob 9: the instance is killed mid-batch; nothing is written or acked, and the
            // batch is redelivered after others have moved on.
            if knob == 9 && batch.iter().all(|d| d.delivered == 1) {
                carry[instance] = None;
                let at = pending.len().min(2);
                for d in batch.iter().rev() {
                    pending.insert(at, (d.event, 2));
                }
                continue;
            }
            let marks: Vec<Mark> = batch.iter().map(|d| Mark {
                consumer_seq: d.consumer_seq,
                stream_seq: events[d.event].1.seq,
                delivered: d.delivered,
            }).collect();
            let coverage = Coverage::build(&marks, carry[instance].take());
            let mut by_topic: BTreeMap<usize, Vec<RawEvent>> = BTreeMap::new();
            for d in &batch {
                by_topic.entry(events[d.event].0).or_default().push(events[d.event].1.clone());
            }
            for (topic, mut hand) in by_topic {
                hand.sort_by_key(|e| e.seq);
                let doc = docs.entry(topic).or_insert_with(|| fresh(topic));
                futures::executor::block_on(catch_up(doc, &hand, &coverage, &stream, None, 1000))
                    .unwrap_or_else(|_| unreachable!());
            }
            carry[instance] = coverage.carry();
        }

        for (topic, doc) in &docs {
            let mut want = fresh(*topic);
            for (_, e) in events.iter().filter(|(t, _)| t == topic) {
                fold::apply(&mut want, e, 1000);
            }
            prop_assert_eq!(doc, &want);
        }
    }
}

/// Instance A counted seq 1, instance B crashed holding seq 2 (to be redelivered), then A
/// receives seq 3: A must count seq 2 from the stream before seq 3, or seq 2 is lost for good
/// (its redelivery would be skipped as "at or below last_seq").
#[test]
fn a_batch_lost_by_another_instance_is_read_from_the_stream_not_jumped_over() {
    let events: Vec<RawEvent> = (1..=3).map(|seq| event(seq, 0, 0, seq as u8).1).collect();
    let filter = herald_core::subject::topic_filter(&fresh(0).tenant, &fresh(0).topic);
    let stream = Stream(events.iter().map(|e| (filter.clone(), e.clone())).collect());
    let mark = |c, s| Mark {
        consumer_seq: c,
        stream_seq: s,
        delivered: 1,
    };
    let mut doc = fresh(0);

    let first = Coverage::build(&[mark(1, 1)], None);
    let run = catch_up(&mut doc, &events[..1], &first, &stream, None, 1000);
    assert_eq!(
        futures::executor::block_on(run).map(|c| c.applied).ok(),
        Some(1)
    );
    // Consumer sequence 2 (stream seq 2) went to instance B, which died.
    let next = Coverage::build(&[mark(3, 3)], first.carry());
    let run = catch_up(&mut doc, &events[2..], &next, &stream, None, 1000);
    let counts = futures::executor::block_on(run).ok();
    assert_eq!(
        counts.map(|c| (c.applied, c.filled)),
        Some((2, 1)),
        "seq 2 filled from the stream"
    );
    assert_eq!((doc.last_seq, doc.total), (3, 3));
}
