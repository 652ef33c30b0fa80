//! Subscribers of one tenant, by topic.

use std::collections::{HashMap, HashSet};

use herald_core::names::Topic;

use crate::auth::TopicSet;

/// The subscriber ids of one tenant: wildcard subscribers, and subscribers by topic.
#[derive(Default)]
pub(super) struct TenantIndex {
    pub(super) all: HashSet<u64>,
    pub(super) by_topic: HashMap<Topic, HashSet<u64>>,
}

impl TenantIndex {
    pub(super) fn add(&mut self, id: u64, topics: &TopicSet) {
        match topics {
            TopicSet::All => {
                self.all.insert(id);
            }
            TopicSet::Only(set) => {
                for t in set {
                    self.by_topic.entry(t.clone()).or_default().insert(id);
                }
            }
        }
    }

    pub(super) fn remove(&mut self, id: u64, topics: &TopicSet) {
        match topics {
            TopicSet::All => {
                self.all.remove(&id);
            }
            TopicSet::Only(set) => {
                for t in set {
                    if let Some(ids) = self.by_topic.get_mut(t) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.by_topic.remove(t);
                        }
                    }
                }
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.all.is_empty() && self.by_topic.is_empty()
    }
}
