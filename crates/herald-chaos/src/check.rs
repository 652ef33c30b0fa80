//! The checker: Herald's promises, stated as comparisons between what was sent, what the
//! stream holds, and what every client, the stats bucket and the chat platforms received.
//!
//! Each function returns its findings as [`Violation`]s; an empty list is a pass.

use std::collections::{BTreeMap, HashMap, HashSet};

use herald_core::cursor::Epoch;

use crate::client::ClientLog;
use crate::facts::{Counts, DeadLetter, Stored};
use crate::plan::{ClientSpec, ID_PREFIX, ROUTES, Route};
use crate::producer::Sent;

/// At most this many examples of one kind of violation are listed.
const EXAMPLES: usize = 10;

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Which promise (`webhook_lost`, `client_gap`, …).
    pub kind: &'static str,
    /// What exactly.
    pub detail: String,
}

fn violation(kind: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        kind,
        detail: detail.into(),
    }
}

/// Keeps at most ten examples of each kind, then one line saying how many more there were.
pub fn condense(all: Vec<Violation>) -> Vec<Violation> {
    let mut by_kind: BTreeMap<&'static str, Vec<Violation>> = BTreeMap::new();
    for v in all {
        by_kind.entry(v.kind).or_default().push(v);
    }
    let mut out = Vec::new();
    for (kind, vs) in by_kind {
        let n = vs.len();
        out.extend(vs.into_iter().take(EXAMPLES));
        if n > EXAMPLES {
            out.push(violation(kind, format!("… and {} more", n - EXAMPLES)));
        }
    }
    out
}

/// Every acknowledged webhook is in the stream exactly once, as sent; nothing is in the
/// stream that was not sent; no valid webhook was refused.
pub fn webhooks(ledger: &BTreeMap<String, Sent>, events: &[Stored]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut stored: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for e in events {
        stored.entry(e.id.as_str()).or_default().push(e);
    }
    for (id, sent) in ledger {
        let copies = stored.get(id.as_str()).map_or(0, Vec::len);
        if let Some(status) = sent.refused {
            out.push(violation("webhook_refused", format!("{id}: HTTP {status}")));
        }
        if sent.acked && copies == 0 {
            out.push(violation(
                "webhook_lost",
                format!("{id} was acknowledged but is not in the stream"),
            ));
        }
        if copies > 1 {
            out.push(violation(
                "webhook_duplicated",
                format!("{id} is in the stream {copies} times"),
            ));
        }
        if let Some(e) = stored.get(id.as_str()).and_then(|v| v.first())
            && (e.tenant != sent.tenant || e.topic != sent.topic || e.action != sent.action)
        {
            out.push(violation(
                "webhook_altered",
                format!(
                    "{id} was sent as {}.{}.{} but stored as {}.{}.{}",
                    sent.tenant, sent.topic, sent.action, e.tenant, e.topic, e.action
                ),
            ));
        }
    }
    for e in events {
        if !ledger.contains_key(&e.id) {
            out.push(violation(
                "phantom_event",
                format!("seq {} ({:?}) was never sent", e.seq, e.id),
            ));
        }
    }
    out
}

/// What one client should have received, and how its log compares.
#[derive(Debug, Default, serde::Serialize)]
pub struct ClientVerdict {
    /// Events of its tenant and topics in the stream.
    pub expected: usize,
    /// Events it received.
    pub received: usize,
    /// Connections it opened.
    pub connects: u32,
    /// `status: degraded` frames seen.
    pub degraded: u32,
    /// `overflow` frames seen.
    pub overflows: u32,
}

/// The events a client of `spec` must receive, in order.
pub fn expected_for<'a>(spec: &ClientSpec, events: &'a [Stored]) -> Vec<&'a Stored> {
    events
        .iter()
        .filter(|e| e.tenant == spec.tenant && spec.topics.contains(&e.topic.as_str()))
        .collect()
}

