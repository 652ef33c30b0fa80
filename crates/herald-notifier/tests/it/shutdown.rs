//! The real binary on SIGTERM mid-batch: sends in progress finish, events held back by the
//! rate limiter go back to JetStream, and the process exits 0 within a bound. A restarted
//! notifier then delivers the rest, and (unlike after SIGKILL) nothing is sent twice.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_test_support::fake::{FakeSlack, FakeTelegram};
use herald_test_support::{NatsServer, wait};
use serde_json::json;

use crate::crash::{markers, spawn, write_rules};
use crate::helpers::{DEADLINE, TG_TOKEN, lead, publish, wait_for};
use herald_test_support::process::sigterm;

const CHATS: i64 = 3;
const EVENTS: u64 = 45;
/// How long the process may take to exit after SIGTERM.
const EXIT_BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sigterm_mid_batch_exits_0_and_nothing_is_lost_or_sent_twice() {
    let nats = NatsServer::start().await;
    let tg = FakeTelegram::start().await;
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules_file = write_rules(dir.path(), CHATS, &slack);
    let config = dir.path().join("herald.toml");
    // Slack is rate-limited to 3/s per target, so at SIGTERM most Slack sends are held.
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{nats}\"\n[notifier]\nlisten = \"127.0.0.1:0\"\n\
             rules_file = \"{rules}\"\nack_wait = \"2s\"\nbackoff = [\"200ms\"]\n\
             [notifier.telegram]\napi_url = \"{tg}\"\nbot_token = \"{TG_TOKEN}\"\n\
             [notifier.rate]\ntelegram_chat_per_sec = 25\ntelegram_global_per_sec = 100\n\
             slack_target_per_sec = 3\n[notifier.digest]\nenabled = false\n",
            nats = nats.url(),
            rules = rules_file.display(),
            tg = tg.url(),
        ),
    )
    .unwrap();

    let js = nats.jetstream().await;
    let mut child = spawn(&config);
    wait::until("the notifier to create its consumer", DEADLINE, || async {
        match js.get_stream("HERALD_EVENTS").await {
            Ok(s) => s.consumer_info("notifier").await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    for i in 0..EVENTS {
        publish(
            &js,
            &lead("insert", json!({"n": i, "chat": (i as i64 % CHATS) + 1})),
        )
        .await;
    }
    wait_for("a third delivered to Telegram", || {
        tg.accepted().len() >= (EVENTS / 3) as usize
    })
    .await;

    sigterm(&child);
    let status = child
        .wait_exit(EXIT_BOUND)
        .await
        .expect("the notifier exits within the bound after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let at_stop = (tg.accepted().len(), slack.accepted().len());
    assert!(
        (at_stop.1 as u64) < EVENTS,
        "stopped mid-batch, with Slack sends still to do: {at_stop:?}"
    );

    let mut child = spawn(&config);
    wait_for("every event delivered", || {
        markers(&tg.accepted()).len() as u64 == EVENTS
            && markers(&slack.accepted()).len() as u64 == EVENTS
    })
    .await;
    // Anything to be resent would be resent within one ack_wait of the restart; wait until
    // the consumer has nothing pending or unacknowledged.
    let stream = js.get_stream("HERALD_EVENTS").await.unwrap();
    wait::until(
        "the consumer to have nothing pending or unacknowledged",
        DEADLINE,
        || async {
            let info = stream.consumer_info("notifier").await.unwrap();
            info.num_pending == 0 && info.num_ack_pending == 0
        },
    )
    .await;
    child.kill().await;

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
