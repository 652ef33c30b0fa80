//! 429 → waits what the platform asked, then succeeds; 5xx → backoff; redelivery skips
//! targets already delivered; after max_deliver → the DLQ.

use std::time::Duration;

use herald_notifier::dlq;
use herald_test_support::fake::Reply;
use serde_json::json;

use crate::consumer::notifier_consumer;
use crate::helpers::{DEADLINE, TestApp, lead};
use crate::rules_text::RulesText;

/// Every event to Telegram chat 7 and the Slack webhook `ops`; `tg` may be narrowed by `tweak_tg`.
fn tg_and_slack_with(tweak_tg: impl FnOnce(RulesText) -> RulesText) -> RulesText {
    tweak_tg(RulesText::new().telegram("tg", 7))
        .slack_webhook("hook", "{slack}ops")
        .rule("all", &["tg", "hook"], "event {{ data.n }}")
}

/// Every event to Telegram chat 7 and the Slack webhook `ops`.
fn tg_and_slack() -> RulesText {
    tg_and_slack_with(|tg| tg)
}

#[tokio::test]
async fn telegram_429_waits_retry_after_then_succeeds_without_exceeding_the_rate() {
    // One message per event, so each event's attempts can be told apart.
    let app = TestApp::spawn_with(&tg_and_slack(), |cfg| cfg.digest.enabled = false).await;
    // Telegram's limit is 1/s per chat, checked on arrival.
    app.tg.enforce_min_interval(Duration::from_secs(1));
    app.tg.script(7, [Reply::RetryAfter(1)]);
    app.publish(&lead("insert", json!({"n": 1}))).await;
    app.publish(&lead("insert", json!({"n": 2}))).await;

    let got = app.tg.wait_accepted(2, DEADLINE).await;
    assert_eq!(got.len(), 2, "{:?}", app.tg.received());
    let all = app.tg.received();
    assert_eq!(
        all[0].reply,
        Reply::RetryAfter(1),
        "the first attempt was told to wait"
    );
    let retried = all
        .iter()
        .skip(1)
        .find(|r| r.text == all[0].text)
        .expect("retried");
    let waited = retried.at - all[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(
        app.tg.violations().is_empty(),
        "rate exceeded: {:?}",
        app.tg.violations()
    );
    let mut texts: Vec<_> = got.iter().map(|r| r.text.clone()).collect();
    texts.sort();
    assert_eq!(texts, ["event 1", "event 2"], "each delivered once");
    app.wait_metric("herald_notifier_retried_total{kind=\"telegram\"}", 1)
        .await;
}

#[tokio::test]
async fn slack_5xx_backs_off_and_a_redelivery_skips_targets_already_done() {
    let app = TestApp::spawn(&tg_and_slack()).await;
    app.slack
        .script("ops", [Reply::ServerError, Reply::ServerError]);
    app.publish(&lead("insert", json!({"n": 1}))).await;

    let slack = app.slack.wait_accepted(1, DEADLINE).await;
    assert_eq!(slack.len(), 1);
    assert_eq!(app.slack.received().len(), 3, "two 5xx, then success");
    app.wait_metric(
        "herald_notifier_duplicates_skipped_total{kind=\"telegram\"}",
        2,
    )
    .await;
    assert_eq!(
        app.tg.received().len(),
        1,
        "Telegram got it once although the event was delivered three times"
    );
}

#[tokio::test]
async fn transient_failures_past_max_deliver_are_dead_lettered() {
    let app = TestApp::spawn_with(&tg_and_slack(), |cfg| cfg.max_deliver = 2).await;
    app.slack.always("ops", Reply::ServerError);
    let event = lead("insert", json!({"n": 1}));
    let seq = app.publish(&event).await;

    app.wait_metric("herald_notifier_dead_lettered_total{kind=\"slack\"}", 1)
        .await;
    let dead = dlq::list(&app.js, None, 10).await.expect("list");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d.target.as_deref(), Some("hook"));
    assert_eq!(d.rule.as_deref(), Some("all"));
    assert_eq!(d.deliveries, 2);
    assert_eq!(d.original_sequence, seq);
    assert_eq!(d.original_subject, event.subject());
    assert!(
        d.reason.starts_with("gave up after 2 deliveries"),
        "{}",
        d.reason
    );
    assert!(d.reason.contains("500"), "{}", d.reason);
    assert_eq!(app.slack.received().len(), 2);
    assert_eq!(app.tg.accepted().len(), 1, "the healthy target got it once");
}

