//! Body formats: each turns a verified body into Herald events, or says precisely why not.
//!
//! | format | module | topic / action / id from |
//! |---|---|---|
//! | `sequin` | [`sequin`] | `metadata.table_name` / `action` / `metadata.idempotency_key` |
//! | `debezium` | [`debezium`] | `source.table` / `op` / the source position |
//! | `cloudevents` | [`cloudevents`] | `topic` / `action` extensions (or the source config) / `id` |
//! | `json` | [`json`] | source config, or an opted-in header / the same / signed `webhook-id`, else headers |

pub mod cloudevents;
pub mod debezium;
pub mod json;
pub mod sequin;

use axum::http::HeaderMap;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, NameError, TenantId, Topic};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{Format, SourceConfig};
use crate::error::ParseError;
use crate::verify::Verified;

/// What a format parser may use besides the body.
pub struct Context<'a> {
    /// The source's name (from the URL).
    pub name: &'a str,
    /// The source's configuration.
    pub source: &'a SourceConfig,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// What verification vouched for.
    pub verified: &'a Verified,
}

impl Context<'_> {
    /// The tenant: always the source's, never the payload's.
    pub fn tenant(&self) -> &TenantId {
        &self.source.tenant
    }

    /// The CloudEvents `source` Herald sets on events from this webhook source.
    pub fn event_source(&self) -> String {
        format!("/webhooks/{}", self.name)
    }
}

/// Parses `body` in the source's format.
pub fn parse(ctx: &Context<'_>, body: &[u8]) -> Result<Vec<Event>, ParseError> {
    if ctx.source.format == Format::Sequin
        && let Some(events) = sequin::parse_fast(ctx, body)
    {
        return Ok(events);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    match ctx.source.format {
        Format::Sequin => sequin::parse(ctx, &value),
        Format::Debezium => debezium::parse(ctx, &value).map(|e| vec![e]),
        Format::Cloudevents => cloudevents::parse(ctx, &value),
        Format::Json => json::parse(ctx, value).map(|e| vec![e]),
    }
}

/// The raw items of a body `parse` accepted, one per event and in the same order, each with
/// where it is in the body (`body`, `data[3]`, `[3]`, `payload`): what a source's audience
/// path (`to`) is read from. A Debezium body wrapped in `{"schema","payload"}` yields the
/// change event inside `payload`.
pub fn items(format: Format, body: &Value) -> Vec<(String, &Value)> {
    fn indexed<'v>(prefix: &str, items: &'v [Value]) -> Vec<(String, &'v Value)> {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{prefix}[{i}]"), v))
            .collect()
    }
    match (format, body) {
        (Format::Sequin, Value::Object(top)) if !top.contains_key("record") => {
            match top.get("data") {
                Some(Value::Array(items)) => indexed("data", items),
                _ => vec![("body".to_owned(), body)],
            }
        }
        (Format::Cloudevents, Value::Array(items)) => indexed("", items),
        (Format::Debezium, Value::Object(top)) if top.contains_key("schema") => {
            match top.get("payload") {
                Some(payload @ Value::Object(_)) => vec![("payload".to_owned(), payload)],
                _ => vec![("body".to_owned(), body)],
            }
        }
        _ => vec![("body".to_owned(), body)],
    }
}

/// `prefix.key`, or `key` at the top level.
pub(crate) fn path(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The object at `at`, or a shape error.
pub(crate) fn object<'v>(v: &'v Value, at: &str) -> Result<&'v Map<String, Value>, ParseError> {
    v.as_object().ok_or_else(|| {
        let at = if at.is_empty() { "the body" } else { at };
        ParseError::Shape(format!("{at} must be an object, not {}", json_type(v)))
    })
}

/// A required member of `obj`.
pub(crate) fn required<'v>(
    obj: &'v Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'v Value, ParseError> {
    obj.get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ParseError::Shape(format!("{} is required", path(at, key))))
}

/// A required string member of `obj`.
pub(crate) fn required_str<'v>(
    obj: &'v Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<&'v str, ParseError> {
    let v = required(obj, at, key)?;
    v.as_str().ok_or_else(|| {
        ParseError::Shape(format!(
            "{} must be a string, not {}",
            path(at, key),
            json_type(v)
        ))
    })
}

/// An optional string member (absent or null → `None`).
pub(crate) fn optional_str<'v>(
    obj: &'v Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<&'v str>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ParseError::Shape(format!(
            "{} must be a string, not {}",
            path(at, key),
            json_type(v)
        ))),
    }
}

/// An optional object member (absent or null → `None`).
pub(crate) fn optional_object(
    obj: &Map<String, Value>,
    at: &str,
    key: &str,
) -> Result<Option<Value>, ParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(v) => Err(ParseError::Shape(format!(
            "{} must be an object or null, not {}",
            path(at, key),
            json_type(v)
        ))),
    }
}

fn name_error(at: &str, err: NameError) -> ParseError {
    ParseError::Name(format!("{at}: {err}"))
}

/// A topic from `where_`, or a 400 that says where it came from.
pub(crate) fn topic(value: &str, where_: &str) -> Result<Topic, ParseError> {
    Topic::parse(value).map_err(|e| name_error(where_, e))
}

/// An action from `where_`, or a 400 that says where it came from.
pub(crate) fn action(value: &str, where_: &str) -> Result<Action, ParseError> {
    Action::parse(value).map_err(|e| name_error(where_, e))
}

/// An event id from `where_`, or a 400 that says where it came from.
pub(crate) fn event_id(value: &str, where_: &str) -> Result<EventId, ParseError> {
    EventId::parse(value).map_err(|e| ParseError::Name(format!("{where_}: {e}")))
}

/// An RFC 3339 time, or a shape error naming the field.
pub(crate) fn rfc3339(value: &str, where_: &str) -> Result<OffsetDateTime, ParseError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| ParseError::Shape(format!("{where_} must be an RFC 3339 time")))
}

/// A header value as a string, if present and valid UTF-8.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
