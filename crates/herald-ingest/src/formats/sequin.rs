//! Sequin webhook-sink bodies: one message, or `{"data":[msg, …]}` with batching on.
//!
//! topic = `metadata.table_name`, action = `action`, id = `metadata.idempotency_key`,
//! data = `record`, changes = `changes` (previous values of changed columns on update),
//! time = `metadata.commit_timestamp`. Unknown keys are ignored.

use herald_core::event::Event;
use serde_json::Value;

use super::{Context, object, optional_object, optional_str, path, required, required_str};
use crate::error::ParseError;

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
