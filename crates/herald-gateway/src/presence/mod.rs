//! Presence: who is connected to a topic, across every gateway.
//!
//! Opt-in per topic (`[gateway.presence.<tenant>] topics = […]`). Every SSE or WebSocket
//! session of an authenticated user whose topics include a presence topic makes that user a
//! member of it ([`Member`], released when the session ends or drops the topic); a user with
//! several connections counts once.
//!
//! The state is held in NATS so it is global ([`sync`]): each gateway writes one KV entry per
//! topic with its members (`herald_presence`, `<tenant>.<topic>.<gateway-id>` →
//! `{"members":[…]}`), rewritten every third of the bucket's TTL, and watches everyone's. An
//! entry not rewritten within the TTL is dropped by the bucket and by every gateway's view, so
//! a gateway that dies (SIGKILL, a partition) takes its users with it within the TTL; one that
//! stops cleanly deletes its entries at once.
//!
//! Changes are announced per topic, debounced (`presence_debounce`), as a [`Change`] with the
//! count and the users who joined and left since the last one; sessions opened with
//! `presence=1` receive them ([`Feed`]), with user ids only when their token has the claim
//! `presence: true`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use herald_core::names::{TenantId, Topic};
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::auth::TopicSet;
use crate::frame::StatsFrame;

pub mod sync;
mod topics;

#[cfg(test)]
mod tests;

pub use topics::TopicMap;

/// A presence key: a tenant's topic.
type Key = (TenantId, Topic);

/// Announcements kept for slow feeds before they lag (and resynchronise from a snapshot).
const CHANNEL: usize = 1024;

/// The presence registry of one gateway: its own members, the other gateways' entries, and
/// what was last announced.
pub struct Presence {
    topics: TopicMap,
    gateway: String,
    ttl: Duration,
    debounce: Duration,
    inner: Mutex<Inner>,
    /// This gateway's members changed: the writer has work.
    written: Notify,
    /// Something changed: the announcer has work.
    touched: Notify,
    tx: broadcast::Sender<Arc<Change>>,
}

#[derive(Default)]
struct Inner {
    /// This gateway's members: per key, user → open sessions.
    local: HashMap<Key, HashMap<String, usize>>,
    /// Keys whose local members changed since the writer last wrote them.
    dirty: HashSet<Key>,
    /// Other gateways' entries: per key, gateway → its members and when the entry expires.
    remote: HashMap<Key, HashMap<String, Remote>>,
    /// Keys whose members may differ from what was last announced.
    touched: HashSet<Key>,
    /// The members last announced, per key.
    announced: HashMap<Key, BTreeSet<String>>,
}

struct Remote {
    members: BTreeSet<String>,
    expires: Instant,
}

/// One announcement: the members of a topic changed.
#[derive(Debug)]
pub struct Change {
    /// The tenant.
    pub tenant: TenantId,
    /// The topic.
    pub topic: Topic,
    /// Connected users now.
    pub count: usize,
    /// Users who joined since the last announcement.
    pub joined: Vec<String>,
    /// Users who left since the last announcement.
    pub left: Vec<String>,
    /// The event with user ids.
    full: Arc<StatsFrame>,
    /// The event with the count only.
    counts: Arc<StatsFrame>,
}

impl Change {
    /// The event as a session sees it: with user ids only if `see_subs`.
    pub fn frame(&self, see_subs: bool) -> Arc<StatsFrame> {
        Arc::clone(if see_subs { &self.full } else { &self.counts })
    }
}

/// A `presence` event: `{"topic","count","joined","left"}` (plus `"snapshot":true` when
/// `joined` is every member, not a change), rendered for SSE (`event: presence`) and
/// WebSocket (`{"type":"presence",…}`). It travels to sessions like a stats document, as a
/// pre-rendered side message ([`crate::frame::Frame::Stats`]).
fn render(
    tenant: &TenantId,
    topic: &Topic,
    count: usize,
    joined: &[String],
    left: &[String],
    snapshot: bool,
) -> Arc<StatsFrame> {
    let mut body = serde_json::json!({
        "topic": topic, "count": count, "joined": joined, "left": left,
    });
    if snapshot {
        body["snapshot"] = serde_json::Value::Bool(true);
    }
    let json = body.to_string();
    Arc::new(StatsFrame {
        tenant: tenant.clone(),
        topic: topic.clone(),
        seq: 0,
        sse: Bytes::from(format!("event: presence\ndata: {json}\n\n")),
        ws: Bytes::from(format!("{{\"type\":\"presence\",{}", &json[1..])),
        json: Bytes::from(json),
    })
}

