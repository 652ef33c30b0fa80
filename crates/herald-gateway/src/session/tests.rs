//! Unit tests of a session: heartbeats, expiry, drain, filters.

use super::*;
use crate::frame::EventFrame;
use crate::hub::Hub;
use crate::metrics::Metrics;

fn session(hub: &Arc<Hub>, hb: Duration, expires: Duration) -> Session {
    let tenant = TenantId::parse("acme").unwrap();
    let sub = hub.subscribe(tenant, TopicSet::All, None, 8).unwrap();
    let timing = Timing {
        heartbeat: hb,
        expires_in: expires,
        drain_window: Duration::ZERO,
    };
    Session::new(sub, TopicSet::All, timing)
}

fn hub() -> Arc<Hub> {
    let hub = Hub::new(16, 1 << 20, Arc::new(Metrics::default()));
    hub.start(Epoch(1), 0, 1);
    hub.set_live(true);
    hub
}

#[tokio::test(start_paused = true)]
async fn heartbeats_come_on_time_and_not_before() {
    let hub = hub();
    let mut s = session(&hub, Duration::from_secs(15), Duration::from_secs(3600));
    let start = Instant::now();
    assert!(matches!(s.next().await, Output::Heartbeat));
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    let frame = EventFrame::new(Cursor::new(1, Epoch(1)), "herald.events.acme.a.b", b"{}").unwrap();
    hub.publish(Arc::new(frame));
    assert!(matches!(s.next().await, Output::Frame(Frame::Event(_))));
    assert!(matches!(s.next().await, Output::Heartbeat));
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn token_expiry_and_shutdown_end_with_reconnect() {
    let hub = hub();
    let mut s = session(&hub, Duration::from_secs(15), Duration::from_secs(20));
    assert!(matches!(s.next().await, Output::Heartbeat));
    let out = s.next().await;
    assert!(
        matches!(
            out,
            Output::Frame(Frame::Control(Control::Reconnect {
                reason: ReconnectReason::TokenExpired
            }))
        ),
        "{out:?}"
    );
    assert!(matches!(s.next().await, Output::End));

    let mut idle = session(&hub, Duration::from_secs(15), Duration::from_secs(3600));
    let mut woken = tokio::spawn(async move { idle.next().await });
    // The idle session is parked on its queue; the drain wakes it.
    assert!(futures::poll!(&mut woken).is_pending());
    hub.drain();
    assert!(matches!(
        woken.await.unwrap(),
        Output::Frame(Frame::Control(Control::Reconnect {
            reason: ReconnectReason::Draining
        }))
    ));
    // A session opened after the drain started ends too.
    let mut s = session(&hub, Duration::from_secs(15), Duration::from_secs(3600));
    assert!(matches!(
        s.next().await,
        Output::Frame(Frame::Control(Control::Reconnect {
            reason: ReconnectReason::Draining
        }))
    ));
}

#[tokio::test(start_paused = true)]
async fn extend_moves_the_expiry() {
    let hub = hub();
    let mut s = session(&hub, Duration::from_secs(100), Duration::from_secs(10));
    s.extend(Duration::from_secs(50));
    let start = Instant::now();
    assert!(matches!(
        s.next().await,
        Output::Frame(Frame::Control(Control::Reconnect { .. }))
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(50));
}

#[tokio::test(start_paused = true)]
async fn a_filter_skips_events_and_still_moves_the_cursor() {
    let hub = hub();
    let mut s = session(&hub, Duration::from_secs(15), Duration::from_secs(3600));
    s.filter = Filter::parse(Some(&["insert".to_owned()]), &[]).unwrap();
    for (seq, action) in [(1, "update"), (2, "insert"), (3, "update"), (4, "delete")] {
        let subject = format!("herald.events.acme.jobs.{action}");
        let frame = EventFrame::new(Cursor::new(seq, Epoch(1)), &subject, b"{}").unwrap();
        hub.publish(Arc::new(frame));
    }
    match s.next().await {
        Output::Frame(Frame::Event(e)) => assert_eq!(e.seq(), 2),
        other => panic!("expected the insert, got {other:?}"),
    }
    assert!(matches!(s.next().await, Output::Heartbeat));
    assert_eq!(s.cursor(), Cursor::new(4, Epoch(1)));
    assert_eq!(s.take_skipped(), Some(Cursor::new(4, Epoch(1))));
    assert_eq!(s.take_skipped(), None, "handed out once");
}
