//! Unit tests of the fan-out, the ring and the hand-off bookkeeping.

use super::*;

fn frame(seq: u64, tenant: &str, topic: &str) -> Arc<EventFrame> {
    let subject = format!("herald.events.{tenant}.{topic}.insert");
    Arc::new(EventFrame::new(Cursor::new(seq, Epoch(1)), &subject, b"{}").unwrap())
}

fn hub(ring: usize) -> Arc<Hub> {
    let hub = Hub::new(ring, 1 << 20, Arc::new(Metrics::default()));
    hub.start(Epoch(1), 0, 1);
    hub
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

#[test]
fn routes_by_tenant_and_topic() {
    let hub = hub(10);
    let only = TopicSet::Only([Topic::parse("leads").unwrap()].into());
    let mut leads = hub.subscribe(acme(), only, None, 8).unwrap();
    let all = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    let mut other = hub
        .subscribe(TenantId::parse("evil").unwrap(), TopicSet::All, None, 8)
        .unwrap();
    hub.publish(frame(1, "acme", "leads"));
    hub.publish(frame(2, "acme", "deals"));
    assert!(matches!(leads.rx.try_recv(), Ok(Queued::Frame(Frame::Event(e))) if e.seq() == 1));
    assert!(leads.rx.try_recv().is_err());
    assert_eq!(all.rx.len(), 2);
    assert!(other.rx.try_recv().is_err());
    drop(all);
    assert_eq!(hub.subscribers(), 2);
}

#[test]
fn resumes_from_ring_or_asks_for_replay_or_reset() {
    let hub = hub(3);
    for seq in 1..=5 {
        hub.publish(frame(seq, "acme", "leads"));
    }
    let at = |seq| Some(Cursor::new(seq, Epoch(1)));
    let s = hub.subscribe(acme(), TopicSet::All, at(2), 8).unwrap();
    let Backlog::Ring(events) = &s.backlog else {
        panic!("{:?}", s.backlog)
    };
    assert_eq!(
        events.iter().map(|e| e.seq()).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert_eq!(s.head, 5);
    let s = hub.subscribe(acme(), TopicSet::All, at(1), 8).unwrap();
    assert!(matches!(s.backlog, Backlog::Replay(_)));
    let s = hub.subscribe(acme(), TopicSet::All, at(5), 8).unwrap();
    assert!(matches!(s.backlog, Backlog::Nothing));
    let s = hub.subscribe(acme(), TopicSet::All, at(6), 8).unwrap();
    assert!(
        matches!(s.backlog, Backlog::Ahead(c) if c.seq == 6),
        "past the head: only the stream can tell whether it is valid"
    );
    let other = Some(Cursor::new(2, Epoch(2)));
    let s = hub.subscribe(acme(), TopicSet::All, other, 8).unwrap();
    assert!(matches!(
        s.backlog,
        Backlog::Reset(ResetReason::EpochMismatch)
    ));
}

#[test]
fn a_full_queue_closes_with_overflow_and_spares_others() {
    let hub = hub(10);
    let slow = hub.subscribe(acme(), TopicSet::All, None, 2).unwrap();
    let mut fast = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    for seq in 1..=3 {
        hub.publish(frame(seq, "acme", "leads"));
        assert!(fast.rx.try_recv().is_ok());
    }
    assert_eq!(slow.closed(), Some(Closed::Overflow));
    assert_eq!(fast.closed(), None);
    assert_eq!(hub.subscribers(), 1);
}

#[test]
fn restarts_reset_clients_on_a_new_epoch_or_expired_events() {
    let hub = hub(10);
    hub.publish(frame(1, "acme", "leads"));
    let mut s = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    // Same epoch, nothing expired: carry on after the head.
    assert_eq!(hub.start(Epoch(1), 1, 1), 1);
    assert!(s.rx.try_recv().is_err());
    // Events 2..=4 expired while the tail was away.
    assert_eq!(hub.start(Epoch(1), 1, 5), 4);
    assert!(matches!(
        s.rx.try_recv(),
        Ok(Queued::Frame(Frame::Control(Control::Reset { reason: ResetReason::OutOfRetention, cursor })))
            if cursor == Cursor::new(4, Epoch(1))
    ));
    // The stream was recreated.
    assert_eq!(hub.start(Epoch(2), 0, 0), 0);
    assert!(matches!(
        s.rx.try_recv(),
        Ok(Queued::Frame(Frame::Control(Control::Reset {
            reason: ResetReason::EpochMismatch,
            ..
        })))
    ));
    assert_eq!(hub.head(), Some(Cursor::new(0, Epoch(2))));
}

#[test]
fn ring_is_bounded_by_bytes_too() {
    let hub = Hub::new(1000, 1, Arc::new(Metrics::default()));
    hub.start(Epoch(1), 0, 1);
    hub.publish(frame(1, "acme", "leads"));
    hub.publish(frame(2, "acme", "leads"));
    let s = hub
        .subscribe(acme(), TopicSet::All, Some(Cursor::new(0, Epoch(1))), 8)
        .unwrap();
    assert!(matches!(s.backlog, Backlog::Replay(_)));
}

fn stats(tenant: &str, topic: &str, seq: u64) -> Arc<StatsFrame> {
    let mut doc = herald_stats::StatsDoc::new(
        TenantId::parse(tenant).unwrap(),
        Topic::parse(topic).unwrap(),
        Epoch(1),
        &[],
    );
    doc.last_seq = seq;
    doc.cursor = Cursor::new(seq, Epoch(1)).to_string();
    Arc::new(StatsFrame::new(&doc))
}

fn stats_seqs(sub: &mut Subscription) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    while let Ok(frame) = sub.rx.try_recv() {
        if let Queued::Frame(Frame::Stats(s)) = frame {
            out.push((s.topic.to_string(), s.seq));
        }
    }
    out
}

#[test]
fn stats_reach_their_tenants_subscribers_within_scope_current_first() {
    let hub = hub(10);
    hub.publish_stats(stats("acme", "leads", 3));
    hub.publish_stats(stats("acme", "deals", 4));
    hub.publish_stats(stats("evil", "leads", 5));
    let leads = TopicSet::Only([Topic::parse("leads").unwrap()].into());
    let mut scoped = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    scoped.set_stats(Some(leads));
    let mut all = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    all.set_stats(Some(TopicSet::All));
    let mut none = hub.subscribe(acme(), TopicSet::All, None, 8).unwrap();
    assert_eq!(
        stats_seqs(&mut scoped),
        vec![("leads".into(), 3)],
        "current, in scope"
    );
    let mut current = stats_seqs(&mut all);
    current.sort();
    assert_eq!(current, vec![("deals".into(), 4), ("leads".into(), 3)]);

    hub.publish_stats(stats("acme", "leads", 6));
    hub.publish_stats(stats("acme", "deals", 7));
    hub.publish_stats(stats("evil", "leads", 8));
    assert_eq!(stats_seqs(&mut scoped), vec![("leads".into(), 6)]);
    assert_eq!(
        stats_seqs(&mut all),
        vec![("leads".into(), 6), ("deals".into(), 7)]
    );
    assert!(
        stats_seqs(&mut none).is_empty(),
        "no `$stats`, no documents"
    );

    all.set_stats(None);
    hub.publish_stats(stats("acme", "leads", 9));
    assert!(stats_seqs(&mut all).is_empty(), "dropped");
    hub.forget_stats(&acme(), &Topic::parse("leads").unwrap());
    assert_eq!(hub.stats(&acme(), &TopicSet::All).len(), 1);
    drop(scoped);
    assert!(
        !hub.lock().stats_subs.contains_key(&acme()),
        "unregistered on drop"
    );
}

#[test]
fn recent_is_the_newest_matching_events_below_a_bound_with_the_head_and_floor() {
    let hub = Hub::new(4, 1 << 20, Arc::new(Metrics::default()));
    let tenant = acme();
    let leads = TopicSet::Only([Topic::parse("leads").unwrap()].into());
    assert!(
        hub.recent((&tenant, &leads, &Filter::default()), None, 2)
            .is_none(),
        "before the stream"
    );
    hub.start(Epoch(1), 0, 1);
    for (seq, tenant, topic) in [
        (1, "acme", "leads"),
        (2, "acme", "leads"),
        (3, "acme", "deals"),
        (4, "evil", "leads"),
        (5, "acme", "leads"),
        (6, "acme", "leads"),
    ] {
        hub.publish(frame(seq, tenant, topic));
    }
    let seqs = |r: &Recent| r.events.iter().map(|e| e.seq()).collect::<Vec<_>>();
    let r = hub
        .recent((&tenant, &leads, &Filter::default()), None, 8)
        .unwrap();
    assert_eq!((r.head, r.floor, r.epoch), (6, 2, Epoch(1)));
    assert_eq!(
        seqs(&r),
        vec![5, 6],
        "oldest first, this tenant and topic, in the ring"
    );
    let r = hub
        .recent((&tenant, &leads, &Filter::default()), None, 1)
        .unwrap();
    assert_eq!(seqs(&r), vec![6], "the newest n");
    let r = hub
        .recent((&tenant, &leads, &Filter::default()), Some(5), 8)
        .unwrap();
    assert_eq!(seqs(&r), vec![5], "at or below the bound");
    let r = hub
        .recent((&tenant, &TopicSet::All, &Filter::default()), Some(99), 8)
        .unwrap();
    assert_eq!(seqs(&r), vec![3, 5, 6], "a bound past the head is the head");
}
