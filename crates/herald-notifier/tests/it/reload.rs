//! Rules at start, on reload, and with none at all.

use herald_notifier::rules::RulesError;
use herald_notifier::{App, Error};
use herald_test_support::NatsServer;
use herald_test_support::fake::{FakeSlack, FakeTelegram};
use serde_json::json;

use crate::consumer::notifier_consumer;
use crate::helpers::{DEADLINE, TestApp, event, lead, metric, test_config};
use crate::rules_text::RulesText;

/// `leads` to chat 1 (`a <n>`).
fn one() -> RulesText {
    RulesText::new()
        .telegram("a", 1)
        .rule_on("leads", "a", &["a"], "a {{ data.n }}")
}

/// `deals` to chat 2 (`b <n>`).
fn two() -> RulesText {
    RulesText::new()
        .telegram("b", 2)
        .rule_on("deals", "b", &["b"], "b {{ data.n }}")
}

#[tokio::test]
async fn an_invalid_rules_file_is_a_clear_error_at_start() {
    let nats = NatsServer::start().await;
    let (tg, slack) = (FakeTelegram::start().await, FakeSlack::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[rules]]\nname = \"r\"\ntargets = [\"nowhere\"]\ntemplate = \"x\"",
    )
    .unwrap();
    let (ctx, _shutdown) = herald_test_support::service::context(&nats, "t").await;
    let listener = herald_test_support::net::listener().await;
    let err = App::build(test_config(&tg, &slack, path), listener, ctx)
        .await
        .err()
        .expect("an invalid rules file must fail the build");
    assert!(
        matches!(&err, Error::Rules(RulesError::UnknownTarget { target, .. }) if target == "nowhere"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "rule \"r\" sends to undefined target \"nowhere\""
    );
}

#[tokio::test]
async fn reload_swaps_rules_and_an_invalid_file_keeps_the_old_ones() {
    let app = TestApp::spawn(&one()).await;
    app.write_rules("this is = = not toml");
    let err = app
        .reloader
        .reload()
        .expect_err("invalid rules are refused");
    assert!(
        matches!(&err, RulesError::Syntax { origin, .. } if origin.ends_with("rules.toml")),
        "{err}"
    );
    app.publish(&lead("insert", json!({"n": 1}))).await;
    let got = app.tg.wait_accepted(1, DEADLINE).await;
    assert_eq!(got[0].text, "a 1", "the old rules stayed in force");

    app.write_rules(&two());
    assert_eq!(app.reloader.reload().expect("valid rules"), 1);
    // The consumer's filter follows the rules: deals now, leads no more.
    app.publish(&lead("insert", json!({"n": 2}))).await;
    app.publish(&event("acme", "deals", "insert", json!({"n": 3})))
        .await;
    let got = app.tg.wait_accepted(2, DEADLINE).await;
    assert_eq!(got.len(), 2);
    assert_eq!((got[1].target.as_str(), got[1].text.as_str()), ("2", "b 3"));
    let m = app.metrics().await;
    assert_eq!(
        metric(&m, "herald_notifier_reloads_total{result=\"error\"}"),
        1
    );
    assert_eq!(
        metric(&m, "herald_notifier_reloads_total{result=\"ok\"}"),
        1
    );
    assert_eq!(metric(&m, "herald_notifier_rules "), 1);
}

#[tokio::test]
async fn with_no_rules_it_idles_ready() {
    let mut app = TestApp::spawn("").await;
    assert!(app.readyz().await.status().is_success());
    app.publish(&lead("insert", json!({"n": 1}))).await;
    assert_eq!(metric(&app.metrics().await, "herald_notifier_rules "), 0);
    let info = notifier_consumer(&app.js).await;
    assert!(info.is_err(), "no consumer is created without rules");
    app.stop().await;
}
