//! `TestApp`: a notifier on a test nats-server, talking to fake Telegram and Slack servers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_notifier::{App, Config, Reloader};
use herald_test_support::fake::{FakeSlack, FakeTelegram};
use herald_test_support::service::{self, TestService};
use herald_test_support::{NatsServer, wait};

/// How long any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The bot tokens the notifier is configured with.
pub const TG_TOKEN: &str = "123456:TEST-token";
pub const SLACK_TOKEN: &str = "xoxb-test";

pub struct TestApp {
    pub nats: NatsServer,
    pub tg: FakeTelegram,
    pub slack: FakeSlack,
    pub js: jetstream::Context,
    pub addr: SocketAddr,
    pub reloader: Reloader,
    pub rules_file: PathBuf,
    pub http: reqwest::Client,
    service: TestService<App>,
    _dir: tempfile::TempDir,
}

/// Rules text with `{slack}` replaced by the fake Slack's webhook base.
pub fn rules_for(template: &str, slack: &FakeSlack) -> String {
    template.replace("{slack}", &slack.webhook_url(""))
}

/// A config pointing at the fakes, with short test delays.
pub fn test_config(tg: &FakeTelegram, slack: &FakeSlack, rules_file: PathBuf) -> Config {
    let mut cfg: Config = toml::from_str(
        r#"
        listen = "127.0.0.1:0"
        ack_wait = "5s"
        max_deliver = 4
        backoff = ["200ms"]
        "#,
    )
    .expect("test config");
    cfg.rules_file = Some(rules_file);
    cfg.telegram.api_url = tg.url();
    cfg.telegram.bot_token = Some(herald_core::secret::Secret::new(TG_TOKEN));
    cfg.slack.api_url = slack.api_url();
    cfg.slack.bot_token = Some(herald_core::secret::Secret::new(SLACK_TOKEN));
    cfg
}

impl TestApp {
    /// Starts everything with `rules` (see [`rules_for`]) and waits until `/readyz` is 200.
    pub async fn spawn(rules: &str) -> Self {
        Self::spawn_with(rules, |_| {}).await
    }

    pub async fn spawn_with(rules: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        herald_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await;
        let tg = FakeTelegram::start().await;
        let slack = FakeSlack::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let rules_file = dir.path().join("rules.toml");
        std::fs::write(&rules_file, rules_for(rules, &slack)).expect("write rules");
        let mut cfg = test_config(&tg, &slack, rules_file.clone());
        tweak(&mut cfg);
        let common = service::common_config(&nats);
        let (app, shutdown) = service::build::<App>(cfg, &common).await.expect("build");
        let reloader = app.reloader();
        let service = TestService::run(app, shutdown);
        let addr = service.addr;
        let js = nats.jetstream().await;
        let test = Self {
            nats,
            tg,
            slack,
            js,
            addr,
            reloader,
            rules_file,
            http: reqwest::Client::new(),
            service,
            _dir: dir,
        };
        test.wait_ready().await;
        test
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn healthz(&self) -> reqwest::Response {
        self.http
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("GET /healthz")
    }

    pub async fn readyz(&self) -> reqwest::Response {
        self.http
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("GET /readyz")
    }

    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert!(resp.status().is_success());
        resp.text().await.expect("metrics body")
    }

    /// Polls `/readyz` under the deadline.
    pub async fn wait_ready(&self) {
        wait::until("the notifier to become ready", DEADLINE, || async {
            self.readyz().await.status().is_success()
        })
        .await;
    }

    /// Waits until a metric line with `needle` shows `value`.
    pub async fn wait_metric(&self, needle: &str, value: u64) {
        let what = format!("metric {needle} to reach {value}");
        wait::until_ok(&what, DEADLINE, || async {
            let m = self.metrics().await;
            if metric(&m, needle) >= value {
                Ok(())
            } else {
                Err(format!("\n{m}"))
            }
        })
        .await;
    }

    /// Publishes `event` to JetStream and waits for the PubAck.
    pub async fn publish(&self, event: &Event) -> u64 {
        publish(&self.js, event).await
    }

    /// Writes a new rules file.
    pub fn write_rules(&self, rules: &str) {
        std::fs::write(&self.rules_file, rules_for(rules, &self.slack)).expect("write rules");
    }

    /// Stops the notifier and waits for it to finish.
    pub async fn stop(&mut self) {
        self.service.stop(DEADLINE).await;
    }
}

/// The value of the first metric line containing `needle` (0 if none).
pub fn metric(text: &str, needle: &str) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

pub async fn publish(js: &jetstream::Context, event: &Event) -> u64 {
    herald_core::publish::publish_event(js, event)
        .await
        .expect("publish, then the PubAck")
        .sequence
}

/// A `leads` event of tenant `acme`.
pub fn lead(action: &str, data: serde_json::Value) -> Event {
    event("acme", "leads", action, data)
}

pub fn event(tenant: &str, topic: &str, action: &str, data: serde_json::Value) -> Event {
    Event::new(
        EventId::generate(),
        TenantId::parse(tenant).expect("tenant"),
        Topic::parse(topic).expect("topic"),
        Action::parse(action).expect("action"),
        "/test",
        data,
    )
}

/// Waits (up to 60 s: crash and shutdown tests run real binaries) until `cond` holds.
pub async fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    herald_test_support::wait::until_sync(what, Duration::from_secs(60), cond).await;
}
