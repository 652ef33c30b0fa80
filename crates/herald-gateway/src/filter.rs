//! Server-side filters: `actions=insert,update` and `where=data.status:active`.
//!
//! A [`Filter`] narrows what a connection receives within its topics. It is applied in one
//! place, [`crate::session::Session`], to every event whatever its source (the live queue, the
//! ring buffer, a JetStream replay), and by `GET /v1/history` to its pages, so a filtered
//! stream resumed from any cursor has no gap and nothing outside the filter.
//!
//! - `actions`: a list of event actions (subject tokens). The action is the subject's last
//!   token, so it is checked without reading the body.
//! - `where`: up to [`MAX_CONDITIONS`] conditions `path:value`, all of which must hold. `path`
//!   is a dot-separated path into the CloudEvent envelope (`data.status`, `data.owner.id`,
//!   `data.items.0` for an array element), at most [`MAX_DEPTH`] segments of
//!   `[A-Za-z0-9_$@-]`; `value` is everything after the first `:`, compared with the JSON
//!   scalar found there:
//!   - a string equals it exactly (case-sensitive): `data.status:active`, and `data.n:5`
//!     matches the string `"5"`;
//!   - a number equals it numerically if `value` is a JSON number: `data.n:5` matches `5`,
//!     `5.0` and `"5"`; `data.n:05` matches only the string `"05"`;
//!   - `true` / `false` match the booleans (and the strings `"true"` / `"false"`);
//!   - `null` matches `null` (and the string `"null"`); a missing field never matches;
//!   - an object or an array never matches.
//!
//! The body is parsed at most once per event, lazily, and only when a connection with a
//! `where` sees it ([`EventFrame::fields`]); the parse is shared by every such connection.
//!
//! A filter also knows **who** is looking ([`Filter::for_viewer`], the token's `sub`): a
//! private event (one with an audience, [`EventFrame::audience`]) passes only for a viewer it
//! names, before `actions` or `where` are looked at. A filter without a viewer lets no private
//! event through, so a route that forgets to name the viewer fails closed.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_core::names::Action;
use serde_json::{Number, Value};

use crate::frame::EventFrame;

/// The most conditions in one filter.
pub const MAX_CONDITIONS: usize = 4;
/// The most segments in a condition's path.
pub const MAX_DEPTH: usize = 8;
/// The longest condition (`path:value`), in characters.
pub const MAX_CONDITION_LEN: usize = 256;
/// The most actions in one filter.
pub const MAX_ACTIONS: usize = 16;

/// Why a filter was refused (answered 400 `bad_request` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `actions` was given but names nothing.
    #[error("actions must name at least one action")]
    NoActions,
    /// An action that is not a valid subject token.
    #[error("invalid action {0:?}: an action is 1 to 64 of [A-Za-z0-9_-]")]
    BadAction(String),
    /// Too many actions.
    #[error("at most {MAX_ACTIONS} actions, not {0}")]
    TooManyActions(usize),
    /// Too many `where` conditions.
    #[error("at most {MAX_CONDITIONS} where conditions, not {0}")]
    TooManyConditions(usize),
    /// A condition longer than [`MAX_CONDITION_LEN`].
    #[error("a where condition is at most {MAX_CONDITION_LEN} characters, not {0}")]
    TooLong(usize),
    /// A condition without `:`.
    #[error("where must be path:value (e.g. data.status:active), not {0:?}")]
    NoValue(String),
    /// A path with an empty or invalid segment.
    #[error(
        "invalid where path {0:?}: dot-separated names of [A-Za-z0-9_$@-] (e.g. data.owner.id)"
    )]
    BadPath(String),
    /// A path deeper than [`MAX_DEPTH`].
    #[error("a where path has at most {MAX_DEPTH} segments, not {0}")]
    TooDeep(usize),
}

/// What a connection receives within its topics. The default lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The actions let through; `None`: every action.
    actions: Option<BTreeSet<Action>>,
    /// Conditions that must all hold.
    conditions: Vec<Condition>,
    /// Who is looking (the token's `sub`): private events pass only for their audience.
    viewer: Option<Arc<str>>,
}

/// One `path:value` equality.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    path: Vec<String>,
    text: String,
    /// `text` as a JSON number, if it is one.
    number: Option<Number>,
}

