//! A permanent error → the DLQ at once with the reason; re-driven after the fix →
//! delivered once, and only to that target.

use herald_core::names::TenantId;
use herald_notifier::dlq::{self, DlqError};
use herald_test_support::fake::Reply;
use serde_json::json;

use crate::helpers::{DEADLINE, TestApp, lead};
use crate::rules_text::RulesText;

/// Leads to a chat that is gone, an archived Slack webhook and a chat that works.
fn rules() -> RulesText {
    RulesText::new()
        .telegram("gone", -100999)
        .slack_webhook("hook", "{slack}archived")
        .telegram("fine", 5)
        .rule_on(
            "leads",
            "leads",
            &["gone", "hook", "fine"],
            "lead {{ data.name }}",
        )
}

#[tokio::test]
async fn permanent_errors_dead_letter_at_once_and_redrive_delivers_once() {
    let app = TestApp::spawn(&rules()).await;
    app.tg.always(-100999, Reply::Error("chat_not_found"));
    app.slack
        .always("archived", Reply::Error("channel_is_archived"));
    let event = lead("insert", json!({"name": "Ada"}));
    app.publish(&event).await;

    app.wait_metric("herald_notifier_dead_lettered_total", 2)
        .await;
    let acme = TenantId::parse("acme").unwrap();
    let mut dead = dlq::list(&app.js, Some(&acme), 10).await.expect("list");
    dead.sort_by(|a, b| a.target.cmp(&b.target));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].target.as_deref(), Some("gone"));
    assert_eq!(dead[0].reason, "Bad Request: chat not found");
    assert_eq!(dead[0].deliveries, 1, "no retries for a permanent error");
    assert_eq!(dead[1].target.as_deref(), Some("hook"));
    assert_eq!(
        dead[1].reason,
        "slack webhook answered 410: channel_is_archived"
    );
    assert_eq!(dead[1].tenant, "acme");
    let stored = dead[0].event().expect("the dead letter carries the event");
    assert_eq!(stored.id, event.id);
    assert_eq!(
        app.tg
            .received()
            .iter()
            .filter(|r| r.target == "-100999")
            .count(),
        1
    );
    assert!(
        dlq::list(&app.js, Some(&TenantId::parse("other").unwrap()), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The fix: the chat exists again. Re-drive its dead letter only.
    app.tg.heal(-100999);
    dlq::replay(&app.js, dead[0].seq).await.expect("replay");
    let got = app.tg.wait_accepted(2, DEADLINE).await;
    assert_eq!(got.iter().filter(|r| r.target == "-100999").count(), 1);
    assert_eq!(
        got.iter().filter(|r| r.target == "5").count(),
        1,
        "the other target is not resent"
    );
    let left = dlq::list(&app.js, None, 10).await.unwrap();
    assert_eq!(left.len(), 1, "the re-driven one is gone, the other stays");
    assert_eq!(left[0].target.as_deref(), Some("hook"));
    assert!(matches!(
        dlq::replay(&app.js, dead[0].seq).await,
        Err(DlqError::NotFound(_))
    ));

    // Re-driven before its fix, the other one fails again: a new dead letter, not lost to
    // de-duplication, still naming the original event.
    dlq::replay(&app.js, dead[1].seq).await.expect("replay");
    app.wait_metric("herald_notifier_dead_lettered_total{kind=\"slack\"}", 2)
        .await;
    let again = dlq::list(&app.js, None, 10).await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0].seq, dead[1].seq);
    assert_eq!(again[0].original_sequence, dead[1].original_sequence);
    assert_eq!(again[0].original_subject, event.subject());

    // After the fix it is delivered once.
    app.slack.heal("archived");
    dlq::replay(&app.js, again[0].seq).await.expect("replay");
    let hook = app.slack.wait_accepted(1, DEADLINE).await;
    assert_eq!(hook.len(), 1);
    assert_eq!(
        app.slack.received().len(),
        3,
        "archived twice, then delivered"
    );
    app.wait_metric("herald_notifier_events_delivered_total{kind=\"slack\"}", 1)
        .await;
    assert!(dlq::list(&app.js, None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn malformed_events_are_dead_lettered_not_dropped() {
    let app = TestApp::spawn(&rules()).await;
    app.js
        .publish("herald.events.acme.leads.insert", "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    app.wait_metric("herald_notifier_dead_lettered_total{kind=\"none\"}", 1)
        .await;
    let dead = dlq::list(&app.js, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.starts_with("malformed event"),
        "{}",
        dead[0].reason
    );
    assert_eq!(dead[0].target, None);
    assert!(dead[0].event().is_none());
    assert_eq!(&dead[0].payload[..], b"{not json");
}

#[tokio::test]
async fn a_refused_digest_is_retried_event_by_event() {
    let rules =
        RulesText::new()
            .telegram_markdown("tg", 3)
            .rule("raw", &["tg"], "{{ data.raw | safe }}");
    let app = TestApp::spawn(&rules).await;
    app.publish(&lead("insert", json!({"raw": "good0"}))).await;
    app.tg.wait_accepted(1, DEADLINE).await;
    // These queue behind the 1/s limit and would go out as one digest, which Telegram
    // refuses because of the unescaped '.' of one of them.
    for raw in ["good1", "bad.", "good2"] {
        app.publish(&lead("insert", json!({ "raw": raw }))).await;
    }
    app.wait_metric("herald_notifier_dead_lettered_total{kind=\"telegram\"}", 1)
        .await;
    let got = app.tg.wait_accepted(3, DEADLINE).await;
    let mut texts: Vec<_> = got.iter().map(|r| r.text.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["good0", "good1", "good2"]);
    assert!(
        app.tg.received().iter().any(|r| r.text.contains("events")),
        "a digest was tried first: {:?}",
        app.tg
            .received()
            .iter()
            .map(|r| (&r.text, &r.reply))
            .collect::<Vec<_>>()
    );
    let dead = dlq::list(&app.js, None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("can't parse entities"),
        "{}",
        dead[0].reason
    );
    let stored: herald_core::event::Event = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(stored.data["raw"], "bad.");
}
