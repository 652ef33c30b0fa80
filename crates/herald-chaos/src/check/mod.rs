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

pub mod bounds;
#[cfg(test)]
mod tests;
