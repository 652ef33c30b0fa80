//! Private events: the audience an event is for, and how it is stored.
//!
//! An event can name the users it is for: `"to": ["u-42", …]` in `POST /v1/events`, or, for a
//! webhook source, a configured path into each raw item (`to = "record.owner_id"`). Ingest
//! stores the audience in the `Herald-To` header of the message ([`HEADER`]), comma-separated,
//! and never in the envelope, so recipients do not learn each other; the gateway delivers the
//! event only to connections whose token `sub` is one of the ids (proto/subjects.md).
//!
//! An id is 1 to [`MAX_ID_LEN`] characters of `[A-Za-z0-9_.:@|+=/-]`; an audience holds 1 to
//! [`MAX_IDS`] distinct ids. Anything else is refused (400 `invalid_audience`) before anything
//! of the request is published.

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The NATS header carrying the audience (the gateway reads the same name).
pub const HEADER: &str = herald_core::audience::HEADER;
/// The most ids in one audience.
pub const MAX_IDS: usize = 64;
/// The longest id, in characters.
pub const MAX_ID_LEN: usize = 128;
/// The most segments in a configured audience path.
pub const MAX_PATH_DEPTH: usize = 16;

/// Why an audience was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceError {
    /// Not an array of user ids (or, from a source path, not a scalar or an array of them).
    #[error("{at} must be {expected}")]
    Shape {
        /// Where in the request.
        at: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// No id at all.
    #[error("{0} names nobody: give at least one user id, or leave it out for a public event")]
    Empty(String),
    /// More than [`MAX_IDS`] ids.
    #[error("{at} names {count} users; at most {MAX_IDS}")]
    TooMany {
        /// Where in the request.
        at: String,
        /// How many were given.
        count: usize,
    },
    /// An id that is not 1–128 characters of `[A-Za-z0-9_.:@|+=/-]`.
    #[error("{at}: invalid user id {id:?}: 1 to {MAX_ID_LEN} of [A-Za-z0-9_.:@|+=/-]")]
    BadId {
        /// Where in the request.
        at: String,
        /// The id (cut to 140 characters).
        id: String,
    },
    /// The same id twice.
    #[error("{at}: user id {id:?} appears twice")]
    Duplicate {
        /// Where in the request.
        at: String,
        /// The repeated id.
        id: String,
    },
    /// A configured path found nothing (missing or `null`) in an item.
    #[error("{at}: the source's audience path {path:?} holds no user id")]
    Missing {
        /// Which item.
        at: String,
        /// The configured path(s).
        path: String,
    },
}

/// A valid audience: 1 to [`MAX_IDS`] distinct user ids, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// Validates `ids` (found at `at`, for the error message).
    pub fn new(ids: Vec<String>, at: &str) -> Result<Self, AudienceError> {
        if ids.is_empty() {
            return Err(AudienceError::Empty(at.to_owned()));
        }
        if ids.len() > MAX_IDS {
            return Err(AudienceError::TooMany {
                at: at.to_owned(),
                count: ids.len(),
            });
        }
        let mut seen = HashSet::with_capacity(ids.len());
        for id in &ids {
            if !valid_id(id) {
                return Err(AudienceError::BadId {
                    at: at.to_owned(),
                    id: id.chars().take(140).collect(),
                });
            }
            if !seen.insert(id.as_str()) {
                return Err(AudienceError::Duplicate {
                    at: at.to_owned(),
                    id: id.clone(),
                });
            }
        }
        Ok(Self(ids))
    }

    /// The `to` member of a published event: `null` (public) or an array of id strings.
    pub fn from_api(value: &Value, at: &str) -> Result<Option<Self>, AudienceError> {
        const EXPECTED: &str = "an array of user id strings";
        match value {
            Value::Null => Ok(None),
            Value::Array(items) => {
                let ids = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| AudienceError::Shape {
                        at: at.to_owned(),
                        expected: EXPECTED,
                    })?;
                Self::new(ids, at).map(Some)
            }
            _ => Err(AudienceError::Shape {
                at: at.to_owned(),
                expected: EXPECTED,
            }),
        }
    }

    /// The ids.
    pub fn ids(&self) -> &[String] {
        &self.0
    }

    /// The `Herald-To` header value: the ids, comma-separated.
    pub fn header_value(&self) -> String {
        self.0.join(",")
    }
}

/// Whether `id` is 1 to [`MAX_ID_LEN`] characters of `[A-Za-z0-9_.:@|+=/-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@|+=/-".contains(&b))
}

/// A webhook source's audience: one dotted path into each raw item, or several tried in turn
/// (the first that holds something wins: `["after.owner_id", "before.owner_id"]` for
/// Debezium, whose deletes have no `after`). A number segment indexes an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PathsRepr", into = "PathsRepr")]
pub struct AudiencePaths(Vec<String>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PathsRepr {
    One(String),
    Many(Vec<String>),
}

/// Why a configured audience path is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid audience path {0:?}: 1 to {MAX_PATH_DEPTH} dot-separated names (e.g. record.owner_id)"
)]
pub struct PathError(pub String);

impl TryFrom<PathsRepr> for AudiencePaths {
    type Error = PathError;

