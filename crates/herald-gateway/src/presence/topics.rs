//! Per-tenant topic lists from the configuration (`[gateway.public.<tenant>]`,
//! `[gateway.presence.<tenant>]`), parsed once into newtypes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use herald_core::names::{TenantId, Topic};

use crate::auth::TopicSet;
use crate::config::TenantTopics;
use crate::error::Error;

/// Topics per tenant that a feature (public reading, presence) applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicMap(HashMap<TenantId, BTreeSet<Topic>>);

impl TopicMap {
    /// Parses the `section` table (`public` or `presence`): every tenant and topic must be a
    /// valid name (`*` is not a topic here).
    pub fn parse(
        section: &'static str,
        table: &BTreeMap<String, TenantTopics>,
    ) -> Result<Self, Error> {
        let invalid = |message: String| Error::Topics { section, message };
        let mut map = HashMap::new();
        for (tenant, topics) in table {
            let tenant = TenantId::parse(tenant.as_str())
                .map_err(|e| invalid(format!("tenant {tenant:?}: {e}")))?;
            let mut set = BTreeSet::new();
            for topic in &topics.topics {
                let parsed = Topic::parse(topic.as_str())
                    .map_err(|e| invalid(format!("topic {topic:?} of {tenant}: {e}")))?;
                set.insert(parsed);
            }
            if !set.is_empty() {
                map.insert(tenant, set);
            }
        }
        Ok(Self(map))
    }

    /// The tenant's topics, if it has any.
    pub fn of(&self, tenant: &TenantId) -> Option<&BTreeSet<Topic>> {
        self.0.get(tenant)
    }

    /// Whether `topic` of `tenant` is listed.
    pub fn contains(&self, tenant: &TenantId, topic: &Topic) -> bool {
        self.of(tenant).is_some_and(|set| set.contains(topic))
    }

    /// The listed topics of `tenant` within `scope`.
    pub fn within(&self, tenant: &TenantId, scope: &TopicSet) -> BTreeSet<Topic> {
        self.of(tenant)
            .map(|set| set.iter().filter(|t| scope.contains(t)).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
