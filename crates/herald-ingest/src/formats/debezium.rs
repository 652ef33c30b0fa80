//! Debezium change events (`before`, `after`, `op`, `source`), with or without the
//! `{"schema":…,"payload":…}` wrapper of the JSON converter.
//!
//! `op` c/u/d/r → insert/update/delete/read; topic = `source.table` (or `collection`);
//! data = `after` (`before` for deletes); changes = the previous values of the columns an
//! update changed; time = `source.ts_ms`. The id is derived from the source position (LSN,
//! binlog file/pos/row, or timestamp) plus a digest of the change, so a redelivered change
//! gets the same id and is stored once, while two rows of one snapshot never collide.

use herald_core::event::Event;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Context, object, optional_object, required, required_str};
use crate::error::ParseError;

/// Parses one Debezium change event.
pub fn parse(ctx: &Context<'_>, body: &Value) -> Result<Event, ParseError> {
    let mut top = object(body, "")?;
    if top.contains_key("schema")
        && let Some(payload @ Value::Object(_)) = top.get("payload")
    {
        top = object(payload, "payload")?;
    }
    let op = required_str(top, "", "op")?;
    let action = match op {
        "c" => "insert",
        "u" => "update",
        "d" => "delete",
        "r" => "read",
        other => {
            return Err(ParseError::Shape(format!(
                "op {other:?} is not a row change (expected c, u, d or r)"
            )));
        }
    };
    let source = object(required(top, "", "source")?, "source")?;
    let table = match source.get("table").or_else(|| source.get("collection")) {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(ParseError::Shape("source.table is required".into())),
    };
    let before = optional_object(top, "", "before")?;
    let after = optional_object(top, "", "after")?;
    let data = match (op, &before, &after) {
        ("d", Some(b), _) => b.clone(),
        ("d", None, _) => return Err(ParseError::Shape("before is required when op is d".into())),
        (_, _, Some(a)) => a.clone(),
        _ => {
            return Err(ParseError::Shape(format!(
                "after is required when op is {op}"
            )));
        }
    };
    let changes = match (op, &before, &after) {
        ("u", Some(Value::Object(b)), Some(Value::Object(a))) => Some(changed_columns(b, a)),
        _ => None,
    };

    let mut event = Event::new(
        super::event_id(&position_id(source, op, &data), "source")?,
        ctx.tenant().clone(),
        super::topic(table, "source.table")?,
        super::action(action, "op")?,
        ctx.event_source(),
        data,
    );
    event.changes = changes;
    let ts_ms = source
        .get("ts_ms")
        .or_else(|| top.get("ts_ms"))
        .and_then(Value::as_i64);
    if let Some(t) = ts_ms
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
    {
        event.time = t;
    }
    Ok(event)
}

/// The previous values of the columns whose value differs between `before` and `after`.
fn changed_columns(before: &Map<String, Value>, after: &Map<String, Value>) -> Value {
    let changed: Map<String, Value> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(changed)
}

/// `dbz:<server name>:<position>:<digest>`, ASCII-safe and at most ~150 bytes.
fn position_id(source: &Map<String, Value>, op: &str, data: &Value) -> String {
    let text = |k: &str| match source.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let position = if let Some(lsn) = text("lsn") {
        lsn
    } else if let (Some(file), Some(pos)) = (text("file"), text("pos")) {
        format!("{file}/{pos}/{}", text("row").unwrap_or_default())
    } else {
        text("ts_ms").unwrap_or_default()
    };
    let mut digest = Sha256::new();
    digest.update(serde_json::to_vec(source).unwrap_or_default());
    digest.update(op.as_bytes());
    digest.update(serde_json::to_vec(data).unwrap_or_default());
    let digest = hex::encode(&digest.finalize()[..8]);
    let safe = |s: String| -> String {
        s.chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-./".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "dbz:{}:{}:{digest}",
        safe(text("name").unwrap_or_default()),
        safe(position)
    )
}
