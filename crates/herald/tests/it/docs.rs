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
