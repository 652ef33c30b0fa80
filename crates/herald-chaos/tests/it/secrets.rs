//! Secrets in logs: with every service logging at `trace`, forged and valid webhooks,
//! refused and accepted tokens, and notifications through a bot token and a Slack webhook
//! URL leave none of those secrets in any log.

use std::time::Duration;

use base64::Engine as _;
use herald_chaos::plan::{self, SLACK_HOOK};
use herald_chaos::stack::TELEGRAM_BOT_TOKEN;
use herald_test_support::webhook;

use crate::helpers::{self, TestApp};

fn cloudevent(id: &str, topic: &str, action: &str) -> String {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "test", "type": "t",
        "topic": topic, "action": action, "data": {"x": 1},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_log_even_at_trace() {
    let app = TestApp::launch("trace").await;
    let secret = helpers::webhook_secret();
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(plan::WEBHOOK_KEY);

    // A forgery signed with another key, then the genuine article (alpha leads insert →
    // Telegram; beta leads → Slack).
    let body = cloudevent("evt-secret-1", "leads", "insert");
    let forged = webhook::standard_headers(
        "whsec_Zm9yZ2VkLWtleS1mb3JnZWQta2V5",
        "evt-secret-1",
        body.as_bytes(),
    );
    assert_eq!(app.webhook("alpha", &body, &forged).await, 401);
    let signed = webhook::standard_headers(&secret, "evt-secret-1", body.as_bytes());
    assert_eq!(app.webhook("alpha", &body, &signed).await, 200);
    let body_b = cloudevent("evt-secret-2", "leads", "insert");
    let signed_b = webhook::standard_headers(&secret, "evt-secret-2", body_b.as_bytes());
    assert_eq!(app.webhook("beta", &body_b, &signed_b).await, 200);

    // A token in the query string (as EventSource sends it), and a forged one.
    let token = helpers::token("alpha", vec!["leads"]);
    let (status, read) = app.stream_until("leads", &token, "evt-secret-1").await;
    assert_eq!(status, 200);
    assert!(read.contains("evt-secret-1"), "the event arrived: {read}");
    let forged_token = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(app.stream_status(&forged_token).await, 401);

    let wait = Duration::from_secs(30);
    assert_eq!(
        app.stack.fakes.telegram.wait_accepted(1, wait).await.len(),
        1
    );
    assert_eq!(app.stack.fakes.slack.wait_accepted(1, wait).await.len(), 1);
    let slack_url = app.stack.fakes.slack.webhook_url(SLACK_HOOK);

    let logs = app.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
        "trace logging is on"
    );
    for (what, value) in [
        ("the webhook secret", secret.as_str()),
        ("the webhook key (base64)", key_b64.as_str()),
        ("the JWT secret", plan::JWT_SECRET),
        ("a client token", token.as_str()),
        ("a forged client token", forged_token.as_str()),
        ("the Telegram bot token", TELEGRAM_BOT_TOKEN),
        ("the Slack webhook URL", slack_url.as_str()),
    ] {
        assert!(!logs.contains(value), "{what} is in a log");
    }
    let passwords = app.stack.nats_passwords();
    assert_eq!(
        passwords.len(),
        5,
        "the stack runs NATS with its five identities"
    );
    for password in passwords {
        assert!(!logs.contains(&password), "a NATS password is in a log");
    }
}
