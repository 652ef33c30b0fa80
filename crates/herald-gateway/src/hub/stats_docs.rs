//! The hub's stats documents: the current one per tenant and topic, and the `$stats`
//! subscribers each new version goes to.

use std::sync::Arc;

use herald_core::names::{TenantId, Topic};

use super::{Hub, Inner};
use crate::auth::TopicSet;
use crate::frame::{Frame, StatsFrame};

impl Hub {
    /// Keeps `frame` as the current document of its tenant and topic and sends it to the
    /// tenant's `$stats` subscribers whose scope holds the topic. Fed by the one stats watch
    /// of the process ([`crate::stats_feed`]).
    pub fn publish_stats(&self, frame: Arc<StatsFrame>) {
        let mut inner = self.lock();
        let ids: Vec<u64> = inner
            .stats_subs
            .get(&frame.tenant)
            .into_iter()
            .flatten()
            .copied()
            .filter(|id| {
                inner.subs.get(id).is_some_and(|e| {
                    e.stats
                        .as_ref()
                        .is_some_and(|scope| scope.contains(&frame.topic))
                })
            })
            .collect();
        inner
            .stats
            .entry(frame.tenant.clone())
            .or_default()
            .insert(frame.topic.clone(), Arc::clone(&frame));
        for id in ids {
            Self::offer(
                &mut inner,
                id,
                Frame::Stats(Arc::clone(&frame)),
                &self.metrics,
            );
        }
    }

    /// Forgets the document of `tenant`/`topic` (deleted from the bucket).
    pub fn forget_stats(&self, tenant: &TenantId, topic: &Topic) {
        let mut inner = self.lock();
        if let Some(docs) = inner.stats.get_mut(tenant) {
            docs.remove(topic);
            if docs.is_empty() {
                inner.stats.remove(tenant);
            }
        }
    }

    /// The current documents of `tenant` within `scope`.
    pub fn stats(&self, tenant: &TenantId, scope: &TopicSet) -> Vec<Arc<StatsFrame>> {
        let inner = self.lock();
        inner
            .stats
            .get(tenant)
            .into_iter()
            .flat_map(|docs| docs.values())
            .filter(|f| scope.contains(&f.topic))
            .cloned()
            .collect()
    }

    /// Sets which topics' stats documents `id` receives (`None`: none); with a scope, the
    /// current documents are queued at once, so nothing between them and the next change
    /// is missed.
    pub(super) fn set_stats(&self, id: u64, scope: Option<TopicSet>) {
        let mut inner = self.lock();
        let Some(entry) = inner.subs.get_mut(&id) else {
            return;
        };
        let tenant = entry.tenant.clone();
        entry.stats = scope.clone();
        match &scope {
            Some(_) => {
                inner
                    .stats_subs
                    .entry(tenant.clone())
                    .or_default()
                    .insert(id);
            }
            None => Self::unlist_stats(&mut inner, &tenant, id),
        }
        let Some(scope) = scope else {
            return;
        };
        let current: Vec<Arc<StatsFrame>> = inner
            .stats
            .get(&tenant)
            .into_iter()
            .flat_map(|docs| docs.values())
            .filter(|f| scope.contains(&f.topic))
            .cloned()
            .collect();
        for frame in current {
            Self::offer(&mut inner, id, Frame::Stats(frame), &self.metrics);
        }
    }

    pub(super) fn unlist_stats(inner: &mut Inner, tenant: &TenantId, id: u64) {
        if let Some(ids) = inner.stats_subs.get_mut(tenant) {
            ids.remove(&id);
            if ids.is_empty() {
                inner.stats_subs.remove(tenant);
            }
        }
    }
}
