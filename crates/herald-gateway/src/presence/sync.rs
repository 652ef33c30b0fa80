//! Presence in NATS: this gateway's entries written to `herald_presence`, everyone's
//! watched, expired entries swept, changes announced.
//!
//! Three loops, each starting over with backoff after a failure (NATS away):
//! - the **writer** puts each topic's member list when it changes (an empty one is deleted),
//!   and every entry again every third of the TTL, so the bucket never expires a live one;
//! - the **watcher** follows the bucket (current values first, then each change) into the
//!   view of the other gateways' entries; a value's age (from its NATS timestamp) sets when
//!   the view drops it, the moment the bucket does;
//! - the **announcer**, after a change (debounced) or every tenth of the TTL, drops expired
//!   entries and announces every topic whose members changed.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::StreamExt;
use herald_core::names::{TenantId, Topic};
use herald_core::retry::{Backoff, Policy};
use herald_core::streams::PRESENCE_BUCKET;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Key, Presence, Remote};

/// How long a stopping gateway spends deleting its entries.
const FAREWELL: Duration = Duration::from_secs(2);

/// Why a presence loop stopped; it starts over after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The bucket could not be opened (not provisioned yet, or NATS away).
    #[error("cannot open the presence bucket")]
    Open(#[from] jetstream::context::KeyValueError),
    /// An entry could not be written.
    #[error("cannot write a presence entry")]
    Put(#[from] kv::PutError),
    /// An entry could not be deleted.
    #[error("cannot delete a presence entry")]
    Delete(#[from] kv::DeleteError),
    /// The watch could not be created.
    #[error("cannot watch the presence bucket")]
    Watch(#[from] kv::WatchError),
    /// The watch failed.
    #[error("the presence watch failed")]
    Watcher(#[from] kv::WatcherError),
    /// The watch ended.
    #[error("the presence watch ended")]
    Ended,
}

/// The KV key of `key`'s entry written by `gateway`.
fn kv_key(key: &Key, gateway: &str) -> String {
    format!("{}.{}.{gateway}", key.0, key.1)
}

/// The topic and gateway of a KV key, if it is a presence key.
fn parse_kv_key(raw: &str) -> Option<(Key, &str)> {
    let mut parts = raw.splitn(3, '.');
    let tenant = TenantId::parse(parts.next()?).ok()?;
    let topic = Topic::parse(parts.next()?).ok()?;
    let gateway = parts.next().filter(|g| !g.is_empty())?;
    Some(((tenant, topic), gateway))
}

/// An entry's value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Value {
    members: BTreeSet<String>,
}

/// Keeps a gateway's presence in step with NATS.
pub struct Sync {
    /// JetStream.
    pub js: jetstream::Context,
    /// The registry.
    pub presence: Arc<Presence>,
    /// Stops the loops (the writer deletes this gateway's entries first).
    pub shutdown: CancellationToken,
}

impl Sync {
    /// Runs the writer, the watcher and the announcer until shutdown.
    pub async fn run(self) {
        tokio::join!(self.writer(), self.watcher(), self.announcer());
    }

    async fn writer(&self) {
        let mut backoff = backoff();
        // Keys this gateway has an entry for.
        let mut written = HashSet::new();
        loop {
            let err = match self.write(&mut backoff, &mut written).await {
                Ok(()) => return,
                Err(err) => err,
            };
            if !backoff
                .wait(&self.shutdown, "presence writes interrupted", &err)
                .await
            {
                return;
            }
        }
    }

    /// Writes changes as they come and every entry each third of the TTL; on shutdown,
    /// deletes this gateway's entries and returns `Ok`.
    async fn write(
        &self,
        backoff: &mut Backoff,
        written: &mut HashSet<Key>,
    ) -> Result<(), SyncError> {
        let kv = self.js.get_key_value(PRESENCE_BUCKET).await?;
        let p = &self.presence;
        // The bucket may have expired entries while NATS was away: everything is due.
        p.lock().dirty.extend(written.iter().cloned());
        let refresh = (p.ttl / 3).max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(Instant::now() + refresh, refresh);
        loop {
            self.flush(&kv, written).await?;
            backoff.reset();
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    let farewell = self.farewell(&kv, written);
                    if tokio::time::timeout(FAREWELL, farewell).await.is_err() {
                        tracing::debug!("presence entries left to expire");
                    }
                    return Ok(());
                }
                () = p.written.notified() => {}
                _ = tick.tick() => {
                    let mut inner = p.lock();
                    let keys: Vec<Key> = inner.local.keys().cloned().collect();
                    inner.dirty.extend(keys);
                }
            }
        }
    }

    /// Writes every dirty key: its members, or a delete when it has none.
    async fn flush(&self, kv: &kv::Store, written: &mut HashSet<Key>) -> Result<(), SyncError> {
        let p = &self.presence;
        let due: Vec<(Key, BTreeSet<String>)> = {
            let mut inner = p.lock();
            let dirty = std::mem::take(&mut inner.dirty);
            dirty
                .into_iter()
                .map(|key| {
                    let members = inner
                        .local
                        .get(&key)
                        .map(|users| users.keys().cloned().collect())
                        .unwrap_or_default();
                    (key, members)
                })
                .collect()
        };
        let mut left = due.into_iter();
        while let Some((key, members)) = left.next() {
            let name = kv_key(&key, &p.gateway);
            let put = !members.is_empty();
            let done = if members.is_empty() {
                if written.contains(&key) {
                    kv.delete(&name).await.map_err(SyncError::from)
                } else {
                    Ok(())
                }
            } else {
                let value = serde_json::to_vec(&Value { members }).unwrap_or_default();
                kv.put(&name, Bytes::from(value))
                    .await
                    .map(drop)
                    .map_err(SyncError::from)
            };
            if let Err(err) = done {
                // Not written: due again, with whatever else was left.
                let mut inner = p.lock();
                inner.dirty.insert(key);
                inner.dirty.extend(left.map(|(k, _)| k));
                return Err(err);
            }
            // What the bucket holds now: a later change of the key is dirty again, and its
            // flush deletes what this one wrote.
            if put {
                written.insert(key);
            } else {
                written.remove(&key);
            }
        }
        Ok(())
    }

    /// Deletes this gateway's entries: its users leave at once rather than within the TTL.
    async fn farewell(&self, kv: &kv::Store, written: &mut HashSet<Key>) {
        for key in std::mem::take(written) {
            let name = kv_key(&key, &self.presence.gateway);
            if let Err(err) = kv.delete(&name).await {
                tracing::debug!(%err, "deleting a presence entry failed");
            }
        }
    }

    async fn watcher(&self) {
        let mut backoff = backoff();
        loop {
            let err = tokio::select! {
                () = self.shutdown.cancelled() => return,
                res = self.watch(&mut backoff) => res.err().unwrap_or(SyncError::Ended),
            };
            if !backoff
                .wait(&self.shutdown, "presence watch interrupted", &err)
                .await
            {
                return;
            }
        }
    }

    async fn watch(&self, backoff: &mut Backoff) -> Result<(), SyncError> {
        let kv = self.js.get_key_value(PRESENCE_BUCKET).await?;
        let mut watch = kv.watch_all().await?;
        tracing::info!("following the presence bucket");
        backoff.reset();
        while let Some(entry) = watch.next().await {
            self.presence.apply(&entry?);
        }
        Ok(())
    }

    async fn announcer(&self) {
        let p = &self.presence;
        let sweep = (p.ttl / 10).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(sweep);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = p.touched.notified() => tokio::time::sleep(p.debounce).await,
                _ = tick.tick() => {}
            }
            p.sweep_and_announce();
        }
    }
}

