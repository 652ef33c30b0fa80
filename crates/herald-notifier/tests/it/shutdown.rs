//! The real binary on SIGTERM mid-batch: sends in progress finish, events held back by the
//! rate limiter go back to JetStream, and the process exits 0 within a bound. A restarted
//! notifier then delivers the rest, and (unlike after SIGKILL) nothing is sent twice.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::crash::{MidBatch, markers};
use crate::helpers::wait_for;
use herald_test_support::process::sigterm;

const CHATS: i64 = 3;
const EVENTS: u64 = 45;
/// How long the process may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sigterm_mid_batch_exits_0_and_nothing_is_lost_or_sent_twice() {
    // Slack is rate-limited to 3/s per target, so at SIGTERM most Slack sends are held.
    let mut app = MidBatch::start(CHATS, EVENTS).await;
    let (tg, slack) = (&app.tg, &app.slack);
    wait_for("a third delivered to Telegram", || {
        tg.accepted().len() >= (EVENTS / 3) as usize
    })
    .await;

    sigterm(&app.child);
    let status = app
        .child
        .wait_exit(EXIT_BOUND)
        .await
        .expect("the notifier exits within the bound after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let at_stop = (tg.accepted().len(), slack.accepted().len());
    assert!(
        (at_stop.1 as u64) < EVENTS,
        "stopped mid-batch, with Slack sends still to do: {at_stop:?}"
    );

    app.restart_until_all_delivered(EVENTS).await;

    let twice = |seen: BTreeMap<u64, usize>| -> Vec<u64> {
        seen.into_iter()
            .filter(|(_, c)| *c > 1)
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(
        twice(markers(&tg.accepted())),
        Vec::<u64>::new(),
        "Telegram"
    );
    assert_eq!(
        twice(markers(&slack.accepted())),
        Vec::<u64>::new(),
        "Slack"
    );
}