impl Presence {
    /// A registry for `topics`, as gateway `gateway`, with entries living `ttl`.
    pub fn new(topics: TopicMap, gateway: String, ttl: Duration, debounce: Duration) -> Arc<Self> {
        let (tx, _) = broadcast::channel(CHANNEL);
        Arc::new(Self {
            topics,
            gateway,
            ttl,
            debounce,
            inner: Mutex::new(Inner::default()),
            written: Notify::new(),
            touched: Notify::new(),
            tx,
        })
    }

    /// The registry of `cfg.presence` for this process (a [`Presence::random_id`]), with
    /// entries living `ttl` (`stream.presence_ttl`).
    pub fn from_config(
        cfg: &crate::config::Config,
        ttl: Duration,
    ) -> Result<Arc<Self>, crate::error::Error> {
        let topics = TopicMap::parse("presence", &cfg.presence)?;
        Ok(Self::new(
            topics,
            Self::random_id(),
            ttl,
            cfg.presence_debounce,
        ))
    }

    /// The loops that keep this registry in step with NATS ([`sync::Sync`]).
    pub fn sync(
        self: Arc<Self>,
        js: async_nats::jetstream::Context,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> sync::Sync {
        sync::Sync {
            js,
            presence: self,
            shutdown,
        }
    }

    /// A fresh gateway id: random, so a restarted gateway never reuses a dead one's entries.
    pub fn random_id() -> String {
        format!("gw-{:016x}", rand::random::<u64>())
    }

    /// This gateway's id (the last token of its keys).
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// The presence topics.
    pub fn topics(&self) -> &TopicMap {
        &self.topics
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The users connected to `topic` of `tenant` now, on every gateway (from this gateway's
    /// view: other gateways' changes arrive within a NATS round trip).
    pub fn members(&self, tenant: &TenantId, topic: &Topic) -> BTreeSet<String> {
        self.lock().members(&(tenant.clone(), topic.clone()))
    }

    /// Registers a session of `sub` in `tenant` on the presence topics within `topics` (none
    /// if `sub` is `None`: anonymous readers are never members), and, if `events`, a feed of
    /// `presence` events for them that names users only if `see_subs`.
    pub fn attach(
        self: &Arc<Self>,
        tenant: &TenantId,
        sub: Option<&str>,
        topics: &TopicSet,
        events: bool,
        see_subs: bool,
    ) -> Attached {
        let keys = self.topics.within(tenant, topics);
        let member = sub.map(|sub| {
            let mut member = Member {
                presence: Arc::clone(self),
                tenant: tenant.clone(),
                sub: sub.to_owned(),
                topics: BTreeSet::new(),
            };
            member.set(keys.clone());
            member
        });
        let feed = events.then(|| self.feed(tenant, keys, see_subs));
        Attached {
            of: Some((Arc::clone(self), tenant.clone())),
            member,
            feed,
        }
    }

    /// A feed of `topics`' announcements, opening with a snapshot of each (taken under the
    /// lock announcements are sent with, so the changes that follow apply on top of it).
    fn feed(self: &Arc<Self>, tenant: &TenantId, topics: BTreeSet<Topic>, see_subs: bool) -> Feed {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let pending = topics
            .iter()
            .map(|t| inner.snapshot(tenant, t, see_subs))
            .collect();
        drop(inner);
        Feed {
            presence: Arc::clone(self),
            rx,
            tenant: tenant.clone(),
            topics,
            see_subs,
            pending,
        }
    }

    fn join(&self, key: Key, sub: &str) {
        let mut inner = self.lock();
        let users = inner.local.entry(key.clone()).or_default();
        let n = users.entry(sub.to_owned()).or_default();
        *n += 1;
        if *n == 1 {
            inner.changed(key);
            drop(inner);
            self.written.notify_one();
            self.touched.notify_one();
        }
    }

    fn leave(&self, key: Key, sub: &str) {
        let mut inner = self.lock();
        let Some(users) = inner.local.get_mut(&key) else {
            return;
        };
        let Some(n) = users.get_mut(sub) else { return };
        *n -= 1;
        if *n > 0 {
            return;
        }
        users.remove(sub);
        if users.is_empty() {
            inner.local.remove(&key);
        }
        inner.changed(key);
        drop(inner);
        self.written.notify_one();
        self.touched.notify_one();
    }
}

impl Inner {
    fn changed(&mut self, key: Key) {
        self.dirty.insert(key.clone());
        self.touched.insert(key);
    }

    fn members(&self, key: &Key) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self
            .local
            .get(key)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(gateways) = self.remote.get(key) {
            for remote in gateways.values() {
                all.extend(remote.members.iter().cloned());
            }
        }
        all
    }

    fn snapshot(&self, tenant: &TenantId, topic: &Topic, see_subs: bool) -> Arc<StatsFrame> {
        let key = (tenant.clone(), topic.clone());
        let members: Vec<String> = self
            .announced
            .get(&key)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default();
        let joined = if see_subs {
            members.clone()
        } else {
            Vec::new()
        };
        render(tenant, topic, members.len(), &joined, &[], true)
    }

    /// The announcements due: every touched key whose members differ from the last
    /// announcement.
    fn announce(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        for key in std::mem::take(&mut self.touched) {
            let now = self.members(&key);
            let before = self.announced.remove(&key).unwrap_or_default();
            let joined: Vec<String> = now.difference(&before).cloned().collect();
            let left: Vec<String> = before.difference(&now).cloned().collect();
            let count = now.len();
            if !now.is_empty() {
                self.announced.insert(key.clone(), now);
            }
            if joined.is_empty() && left.is_empty() {
                continue;
            }
            let (tenant, topic) = key;
            let full = render(&tenant, &topic, count, &joined, &left, false);
            let counts = render(&tenant, &topic, count, &[], &[], false);
            changes.push(Change {
                tenant,
                topic,
                count,
                joined,
                left,
                full,
                counts,
            });
        }
        changes
    }
}

/// A user's membership of presence topics while a session lasts.
pub struct Member {
    presence: Arc<Presence>,
    tenant: TenantId,
    sub: String,
    topics: BTreeSet<Topic>,
}

impl Member {
    /// Joins the topics of `topics` not yet joined and leaves the others.
    fn set(&mut self, topics: BTreeSet<Topic>) {
        for gone in self.topics.difference(&topics) {
            self.presence
                .leave((self.tenant.clone(), gone.clone()), &self.sub);
        }
        for new in topics.difference(&self.topics) {
            self.presence
                .join((self.tenant.clone(), new.clone()), &self.sub);
        }
        self.topics = topics;
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.set(BTreeSet::new());
    }
}

/// A session's `presence` events: a snapshot of each topic first, then the changes.
pub struct Feed {
    presence: Arc<Presence>,
    rx: broadcast::Receiver<Arc<Change>>,
    tenant: TenantId,
    topics: BTreeSet<Topic>,
    see_subs: bool,
    pending: VecDeque<Arc<StatsFrame>>,
}

impl Feed {
    /// The next event. Cancel-safe.
    pub async fn next(&mut self) -> Arc<StatsFrame> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return frame;
            }
            match self.rx.recv().await {
                Ok(change) => {
                    if change.tenant == self.tenant && self.topics.contains(&change.topic) {
                        return change.frame(self.see_subs);
                    }
                }
                // Announcements were missed: start over from a snapshot of each topic.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let inner = self.presence.lock();
                    self.rx = self.rx.resubscribe();
                    self.pending = self
                        .topics
                        .iter()
                        .map(|t| inner.snapshot(&self.tenant, t, self.see_subs))
                        .collect();
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// Follows `topics` from now on; a topic new to the feed opens with its snapshot.
    fn set(&mut self, topics: BTreeSet<Topic>) {
        let inner = self.presence.lock();
        for new in topics.difference(&self.topics) {
            self.pending
                .push_back(inner.snapshot(&self.tenant, new, self.see_subs));
        }
        drop(inner);
        self.topics = topics;
    }
}

/// What a session holds of presence: its membership and its feed, either possibly absent.
#[derive(Default)]
pub struct Attached {
    /// The registry and the session's tenant (none: nothing attached).
    of: Option<(Arc<Presence>, TenantId)>,
    member: Option<Member>,
    feed: Option<Feed>,
}

impl Attached {
    /// The session's topics changed (a WebSocket `unsubscribe`, a narrower token).
    pub fn set_topics(&mut self, topics: &TopicSet) {
        let Some((presence, tenant)) = &self.of else {
            return;
        };
        let keys = presence.topics.within(tenant, topics);
        if let Some(member) = self.member.as_mut() {
            member.set(keys.clone());
        }
        if let Some(feed) = self.feed.as_mut() {
            feed.set(keys);
        }
    }

    /// The next `presence` event; never, without a feed. Cancel-safe.
    pub async fn next(&mut self) -> Arc<StatsFrame> {
        match self.feed.as_mut() {
            Some(feed) => feed.next().await,
            None => std::future::pending().await,
        }
    }
}
