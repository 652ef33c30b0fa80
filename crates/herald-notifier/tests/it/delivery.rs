//! A matching event → exactly one message per target, correctly escaped.

use herald_test_support::fixtures;
use serde_json::json;

use crate::helpers::{DEADLINE, SLACK_TOKEN, TG_TOKEN, TestApp, lead};
use crate::rules_text::RulesText;

/// Acme's new leads to one target of each kind: MarkdownV2 and HTML chats, a Slack webhook
/// and a Slack channel with blocks.
pub fn all_targets() -> RulesText {
    RulesText::new()
        .telegram_markdown("tg", -1001234567890)
        .telegram_html("tg-html", 42)
        .slack_webhook("slack-hook", "{slack}sales")
        .slack_chat("slack-chat", "C0SALES")
        .with("blocks = true")
        .rule_on(
            "leads",
            "new-lead",
            &["tg", "tg-html", "slack-hook", "slack-chat"],
            "New lead: *{{ data.name }}* ({{ data.company }}), score {{ data.score }}",
        )
        .with(r#"tenant = "acme""#)
        .with(r#"actions = ["insert"]"#)
        .with(r#"templates.markdown_v2 = "New lead: *{{ data.name }}* \\({{ data.company }}\\), score {{ data.score }}""#)
}

const NASTY: &str = "Ada_*[]()~>#+-=|{}.!<&";

#[tokio::test]
async fn a_matching_event_sends_one_escaped_message_per_target() {
    let app = TestApp::spawn(&all_targets()).await;
    // Something that matches no rule goes first: the first message anywhere must be ours.
    app.publish(&lead("update", json!({"name": "ignored"})))
        .await;
    let mut record = fixtures::json("sequin/insert.json")["record"].clone();
    record["name"] = json!(NASTY);
    record["company"] = json!("<Analytical & Engines>");
    app.publish(&lead("insert", record)).await;

    let tg = app.tg.wait_accepted(2, DEADLINE).await;
    let slack = app.slack.wait_accepted(2, DEADLINE).await;
    assert_eq!(tg.len(), 2, "{tg:?}");
    assert_eq!(slack.len(), 2, "{slack:?}");

    let md = tg
        .iter()
        .find(|r| r.target == "-1001234567890")
        .expect("MarkdownV2 chat");
    assert_eq!(
        md.text,
        "New lead: *Ada\\_\\*\\[\\]\\(\\)\\~\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!<&* \\(<Analytical & Engines\\>\\), score 82"
    );
    assert_eq!(md.body["parse_mode"], "MarkdownV2");
    assert_eq!(md.token.as_deref(), Some(TG_TOKEN));

    let html = tg.iter().find(|r| r.target == "42").expect("HTML chat");
    assert_eq!(
        html.text,
        "New lead: *Ada_*[]()~&gt;#+-=|{}.!&lt;&amp;* (&lt;Analytical &amp; Engines&gt;), score 82"
    );
    assert_eq!(html.body["parse_mode"], "HTML");

    let hook = slack
        .iter()
        .find(|r| r.method == "webhook")
        .expect("webhook");
    assert_eq!(hook.target, "sales");
    assert_eq!(
        hook.text,
        "New lead: *Ada_*[]()~&gt;#+-=|{}.!&lt;&amp;* (&lt;Analytical &amp; Engines&gt;), score 82"
    );
    let chat = slack
        .iter()
        .find(|r| r.method == "chat.postMessage")
        .expect("chat.postMessage");
    assert_eq!(chat.target, "C0SALES");
    assert_eq!(chat.token.as_deref(), Some(SLACK_TOKEN));
    assert_eq!(chat.body["blocks"][0]["text"]["text"], chat.text);

    // Exactly one each: once the event is fully delivered, a second event's messages are
    // the only other ones to arrive.
    app.wait_metric("herald_notifier_events_delivered_total", 4)
        .await;
    app.publish(&lead(
        "insert",
        json!({"name": "Sentinel", "company": "S", "score": 1}),
    ))
    .await;
    let tg = app.tg.wait_accepted(4, DEADLINE).await;
    let slack = app.slack.wait_accepted(4, DEADLINE).await;
    assert_eq!(tg.len() + slack.len(), 8);
    for r in tg.iter().chain(&slack) {
        assert_eq!(
            r.reply,
            herald_test_support::fake::Reply::Ok,
            "the fakes accepted every text"
        );
    }
    let firsts = tg
        .iter()
        .chain(&slack)
        .filter(|r| r.text.contains("Ada"))
        .count();
    assert_eq!(firsts, 4, "one message per target for the first event");
}

#[tokio::test]
async fn conditions_route_status_changes_and_scores() {
    let rules = RulesText::new()
        .telegram("won", 1)
        .telegram("hot", 2)
        .rule_on("leads", "won", &["won"], "won {{ data.name }}")
        .with(r#"actions = ["update"]"#)
        .with(r#"when = [{ field = "data.status", eq = "won", changed = true }]"#)
        .rule_on(
            "leads",
            "hot",
            &["hot"],
            "hot {{ data.name }} {{ data.score }}",
        )
        .with(r#"when = [{ field = "data.score", gte = 80 }]"#);
    let app = TestApp::spawn(&rules).await;
    let mut still_won = lead("update", json!({"name": "A", "status": "won", "score": 10}));
    still_won.changes = Some(json!({"score": 5}));
    let mut now_won = lead("update", json!({"name": "B", "status": "won", "score": 10}));
    now_won.changes = Some(json!({"status": "contacted"}));
    let hot = lead("insert", json!({"name": "C", "score": 80}));
    for e in [&still_won, &now_won, &hot] {
        app.publish(e).await;
    }
    let got = app.tg.wait_accepted(2, DEADLINE).await;
    let mut texts: Vec<_> = got
        .iter()
        .map(|r| (r.target.as_str(), r.text.as_str()))
        .collect();
    texts.sort();
    assert_eq!(texts, [("1", "won B"), ("2", "hot C 80")]);
}

#[tokio::test]
async fn long_text_is_truncated_cleanly_and_tenants_use_their_own_bot() {
    let rules = RulesText::new()
        .telegram_markdown("md", 1)
        .telegram_html("html", 2)
        .slack_chat("chat", "C1")
        .rule("long", &["md", "html", "chat"], "<b>{{ data.note }}</b>")
        .with(r#"templates.markdown_v2 = "*{{ data.note }}*""#)
        .with(r#"templates.mrkdwn = "*{{ data.note }}*""#);
    let app = TestApp::spawn_with(&rules, |cfg| {
        let beta = herald_core::names::TenantId::parse("beta").unwrap();
        let secret = herald_core::secret::Secret::new;
        cfg.telegram
            .tenant_tokens
            .insert(beta.clone(), secret("999:BETA"));
        cfg.slack.tenant_tokens.insert(beta, secret("xoxb-beta"));
    })
    .await;
    let note = "a.b_<c>&d ".repeat(1000);
    app.publish(&crate::helpers::event(
        "beta",
        "notes",
        "insert",
        json!({"note": note}),
    ))
    .await;
    let tg = app.tg.wait_accepted(2, DEADLINE).await;
    assert_eq!(
        tg.len(),
        2,
        "the fake accepts both: valid markup within 4096 characters"
    );
    for r in &tg {
        assert!(r.text.chars().count() <= 4096, "{}", r.text.chars().count());
        assert!(r.text.ends_with('…'));
        assert_eq!(r.token.as_deref(), Some("999:BETA"), "the tenant's own bot");
    }
    let md = tg.iter().find(|r| r.target == "1").unwrap();
    assert!(md.text.ends_with("*…"), "bold closed before the ellipsis");
    let html = tg.iter().find(|r| r.target == "2").unwrap();
    assert!(
        html.text.ends_with("</b>…"),
        "tag closed before the ellipsis"
    );
    let slack = app.slack.wait_accepted(1, DEADLINE).await;
    assert_eq!(slack[0].token.as_deref(), Some("xoxb-beta"));
    assert!(slack[0].text.chars().count() <= 40_000);
}
