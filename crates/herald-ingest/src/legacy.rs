//! The migration from the old de-duplication key (`<tenant>/<id>`) to the scoped one
//! ([`Event::msg_id`]): while `ingest.legacy_dedup_until` lies ahead, events stored under the
//! old key are honoured as originals too.
//!
//! JetStream takes one `Nats-Msg-Id` per message and cannot be asked what its dedup table
//! holds, so ingest learns it: a follower reads `HERALD_EVENTS` from one duplicate window ago
//! (and then live, to see what ingest replicas not yet upgraded still write) and indexes every
//! event stored without `via` (the old ingest's) by its old key, subject and `source`. An event
//! about to be published whose old key, subject and source match an indexed event stored
//! within the window is answered as that event's duplicate and not published. Matching on the
//! subject and `source` keeps the old key from re-opening the hijack: an index entry is only
//! ever an event the old Herald stored, and it must look like this very event.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt as _;
use herald_core::event::Event;
use herald_core::streams::EVENTS_STREAM;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long the follower waits before retrying after an error.
const RETRY: Duration = Duration::from_secs(1);

/// An event stored by an older Herald, as the index remembers it.
#[derive(Debug)]
struct Entry {
    seq: u64,
    subject: String,
    source: String,
}

/// The old keys of events stored in the last duplicate window (see the module docs).
#[derive(Debug)]
pub struct LegacyIndex {
    until: OffsetDateTime,
    window: Duration,
    entries: Mutex<Entries>,
    caught_up: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, Entry>,
    /// Insertion order with store times, to forget entries older than the window.
    order: VecDeque<(OffsetDateTime, String)>,
}

/// The members of a stored envelope the index reads.
#[derive(Deserialize)]
struct Stored {
    tenant: String,
    id: String,
    source: String,
    #[serde(default)]
    via: Option<serde::de::IgnoredAny>,
}

impl LegacyIndex {
    /// An index honouring old keys until `until`, for a stream whose duplicate window is
    /// `window`. It answers nothing until [`follow`](Self::follow) has caught up.
    pub fn new(until: OffsetDateTime, window: Duration) -> Self {
        Self {
            until,
            window,
            entries: Mutex::default(),
            caught_up: watch::Sender::new(false),
        }
    }

    /// Whether old keys are still honoured at `now`.
    pub fn active(&self, now: OffsetDateTime) -> bool {
        now < self.until
    }

    /// Waits until the follower has read everything stored when it started.
    pub async fn ready(&self) {
        let mut rx = self.caught_up.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = rx.wait_for(|up| *up).await;
    }

    /// The sequence of the event an older Herald stored as `event`, if any.
    pub fn original(&self, event: &Event) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .by_key
            .get(&event.legacy_msg_id())
            .filter(|e| e.subject == event.subject() && e.source == event.source)
            .map(|e| e.seq)
    }

    fn remember(&self, seq: u64, subject: &str, stored: OffsetDateTime, payload: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Stored>(payload) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let horizon = OffsetDateTime::now_utc() - self.window;
        while entries.order.front().is_some_and(|(at, _)| *at < horizon) {
            if let Some((_, key)) = entries.order.pop_front() {
                entries.by_key.remove(&key);
            }
        }
        if event.via.is_some() || stored < horizon {
            return;
        }
        let key = format!("{}/{}", event.tenant, event.id);
        let entry = Entry {
            seq,
            subject: subject.to_owned(),
            source: event.source,
        };
        // JetStream kept the first of several copies: so does the index.
        if !entries.by_key.contains_key(&key) {
            entries.by_key.insert(key.clone(), entry);
            entries.order.push_back((stored, key));
        }
    }

    /// Reads `HERALD_EVENTS` from one duplicate window ago, then live, until `until` or
    /// `shutdown`; errors (NATS away, the stream not yet provisioned) are retried.
    pub async fn follow(&self, js: jetstream::Context, shutdown: CancellationToken) {
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.remaining()) => {
                    tracing::info!("legacy_dedup_until reached: only the scoped dedup key is honoured now");
                    let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                    *entries = Entries::default();
                    return;
                }
                result = self.follow_once(&js) => result,
            };
            if let Err(err) = result {
                tracing::warn!(error = %herald_core::error_chain(err.as_ref()), "legacy dedup follower failed; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }

    fn remaining(&self) -> Duration {
        let left = self.until - OffsetDateTime::now_utc();
        Duration::try_from(left).unwrap_or(Duration::ZERO)
    }

    async fn follow_once(
        &self,
        js: &jetstream::Context,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let stream = js.get_stream(EVENTS_STREAM).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: "herald.events.>".into(),
                deliver_policy: DeliverPolicy::ByStartTime {
                    start_time: OffsetDateTime::now_utc() - self.window,
                },
                ..Default::default()
            })
            .await?;
        if consumer.cached_info().num_pending == 0 {
            self.caught_up.send_replace(true);
        }
        let mut messages = consumer.messages().await?;
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            let Ok(info) = msg.info() else { continue };
            let (seq, pending, stored) = (info.stream_sequence, info.pending, info.published);
            self.remember(seq, msg.subject.as_str(), stored, &msg.payload);
            if pending == 0 {
                self.caught_up.send_replace(true);
            }
        }
        Err("the ordered consumer ended".into())
    }
}