/// Every client received every event of its tenant and topics, in order, with no gap, no
/// duplicate, nothing foreign, every cursor of the stream's epoch, and no `reset`.
pub fn client(
    spec: &ClientSpec,
    log: &ClientLog,
    events: &[Stored],
    epoch: Epoch,
) -> (ClientVerdict, Vec<Violation>) {
    let expected = expected_for(spec, events);
    let by_seq: HashMap<u64, &Stored> = events.iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    let name = &spec.name;
    for reset in &log.resets {
        out.push(violation("client_reset", format!("{name}: {reset}")));
    }
    for g in &log.garbled {
        out.push(violation("client_garbled_frame", format!("{name}: {g}")));
    }
    let mut seen = HashSet::new();
    let mut last = 0;
    for got in &log.received {
        let seq = got.cursor.seq;
        if got.cursor.epoch != epoch {
            out.push(violation(
                "client_wrong_epoch",
                format!("{name}: cursor {} (stream epoch {epoch})", got.cursor),
            ));
        }
        if got.tenant != spec.tenant || !spec.topics.contains(&got.topic.as_str()) {
            out.push(violation(
                "client_foreign_event",
                format!(
                    "{name}: {} of {}/{} at {seq}",
                    got.id, got.tenant, got.topic
                ),
            ));
        }
        match by_seq.get(&seq) {
            Some(e) if e.id != got.id => out.push(violation(
                "client_wrong_event",
                format!(
                    "{name}: cursor {seq} carried {} but the stream has {}",
                    got.id, e.id
                ),
            )),
            None => out.push(violation(
                "client_wrong_event",
                format!("{name}: cursor {seq} is not in the stream"),
            )),
            _ => {}
        }
        if !seen.insert(seq) {
            out.push(violation(
                "client_duplicate",
                format!("{name}: seq {seq} received again"),
            ));
        } else if seq < last {
            out.push(violation(
                "client_out_of_order",
                format!("{name}: seq {seq} after {last}"),
            ));
        }
        last = last.max(seq);
    }
    for e in &expected {
        if !seen.contains(&e.seq) {
            out.push(violation(
                "client_gap",
                format!("{name}: never received seq {} ({})", e.seq, e.id),
            ));
        }
    }
    let verdict = ClientVerdict {
        expected: expected.len(),
        received: log.received.len(),
        connects: log.connects,
        degraded: log.degraded,
        overflows: log.overflows,
    };
    (verdict, out)
}

/// The recount of `events` for one tenant and topic.
pub fn recount(events: &[Stored], tenant: &str, topic: &str) -> Counts {
    let mut c = Counts::default();
    for e in events
        .iter()
        .filter(|e| e.tenant == tenant && e.topic == topic)
    {
        c.total += 1;
        *c.by_action.entry(e.action.clone()).or_default() += 1;
    }
    c
}

/// A stats document equals the recount.
pub fn stats(tenant: &str, topic: &str, doc: Option<&Counts>, recount: &Counts) -> Vec<Violation> {
    match doc {
        None if recount.total == 0 => Vec::new(),
        None => vec![violation(
            "stats_missing",
            format!("{tenant}.{topic}: no document for {} events", recount.total),
        )],
        Some(d) if d != recount => vec![violation(
            "stats_wrong",
            format!("{tenant}.{topic}: document {d:?}, recount {recount:?}"),
        )],
        Some(_) => Vec::new(),
    }
}

/// Ids of Herald events in a message text (a single message or a digest).
pub fn ids_in(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '*' | '`' | '_' | '(' | ')' | ',' | ':'))
        .filter(|w| w.starts_with(ID_PREFIX) && w.len() > ID_PREFIX.len())
        .collect()
}

/// Tallies of the notification check.
#[derive(Debug, Default, serde::Serialize)]
pub struct NotificationVerdict {
    /// (event, target) pairs the rules ask for.
    pub expected: usize,
    /// Pairs delivered (accepted by the fake platform).
    pub sent: usize,
    /// Pairs dead-lettered.
    pub dead_lettered: usize,
    /// Pairs delivered twice within the documented crash window.
    pub crash_window_repeats: usize,
}