fn backoff() -> Backoff {
    Backoff::new(Policy::doubling(
        Duration::from_millis(100),
        Duration::from_secs(5),
    ))
}

impl Presence {
    /// Applies one entry of the bucket to the view of the other gateways.
    pub(super) fn apply(&self, entry: &kv::Entry) {
        let Some((key, gateway)) = parse_kv_key(&entry.key) else {
            tracing::debug!(key = %entry.key, "ignoring a key that is not a presence key");
            return;
        };
        if gateway == self.gateway {
            return; // this gateway's own members are known first hand
        }
        let age = SystemTime::now()
            .duration_since(SystemTime::from(entry.created))
            .unwrap_or_default();
        let value = match entry.operation {
            kv::Operation::Put if age < self.ttl => serde_json::from_slice::<Value>(&entry.value)
                .inspect_err(|err| tracing::warn!(key = %entry.key, %err, "ignoring a malformed presence entry"))
                .ok(),
            _ => None,
        };
        let mut inner = self.lock();
        match value {
            Some(Value { members }) => {
                let remote = Remote {
                    members,
                    expires: Instant::now() + (self.ttl - age),
                };
                inner
                    .remote
                    .entry(key.clone())
                    .or_default()
                    .insert(gateway.to_owned(), remote);
            }
            None => {
                if let Some(gateways) = inner.remote.get_mut(&key) {
                    gateways.remove(gateway);
                    if gateways.is_empty() {
                        inner.remote.remove(&key);
                    }
                }
            }
        }
        inner.touched.insert(key);
        drop(inner);
        self.touched.notify_one();
    }

    /// Drops the entries whose TTL has run out, then announces every topic whose members
    /// changed (under the lock feeds snapshot with, so a feed misses nothing).
    pub(super) fn sweep_and_announce(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut expired = Vec::new();
        inner.remote.retain(|key, gateways| {
            let before = gateways.len();
            gateways.retain(|_, r| r.expires > now);
            if gateways.len() != before {
                expired.push(key.clone());
            }
            !gateways.is_empty()
        });
        inner.touched.extend(expired);
        for change in inner.announce() {
            // No receiver (no feed open) is fine.
            let _ = self.tx.send(Arc::new(change));
        }
    }
}
