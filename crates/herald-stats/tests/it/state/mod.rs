//! The state writer against a real nats-server: rows and markers in `herald_state` equal a
//! reference table built by applying `herald_core::state::Change` in stream order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use herald_core::event::{Event, EventId};
use herald_core::state::{Change, CollectionConfig, KeyPath, StateConfig};
use herald_stats::config::StateWriterConfig;
use herald_stats::state::store::{self, Stored};
use herald_stats::state::{StateMetrics, StateWriter};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

mod concurrency;
mod exact;
mod lifecycle;

/// `[state.collections]` with `(tenant, topic, key)` entries.
pub fn state_config(cols: &[(&str, &str, &str)]) -> StateConfig {
    let mut cfg = StateConfig::default();
    for (tenant, topic, key) in cols {
        cfg.collections
            .entry((*tenant).to_owned())
            .or_default()
            .insert((*topic).to_owned(), CollectionConfig { key: (*key).into() });
    }
    cfg
}

/// Small batches, markers raised every 20 ms.
pub fn writer_config() -> StateWriterConfig {
    StateWriterConfig {
        batch_size: 250,
        flush_interval: Duration::from_millis(5),
        marker_interval: Duration::from_millis(20),
        write_concurrency: 32,
    }
}

/// A writer task (stopped on drop).
pub struct Running {
    pub metrics: StateMetrics,
    token: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    /// A writer of `cols` on `js`, running.
    pub fn spawn(js: &jetstream::Context, cols: &[(&str, &str, &str)]) -> Self {
        let metrics = StateMetrics::default();
        let collections = state_config(cols).collections().unwrap();
        let writer = StateWriter::new(js.clone(), collections, writer_config(), metrics.clone());
        let token = CancellationToken::new();
        let handle = tokio::spawn(writer.run(token.clone()));
        Self {
            metrics,
            token,
            handle: Some(handle),
        }
    }

    /// Cancels it and waits for it to return (its batch written, its markers raised).
    pub async fn stop(mut self) {
        self.token.cancel();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("the writer stops")
            .unwrap();
    }

    /// Kills the task wherever it is (mid-batch, mid-write).
    pub async fn abort(mut self) {
        let handle = self.handle.take().unwrap();
        handle.abort();
        assert!(handle.await.unwrap_err().is_cancelled());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The table a collection must hold: `Change` applied in stream order.
pub struct Reference {
    path: KeyPath,
    pub rows: BTreeMap<String, Value>,
}

impl Reference {
    pub fn new(key: &str) -> Self {
        Self {
            path: KeyPath::parse(key).unwrap(),
            rows: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, action: &str, data: &Value) {
        match Change::of(&self.path, action, data) {
            Change::Upsert { key } => drop(self.rows.insert(key, data.clone())),
            Change::Delete { key } => drop(self.rows.remove(&key)),
            Change::Clear => self.rows.clear(),
            Change::Ignored | Change::Unkeyed(_) => {}
        }
    }
}

static EVENT_IDS: AtomicU64 = AtomicU64::new(0);

/// An event of `tenant`/`topic` with a unique id.
pub fn event(t: &str, p: &str, action: &str, data: Value) -> Event {
    let n = EVENT_IDS.fetch_add(1, Ordering::Relaxed);
    Event::new(
        EventId::parse(format!("state-{n}")).unwrap(),
        tenant(t),
        topic(p),
        action.parse().unwrap(),
        "/test",
        data,
    )
}

/// Publishes `events` (pipelined); the last one's stream sequence.
pub async fn publish_all(js: &jetstream::Context, events: &[Event]) -> u64 {
    let mut last = 0;
    for chunk in events.chunks(500) {
        last = *publish(js, chunk).await.last().unwrap();
    }
    last
}

/// Publishes `event` with `headers` (e.g. `Herald-To`); its stream sequence.
pub async fn publish_with(js: &jetstream::Context, event: &Event, headers: HeaderMap) -> u64 {
    js.publish_with_headers(event.subject(), headers, event.to_bytes())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// The collection as stored.
pub async fn load(js: &jetstream::Context, t: &str, p: &str) -> Stored {
    store::load(js, &tenant(t), &topic(p)).await.unwrap()
}

/// Waits until the marker of `t`/`p` says every event up to `seq` is stored; the collection.
pub async fn caught_up(js: &jetstream::Context, t: &str, p: &str, seq: u64) -> Stored {
    let kv = store::bucket(js).await.unwrap();
    let key = herald_core::state::marker_key(&tenant(t), &topic(p));
    eventually(&format!("{t}.{p} applied up to {seq}"), || async {
        store::read::<herald_core::state::Marker>(&kv, &key)
            .await
            .unwrap()
            .value
            .is_some_and(|m| m.applied >= seq)
    })
    .await;
    load(js, t, p).await
}

/// The live rows' data by key.
pub fn live(stored: &Stored) -> BTreeMap<String, Value> {
    stored
        .live()
        .into_iter()
        .map(|(k, row)| (k, row.data.unwrap_or(Value::Null)))
        .collect()
}
