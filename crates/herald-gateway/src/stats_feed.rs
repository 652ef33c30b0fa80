//! The one stats watch of the process: every document version written to `herald_stats`
//! goes to the hub, which keeps the current one per tenant and topic and sends it to the
//! `$stats` subscribers whose scope holds its topic.
//!
//! One KV watch per process, not per client: a thousand dashboards cost one consumer. The
//! watch starts with the current value of every key, so the hub's copies are complete once
//! it has caught up; after an interruption it starts over the same way (documents are
//! snapshots, so sending one again is harmless).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use herald_core::retry::{Backoff, Policy};
use herald_stats::StatsDoc;
use herald_stats::store::StoreError;
use tokio_util::sync::CancellationToken;

use crate::frame::StatsFrame;
use crate::hub::Hub;
use crate::metrics::Metrics;

/// Why the watch stopped; it starts over after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The bucket could not be opened (not provisioned yet, or NATS away).
    #[error("cannot open the stats bucket")]
    Bucket(#[from] StoreError),
    /// The watch could not be created.
    #[error("cannot watch the stats bucket")]
    Watch(#[from] kv::WatchError),
    /// The watch failed.
    #[error("the stats watch failed")]
    Watcher(#[from] kv::WatcherError),
    /// The watch ended.
    #[error("the stats watch ended")]
    Ended,
}

/// Follows `herald_stats` into the hub.
pub struct StatsFeed {
    /// JetStream.
    pub js: jetstream::Context,
    /// Where documents go.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Stops the feed.
    pub shutdown: CancellationToken,
}

impl StatsFeed {
    /// Runs until shutdown, starting the watch over after any failure.
    pub async fn run(self) {
        let mut backoff = Backoff::new(Policy::doubling(
            Duration::from_millis(100),
            Duration::from_secs(5),
        ));
        loop {
            let err = tokio::select! {
                () = self.shutdown.cancelled() => return,
                res = self.follow(&mut backoff) => res.err().unwrap_or(StatsError::Ended),
            };
            if !backoff
                .wait(&self.shutdown, "stats watch interrupted", &err)
                .await
            {
                return;
            }
        }
    }

    /// Watches every key: the current values first, then each change.
    #[tracing::instrument(skip_all)]
    async fn follow(&self, backoff: &mut Backoff) -> Result<(), StatsError> {
        let kv = herald_stats::store::bucket(&self.js).await?;
        let mut watch = kv.watch_with_history(">").await?;
        tracing::info!("following the stats bucket");
        backoff.reset();
        while let Some(entry) = watch.next().await {
            self.apply(entry?);
        }
        Ok(())
    }

    fn apply(&self, entry: kv::Entry) {
        let Some((tenant, topic)) = herald_stats::doc::parse_key(&entry.key) else {
            tracing::warn!(key = %entry.key, "ignoring a stats key that is not <tenant>.<topic>");
            return;
        };
        if entry.operation != kv::Operation::Put {
            self.hub.forget_stats(&tenant, &topic);
            return;
        }
        let doc: StatsDoc = match serde_json::from_slice(&entry.value) {
            Ok(doc) => doc,
            Err(err) => {
                tracing::warn!(key = %entry.key, %err, "ignoring a value that is not a stats document");
                return;
            }
        };
        if doc.tenant != tenant || doc.topic != topic {
            tracing::warn!(key = %entry.key, "ignoring a stats document stored under another key");
            return;
        }
        self.metrics.stats_documents.inc();
        self.hub.publish_stats(Arc::new(StatsFrame::new(&doc)));
    }
}
