//! Loading the mirror exactly (`proto/state.md`, "The gateway's mirror").
//!
//! 1. the hub already queues the tail's collection events (it started loading at `P`);
//! 2. read each collection's marker (`W` = lowest `applied`), then its rows: an ordered
//!    consumer on the KV stream with last-per-subject delivery on
//!    `$KV.herald_state.<t>.<p>.r.>`;
//! 3. `T` = the stream's last sequence, read after the rows (and at least every row's `seq`);
//! 4. replay the collection topics' events `(W, T]` from `HERALD_EVENTS`, applying each to a
//!    row only if its sequence is above the row's `seq` (tombstones and `cleared` included);
//! 5. hand the tables to the hub, which applies the queued events after `T` and goes live
//!    once its head has reached `T`.
//!
//! Rows and markers of another epoch (the stream was recreated and no writer has purged them
//! yet) are ignored: the load then replays the whole retained stream. A `W + 1` older than the
//! stream's first sequence (the writer fell behind retention) is logged as an error naming
//! the collection, and the mirror serves what the rows and the retained events give.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self, consumer::DeliverPolicy, consumer::pull::OrderedConfig, kv::Operation,
};
use futures::StreamExt;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::retry::{Backoff, Policy};
use herald_core::state::{
    Change, Collections, KeyPath, Marker, Row, STATE_BUCKET, decode_row_key, marker_key, prefix,
};
use herald_core::streams::EVENTS_STREAM;
use herald_core::subject;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{Audience, CollectionId, Loaded, MirrorRow, Table, Ticket};
use crate::frame::EventFrame;
use crate::hub::Hub;

