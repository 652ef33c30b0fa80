use herald_core::event::EventId;
use serde_json::json;

use super::*;

const RULES: &str = r#"
[targets.tg]
kind = "telegram"
chat_id = -100123

[targets.tg-html]
kind = "telegram"
chat_id = "@alerts"
markup = "html"

[targets.slack]
kind = "slack_webhook"
url = "http://127.0.0.1:9/hook"

[[rules]]
name = "new-lead"
tenant = "acme"
topic = "leads"
actions = ["insert"]
targets = ["tg", "slack"]
template = "New lead: *{{ data.name }}*"

[[rules]]
name = "hot"
topic = "leads"
when = [{ field = "data.score", gte = 80 }]
targets = ["tg", "tg-html"]
template = "Hot: <b>{{ data.name }}</b>"
"#;

fn event(tenant: &str, action: &str, data: serde_json::Value) -> Event {
    Event::new(
        EventId::parse("e1").unwrap(),
        TenantId::parse(tenant).unwrap(),
        Topic::parse("leads").unwrap(),
        Action::parse(action).unwrap(),
        "/test",
        data,
    )
}

#[test]
fn routes_each_target_once_first_rule_wins() {
    let rules = Rules::parse(RULES).unwrap();
    let e = event("acme", "insert", json!({"name": "Ada_1", "score": 90}));
    let routed: Vec<_> = rules
        .route(&e)
        .into_iter()
        .map(|d| (d.rule.to_string(), d.target.id.to_string()))
        .collect();
    assert_eq!(
        routed,
        [
            ("new-lead", "tg"),
            ("new-lead", "slack"),
            ("hot", "tg-html")
        ]
        .map(|(r, t)| (r.to_owned(), t.to_owned()))
    );
    let d = &rules.route(&e)[0];
    assert_eq!(rules.render(d, &e).unwrap(), "New lead: *Ada\\_1*");
    let html = &rules.route(&e)[2];
    assert_eq!(rules.render(html, &e).unwrap(), "Hot: <b>Ada_1</b>");

    let cold_other_tenant = event("beta", "insert", json!({"score": 10}));
    assert!(rules.route(&cold_other_tenant).is_empty());
    assert_eq!(
        rules.filter_subjects(),
        ["herald.events.*.leads.*"],
        "acme.leads.insert is covered by *.leads.*"
    );
    assert!(rules.delivery("hot", "tg-html").is_some());
    assert!(rules.delivery("hot", "slack").is_none());
}

#[test]
fn mistakes_are_clear_errors() {
    let err = |src: &str| Rules::parse(src).unwrap_err();
    let unknown = err("[[rules]]\nname = \"r\"\ntargets = [\"nope\"]\ntemplate = \"x\"");
    assert!(
        matches!(&unknown, RulesError::UnknownTarget { rule, target } if rule == "r" && target == "nope"),
        "{unknown}"
    );
    let syntax = err("[targets.x]\nkind = \"telegram\"\nchat_id = \n");
    assert!(matches!(syntax, RulesError::Syntax { .. }));
    let chain = herald_core::error_chain(&syntax);
    assert!(chain.contains("line 3"), "{chain}");
    let typo = err("[targets.x]\nkind = \"telegram\"\nchat = 1\n");
    assert!(
        matches!(typo, RulesError::Syntax { .. }),
        "unknown fields are rejected"
    );
    let half = err("[targets.x]\nkind = \"slack_webhook\"\n");
    assert!(matches!(half, RulesError::Target { .. }), "{half}");
    let tpl = err(
        "[targets.x]\nkind = \"telegram\"\nchat_id = 1\n[[rules]]\nname = \"r\"\ntargets = [\"x\"]\ntemplate = \"{{ a \"",
    );
    assert!(matches!(tpl, RulesError::Template(_)), "{tpl}");
    let dup = err(
        "[targets.x]\nkind = \"telegram\"\nchat_id = 1\n[[rules]]\nname = \"r\"\ntargets = [\"x\"]\ntemplate = \"\"\n[[rules]]\nname = \"r\"\ntargets = [\"x\"]\ntemplate = \"\"",
    );
    assert!(matches!(dup, RulesError::DuplicateRule(_)));
}

#[test]
fn an_empty_file_is_valid_and_idle() {
    let rules = Rules::parse("").unwrap();
    assert!(rules.is_empty());
    assert!(rules.filter_subjects().is_empty());
}

#[test]
fn per_markup_templates_override_the_shared_one() {
    let src = r#"
    [targets.md]
    kind = "telegram"
    chat_id = 1
    [targets.h]
    kind = "telegram"
    chat_id = 2
    markup = "html"
    [[rules]]
    name = "r"
    targets = ["md", "h"]
    template = "<b>{{ data.name }}</b> (html)"
    templates.markdown_v2 = "*{{ data.name }}* \\(md\\)"
    "#;
    let rules = Rules::parse(src).unwrap();
    let e = event("acme", "insert", json!({"name": "a.b"}));
    let texts: Vec<_> = rules
        .route(&e)
        .iter()
        .map(|d| rules.render(d, &e).unwrap())
        .collect();
    assert_eq!(texts, ["*a\\.b* \\(md\\)", "<b>a.b</b> (html)"]);
    let missing = Rules::parse(
        "[targets.h]\nkind = \"telegram\"\nchat_id = 2\nmarkup = \"html\"\n[[rules]]\nname = \"r\"\ntargets = [\"h\"]\ntemplates.html = \"x\"\n[[rules]]\nname = \"s\"\ntargets = [\"h\"]\ntemplates.plain = \"x\"",
    )
    .unwrap_err();
    assert!(
        matches!(missing, RulesError::NoTemplate { ref rule, .. } if rule == "s"),
        "{missing}"
    );
}

/// The example in docs/notifier.md parses, and a Sequin insert renders through it.
#[test]
fn the_documented_example_works() {
    let doc = include_str!("../../../../docs/notifier.md");
    let start = doc.find("```toml\n# rules.toml\n").expect("the example") + "```toml\n".len();
    let len = doc[start..].find("```").expect("its end");
    let rules = Rules::parse(&doc[start..start + len]).unwrap();
    let insert: serde_json::Value = serde_json::from_str(include_str!(
        "../../../herald-test-support/fixtures/sequin/insert.json"
    ))
    .unwrap();
    let e = event("acme", "insert", insert["record"].clone());
    let texts: Vec<_> = rules
        .route(&e)
        .iter()
        .map(|d| rules.render(d, &e).unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "New lead: *Ada Lovelace* \\(Analytical Engines Ltd\\), score 82",
            "New lead: *Ada Lovelace* (Analytical Engines Ltd), score 82",
        ]
    );
}
