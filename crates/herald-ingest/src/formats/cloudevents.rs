//! CloudEvents 1.0 in structured JSON mode: one event object, or a JSON array (batch mode).
//!
//! `id`, `source`, `type` and `time` are kept; `topic` and `action` come from the extension
//! attributes of those names, else from the source config. A `tenant` extension must equal the
//! source's tenant (the config decides; a payload naming another tenant is refused).

use herald_core::event::{Event, SPEC_VERSION};
use serde_json::Value;

use super::{Context, object, optional_object, optional_str, path, required_str};
use crate::error::ParseError;

/// Parses one event or a batch.
pub fn parse(ctx: &Context<'_>, body: &Value) -> Result<Vec<Event>, ParseError> {
    match body {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| one(ctx, v, &format!("[{i}]")))
            .collect(),
        _ => Ok(vec![one(ctx, body, "")?]),
    }
}

fn one(ctx: &Context<'_>, v: &Value, at: &str) -> Result<Event, ParseError> {
    let obj = object(v, at)?;
    let version = required_str(obj, at, "specversion")?;
    if version != SPEC_VERSION {
        return Err(ParseError::Shape(format!(
            "{} must be \"1.0\", not {version:?}",
            path(at, "specversion")
        )));
    }
    let id = super::event_id(required_str(obj, at, "id")?, &path(at, "id"))?;
    let source = required_str(obj, at, "source")?;
    let ty = required_str(obj, at, "type")?;
    if source.is_empty() || ty.is_empty() {
        return Err(ParseError::Shape(format!(
            "{} and {} must not be empty",
            path(at, "source"),
            path(at, "type")
        )));
    }
    if let Some(tenant) = optional_str(obj, at, "tenant")?
        && tenant != ctx.tenant().as_str()
    {
        return Err(ParseError::Name(format!(
            "{}: this source only accepts events of its own tenant",
            path(at, "tenant")
        )));
    }
    if let Some(ct) = optional_str(obj, at, "datacontenttype")? {
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ParseError::Shape(format!(
                "{}: Herald carries JSON data only, not {ct:?}",
                path(at, "datacontenttype")
            )));
        }
    }
    if obj.contains_key("data_base64") {
        return Err(ParseError::Shape(format!(
            "{}: binary data is not supported; send JSON in data",
            path(at, "data_base64")
        )));
    }
    let topic = match optional_str(obj, at, "topic")? {
        Some(t) => super::topic(t, &path(at, "topic"))?,
        None => ctx.source.topic.clone().ok_or_else(|| {
            ParseError::Shape(format!(
                "{} is required (or set `topic` on source {:?})",
                path(at, "topic"),
                ctx.name
            ))
        })?,
    };
    let action = match optional_str(obj, at, "action")? {
        Some(a) => super::action(a, &path(at, "action"))?,
        None => ctx.source.action.clone().ok_or_else(|| {
            ParseError::Shape(format!(
                "{} is required (or set `action` on source {:?})",
                path(at, "action"),
                ctx.name
            ))
        })?,
    };
    let mut event = Event::new(
        id,
        ctx.tenant().clone(),
        topic,
        action,
        source,
        obj.get("data").cloned().unwrap_or(Value::Null),
    );
    event.ty = ty.to_owned();
    event.changes = optional_object(obj, at, "changes")?;
    if let Some(t) = optional_str(obj, at, "time")? {
        event.time = super::rfc3339(t, &path(at, "time"))?;
    }
    Ok(event)
}
