//! Conditions on an event's fields: `{ field = "data.score", gte = 80 }`,
//! `{ field = "data.status", eq = "won", changed = true }`.

use serde::Deserialize;
use serde_json::Value;

/// The top-level names a condition's `field` may start with.
pub const FIELD_ROOTS: &[&str] = &[
    "data", "changes", "tenant", "topic", "action", "id", "source", "type",
];

/// One condition, as written in the rules file. Every operator given must hold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A dotted path into the event, e.g. `data.status` or `changes.score`.
    pub field: String,
    /// The value equals this (JSON equality; `80` and `80.0` are equal).
    #[serde(default)]
    pub eq: Option<Value>,
    /// The value differs from this (a missing value differs from everything).
    #[serde(default)]
    pub ne: Option<Value>,
    /// The value is one of these.
    #[serde(default, rename = "in")]
    pub one_of: Option<Vec<Value>>,
    /// The value is a number greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// The value is a number at least this.
    #[serde(default)]
    pub gte: Option<f64>,
    /// The value is a number less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// The value is a number at most this.
    #[serde(default)]
    pub lte: Option<f64>,
    /// The field is present and not null (`true`), or absent or null (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
    /// For `data.<column>`: the update changed that column (`changes` holds its previous
    /// value, and it differs from the new one). `false` asks for the opposite.
    #[serde(default)]
    pub changed: Option<bool>,
}

/// Why a condition cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The field does not start with one of `FIELD_ROOTS` (data, changes, tenant, …).
    #[error(
        "field {0:?} must start with one of data, changes, tenant, topic, action, id, source, type"
    )]
    Root(String),
    /// No operator was given.
    #[error("condition on {0:?} has no operator (eq, ne, in, gt, gte, lt, lte, exists, changed)")]
    NoOperator(String),
    /// `changed` on a field outside `data`.
    #[error("`changed` needs a field under data (e.g. data.status); got {0:?}")]
    ChangedOutsideData(String),
}

impl Condition {
    /// Checks the condition is usable.
    pub fn validate(&self) -> Result<(), ConditionError> {
        let root = self.field.split('.').next().unwrap_or_default();
        if !FIELD_ROOTS.contains(&root) {
            return Err(ConditionError::Root(self.field.clone()));
        }
        let ops = [
            self.eq.is_some(),
            self.ne.is_some(),
            self.one_of.is_some(),
            self.gt.is_some(),
            self.gte.is_some(),
            self.lt.is_some(),
            self.lte.is_some(),
            self.exists.is_some(),
            self.changed.is_some(),
        ];
        if !ops.contains(&true) {
            return Err(ConditionError::NoOperator(self.field.clone()));
        }
        if self.changed.is_some() && data_column(&self.field).is_none() {
            return Err(ConditionError::ChangedOutsideData(self.field.clone()));
        }
        Ok(())
    }

    /// Whether the condition holds for `event` (the event as a JSON object).
    pub fn holds(&self, event: &Value) -> bool {
        let value = lookup(event, &self.field).filter(|v| !v.is_null());
        let num = value.and_then(Value::as_f64);
        let checks = [
            self.eq
                .as_ref()
                .map(|want| value.is_some_and(|v| json_eq(v, want))),
            self.ne
                .as_ref()
                .map(|want| !value.is_some_and(|v| json_eq(v, want))),
            self.one_of
                .as_ref()
                .map(|set| value.is_some_and(|v| set.iter().any(|w| json_eq(v, w)))),
            self.gt.map(|x| num.is_some_and(|n| n > x)),
            self.gte.map(|x| num.is_some_and(|n| n >= x)),
            self.lt.map(|x| num.is_some_and(|n| n < x)),
            self.lte.map(|x| num.is_some_and(|n| n <= x)),
            self.exists.map(|want| value.is_some() == want),
            self.changed.map(|want| self.was_changed(event) == want),
        ];
        checks.into_iter().flatten().all(|ok| ok)
    }

    fn was_changed(&self, event: &Value) -> bool {
        let Some(column) = data_column(&self.field) else {
            return false;
        };
        let Some(changes) = event.get("changes").filter(|c| c.is_object()) else {
            return false;
        };
        match lookup(changes, column) {
            Some(previous) => lookup(event, &self.field).is_none_or(|now| !json_eq(now, previous)),
            None => false,
        }
    }
}

fn data_column(field: &str) -> Option<&str> {
    field.strip_prefix("data.").filter(|c| !c.is_empty())
}

/// Follows a dotted path through objects (and arrays, by index).
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// JSON equality where numbers compare by value (`80 == 80.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(src: &str) -> Condition {
        let c: Condition = toml::from_str(src).unwrap();
        c.validate().unwrap();
        c
    }

    fn event() -> Value {
        json!({
            "tenant": "acme", "action": "update",
            "data": {"status": "won", "score": 88, "owner": {"name": "Grace"}, "note": null},
            "changes": {"status": "contacted", "score": 88}
        })
    }

    #[test]
    fn comparisons() {
        let e = event();
        assert!(cond("field = \"data.score\"\ngte = 80").holds(&e));
        assert!(!cond("field = \"data.score\"\ngt = 88").holds(&e));
        assert!(cond("field = \"data.score\"\neq = 88.0").holds(&e));
        assert!(cond("field = \"data.owner.name\"\nin = [\"Ada\", \"Grace\"]").holds(&e));
        assert!(cond("field = \"data.status\"\nne = \"lost\"").holds(&e));
        assert!(cond("field = \"data.nope\"\nne = \"lost\"").holds(&e));
        assert!(
            !cond("field = \"data.status\"\ngte = 1").holds(&e),
            "a string is no number"
        );
        assert!(cond("field = \"data.note\"\nexists = false").holds(&e));
        assert!(cond("field = \"tenant\"\neq = \"acme\"").holds(&e));
    }

    #[test]
    fn status_changed_to_won() {
        let e = event();
        let c = cond("field = \"data.status\"\neq = \"won\"\nchanged = true");
        assert!(c.holds(&e));
        // score is listed in changes but did not actually change.
        assert!(!cond("field = \"data.score\"\nchanged = true").holds(&e));
        let mut insert = e.clone();
        insert["changes"] = Value::Null;
        assert!(!c.holds(&insert), "an insert changes nothing");
    }

    #[test]
    fn unusable_conditions_are_rejected() {
        let no_op: Condition = toml::from_str("field = \"data.x\"").unwrap();
        assert!(matches!(
            no_op.validate(),
            Err(ConditionError::NoOperator(_))
        ));
        let root: Condition = toml::from_str("field = \"row.x\"\neq = 1").unwrap();
        assert!(matches!(root.validate(), Err(ConditionError::Root(_))));
        let ch: Condition = toml::from_str("field = \"tenant\"\nchanged = true").unwrap();
        assert!(matches!(
            ch.validate(),
            Err(ConditionError::ChangedOutsideData(_))
        ));
        assert!(toml::from_str::<Condition>("field = \"data.x\"\nequals = 1").is_err());
    }
}
