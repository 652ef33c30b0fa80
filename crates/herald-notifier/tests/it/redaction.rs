//! A Slack webhook URL, a Telegram bot token and a Slack bot token are credentials: whatever
//! way a send fails (network error, 4xx, 5xx, timeout), none of them reaches the logs (at
//! trace level), the dead letters' headers in `HERALD_DLQ` (what `herald dlq list` shows) or
//! the metrics.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use herald_core::secret::Secret;
use herald_core::streams::DLQ_STREAM;
use herald_test_support::fake::{FakeSlack, FakeTelegram, Reply};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use herald_test_support::wait;

use crate::helpers::{TestApp, lead};
use crate::rules_text::RulesText;

/// A real-looking bot token: teloxide only recognises (and hides) secrets of 35+ characters.
const TG_TOKEN: &str = "987654:AAEsecretTelegramTokenPart0123456789abcdefXY";
const TG_SECRET_PART: &str = "AAEsecretTelegramTokenPart0123456789abcdefXY";
const SLACK_TOKEN: &str = "xoxb-1234-5678-secretSlackBotToken";
/// The webhook's last path segment: what makes a Slack webhook URL a credential.
const HOOK_SECRET: &str = "T0AAA-B0BBB-secretWebhookPathXyZ";

/// A request timeout longer than teloxide's 10 s pause before reading a 5xx answer, so that
/// answer (a proxy page echoing the token) is read.
const SLOW: Duration = Duration::from_secs(12);

/// Leads to a Telegram chat, the Slack webhook at `hook` and a Slack channel.
fn rules(hook: &str) -> RulesText {
    RulesText::new()
        .telegram("tg", 7)
        .slack_webhook("hook", hook)
        .slack_chat("chat", "C42")
        .rule_on(
            "leads",
            "leads",
            &["tg", "hook", "chat"],
            "lead {{ data.name }}",
        )
}

/// Everything a send failure could leak into.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the platforms are, for one failure mode.
enum Platforms {
    /// The fakes, scripted by the closure.
    Fakes(fn(&FakeTelegram, &FakeSlack)),
    /// A closed port: every connection is refused.
    Closed,
}

/// Runs one event to three failing targets (each request may take `timeout`) until all three
/// are dead-lettered; returns the logs, the dead letters' headers and the metrics.
async fn fail_everywhere(platforms: Platforms, timeout: Duration) -> (String, String, String) {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        );
    // The test runtime is single-threaded: every task of the notifier logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);

    let closed = format!(
        "http://127.0.0.1:{}",
        herald_test_support::process::free_port()
    );
    let hook = match platforms {
        Platforms::Closed => format!("{closed}/hooks/{HOOK_SECRET}"),
        Platforms::Fakes(_) => format!("{{slack}}{HOOK_SECRET}"),
    };
    let rules = rules(&hook);
    let closed_platforms = matches!(platforms, Platforms::Closed);
    let app = TestApp::spawn_with(&rules, |cfg| {
        // Two attempts: teloxide waits 10 s before it reads a 5xx answer.
        cfg.max_deliver = 2;
        cfg.telegram.bot_token = Some(Secret::new(TG_TOKEN));
        cfg.slack.bot_token = Some(Secret::new(SLACK_TOKEN));
        cfg.telegram.timeout = timeout;
        cfg.slack.timeout = timeout;
        if closed_platforms {
            cfg.telegram.api_url = format!("{closed}/");
            cfg.slack.api_url = format!("{closed}/api");
        }
    })
    .await;
    if let Platforms::Fakes(script) = platforms {
        script(&app.tg, &app.slack);
    }
    app.publish(&lead("insert", json!({"name": "Ada"}))).await;
    let stream = app.js.get_stream(DLQ_STREAM).await.unwrap();
    wait::until("a dead letter per target", Duration::from_secs(60), || {
        let mut stream = stream.clone();
        async move { stream.info().await.is_ok_and(|i| i.state.messages >= 3) }
    })
    .await;

    let headers = dlq_headers(&app).await;
    let metrics = app.metrics().await;
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("dead-lettered"), "the logs were captured");
    (logs, headers, metrics)
}

/// Every header of every message in `HERALD_DLQ`, read back from JetStream.
async fn dlq_headers(app: &TestApp) -> String {
    let stream = app.js.get_stream(DLQ_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let last = stream.get_info().await.unwrap().state.messages;
    let mut messages = consumer.messages().await.unwrap();
    let mut out = String::new();
    for _ in 0..last {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("a dead letter")
            .unwrap()
            .unwrap();
        for (name, values) in msg.headers.iter().flat_map(|h| h.iter()) {
            for value in values {
                out.push_str(&format!("{name}: {value}\n"));
            }
        }
    }
    assert_eq!(
        out.matches("Herald-Reason").count(),
        3,
        "a dead letter per target:\n{out}"
    );
    out
}

fn assert_no_secret(evidence: (String, String, String)) {
    let (logs, headers, metrics) = evidence;
    for (what, text) in [
        ("logs", &logs),
        ("DLQ headers", &headers),
        ("metrics", &metrics),
    ] {
        for secret in [TG_TOKEN, TG_SECRET_PART, SLACK_TOKEN, HOOK_SECRET] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the {what}:\n{text}"
            );
        }
    }
}

#[tokio::test]
async fn a_network_error_leaks_no_webhook_url_or_token() {
    assert_no_secret(fail_everywhere(Platforms::Closed, SLOW).await);
}

#[tokio::test]
async fn a_4xx_leaks_no_webhook_url_or_token() {
    assert_no_secret(
        fail_everywhere(
            Platforms::Fakes(|tg, slack| {
                // Error pages that echo the path (the bot token, the webhook's secret) back.
                tg.always(7, Reply::ProxyError(403));
                slack.always(HOOK_SECRET, Reply::ProxyError(404));
                slack.always("C42", Reply::Error("invalid_auth"));
            }),
            SLOW,
        )
        .await,
    );
}

#[tokio::test]
async fn a_5xx_leaks_no_webhook_url_or_token() {
    assert_no_secret(
        fail_everywhere(
            Platforms::Fakes(|tg, slack| {
                // The platform's own 5xx first, then a proxy's 502 page that echoes the path.
                tg.script(7, [Reply::ServerError]);
                tg.always(7, Reply::ProxyError(502));
                slack.script(HOOK_SECRET, [Reply::ServerError]);
                slack.always(HOOK_SECRET, Reply::ProxyError(502));
                slack.always("C42", Reply::ServerError);
            }),
            SLOW,
        )
        .await,
    );
}

#[tokio::test]
async fn a_timeout_leaks_no_webhook_url_or_token() {
    assert_no_secret(
        fail_everywhere(
            Platforms::Fakes(|tg, slack| {
                tg.always(7, Reply::Hang);
                slack.always(HOOK_SECRET, Reply::Hang);
                slack.always("C42", Reply::Hang);
            }),
            Duration::from_millis(300),
        )
        .await,
    );
}
