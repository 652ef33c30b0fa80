//! The notifier killed with SIGKILL mid-batch and restarted: nothing lost, nothing sent
//! twice except what was in flight at the kill (at most one message per target).
//!
//! Each event goes to a Telegram chat (fast) and a Slack webhook (slower), so at the kill
//! many events have reached Telegram but not Slack: their redelivery must skip Telegram.

use std::collections::BTreeMap;
use std::path::Path;

use herald_test_support::fake::{FakeSlack, FakeTelegram, Received};
use herald_test_support::process::{self, ServiceProcess, ServiceSpec};
use herald_test_support::{NatsServer, wait};
use serde_json::json;

use crate::helpers::{DEADLINE, TG_TOKEN, lead, publish, wait_for};

const CHATS: i64 = 4;
const EVENTS: u64 = 120;

/// The real `herald-notifier` reading `config` (killed on drop).
pub fn spawn(config: &Path) -> ServiceProcess {
    process::spawn(
        ServiceSpec::new("notifier", env!("CARGO_BIN_EXE_herald-notifier")).config(config),
    )
}

/// How many times each `e<n>` message arrived.
pub fn markers(received: &[Received]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for r in received {
        if let Some(n) = r.text.strip_prefix('e').and_then(|n| n.parse().ok()) {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

/// Writes `rules.toml` into `dir`: for each of `chats` chats, event `data.chat == c` goes to
/// Telegram chat `c` and Slack webhook `s<c>` as `e<data.n>`. Returns its path.
pub fn write_rules(dir: &Path, chats: i64, slack: &FakeSlack) -> std::path::PathBuf {
    let mut rules = String::new();
    for c in 1..=chats {
        rules.push_str(&format!(
            "[targets.c{c}]\nkind = \"telegram\"\nchat_id = {c}\nmarkup = \"plain\"\n\
             [targets.s{c}]\nkind = \"slack_webhook\"\nurl = \"{hook}\"\n\
             [[rules]]\nname = \"r{c}\"\nwhen = [{{ field = \"data.chat\", eq = {c} }}]\n\
             targets = [\"c{c}\", \"s{c}\"]\ntemplate = \"e{{{{ data.n }}}}\"\n",
            hook = slack.webhook_url(&format!("s{c}")),
        ));
    }
    let rules_file = dir.join("rules.toml");
    std::fs::write(&rules_file, rules).expect("write rules.toml");
    rules_file
}

/// A notifier (the real binary) mid-batch: `chats` chats, each event going to a Telegram chat
/// (fast) and a Slack webhook (rate-limited to 3/s per target, so Slack lags), its consumer
/// created, then `events` events published round-robin over the chats.
pub struct MidBatch {
    _nats: NatsServer,
    pub tg: FakeTelegram,
    pub slack: FakeSlack,
    pub js: async_nats::jetstream::Context,
    pub child: ServiceProcess,
    /// Its config file (to start it again).
    pub config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl MidBatch {
    pub async fn start(chats: i64, events: u64) -> Self {
        let nats = NatsServer::start().await;
        let tg = FakeTelegram::start().await;
        let slack = FakeSlack::start().await;
        let dir = tempfile::tempdir().unwrap();
        let rules_file = write_rules(dir.path(), chats, &slack);
        let config = dir.path().join("herald.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[nats]
url = "{nats}"
[log]
format = "json"
[notifier]
listen = "127.0.0.1:0"
rules_file = "{rules}"
ack_wait = "2s"
backoff = ["200ms"]
[notifier.telegram]
api_url = "{tg}"
bot_token = "{TG_TOKEN}"
[notifier.rate]
telegram_chat_per_sec = 25
telegram_global_per_sec = 100
slack_target_per_sec = 3
[notifier.digest]
enabled = false
"#,
                nats = nats.url(),
                rules = rules_file.display(),
                tg = tg.url(),
            ),
        )
        .unwrap();
        let js = nats.jetstream().await;
        let child = spawn(&config);
        wait::until("the notifier to create its consumer", DEADLINE, || async {
            match js.get_stream("HERALD_EVENTS").await {
                Ok(s) => s.consumer_info("notifier").await.is_ok(),
                Err(_) => false,
            }
        })
        .await;
        for i in 0..events {
            publish(
                &js,
                &lead("insert", json!({"n": i, "chat": (i as i64 % chats) + 1})),
            )
            .await;
        }
        Self {
            _nats: nats,
            tg,
            slack,
            js,
            child,
            config,
            _dir: dir,
        }
    }

    /// Starts the notifier again, waits until every one of `events` reached both Telegram and
    /// Slack and the consumer has settled, then kills it.
    pub async fn restart_until_all_delivered(&self, events: u64) {
        let mut child = spawn(&self.config);
        wait_for("every event delivered", || {
            markers(&self.tg.accepted()).len() as u64 == events
                && markers(&self.slack.accepted()).len() as u64 == events
        })
        .await;
        self.settled().await;
        child.kill().await;
    }

    /// Waits until the consumer has nothing pending or unacknowledged (anything to be resent
    /// is resent within one ack_wait of a restart).
    pub async fn settled(&self) {
        let stream = self.js.get_stream("HERALD_EVENTS").await.unwrap();
        wait::until(
            "the consumer to have nothing pending or unacknowledged",
            DEADLINE,
            || async {
                let info = stream.consumer_info("notifier").await.unwrap();
                info.num_pending == 0 && info.num_ack_pending == 0
            },
        )
        .await;
    }
}

#[tokio::test]
async fn sigkill_mid_batch_loses_nothing_and_resends_at_most_the_in_flight() {
    let mut app = MidBatch::start(CHATS, EVENTS).await;
    let (tg, slack) = (&app.tg, &app.slack);
    wait_for("a quarter delivered", || {
        tg.accepted().len() >= (EVENTS / 4) as usize
    })
    .await;
    app.child.kill().await;
    let at_kill = (tg.accepted().len(), slack.accepted().len());
    assert!(
        at_kill.1 < at_kill.0,
        "killed while Slack lagged behind: {at_kill:?}"
    );

    app.restart_until_all_delivered(EVENTS).await;

    let (tg_seen, slack_seen) = (markers(&tg.accepted()), markers(&slack.accepted()));
    let dups = |seen: &BTreeMap<u64, usize>| seen.values().map(|c| c - 1).sum::<usize>();
    let duplicates = dups(&tg_seen) + dups(&slack_seen);
    eprintln!(
        "SIGKILL after {} Telegram and {} Slack of {EVENTS} each: {duplicates} sent twice \
         (Telegram {}, Slack {})",
        at_kill.0,
        at_kill.1,
        dups(&tg_seen),
        dups(&slack_seen)
    );
    assert_eq!(tg_seen.len() as u64, EVENTS, "nothing lost on Telegram");
    assert_eq!(slack_seen.len() as u64, EVENTS, "nothing lost on Slack");
    assert!(
        duplicates <= 2 * CHATS as usize,
        "at most one in-flight message per target may be resent; got {duplicates}"
    );
}
