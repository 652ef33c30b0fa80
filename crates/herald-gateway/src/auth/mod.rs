//! JWT verification and topic scoping.
//!
//! A token becomes [`Claims`] only through [`Authenticator::verify`]; a requested topic list
//! becomes a [`TopicSet`] only through [`Claims::scope`], which refuses anything the token does
//! not grant. The tenant always comes from the verified token, never from the request.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::names::{TenantId, Topic};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[cfg(test)]
mod claim_tests;
mod jwks;
mod keys;

pub use jwks::refresh_jwks;
pub use keys::{Authenticator, MAX_LEEWAY, TokenSource};

/// The furthest ahead a token's expiry is taken to be: an `exp` beyond it (up to `u64::MAX`)
/// is treated as this far away, so no clock arithmetic can overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The wildcard topic claim: every topic of the tenant.
pub const ALL_TOPICS: &str = "*";

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The tenant every subscription is scoped to.
    pub tenant: TenantId,
    /// Topics granted: names, or `*` for all.
    pub topics: Vec<String>,
    /// Expiry, seconds since the Unix epoch. Once verified, the token's `exp` plus
    /// `jwt.leeway`: when the gateway ends the connection.
    pub exp: u64,
    /// Whether presence answers and events name the connected users (their `sub`s) for this
    /// token; without it they carry counts only. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub presence: bool,
}

/// The topics a connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSet {
    /// Every topic of the tenant.
    All,
    /// These topics only.
    Only(BTreeSet<Topic>),
}

impl TopicSet {
    /// Whether `topic` is in the set.
    pub fn contains(&self, topic: &Topic) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(topic),
        }
    }
}

impl Claims {
    /// Whether the token grants every topic.
    fn grants_all(&self) -> bool {
        self.topics.iter().any(|t| t == ALL_TOPICS)
    }

    /// `current` cut down to what this token grants (a refreshed token may grant less).
    pub fn narrow(&self, current: &TopicSet) -> TopicSet {
        if self.grants_all() {
            return current.clone();
        }
        let granted = self
            .topics
            .iter()
            .filter_map(|t| Topic::parse(t.as_str()).ok());
        TopicSet::Only(match current {
            TopicSet::All => granted.collect(),
            TopicSet::Only(set) => granted.filter(|t| set.contains(t)).collect(),
        })
    }

    /// The topics a connection asking for `requested` (none = everything granted) receives.
    /// 400 for a malformed name or too many, 403 for a topic outside the claim.
    pub fn scope(&self, requested: &[String], max: usize) -> Result<TopicSet, ApiError> {
        if requested.len() > max {
            return Err(ApiError::BadRequest(format!(
                "at most {max} topics per connection"
            )));
        }
        if requested.is_empty() {
            if self.grants_all() {
                return Ok(TopicSet::All);
            }
            let granted: BTreeSet<Topic> = self
                .topics
                .iter()
                .filter_map(|t| Topic::parse(t.as_str()).ok())
                .collect();
            if granted.len() > max {
                return Err(ApiError::BadRequest(format!(
                    "at most {max} topics per connection; name the topics you want"
                )));
            }
            return Ok(TopicSet::Only(granted));
        }
        let mut set = BTreeSet::new();
        for raw in requested {
            if raw == ALL_TOPICS {
                if !self.grants_all() {
                    return Err(ApiError::Forbidden(raw.clone()));
                }
                return Ok(TopicSet::All);
            }
            let topic = Topic::parse(raw.as_str())
                .map_err(|e| ApiError::BadRequest(format!("invalid topic: {e}")))?;
            if !self.grants_all() && !self.topics.iter().any(|t| t == topic.as_str()) {
                return Err(ApiError::Forbidden(raw.clone()));
            }
            set.insert(topic);
        }
        Ok(TopicSet::Only(set))
    }

    /// When the token expires (at most [`MAX_LIFETIME`] from now).
    pub fn expires_at(&self) -> SystemTime {
        let now = SystemTime::now();
        let cap = now.checked_add(MAX_LIFETIME).unwrap_or(now);
        UNIX_EPOCH
            .checked_add(Duration::from_secs(self.exp))
            .map_or(cap, |at| at.min(cap))
    }

    /// How long until the token expires: zero if it already has, at most [`MAX_LIFETIME`].
    pub fn remaining(&self) -> Duration {
        self.expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_LIFETIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims of user `u1` of tenant `acme` for `topics`, expiring at `exp`.
    pub(super) fn claims(topics: &[&str], exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            exp,
            presence: false,
        }
    }

    /// An hour from now, in seconds since the epoch.
    pub(super) fn future() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    #[test]
    fn scope_refuses_ungranted_topics_and_patterns() {
        let c = claims(&["leads", "deals"], future());
        let ask = |v: &[&str]| c.scope(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), 8);
        assert!(matches!(ask(&["leads"]), Ok(TopicSet::Only(s)) if s.len() == 1));
        assert!(matches!(ask(&[]), Ok(TopicSet::Only(s)) if s.len() == 2));
        assert!(matches!(ask(&["secret"]), Err(ApiError::Forbidden(_))));
        assert!(matches!(ask(&["*"]), Err(ApiError::Forbidden(_))));
        assert!(matches!(ask(&[">"]), Err(ApiError::BadRequest(_))));
        assert!(matches!(ask(&["le*"]), Err(ApiError::BadRequest(_))));
        assert!(matches!(ask(&["a.b"]), Err(ApiError::BadRequest(_))));
        let all = claims(&["*"], future());
        assert_eq!(all.scope(&[], 8).unwrap(), TopicSet::All);
        assert!(matches!(
            all.scope(&vec!["x".into(); 9], 8),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn narrow_keeps_only_what_the_new_token_grants() {
        let only =
            |v: &[&str]| TopicSet::Only(v.iter().map(|t| Topic::parse(*t).unwrap()).collect());
        let deals = claims(&["deals", "orders"], future());
        assert_eq!(deals.narrow(&TopicSet::All), only(&["deals", "orders"]));
        assert_eq!(deals.narrow(&only(&["leads", "deals"])), only(&["deals"]));
        assert_eq!(deals.narrow(&only(&["leads"])), only(&[]));
        let all = claims(&["*"], future());
        assert_eq!(all.narrow(&TopicSet::All), TopicSet::All);
        assert_eq!(all.narrow(&only(&["leads"])), only(&["leads"]));
    }
}