impl Filter {
    /// Parses a filter: `actions` (each item a comma-separated list; `None`: every action)
    /// and `where` conditions.
    pub fn parse(actions: Option<&[String]>, wheres: &[String]) -> Result<Self, FilterError> {
        let actions = actions.map(parse_actions).transpose()?;
        if wheres.len() > MAX_CONDITIONS {
            return Err(FilterError::TooManyConditions(wheres.len()));
        }
        let conditions = wheres
            .iter()
            .map(|w| Condition::parse(w))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            actions,
            conditions,
            viewer: None,
        })
    }

    /// The same filter seen by `viewer` (the token's `sub`): private events addressed to it
    /// pass too.
    #[must_use]
    pub fn for_viewer(mut self, viewer: impl Into<Arc<str>>) -> Self {
        self.viewer = Some(viewer.into());
        self
    }

    /// The viewer, if one was named.
    pub fn viewer(&self) -> Option<&str> {
        self.viewer.as_deref()
    }

    /// Parses the `actions` and `where` parameters of a query string (given as its pairs;
    /// every `actions` and every `where` counts).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, FilterError> {
        let of = |key: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let actions = of("actions");
        let actions = (!actions.is_empty()).then_some(actions.as_slice());
        Self::parse(actions, &of("where"))
    }

    /// Whether it lets every public event through (`actions` and `where` absent; the
    /// audience check still applies).
    pub fn is_empty(&self) -> bool {
        self.actions.is_none() && self.conditions.is_empty()
    }

    /// Whether `frame` passes: visible to the viewer, then `actions`, then `where`. Reads the
    /// body (parsed once per event) only with conditions; the audience is a header.
    pub fn matches(&self, frame: &EventFrame) -> bool {
        if !frame.visible_to(self.viewer()) {
            return false;
        }
        if self
            .actions
            .as_ref()
            .is_some_and(|actions| !actions.contains(&frame.action))
        {
            return false;
        }
        if self.conditions.is_empty() {
            return true;
        }
        frame
            .fields()
            .is_some_and(|root| self.conditions.iter().all(|c| c.holds(root)))
    }
}

fn parse_actions(items: &[String]) -> Result<BTreeSet<Action>, FilterError> {
    let names: Vec<&str> = items
        .iter()
        .flat_map(|i| i.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err(FilterError::NoActions);
    }
    if names.len() > MAX_ACTIONS {
        return Err(FilterError::TooManyActions(names.len()));
    }
    names
        .into_iter()
        .map(|n| Action::parse(n).map_err(|_| FilterError::BadAction(n.to_owned())))
        .collect()
}

impl Condition {
    fn parse(raw: &str) -> Result<Self, FilterError> {
        let len = raw.chars().count();
        if len > MAX_CONDITION_LEN {
            return Err(FilterError::TooLong(len));
        }
        let (path, text) = raw
            .split_once(':')
            .ok_or_else(|| FilterError::NoValue(raw.to_owned()))?;
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        let valid = |s: &String| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_$@-".contains(&b))
        };
        if !segments.iter().all(valid) {
            return Err(FilterError::BadPath(path.to_owned()));
        }
        if segments.len() > MAX_DEPTH {
            return Err(FilterError::TooDeep(segments.len()));
        }
        // `serde_json` would skip surrounding whitespace: ` 5` is not the number 5.
        let number = (!text.bytes().any(|b| b.is_ascii_whitespace()))
            .then(|| serde_json::from_str::<Number>(text).ok())
            .flatten();
        Ok(Self {
            path: segments,
            text: text.to_owned(),
            number,
        })
    }

    fn holds(&self, root: &Value) -> bool {
        let mut at = root;
        for segment in &self.path {
            let next = match at {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => return false,
            }
        }
        match at {
            Value::String(s) => *s == self.text,
            Value::Number(n) => self.number.as_ref().is_some_and(|w| same_number(n, w)),
            Value::Bool(b) => self.text == if *b { "true" } else { "false" },
            Value::Null => self.text == "null",
            Value::Array(_) | Value::Object(_) => false,
        }
    }
}

/// Numeric equality: exact for integers, as `f64` otherwise (`5` equals `5.0`).
fn same_number(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests;
