//! Validated names that become NATS subject tokens.
//!
//! Every tenant, topic and action that reaches a subject has passed through one of these
//! newtypes, so a raw string can never inject `.`, `*`, `>` or whitespace into a subject.
//! A token is `[A-Za-z0-9_-]{1,64}`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest a subject token may be, in bytes.
pub const MAX_TOKEN_LEN: usize = 64;

/// Why a string is not a valid subject token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The value was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which kind of name (tenant, topic, action).
        kind: &'static str,
    },
    /// The value was longer than [`MAX_TOKEN_LEN`].
    #[error("{kind} is {len} bytes long; the limit is {MAX_TOKEN_LEN}")]
    TooLong {
        /// Which kind of name.
        kind: &'static str,
        /// The length seen.
        len: usize,
    },
    /// The value held a character outside `[A-Za-z0-9_-]`.
    #[error("{kind} may only contain A-Z, a-z, 0-9, '_' and '-' (found {found:?})")]
    InvalidChar {
        /// Which kind of name.
        kind: &'static str,
        /// The first offending character.
        found: char,
    },
}

impl NameError {
    /// The kind of name that failed (`tenant`, `topic`, `action`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty { kind } | Self::TooLong { kind, .. } | Self::InvalidChar { kind, .. } => {
                kind
            }
        }
    }
}

/// Checks `value` against the token grammar `[A-Za-z0-9_-]{1,64}`.
pub fn validate_token(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(NameError::InvalidChar { kind, found });
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(NameError::TooLong {
            kind,
            len: value.len(),
        });
    }
    Ok(())
}

macro_rules! token_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates a name; see [`validate_token`].
            pub fn parse(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                validate_token($kind, &value)?;
                Ok(Self(value))
            }

            /// The name as a string slice (always a valid subject token).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_newtype!(
    /// A tenant: the isolation boundary. Every read and write is scoped to one.
    TenantId,
    "tenant"
);
token_newtype!(
    /// A topic: what a client subscribes to (for CDC, the table name).
    Topic,
    "topic"
);
token_newtype!(
    /// An action: `insert | update | delete | read` for CDC, otherwise a short verb.
    Action,
    "action"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_token_grammar() {
        for ok in ["a", "leads", "team_1", "A-Z_09", &"x".repeat(64)] {
            assert!(Topic::parse(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn rejects_subject_injection_and_junk() {
        let long = "x".repeat(65);
        for bad in [
            "", ".", "a.b", "*", ">", "a>", "a b", " ", "\t", "é", "leads\n", "$stats", &long,
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn errors_name_the_kind_and_the_character() {
        let err = Action::parse("in.sert").unwrap_err();
        assert_eq!(err.kind(), "action");
        assert_eq!(
            err,
            NameError::InvalidChar {
                kind: "action",
                found: '.'
            }
        );
        assert!(matches!(
            Topic::parse("y".repeat(65)),
            Err(NameError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<Topic>("\"leads\"").is_ok());
        assert!(serde_json::from_str::<Topic>("\"le.ads\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn valid_tokens_never_contain_subject_syntax(s in "\\PC{0,80}") {
            if let Ok(t) = TenantId::parse(s.clone()) {
                proptest::prop_assert!(!t.as_str().contains(['.', '*', '>', ' ']));
                proptest::prop_assert!(!t.as_str().is_empty() && t.as_str().len() <= 64);
            }
        }
    }
}