/// The longest a load waits for its next message.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a load failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The KV bucket could not be opened.
    #[error("opening the herald_state bucket failed")]
    Bucket(#[from] jetstream::context::KeyValueError),
    /// A marker could not be read.
    #[error("reading a collection marker failed")]
    Marker(#[from] jetstream::kv::EntryError),
    /// A stream could not be looked up.
    #[error("looking up a stream failed")]
    Stream(#[from] jetstream::context::GetStreamError),
    /// Stream info could not be read.
    #[error("reading stream info failed")]
    Info(#[from] jetstream::context::RequestError),
    /// A consumer could not be created.
    #[error("creating a load consumer failed")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    /// A consumer's messages could not be read.
    #[error("reading a load consumer failed")]
    Messages(#[from] jetstream::consumer::StreamError),
    /// A message failed to arrive.
    #[error("a load consumer failed")]
    Ordered(#[from] jetstream::consumer::pull::OrderedError),
    /// No message arrived in time.
    #[error("the load stalled")]
    Timeout,
    /// The stream now has another epoch than the load's.
    #[error("the events stream was recreated during the load")]
    Recreated,
}

/// The one loader of a gateway: runs each load the hub asks for ([`Hub::next_mirror_load`]).
pub struct Loader {
    /// JetStream.
    pub js: jetstream::Context,
    /// The hub whose mirror it loads.
    pub hub: Arc<Hub>,
    /// Stops it.
    pub shutdown: CancellationToken,
}

impl Loader {
    /// Runs loads until shutdown.
    pub async fn run(self) {
        loop {
            let ticket = tokio::select! {
                () = self.shutdown.cancelled() => return,
                ticket = self.hub.next_mirror_load() => ticket,
            };
            self.run_one(ticket).await;
        }
    }

    /// Runs the load of `ticket` (retrying with backoff) until it is handed to the hub,
    /// superseded by a newer one, or shutdown.
    async fn run_one(&self, ticket: Ticket) {
        let mut backoff = Backoff::new(Policy::doubling(
            Duration::from_millis(100),
            Duration::from_secs(2),
        ));
        let collections = Arc::clone(self.hub.collections());
        while self.hub.mirror_generation() == ticket.generation {
            let loaded = tokio::select! {
                () = self.shutdown.cancelled() => return,
                loaded = load(&self.js, &collections, ticket.epoch) => loaded,
            };
            match loaded {
                Ok(loaded) => {
                    let rows: usize = loaded.tables.values().map(Table::len).sum();
                    tracing::info!(rows, upto = loaded.upto, "collections loaded");
                    self.hub.finish_load(ticket, loaded);
                    return;
                }
                Err(err) => {
                    let why = "loading the collections failed";
                    if !backoff.wait(&self.shutdown, why, &err).await {
                        return;
                    }
                }
            }
        }
    }
}

/// A collection being loaded: rows with tombstones, and the last truncate.
#[derive(Debug, Default)]
struct Loading {
    rows: BTreeMap<String, LoadRow>,
    cleared: u64,
}

#[derive(Debug)]
struct LoadRow {
    seq: u64,
    /// `None`: a tombstone.
    data: Option<Arc<RawValue>>,
    to: Audience,
}

impl Loading {
    /// Applies the event at `seq` if it is newer than what the row (and `cleared`) reflect.
    fn apply(&mut self, seq: u64, change: Change, data: Option<Arc<RawValue>>, to: Audience) {
        if seq <= self.cleared {
            return;
        }
        let (key, data) = match change {
            Change::Upsert { key } => (key, data),
            Change::Delete { key } => (key, None),
            Change::Clear => {
                self.cleared = seq;
                return;
            }
            Change::Ignored | Change::Unkeyed(_) => return,
        };
        if self.rows.get(&key).is_some_and(|r| r.seq >= seq) {
            return;
        }
        self.rows.insert(key, LoadRow { seq, data, to });
    }

    fn into_table(self) -> Table {
        let cleared = self.cleared;
        self.rows
            .into_iter()
            .filter(|(_, r)| r.seq > cleared)
            .filter_map(|(key, r)| {
                let data = r.data?;
                Some((
                    key,
                    MirrorRow {
                        seq: r.seq,
                        data,
                        to: r.to,
                    },
                ))
            })
            .collect()
    }
}

/// Steps 2–4: the tables as of `T`.
pub async fn load(
    js: &jetstream::Context,
    collections: &Collections,
    epoch: Epoch,
) -> Result<Loaded, LoadError> {
    let mut tables: HashMap<CollectionId, Loading> = HashMap::new();
    let (w, with_rows) = markers(js, collections, epoch, &mut tables).await?;
    let mut top = read_rows(js, &with_rows, &mut tables).await?;
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let info = stream.info().await?;
    if Epoch::from_created(info.created) != epoch {
        return Err(LoadError::Recreated);
    }
    let first = info.state.first_sequence;
    top = top.max(info.state.last_sequence);
    for (id, applied) in &with_rows {
        if applied.saturating_add(1) < first {
            tracing::error!(
                tenant = %id.0, topic = %id.1, applied, first,
                "the state writer fell behind retention: events of this collection expired \
                 before they were written; serving what the rows and the retained events give"
            );
        }
    }
    replay(&stream, collections, epoch, (w, top), &mut tables).await?;
    Ok(Loaded {
        tables: tables
            .into_iter()
            .map(|(id, t)| (id, t.into_table()))
            .collect(),
        upto: top,
    })
}

/// Reads every marker: `W` (the lowest `applied` over collections, 0 for one without a
/// marker of this epoch) and the collections whose rows belong to this epoch, with theirs.
async fn markers(
    js: &jetstream::Context,
    collections: &Collections,
    epoch: Epoch,
    tables: &mut HashMap<CollectionId, Loading>,
) -> Result<(u64, Vec<(CollectionId, u64)>), LoadError> {
    let kv = js.get_key_value(STATE_BUCKET).await?;
    let epoch = epoch.to_string();
    let mut w = u64::MAX;
    let mut with_rows = Vec::new();
    for (tenant, topic, _) in collections.iter() {
        let id = (tenant.clone(), topic.clone());
        let marker = kv
            .entry(marker_key(tenant, topic))
            .await?
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<Marker>(&e.value).ok())
            .filter(|m| m.epoch == epoch);
        let loading = tables.entry(id.clone()).or_default();
        match marker {
            Some(m) => {
                loading.cleared = m.cleared;
                w = w.min(m.applied);
                with_rows.push((id, m.applied));
            }
            None => w = 0,
        }
    }
    Ok((if w == u64::MAX { 0 } else { w }, with_rows))
}

/// Reads the last value of every row key of `with_rows`; returns the highest row `seq`.
async fn read_rows(
    js: &jetstream::Context,
    with_rows: &[(CollectionId, u64)],
    tables: &mut HashMap<CollectionId, Loading>,
) -> Result<u64, LoadError> {
    if with_rows.is_empty() {
        return Ok(0);
    }
    let filters: Vec<String> = with_rows
        .iter()
        .map(|((tenant, topic), _)| format!("$KV.{STATE_BUCKET}.{}r.>", prefix(tenant, topic)))
        .collect();
    let stream = js.get_stream(format!("KV_{STATE_BUCKET}")).await?;
    let kv_prefix = format!("$KV.{STATE_BUCKET}.");
    let mut top = 0;
    read_all(
        &stream,
        filters,
        DeliverPolicy::LastPerSubject,
        |subject, headers, payload, _| {
            if headers
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| op.as_str() != "PUT")
            {
                return true;
            }
            let Some(kv_key) = subject.strip_prefix(&kv_prefix) else {
                return true;
            };
            for ((tenant, topic), _) in with_rows {
                let Some(key) = decode_row_key(tenant, topic, kv_key) else {
                    continue;
                };
                let Ok(row) = serde_json::from_slice::<Row>(payload) else {
                    tracing::warn!(kv_key, "skipping a malformed collection row");
                    break;
                };
                top = top.max(row.seq);
                let data = if row.deleted { None } else { row.data };
                let data = data.and_then(|d| serde_json::value::to_raw_value(&d).ok());
                // Present but empty: private to nobody (as the writer stored it).
                let to = row.to.map(|t| t.into_iter().map(Arc::from).collect());
                let id = (tenant.clone(), topic.clone());
                let loading = tables.entry(id).or_default();
                loading.rows.insert(
                    key,
                    LoadRow {
                        seq: row.seq,
                        data: data.map(Arc::from),
                        to,
                    },
                );
                break;
            }
            true
        },
    )
    .await?;
    Ok(top)
}

/// Replays the collection events in `(from, until]`, with the per-row rule.
async fn replay(
    stream: &jetstream::stream::Stream,
    collections: &Collections,
    epoch: Epoch,
    (from, until): (u64, u64),
    tables: &mut HashMap<CollectionId, Loading>,
) -> Result<(), LoadError> {
    if from >= until {
        return Ok(());
    }
    let filters: Vec<String> = collections
        .iter()
        .map(|(tenant, topic, _)| subject::topic_filter(tenant, topic))
        .collect();
    read_all(
        stream,
        filters,
        DeliverPolicy::ByStartSequence {
            start_sequence: from + 1,
        },
        |subject, headers, payload, seq| {
            if seq > until {
                return false;
            }
            let Ok(frame) = EventFrame::new(Cursor::new(seq, epoch), subject, payload) else {
                return seq < until;
            };
            if let Some(path) = collections.get(&frame.tenant, &frame.topic) {
                let to = crate::frame::audience(headers);
                let (change, data) = change_of(path, &frame);
                let id = (frame.tenant.clone(), frame.topic.clone());
                tables.entry(id).or_default().apply(seq, change, data, to);
            }
            seq < until
        },
    )
    .await
}

/// What `frame` does to a collection keyed by `path`, and its data as JSON text.
fn change_of(path: &KeyPath, frame: &EventFrame) -> (Change, Option<Arc<RawValue>>) {
    let data = frame
        .fields()
        .and_then(|f| f.get("data"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let change = Change::of(path, frame.action.as_str(), &data);
    let raw = serde_json::value::to_raw_value(&data).ok().map(Arc::from);
    (change, raw)
}

/// Reads `stream` through a short-lived ordered consumer on `filters` from `deliver` until
/// nothing is pending or `each` (subject, headers, payload, stream sequence) says stop.
async fn read_all<F>(
    stream: &jetstream::stream::Stream,
    filters: Vec<String>,
    deliver: DeliverPolicy,
    mut each: F,
) -> Result<(), LoadError>
where
    F: FnMut(&str, Option<&HeaderMap>, &[u8], u64) -> bool,
{
    let name = format!("herald_mirror_{:016x}", rand::random::<u64>());
    let created = stream
        .create_consumer(OrderedConfig {
            name: Some(name.clone()),
            filter_subjects: filters,
            deliver_policy: deliver,
            ..Default::default()
        })
        .await;
    let result = match created {
        Err(err) => Err(err.into()),
        Ok(consumer) if consumer.cached_info().num_pending == 0 => Ok(()),
        Ok(consumer) => read_messages(consumer, &mut each).await,
    };
    // Ordered consumers linger for a while when merely dropped.
    if let Err(err) = stream.delete_consumer(&name).await {
        tracing::debug!(error = %herald_core::error_chain(&err), "deleting a mirror consumer failed");
    }
    result
}

async fn read_messages<F>(
    consumer: jetstream::consumer::Consumer<OrderedConfig>,
    each: &mut F,
) -> Result<(), LoadError>
where
    F: FnMut(&str, Option<&HeaderMap>, &[u8], u64) -> bool,
{
    let mut messages = consumer.messages().await?;
    loop {
        let msg = match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
            Err(_) => return Err(LoadError::Timeout),
            Ok(None) => return Ok(()),
            Ok(Some(msg)) => msg?,
        };
        let Ok(info) = msg.info() else { continue };
        let (seq, pending) = (info.stream_sequence, info.pending);
        let go_on = each(
            msg.subject.as_str(),
            msg.headers.as_ref(),
            &msg.payload,
            seq,
        );
        if !go_on || pending == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: serde_json::Value) -> Option<Arc<RawValue>> {
        serde_json::value::to_raw_value(&v).ok().map(Arc::from)
    }

    #[test]
    fn the_per_row_rule_applies_only_newer_events() {
        let mut t = Loading::default();
        let up = |k: &str| Change::Upsert { key: k.into() };
        // A row from KV at seq 10, and a tombstone at 12.
        t.apply(10, up("a"), raw(json!({"v": 10})), None);
        t.apply(12, Change::Delete { key: "b".into() }, None, None);
        // Older events replayed: no effect.
        t.apply(8, up("a"), raw(json!({"v": 8})), None);
        t.apply(11, up("b"), raw(json!({"v": 11})), None);
        // Newer ones apply.
        t.apply(13, up("c"), raw(json!({"v": 13})), None);
        let table = Loading {
            rows: std::mem::take(&mut t.rows),
            cleared: t.cleared,
        }
        .into_table();
        assert_eq!(table.keys().cloned().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(table["a"].data.get(), r#"{"v":10}"#);
    }

    #[test]
    fn a_clear_hides_older_rows_and_ignores_older_events() {
        let mut t = Loading::default();
        let up = |k: &str| Change::Upsert { key: k.into() };
        t.apply(5, up("a"), raw(json!(1)), None);
        t.apply(9, up("b"), raw(json!(2)), None);
        t.apply(7, Change::Clear, None, None);
        t.apply(6, up("c"), raw(json!(3)), None);
        // A clear applied twice is harmless.
        t.apply(7, Change::Clear, None, None);
        let table = t.into_table();
        assert_eq!(table.keys().cloned().collect::<Vec<_>>(), ["b"]);
    }
}
