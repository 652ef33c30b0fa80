//! docs/operations.md's configuration reference is checked against the code: every key every
//! service accepts is documented, and every documented key exists.

use std::collections::BTreeSet;

use herald_core::service::CommonConfig;
use serde_json::Value;

fn leaves(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn code_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    leaves(
        "",
        &serde_json::to_value(CommonConfig::default()).unwrap(),
        &mut keys,
    );
    let sections = [
        (
            "ingest",
            serde_json::to_value(herald_ingest::Config::default()).unwrap(),
        ),
        (
            "gateway",
            serde_json::to_value(herald_gateway::Config::default()).unwrap(),
        ),
        (
            "notifier",
            serde_json::to_value(herald_notifier::Config::default()).unwrap(),
        ),
        (
            "stats",
            serde_json::to_value(herald_stats::Config::default()).unwrap(),
        ),
    ];
    for (name, cfg) in sections {
        leaves(name, &cfg, &mut keys);
    }
    keys
}

/// Keys in the first column of the reference tables: `` | `section.key` | … ``.
fn documented_keys() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .unwrap();
    let reference = doc
        .split("## Configuration reference")
        .nth(1)
        .expect("a reference section");
    let reference = reference.split("\n## ").next().unwrap();
    reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_config_key_is_documented_and_every_documented_key_exists() {
    let code = code_keys();
    let docs = documented_keys();
    let undocumented: Vec<_> = code.difference(&docs).collect();
    let unknown: Vec<_> = docs.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "keys missing from docs/operations.md: {undocumented:#?}"
    );
    assert!(
        unknown.is_empty(),
        "documented keys the code does not have: {unknown:#?}"
    );
}

/// The README's notifier rule parses, routes a Sequin insert to both targets, and renders it.
#[test]
fn the_readme_rule_routes_a_sequin_insert_to_telegram_and_slack() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("[[rules]]"))
        .expect("a rules example in the README");
    let rules = herald_notifier::rules::Rules::parse(block).unwrap();
    let record = herald_test_support::fixtures::json("sequin/insert.json")["record"].clone();
    let event = herald_core::event::Event::new(
        herald_core::event::EventId::parse("MjUxNjU4MjQ6MA==").unwrap(),
        "acme".parse().unwrap(),
        "leads".parse().unwrap(),
        "insert".parse().unwrap(),
        "/webhooks/crm",
        record,
    );
    let deliveries = rules.route(&event);
    assert_eq!(deliveries.len(), 2, "one Telegram and one Slack message");
    for d in &deliveries {
        let text = rules.render(d, &event).unwrap();
        assert!(text.contains("Ada Lovelace"), "{text}");
    }
}