    fn try_from(repr: PathsRepr) -> Result<Self, PathError> {
        let paths = match repr {
            PathsRepr::One(p) => vec![p],
            PathsRepr::Many(ps) => ps,
        };
        if paths.is_empty() {
            return Err(PathError(String::new()));
        }
        for p in &paths {
            let segments: Vec<&str> = p.split('.').collect();
            if segments.len() > MAX_PATH_DEPTH || segments.iter().any(|s| s.is_empty()) {
                return Err(PathError(p.clone()));
            }
        }
        Ok(Self(paths))
    }
}

impl From<AudiencePaths> for PathsRepr {
    fn from(paths: AudiencePaths) -> Self {
        match <[String; 1]>::try_from(paths.0) {
            Ok([one]) => Self::One(one),
            Err(many) => Self::Many(many),
        }
    }
}

impl fmt::Display for AudiencePaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" | "))
    }
}

impl AudiencePaths {
    /// The audience of `item` (the raw item an event was made from; `at` names it): the first
    /// path holding something, which must be a string or number id, or an array of them.
    /// Missing everywhere (or `null`) is an error: a source configured with an audience never
    /// publishes an event to everyone by accident.
    pub fn audience(&self, item: &Value, at: &str) -> Result<Audience, AudienceError> {
        let found = self
            .0
            .iter()
            .find_map(|p| lookup(item, p).filter(|v| !v.is_null()));
        let Some(found) = found else {
            return Err(AudienceError::Missing {
                at: at.to_owned(),
                path: self.to_string(),
            });
        };
        let shape = || AudienceError::Shape {
            at: format!("{at} ({self})"),
            expected: "a user id (string or number) or an array of them",
        };
        let ids = match found {
            Value::Array(items) => items
                .iter()
                .map(scalar_id)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(shape)?,
            v => vec![scalar_id(v).ok_or_else(shape)?],
        };
        Audience::new(ids, &format!("{at} ({self})"))
    }
}

/// A string id, or a number as its JSON text (`42` → `"42"`).
fn scalar_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(root, |at, segment| match at {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(v: Value) -> Result<Option<Vec<String>>, AudienceError> {
        Audience::from_api(&v, "to").map(|a| a.map(|a| a.ids().to_vec()))
    }

    #[test]
    fn api_audiences_are_validated() {
        assert_eq!(api(json!(null)), Ok(None));
        assert_eq!(
            api(json!(["u-42", "a.b:c@d|e+f=g/h_i"])).unwrap().unwrap(),
            ["u-42", "a.b:c@d|e+f=g/h_i"]
        );
        let max: Vec<String> = (0..MAX_IDS).map(|i| format!("u{i}")).collect();
        assert_eq!(api(json!(max)).unwrap().unwrap().len(), MAX_IDS);
        let too_many: Vec<String> = (0..=MAX_IDS).map(|i| format!("u{i}")).collect();
        assert!(matches!(
            api(json!(too_many)),
            Err(AudienceError::TooMany { count: 65, .. })
        ));
        assert!(matches!(api(json!([])), Err(AudienceError::Empty(_))));
        assert!(matches!(
            api(json!("u-1")),
            Err(AudienceError::Shape { .. })
        ));
        assert!(matches!(api(json!([1])), Err(AudienceError::Shape { .. })));
        assert!(matches!(
            api(json!(["a", "a"])),
            Err(AudienceError::Duplicate { .. })
        ));
        for bad in ["", "a,b", "a b", "é", &"x".repeat(129)] {
            assert!(
                matches!(api(json!([bad])), Err(AudienceError::BadId { .. })),
                "{bad:?}"
            );
        }
        assert!(valid_id(&"x".repeat(128)));
    }

    #[test]
    fn the_header_is_the_ids_comma_separated() {
        let a = Audience::new(vec!["u-42".into(), "u-7".into()], "to").unwrap();
        assert_eq!(a.header_value(), "u-42,u-7");
    }

    #[test]
    fn source_paths_find_scalars_and_arrays_and_refuse_the_rest() {
        let paths: AudiencePaths =
            serde_json::from_value(json!(["after.owner_id", "before.owner_id"])).unwrap();
        let ids = |item: Value| paths.audience(&item, "data[0]").map(|a| a.ids().to_vec());
        assert_eq!(ids(json!({"after": {"owner_id": "u-1"}})).unwrap(), ["u-1"]);
        assert_eq!(
            ids(json!({"after": null, "before": {"owner_id": 42}})).unwrap(),
            ["42"]
        );
        assert_eq!(
            ids(json!({"after": {"owner_id": ["a", 7]}})).unwrap(),
            ["a", "7"]
        );
        assert!(matches!(
            ids(json!({"after": {"owner_id": null}})),
            Err(AudienceError::Missing { .. })
        ));
        assert!(matches!(
            ids(json!({"after": {"owner_id": true}})),
            Err(AudienceError::Shape { .. })
        ));
        assert!(matches!(
            ids(json!({"after": {"owner_id": []}})),
            Err(AudienceError::Empty(_))
        ));
        let one: AudiencePaths = serde_json::from_value(json!("record.owners.0")).unwrap();
        let item = json!({"record": {"owners": ["u-9", "u-8"]}});
        assert_eq!(one.audience(&item, "body").unwrap().ids(), ["u-9"]);
        assert_eq!(
            serde_json::to_value(&one).unwrap(),
            json!("record.owners.0")
        );
        for bad in [json!(""), json!("a..b"), json!([]), json!(["ok", "x."])] {
            assert!(
                serde_json::from_value::<AudiencePaths>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
