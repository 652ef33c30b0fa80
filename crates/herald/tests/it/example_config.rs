//! `deploy/herald.example.toml` is the defaults, written out. Loaded section by section the way
//! the services load it, each section equals its `Default`; it names every key of every
//! section (a new config key without a line in the example fails here); and its commented-out
//! examples, switched on, still make a valid configuration.
//!
//! One kind of default cannot be written in TOML: `None` (TOML has no null). Such a key
//! (`nats.token`, `gateway.web_dir`, `ingest.legacy_dedup_until`, …) must appear as a
//! commented-out example `# key = …` in its table instead. An empty map (`ingest.sources`,
//! `ingest.api_keys`, the tenant tokens) is written as an empty table, with its example
//! commented out below it.

use herald_core::service::ServiceConfig as _;
use std::collections::BTreeSet;
use std::path::Path;

use herald_core::config::load;
use herald_core::service::CommonConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/herald.example.toml"
);

/// One section: its name, the file's section as loaded, and the section's default.
struct Section {
    name: String,
    loaded: Value,
    default: Value,
}

/// Loads section `name` of `path` (`None`: the whole file) as `T`, next to `T::default()`.
fn loaded<T: Serialize + DeserializeOwned + Default>(
    path: &Path,
    name: Option<&str>,
) -> (Value, Value) {
    let cfg: T = load(Some(path), name).unwrap_or_else(|e| panic!("loading [{name:?}]: {e}"));
    let value = serde_json::to_value(cfg).unwrap();
    (value, serde_json::to_value(T::default()).unwrap())
}

/// Every section of the file: `[nats]`, `[stream]`, `[log]` and `[http]` (one `CommonConfig`,
/// loaded from the whole file) and the four services' sections.
fn sections(path: &Path) -> Vec<Section> {
    let (common, common_default) = loaded::<CommonConfig>(path, None);
    let mut out: Vec<Section> = common_default
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, default)| Section {
            name: name.clone(),
            loaded: common[name].clone(),
            default: default.clone(),
        })
        .collect();
    let services = [
        (
            "ingest",
            loaded::<herald_ingest::Config>(path, Some("ingest")),
        ),
        (
            "gateway",
            loaded::<herald_gateway::Config>(path, Some("gateway")),
        ),
        (
            "notifier",
            loaded::<herald_notifier::Config>(path, Some("notifier")),
        ),
        ("stats", loaded::<herald_stats::Config>(path, Some("stats"))),
    ];
    for (name, (loaded, default)) in services {
        out.push(Section {
            name: name.into(),
            loaded,
            default,
        });
    }
    out
}

/// The keys (dotted paths under `at`) whose values differ between `a` and `b`.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                differences(va, vb, &format!("{at}.{k}"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: the file says {a}, the default is {b}")),
        _ => {}
    }
}

/// The `HERALD_*` variables of this environment: they apply on top of the file.
fn herald_env() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("HERALD_"))
        .collect()
}

#[test]
fn every_section_of_the_example_is_its_default() {
    for section in sections(Path::new(EXAMPLE)) {
        let mut diff = Vec::new();
        differences(&section.loaded, &section.default, &section.name, &mut diff);
        assert!(
            diff.is_empty(),
            "{EXAMPLE}: [{}] differs from the defaults:\n  {}\n(HERALD_* variables set here, \
             which apply too: {:?})",
            section.name,
            diff.join("\n  "),
            herald_env(),
        );
    }
}

/// A commented-out line of the example: `# [table]` or `# key = …`. Prose is neither.
enum Commented<'a> {
    Table(&'a str),
    Key(&'a str),
}

/// Reads `line` as a commented-out table header or key, if it is one.
fn commented(line: &str) -> Option<Commented<'_>> {
    let rest = line.strip_prefix("# ")?.trim_start();
    if let Some(header) = rest.strip_prefix('[') {
        let (name, after) = header.split_once(']')?;
        let after = after.trim_start();
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.".contains(c));
        return (plain && (after.is_empty() || after.starts_with('#')))
            .then_some(Commented::Table(name));
    }
    let (key, _) = rest.split_once(" = ")?;
    let plain = key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    plain.then_some(Commented::Key(key))
}

/// The dotted paths of the keys the example names only in a commented-out line, each under
/// the table it stands in (a live `[table]`, or the commented-out `# [table]` above it).
fn commented_keys(text: &str) -> BTreeSet<String> {
    let mut table = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let live = line.trim_start();
        if let Some(header) = live.strip_prefix('[') {
            table = header.split(']').next().unwrap_or_default().to_owned();
            continue;
        }
        match commented(line) {
            Some(Commented::Table(name)) => table = name.to_owned(),
            Some(Commented::Key(key)) => {
                keys.insert(format!("{table}.{key}"));
            }
            None => {}
        }
    }
    keys
}

/// The keys of `default` (under `at`) that `file` does not name: live, or for a `None`
/// default (TOML has no null) in a commented-out line.
fn missing(
    default: &Value,
    file: Option<&toml::Value>,
    at: &str,
    commented: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    let Value::Object(fields) = default else {
        return;
    };
    for (key, value) in fields {
        let path = format!("{at}.{key}");
        let live = file.and_then(|t| t.get(key));
        match (value, live) {
            (Value::Null, None) if commented.contains(&path) => {}
            (Value::Null, None) => out.push(format!(
                "{path} (default none: a `# {key} = …` example line)"
            )),
            (_, None) => out.push(path),
            (Value::Object(_), Some(table)) => missing(value, Some(table), &path, commented, out),
            _ => {}
        }
    }
}

#[test]
fn the_example_names_every_key() {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let file: toml::Value = toml::from_str(&text).unwrap();
    let commented = commented_keys(&text);
    let mut absent = Vec::new();
    for section in sections(Path::new(EXAMPLE)) {
        let table = file.get(&section.name);
        if table.is_none() {
            absent.push(format!("[{}]", section.name));
        }
        missing(
            &section.default,
            table,
            &section.name,
            &commented,
            &mut absent,
        );
    }
    assert!(
        absent.is_empty(),
        "{EXAMPLE} does not name these keys; add each with its default and a one-line comment:\n  {}",
        absent.join("\n  ")
    );
}

/// The example with every commented-out `# [table]` and `# key = …` line switched on.
fn examples_switched_on(text: &str) -> String {
    text.lines()
        .map(|line| match commented(line) {
            Some(_) => line.strip_prefix("# ").unwrap_or(line),
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_is_valid_with_its_examples_switched_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(
        &path,
        examples_switched_on(&std::fs::read_to_string(EXAMPLE).unwrap()),
    )
    .unwrap();

    let common: CommonConfig = load(Some(&path), None).unwrap();
    assert_eq!(
        common.stream.duplicate_window,
        std::time::Duration::from_secs(900)
    );
    let ingest: herald_ingest::Config = load(Some(&path), Some("ingest")).unwrap();
    ingest.validate().unwrap();
    assert_eq!(ingest.sources["crm"].tenant.as_str(), "acme");
    assert_eq!(ingest.api_keys.len(), 1);
    let _: herald_gateway::Config = load(Some(&path), Some("gateway")).unwrap();
    let notifier: herald_notifier::Config = load(Some(&path), Some("notifier")).unwrap();
    notifier.validate().unwrap();
    assert_eq!(notifier.telegram.tenant_tokens.len(), 1);
    let stats: herald_stats::Config = load(Some(&path), Some("stats")).unwrap();
    stats.validate().unwrap();
}
