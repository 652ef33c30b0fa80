//! Sequin webhook-sink bodies: one message, or `{"data":[msg, …]}` with batching on.
//!
//! topic = `metadata.table_name`, action = `action`, id = `metadata.idempotency_key`,
//! data = `record`, changes = `changes` (previous values of changed columns on update),
//! time = `metadata.commit_timestamp`. Unknown keys are ignored.
//!
//! [`parse_fast`] reads well-formed bodies without building a tree of the whole body;
//! [`parse`] handles everything else and explains what is wrong.

use herald_core::event::{Event, EventId};
use herald_core::names::{Action, Topic};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Context, object, optional_object, optional_str, path, required, required_str};
use crate::error::ParseError;

/// The actions Sequin sends. Anything else is refused (422): a subject's action token decides
/// what subscribers and notifier rules see, so an invented one must not slip in.
pub const SEQUIN_ACTIONS: [&str; 4] = ["insert", "update", "delete", "read"];

/// The typed fast path: a borrowed parse of exactly the members Herald reads, moving `record`
/// and `changes` into the event instead of cloning them out of a tree of the whole body.
///
/// It yields events only for bodies [`parse`] accepts, and the same events. Anything unusual
/// (a missing, null or mistyped member, an invalid name, an escaped string, a duplicate key)
/// gives `None`: the caller then runs [`parse`], which says precisely what is wrong.
pub fn parse_fast(ctx: &Context<'_>, body: &[u8]) -> Option<Vec<Event>> {
    let top: Message<'_> = from_object(body)?;
    if top.record.is_some() {
        return Some(vec![fast_message(ctx, top)?]);
    }
    top.data?
        .iter()
        .map(|item| fast_message(ctx, from_object(item.get().as_bytes())?))
        .collect()
}

/// `T` from JSON text that is an object. (Serde also builds a struct from an array,
/// positionally; the tree-based parser would refuse that.)
fn from_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    let opens_object = json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    opens_object
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

/// One Sequin message (or the top level of a batch, which has `data` instead).
#[derive(Deserialize)]
struct Message<'a> {
    /// Present-but-null stays `Some(Null)`, so a null record is told apart from a batch.
    #[serde(default, deserialize_with = "present")]
    record: Option<Value>,
    #[serde(default)]
    changes: Option<Value>,
    #[serde(default)]
    action: Option<&'a str>,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<Vec<&'a RawValue>>,
}

/// The members of `metadata` Herald reads; the rest is skipped.
#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(default)]
    table_name: Option<&'a str>,
    #[serde(default)]
    idempotency_key: Option<&'a str>,
    #[serde(default)]
    commit_timestamp: Option<&'a str>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn fast_message(ctx: &Context<'_>, msg: Message<'_>) -> Option<Event> {
    let record = msg.record.filter(|r| !r.is_null())?;
    let meta: Metadata<'_> = from_object(msg.metadata?.get().as_bytes())?;
    let changes = match msg.changes {
        None => None,
        Some(v @ Value::Object(_)) => Some(v),
        Some(_) => return None,
    };
    let mut event = Event::new(
        EventId::parse(meta.idempotency_key?).ok()?,
        ctx.tenant().clone(),
        Topic::parse(meta.table_name?).ok()?,
        Action::parse(msg.action.filter(|a| SEQUIN_ACTIONS.contains(a))?).ok()?,
        ctx.event_source(),
        record,
    );
    event.changes = changes;
    if let Some(ts) = meta.commit_timestamp {
        event.time = OffsetDateTime::parse(ts, &Rfc3339).ok()?;
    }
    Some(event)
}

/// Parses a single message or a batch; a batch yields its events in order.
pub fn parse(ctx: &Context<'_>, body: &Value) -> Result<Vec<Event>, ParseError> {
    let top = object(body, "")?;
    if top.contains_key("record") {
        return Ok(vec![message(ctx, body, "")?]);
    }
    match top.get("data") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, msg)| message(ctx, msg, &format!("data[{i}]")))
            .collect(),
        Some(_) => Err(ParseError::Shape(
            "data must be an array of Sequin messages".into(),
        )),
        None => Err(ParseError::Shape(
            "expected a Sequin message (with record, action, metadata) or a {\"data\":[…]} batch"
                .into(),
        )),
    }
}