/// Every notification the rules ask for was sent exactly once or sits in the DLQ; a pair
/// may be sent twice only within the documented window (one per target per notifier
/// SIGKILL).
pub fn notifications(
    events: &[Stored],
    accepted: &[(String, String)],
    dead: &[DeadLetter],
    notifier_kills: usize,
) -> (NotificationVerdict, Vec<Violation>) {
    let route_of_fake: HashMap<&str, &Route> = ROUTES.iter().map(|r| (r.fake_target, r)).collect();
    let mut sent: HashMap<(String, &str), usize> = HashMap::new();
    let mut out = Vec::new();
    for (fake_target, text) in accepted {
        let Some(route) = route_of_fake.get(fake_target.as_str()) else {
            out.push(violation(
                "notification_unrouted",
                format!("accepted at unknown target {fake_target}: {text}"),
            ));
            continue;
        };
        for id in ids_in(text) {
            *sent.entry((id.to_owned(), route.target)).or_default() += 1;
        }
    }
    let mut dlq: HashMap<(String, String), usize> = HashMap::new();
    for d in dead {
        *dlq.entry((d.id.clone(), d.target.clone())).or_default() += 1;
    }
    let mut v = NotificationVerdict::default();
    let mut repeats: HashMap<&str, usize> = HashMap::new();
    let mut wanted: HashSet<(String, &str)> = HashSet::new();
    for e in events {
        for r in ROUTES
            .iter()
            .filter(|r| r.matches(&e.tenant, &e.topic, &e.action))
        {
            v.expected += 1;
            wanted.insert((e.id.clone(), r.target));
            let n = sent.get(&(e.id.clone(), r.target)).copied().unwrap_or(0);
            let d = dlq
                .get(&(e.id.clone(), r.target.to_owned()))
                .copied()
                .unwrap_or(0);
            match (n, d) {
                (0, 0) => out.push(violation(
                    "notification_lost",
                    format!("{} to {}: neither sent nor dead-lettered", e.id, r.target),
                )),
                (0, _) => v.dead_lettered += 1,
                (_, 1..) => out.push(violation(
                    "notification_sent_and_dead",
                    format!("{} to {}: sent {n}× and dead-lettered", e.id, r.target),
                )),
                (1, _) => v.sent += 1,
                (n, _) => {
                    v.sent += 1;
                    v.crash_window_repeats += n - 1;
                    *repeats.entry(r.target).or_default() += n - 1;
                }
            }
        }
    }
    for (target, n) in repeats {
        if n > notifier_kills {
            out.push(violation(
                "notification_duplicated",
                format!("{target}: {n} repeated sends, more than one per notifier SIGKILL ({notifier_kills})"),
            ));
        }
    }
    for (id, target) in sent.keys() {
        if !wanted.contains(&(id.clone(), *target)) {
            out.push(violation(
                "notification_unwanted",
                format!("{id} sent to {target}, which no rule asks for"),
            ));
        }
    }
    (v, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::cursor::Cursor;

    use crate::client::Got;
    use crate::plan::Transport;

    fn stored(seq: u64, tenant: &str, topic: &str, action: &str) -> Stored {
        Stored {
            seq,
            id: format!("{ID_PREFIX}{seq}"),
            tenant: tenant.into(),
            topic: topic.into(),
            action: action.into(),
        }
    }

    fn sent(tenant: &'static str, topic: &'static str, action: &'static str, acked: bool) -> Sent {
        Sent {
            tenant,
            topic,
            action,
            attempts: 1,
            acked,
            refused: None,
        }
    }

    #[test]
    fn webhook_check_finds_lost_duplicated_and_phantom_events() {
        let mut ledger = BTreeMap::new();
        ledger.insert(
            format!("{ID_PREFIX}1"),
            sent("alpha", "leads", "insert", true),
        );
        ledger.insert(
            format!("{ID_PREFIX}2"),
            sent("alpha", "leads", "insert", true),
        );
        ledger.insert(
            format!("{ID_PREFIX}3"),
            sent("alpha", "leads", "insert", false),
        );
        let mut dup = stored(4, "alpha", "leads", "insert");
        dup.id = format!("{ID_PREFIX}1");
        let events = vec![
            stored(1, "alpha", "leads", "insert"),
            dup,
            stored(9, "alpha", "leads", "insert"),
        ];
        let kinds: Vec<_> = webhooks(&ledger, &events)
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert!(kinds.contains(&"webhook_duplicated"), "{kinds:?}");
        assert!(kinds.contains(&"webhook_lost"), "{kinds:?}");
        assert!(kinds.contains(&"phantom_event"), "{kinds:?}");
        assert_eq!(
            kinds.len(),
            3,
            "an unacknowledged webhook may be absent: {kinds:?}"
        );
    }

    #[test]
    fn client_check_finds_gaps_duplicates_and_foreign_events() {
        let epoch = Epoch(7);
        let events = vec![
            stored(1, "alpha", "leads", "insert"),
            stored(2, "beta", "leads", "insert"),
            stored(3, "alpha", "leads", "insert"),
            stored(4, "alpha", "leads", "insert"),
        ];
        let spec = ClientSpec {
            name: "c".into(),
            transport: Transport::Sse,
            tenant: "alpha",
            topics: vec!["leads"],
        };
        let got = |seq: u64, tenant: &str| Got {
            cursor: Cursor::new(seq, epoch),
            id: format!("{ID_PREFIX}{seq}"),
            tenant: tenant.into(),
            topic: "leads".into(),
        };
        let perfect = ClientLog {
            received: vec![got(1, "alpha"), got(3, "alpha"), got(4, "alpha")],
            ..Default::default()
        };
        let (verdict, vs) = client(&spec, &perfect, &events, epoch);
        assert!(vs.is_empty(), "{vs:?}");
        assert_eq!((verdict.expected, verdict.received), (3, 3));

        let broken = ClientLog {
            received: vec![
                got(1, "alpha"),
                got(2, "beta"),
                got(1, "alpha"),
                got(4, "alpha"),
            ],
            ..Default::default()
        };
        let kinds: Vec<_> = client(&spec, &broken, &events, epoch)
            .1
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert!(kinds.contains(&"client_gap"), "{kinds:?}");
        assert!(kinds.contains(&"client_duplicate"), "{kinds:?}");
        assert!(kinds.contains(&"client_foreign_event"), "{kinds:?}");
    }

    #[test]
    fn stats_check_compares_with_the_recount() {
        let events = vec![
            stored(1, "alpha", "leads", "insert"),
            stored(2, "alpha", "leads", "delete"),
        ];
        let r = recount(&events, "alpha", "leads");
        assert_eq!(r.total, 2);
        assert!(stats("alpha", "leads", Some(&r), &r).is_empty());
        let mut off = r.clone();
        off.total = 3;
        assert_eq!(
            stats("alpha", "leads", Some(&off), &r)[0].kind,
            "stats_wrong"
        );
        assert_eq!(stats("alpha", "leads", None, &r)[0].kind, "stats_missing");
    }

    #[test]
    fn notification_check_allows_one_repeat_per_kill_and_target() {
        let events = vec![
            stored(1, "alpha", "leads", "insert"),
            stored(2, "alpha", "deals", "delete"),
        ];
        let accepted = vec![
            ("1001".to_owned(), format!("event {ID_PREFIX}1")),
            (
                "1001".to_owned(),
                format!("*2 events*\n\nevent {ID_PREFIX}1"),
            ),
        ];
        let dead = vec![DeadLetter {
            id: format!("{ID_PREFIX}2"),
            target: "dead-telegram".into(),
        }];
        let (v, vs) = notifications(&events, &accepted, &dead, 1);
        assert!(vs.is_empty(), "{vs:?}");
        assert_eq!(
            (v.expected, v.sent, v.dead_lettered, v.crash_window_repeats),
            (2, 1, 1, 1)
        );
        let kinds: Vec<_> = notifications(&events, &accepted, &dead, 0)
            .1
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert_eq!(kinds, ["notification_duplicated"]);
        let kinds: Vec<_> = notifications(&events, &[], &[], 0)
            .1
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert_eq!(kinds, ["notification_lost", "notification_lost"]);
    }

    #[test]
    fn ids_are_found_in_digests() {
        assert_eq!(
            ids_in("*3 events*\n\nevent evt-1\n\nevent evt-22"),
            ["evt-1", "evt-22"]
        );
    }
}
