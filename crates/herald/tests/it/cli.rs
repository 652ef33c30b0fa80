//! The `herald` CLI as a user runs it (the real binary), against real services: ingest,
//! gateway and notifier as real binaries (a `herald_launch::Stack`) on a real nats-server,
//! fake Telegram.
//!
//! `herald token` mints tokens the gateway accepts; `herald send` signs with each scheme and
//! ingest stores the event; `herald tail --since` prints exactly the events after the cursor,
//! then follows; `herald dlq list|replay` shows and re-drives a dead letter the notifier made.

use std::process::{Output, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_core::streams::{DLQ_STREAM, EVENTS_STREAM};
use herald_launch::NatsOptions;
use herald_test_support::fake::{FakeTelegram, Reply};
use herald_test_support::process;
use herald_test_support::wait;
use herald_test_support::{Component, Stack, StackOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

const JWT_SECRET: &str = "cli-jwt-secret";
const BEARER: &str = "cli-bearer-token";
const HMAC: &str = "cli-hmac-secret-16";
const STANDARD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TG_TOKEN: &str = "123456:CLI-token";
/// A chat the fake Telegram says does not exist (until healed).
const GONE_CHAT: i64 = -100999;
const DEADLINE: Duration = Duration::from_secs(20);

/// NATS, ingest, gateway and notifier, and one method per CLI command.
struct TestApp {
    stack: Stack,
    js: jetstream::Context,
    ingest: String,
    gateway: String,
    notifier: String,
    tg: FakeTelegram,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Every service's section of the stack's `herald.toml` (each listens where the stack says).
fn herald_toml(rules: &std::path::Path, tg: &str) -> String {
    format!(
        r#"
[nats]
request_timeout = "2s"
[ingest.sources.bearer]
tenant = "acme"
format = "sequin"
verify = {{ scheme = "bearer" }}
secrets = ["{BEARER}"]
[ingest.sources.hmac]
tenant = "acme"
format = "sequin"
verify = {{ scheme = "hmac-sha256" }}
secrets = ["{HMAC}"]
[ingest.sources.standard]
tenant = "acme"
format = "sequin"
verify = {{ scheme = "standard-webhooks" }}
secrets = ["{STANDARD}"]
[gateway]
drain_window = "0s"
[gateway.jwt]
secret = "{JWT_SECRET}"
[notifier]
rules_file = "{rules}"
[notifier.telegram]
api_url = "{tg}"
bot_token = "{TG_TOKEN}"
"#,
        rules = rules.display()
    )
}

impl TestApp {
    async fn spawn() -> Self {
        let tg = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.toml");
        std::fs::write(
            &rules,
            format!(
                "[targets.gone]\nkind = \"telegram\"\nchat_id = {GONE_CHAT}\nmarkup = \"plain\"\n\
                 [[rules]]\nname = \"alerts\"\ntopic = \"alerts\"\ntargets = [\"gone\"]\n\
                 template = \"alert {{{{ data.n }}}}\"\n"
            ),
        )
        .unwrap();
        let config = dir.path().join("herald.toml");
        std::fs::write(&config, herald_toml(&rules, &tg.url())).unwrap();
        let mut stack = Stack::start_nats(StackOptions {
            log_dir: dir.path().join("logs"),
            bin_dir: process::service_binaries(),
            log_filter: "warn".to_owned(),
            nats: NatsOptions::default(),
            config: Some(config),
        })
        .await
        .unwrap();
        for c in [
            Component::Ingest,
            Component::Gateway(0),
            Component::Notifier,
        ] {
            stack.add(c, Vec::new()).unwrap();
        }
        stack.start_all().await.unwrap();
        let url = |c| stack.url(c).unwrap();
        Self {
            js: jetstream::new(stack.nats().client().await.unwrap()),
            ingest: url(Component::Ingest),
            gateway: url(Component::Gateway(0)),
            notifier: url(Component::Notifier),
            stack,
            tg,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// The `herald` binary with NATS configured by environment, as an operator would.
    fn herald(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(args)
            .env_remove("HERALD_CONFIG")
            .env_remove("HERALD_GATEWAY__JWT__SECRET")
            .env_remove("HERALD_SEND_SECRET")
            .env("HERALD_NATS__URL", self.stack.nats().url())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `herald <args>` to completion (bounded).
    async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(DEADLINE, self.herald(args).output())
            .await
            .unwrap_or_else(|_| panic!("herald {args:?} finishes"))
            .unwrap()
    }

    /// `herald token` → the token it printed.
    async fn token(&self, secret: &str, topics: &str) -> String {
        let out = self
            .run(&[
                "token", "--tenant", "acme", "--topics", topics, "--secret", secret,
            ])
            .await;
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `herald send <ingest>/v1/webhooks/<source> <file> --scheme <scheme> --secret <secret>`.
    async fn send(&self, source: &str, body: &Value, scheme: &str, secret: &str) -> Output {
        let file = self._dir.path().join(format!("{source}-body.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        let url = format!("{}/v1/webhooks/{source}", self.ingest);
        let file = file.to_str().unwrap().to_owned();
        self.run(&["send", &url, &file, "--scheme", scheme, "--secret", secret])
            .await
    }

    /// `GET /v1/stream` on the gateway with `token`: the status code.
    async fn stream_status(&self, token: &str, topics: &str) -> u16 {
        self.http
            .get(format!("{}/v1/stream?topics={topics}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The notifier's `/metrics`.
    async fn notifier_metrics(&self) -> String {
        let url = format!("{}/metrics", self.notifier);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Publishes an event straight into JetStream; returns its stream sequence.
    async fn publish(&self, tenant: &str, topic: &str, data: Value) -> u64 {
        let event = Event::new(
            EventId::generate(),
            TenantId::parse(tenant).unwrap(),
            Topic::parse(topic).unwrap(),
            Action::parse("insert").unwrap(),
            "/cli-test",
            data,
        );
        herald_core::publish::publish_event(&self.js, &event)
            .await
            .unwrap()
            .sequence
    }

    /// Every stored event of `HERALD_EVENTS`, by sequence.
    async fn stored(&self) -> Vec<Event> {
        let stream = self.js.get_stream(EVENTS_STREAM).await.unwrap();
        let last = stream.cached_info().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            let msg = stream.get_raw_message(seq).await.unwrap();
            out.push(serde_json::from_slice(&msg.payload).unwrap());
        }
        out
    }

    async fn epoch(&self) -> Epoch {
        let mut stream = self.js.get_stream(EVENTS_STREAM).await.unwrap();
        Epoch::from_created(stream.info().await.unwrap().created)
    }
}

/// The next line `herald tail` prints, as JSON.
async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("a line within the deadline")
        .unwrap()
        .expect("tail is running");
    serde_json::from_str(&line).unwrap()
}

fn sequin(key: &str) -> Value {
    json!({
        "record": {"id": 1, "name": "Ada"}, "changes": null, "action": "insert",
        "metadata": {"table_name": "leads", "idempotency_key": key}
    })
}

#[tokio::test]
async fn token_mints_what_the_gateway_accepts() {
    let app = TestApp::spawn().await;
    let token = app.token(JWT_SECRET, "leads,deals").await;
    assert_eq!(app.stream_status(&token, "leads").await, 200);
    assert_eq!(
        app.stream_status(&token, "invoices").await,
        403,
        "scoped to the topics given"
    );
    let forged = app.token("not-the-gateway-secret", "leads").await;
    assert_eq!(app.stream_status(&forged, "leads").await, 401);
}

#[tokio::test]
async fn send_signs_with_every_scheme_and_ingest_stores_the_event() {
    let app = TestApp::spawn().await;
    for (source, scheme, secret) in [
        ("bearer", "bearer", BEARER),
        ("hmac", "hmac-sha256", HMAC),
        ("standard", "standard-webhooks", STANDARD),
    ] {
        let out = app
            .send(source, &sequin(&format!("cli-{source}")), scheme, secret)
            .await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{scheme}: {out:?}");
        assert!(stdout.starts_with("200 OK"), "{scheme}: {stdout}");
    }
    let ids: Vec<String> = app
        .stored()
        .await
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(ids, ["cli-bearer", "cli-hmac", "cli-standard"]);

    // A wrong secret: ingest refuses, the CLI says so and fails.
    let out = app
        .send("hmac", &sequin("cli-wrong"), "hmac-sha256", "wrong")
        .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("401"));
    assert_eq!(app.stored().await.len(), 3, "nothing stored");
}

#[tokio::test]
async fn tail_since_a_cursor_prints_exactly_the_events_after_it_then_follows() {
    let app = TestApp::spawn().await;
    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(app.publish("acme", "leads", json!({"n": n})).await);
        app.publish("globex", "leads", json!({"n": n})).await; // another tenant's
    }
    let epoch = app.epoch().await;
    let since = Cursor::new(seqs[1], epoch).to_string();
    let mut tail = app
        .herald(&["tail", "--tenant", "acme", "--since", &since])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    for (n, seq) in seqs.iter().enumerate().skip(2) {
        let line = next_json(&mut lines).await;
        assert_eq!(line["cursor"], Cursor::new(*seq, epoch).to_string());
        assert_eq!(line["event"]["data"]["n"], n, "{line}");
        assert_eq!(line["subject"], "herald.events.acme.leads.insert");
    }
    // Then it follows live events.
    let live = app.publish("acme", "leads", json!({"n": 5})).await;
    let line = next_json(&mut lines).await;
    assert_eq!(line["cursor"], Cursor::new(live, epoch).to_string());
    tail.kill().await.unwrap();

    // A cursor of another stream epoch is refused, not silently clamped.
    let stale = Cursor::new(1, Epoch::from_created(time::OffsetDateTime::UNIX_EPOCH)).to_string();
    let out = app
        .run(&["tail", "--tenant", "acme", "--since", &stale])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another stream epoch"),
        "{out:?}"
    );
}

#[tokio::test]
async fn dlq_lists_and_replays_a_dead_letter_the_notifier_made() {
    let app = TestApp::spawn().await;
    app.tg.always(GONE_CHAT, Reply::Error("chat_not_found"));
    let seq = app.publish("acme", "alerts", json!({"n": 7})).await;
    wait::until(
        "the notifier to dead-letter the event",
        DEADLINE,
        || async {
            app.notifier_metrics()
                .await
                .contains("herald_notifier_dead_lettered_total{kind=\"telegram\"} 1")
        },
    )
    .await;

    let out = app.run(&["dlq", "list", "--tenant", "acme"]).await;
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let letters: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{stdout}");
    let letter = &letters[0];
    assert_eq!(letter["target"], "gone");
    assert_eq!(letter["reason"], "Bad Request: chat not found");
    assert_eq!(letter["stream_seq"], seq);
    assert_eq!(letter["subject"], "herald.events.acme.alerts.insert");
    let dlq_seq = letter["seq"].as_u64().unwrap().to_string();

    // The fix, then the re-drive: delivered once, and the dead letter is gone.
    app.tg.heal(GONE_CHAT);
    let out = app.run(&["dlq", "replay", &dlq_seq]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-driven"));
    let got = app.tg.wait_accepted(1, DEADLINE).await;
    assert_eq!(got[0].target, GONE_CHAT.to_string());
    assert_eq!(got[0].text, "alert 7");
    let out = app.run(&["dlq", "list"]).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead letters"));

    // Replaying it again is an error, not a second send.
    let out = app.run(&["dlq", "replay", &dlq_seq]).await;
    assert!(!out.status.success());
    let stream = app.js.get_stream(DLQ_STREAM).await.unwrap();
    assert!(
        stream
            .get_raw_message(dlq_seq.parse().unwrap())
            .await
            .is_err()
    );
}