fn message(ctx: &Context<'_>, msg: &Value, at: &str) -> Result<Event, ParseError> {
    let obj = object(msg, at)?;
    let record = required(obj, at, "record")?;
    let meta_at = path(at, "metadata");
    let meta = object(required(obj, at, "metadata")?, &meta_at)?;

    let topic = super::topic(
        required_str(meta, &meta_at, "table_name")?,
        &path(&meta_at, "table_name"),
    )?;
    let action = super::action(required_str(obj, at, "action")?, &path(at, "action"))?;
    if !SEQUIN_ACTIONS.contains(&action.as_str()) {
        return Err(ParseError::Shape(format!(
            "{} must be insert, update, delete or read (what Sequin sends), not {:?}",
            path(at, "action"),
            action.as_str()
        )));
    }
    let id = super::event_id(
        required_str(meta, &meta_at, "idempotency_key")?,
        &path(&meta_at, "idempotency_key"),
    )?;
    let changes = optional_object(obj, at, "changes")?;

    let mut event = Event::new(
        id,
        ctx.tenant().clone(),
        topic,
        action,
        ctx.event_source(),
        record.clone(),
    );
    event.changes = changes;
    if let Some(ts) = optional_str(meta, &meta_at, "commit_timestamp")? {
        event.time = super::rfc3339(ts, &path(&meta_at, "commit_timestamp"))?;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderMap;
    use herald_core::names::TenantId;
    use herald_test_support::fixtures;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::config::{Format, SourceConfig, Verify};
    use crate::verify::Verified;

    fn source() -> SourceConfig {
        SourceConfig {
            tenant: TenantId::parse("acme").unwrap(),
            format: Format::Sequin,
            verify: Verify::StandardWebhooks {
                tolerance: Duration::from_secs(300),
            },
            secrets: vec![],
            topic: None,
            action: None,
            id_header: None,
            action_header: None,
            topic_header: None,
            to: None,
        }
    }

    /// Both parsers on `body`: (fast path, tree parser).
    fn both(body: &[u8]) -> (Option<Vec<Event>>, Result<Vec<Event>, ParseError>) {
        let (source, headers, verified) = (source(), HeaderMap::new(), Verified::without_id());
        let ctx = Context {
            name: "crm",
            source: &source,
            headers: &headers,
            verified: &verified,
        };
        let tree = serde_json::from_slice(body)
            .map_err(|e| ParseError::Json(e.to_string()))
            .and_then(|v| parse(&ctx, &v));
        (parse_fast(&ctx, body), tree)
    }

    fn insert() -> Value {
        fixtures::json("sequin/insert.json")
    }

    #[test]
    fn the_fast_path_takes_every_fixture_and_agrees_with_the_tree_parser() {
        for path in fixtures::SEQUIN_SINGLE.iter().chain(&["sequin/batch.json"]) {
            let (fast, tree) = both(&fixtures::bytes(path));
            let fast = fast.unwrap_or_else(|| panic!("{path}: fast path declined"));
            assert_eq!(fast, tree.unwrap(), "{path}");
        }
    }

    #[test]
    fn the_fast_path_declines_bodies_the_tree_parser_refuses() {
        let with = |pointer: &str, value: Value| {
            let mut body = insert();
            *body.pointer_mut(pointer).unwrap() = value;
            body
        };
        let mut no_record = insert();
        no_record.as_object_mut().unwrap().remove("record");
        let refused = [
            ("an array at the top", json!([insert()])),
            (
                "metadata as an array",
                with("/metadata", json!(["leads", "k"])),
            ),
            ("a null record", with("/record", Value::Null)),
            ("no record and no data", no_record),
            ("changes not an object", with("/changes", json!("x"))),
            ("a numeric action", with("/action", json!(5))),
            (
                "an action Sequin never sends",
                with("/action", json!("explode")),
            ),
            (
                "an invalid topic",
                with("/metadata/table_name", json!("a.b")),
            ),
            (
                "an invalid id",
                with("/metadata/idempotency_key", json!("a b")),
            ),
            (
                "a bad time",
                with("/metadata/commit_timestamp", json!("noon")),
            ),
            (
                "a numeric time",
                with("/metadata/commit_timestamp", json!(5)),
            ),
            ("a batch item that is an array", json!({"data": [[1]]})),
            (
                "a batch with one bad item",
                json!({"data": [insert(), {"record": 1}]}),
            ),
            ("data not an array", json!({"data": {"record": 1}})),
        ];
        for (what, body) in refused {
            let (fast, tree) = both(&serde_json::to_vec(&body).unwrap());
            assert!(fast.is_none(), "{what}: fast path accepted");
            assert!(tree.is_err(), "{what}: tree parser accepted");
        }
    }

    #[test]
    fn unusual_but_valid_bodies_fall_back_to_the_same_events() {
        let insert = String::from_utf8(fixtures::bytes("sequin/insert.json")).unwrap();
        let escaped = insert.replace(r#""table_name": "leads""#, r#""table_name": "lea\u0064s""#);
        let duplicate = insert.replace(
            r#""action": "insert""#,
            r#""action": "x", "action": "insert""#,
        );
        assert_ne!(escaped, insert);
        assert_ne!(duplicate, insert);
        let (expected, _) = both(insert.as_bytes());
        for body in [escaped, duplicate] {
            let (fast, tree) = both(body.as_bytes());
            assert!(fast.is_none(), "{body}");
            assert_eq!(Some(tree.unwrap()), expected);
        }
    }

    /// A message whose members are each absent, usable (most often) or broken in some way.
    fn message() -> impl Strategy<Value = Value> {
        let record = prop_oneof![
            3 => Just(Some(json!({"id": 1}))),
            1 => Just(None),
            1 => Just(Some(Value::Null)),
            1 => Just(Some(json!([1]))),
        ];
        let changes = prop_oneof![
            2 => Just(None),
            2 => Just(Some(Value::Null)),
            2 => Just(Some(json!({"status": "new"}))),
            1 => Just(Some(json!("x"))),
            1 => Just(Some(json!([]))),
        ];
        let action = prop_oneof![
            3 => Just(Some(json!("insert"))),
            1 => Just(None),
            1 => Just(Some(json!("a b"))),
            1 => Just(Some(json!("explode"))),
            1 => Just(Some(json!(5))),
            1 => Just(Some(Value::Null)),
        ];
        let metadata = prop_oneof![
            3 => Just(Some(json!({"table_name": "leads", "idempotency_key": "k1", "x": [1]}))),
            2 => Just(Some(json!({"table_name": "leads", "idempotency_key": "k1",
                                  "commit_timestamp": "2026-11-20T09:14:03Z"}))),
            1 => Just(Some(json!({"table_name": "leads", "idempotency_key": "k1",
                                  "commit_timestamp": 1}))),
            1 => Just(Some(json!({"table_name": "a.b", "idempotency_key": "k1"}))),
            1 => Just(Some(json!({"table_name": "leads"}))),
            1 => Just(Some(json!(["leads", "k1"]))),
            1 => Just(Some(Value::Null)),
            1 => Just(None),
        ];
        (record, changes, action, metadata).prop_map(|(record, changes, action, metadata)| {
            let members = [
                ("record", record),
                ("changes", changes),
                ("action", action),
                ("metadata", metadata),
            ];
            Value::Object(
                members
                    .into_iter()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                    .collect(),
            )
        })
    }

    fn body() -> impl Strategy<Value = Value> {
        prop_oneof![
            message(),
            prop::collection::vec(message(), 0..3).prop_map(|items| json!({ "data": items })),
        ]
    }

    proptest! {
        /// Whatever the fast path accepts, the tree parser accepts with the same events.
        #[test]
        fn the_fast_path_never_accepts_more_than_the_tree_parser(body in body()) {
            let (fast, tree) = both(&serde_json::to_vec(&body).unwrap());
            if let Some(fast) = fast {
                let mut tree = tree.expect("the tree parser accepts what the fast path does");
                // Without a commit time both use "now", read a moment apart.
                for (f, t) in fast.iter().zip(&mut tree) {
                    t.time = f.time;
                }
                prop_assert_eq!(fast, tree);
            }
        }
    }
}