#[tokio::test]
async fn quiet_hours_hold_a_target_and_leave_the_others_alone() {
    // A window that covers every minute of the day but the one 12 h away.
    let now = time::OffsetDateTime::now_utc();
    let hm = |t: time::OffsetDateTime| format!("{:02}:{:02}", t.hour(), t.minute());
    let (start, end) = (
        hm(now - time::Duration::hours(11)),
        hm(now + time::Duration::hours(12)),
    );
    let rules = tg_and_slack_with(|tg| {
        tg.with(format!(
            r#"quiet_hours = {{ start = "{start}", end = "{end}" }}"#
        ))
    });
    let app = TestApp::spawn(&rules).await;
    app.publish(&lead("insert", json!({"n": 1}))).await;
    let hook = app.slack.wait_accepted(1, DEADLINE).await;
    assert_eq!(hook[0].text, "event 1");
    app.wait_metric("herald_notifier_retried_total{kind=\"telegram\"}", 1)
        .await;
    assert!(
        app.tg.received().is_empty(),
        "nothing goes to a target in its quiet hours"
    );
    // Held, not dropped: JetStream still has the event for the notifier.
    let info = notifier_consumer(&app.js).await.unwrap();
    assert_eq!(
        info.num_ack_pending + info.num_pending as usize,
        1,
        "{info:?}"
    );
}

#[tokio::test]
async fn slack_chat_errors_are_classified() {
    let rules = RulesText::new()
        .slack_chat("gone", "CGONE")
        .slack_chat("busy", "CBUSY")
        .rule("all", &["gone", "busy"], "event {{ data.n }}");
    let app = TestApp::spawn(&rules).await;
    app.slack.always("CGONE", Reply::Error("channel_not_found"));
    app.slack.script("CBUSY", [Reply::RetryAfter(1)]);
    app.publish(&lead("insert", json!({"n": 1}))).await;

    let busy = app.slack.wait_accepted(1, DEADLINE).await;
    assert_eq!(busy[0].target, "CBUSY");
    let attempts: Vec<_> = app
        .slack
        .received()
        .into_iter()
        .filter(|r| r.target == "CBUSY")
        .collect();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1].at - attempts[0].at >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    app.wait_metric("herald_notifier_dead_lettered_total{kind=\"slack\"}", 1)
        .await;
    let dead = dlq::list(&app.js, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "channel_not_found");
    assert_eq!(dead[0].target.as_deref(), Some("gone"));
}

#[tokio::test]
async fn a_long_block_puts_waiting_events_back_instead_of_holding_them() {
    let app = TestApp::spawn_with(&tg_and_slack(), |cfg| {
        cfg.max_hold = Duration::from_millis(500);
        cfg.digest.enabled = false;
    })
    .await;
    app.tg.script(7, [Reply::RetryAfter(2)]);
    app.publish(&lead("insert", json!({"n": 1}))).await;
    let first = app.tg.next(DEADLINE).await.expect("first attempt");
    assert_eq!(first.reply, Reply::RetryAfter(2));
    // Arrives while the chat is blocked for 2 s > max_hold: handed back, not held.
    app.publish(&lead("insert", json!({"n": 2}))).await;
    app.wait_metric("herald_notifier_retried_total{kind=\"telegram\"}", 2)
        .await;

    let got = app.tg.wait_accepted(2, DEADLINE).await;
    let mut texts: Vec<_> = got.iter().map(|r| r.text.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["event 1", "event 2"]);
    for r in &got {
        assert!(
            r.at - first.at >= Duration::from_secs(2),
            "nothing during the block"
        );
    }
}
