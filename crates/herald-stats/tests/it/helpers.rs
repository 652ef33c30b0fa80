//! `TestApp` (the aggregator in-process on 127.0.0.1:0 against a real nats-server, one
//! method per endpoint), `Child` (the real binary, to SIGKILL), a CDC table model that emits
//! consistent events, and a plain recount of the stream to compare documents against.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig, kv};
use futures::StreamExt;
use herald_core::event::{Event, EventId};
use herald_core::names::{TenantId, Topic};
use herald_core::streams::{EVENTS_STREAM, StreamSettings};
use herald_core::subject;
use herald_stats::{App, Config, StatsDoc};
pub use herald_test_support::NatsServer;
use herald_test_support::process::{ServiceProcess, ServiceSpec};
use herald_test_support::service::{self, TestService};
use serde_json::{Value, json};

/// How long any awaited condition may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The config every test starts from: `leads.status` grouped, short flush interval.
pub fn test_config() -> Config {
    Config {
        group_by: vec!["leads.status".parse().unwrap()],
        flush_interval: Duration::from_millis(20),
        retry_delay: Duration::from_millis(200),
        ..Config::default()
    }
}

pub fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

pub fn topic(s: &str) -> Topic {
    s.parse().unwrap()
}

/// A NATS server with Herald's streams and bucket provisioned.
pub async fn nats() -> NatsServer {
    herald_core::telemetry::init_for_tests();
    let nats = NatsServer::start().await;
    herald_core::streams::provision(&nats.jetstream().await, &StreamSettings::default())
        .await
        .unwrap();
    nats
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    service: TestService<App>,
}

impl TestApp {
    /// The aggregator against `url` (which need not be reachable).
    pub async fn spawn(url: &str, cfg: Config) -> Self {
        Self::spawn_with_state(url, cfg, herald_core::state::StateConfig::default()).await
    }

    /// The aggregator against `url` with collections declared in `state`.
    pub async fn spawn_with_state(
        url: &str,
        cfg: Config,
        state: herald_core::state::StateConfig,
    ) -> Self {
        herald_core::telemetry::init_for_tests();
        let mut common = service::common_config_at(url);
        common.state = state;
        let service = TestService::start_with(cfg, &common).await;
        Self {
            base: service.url(""),
            http: reqwest::Client::new(),
            service,
        }
    }

    pub async fn healthz(&self) -> reqwest::Response {
        self.get("/healthz").await
    }

    pub async fn readyz(&self) -> reqwest::Response {
        self.get("/readyz").await
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// One counter or gauge from `/metrics` (0 if absent).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Waits (under a deadline) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        eventually("readyz 200", || async {
            self.readyz().await.status() == 200
        })
        .await;
    }

    /// Cancels the shutdown token and waits for the app to finish its batch and return.
    pub async fn stop(mut self) {
        self.service.stop(DEADLINE).await;
    }
}

/// The real `herald-stats` binary on `url`: counting `leads` by `status`, flushing every 20 ms,
/// and (messages pulled but not yet folded at a kill stay unacknowledged until ack_wait, 30 s
/// by default, and are then redelivered) a short ack_wait.
pub fn stats_spec(url: &str) -> ServiceSpec {
    ServiceSpec::new("stats", env!("CARGO_BIN_EXE_herald-stats"))
        .env("HERALD_NATS__URL", url)
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_GROUP_BY", r#"["leads.status"]"#)
        .env("HERALD_FLUSH_INTERVAL", "20ms")
        .env("HERALD_ACK_WAIT", "2s")
}

/// The real `herald-stats` binary as a child process (killed on drop).
pub struct Child(ServiceProcess);

impl Child {
    pub fn spawn(url: &str) -> Self {
        Self(herald_test_support::process::spawn(stats_spec(url)))
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(mut self) {
        self.0.kill().await;
    }
}

/// Polls `cond` until it holds, failing the test after [`DEADLINE`].
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    herald_test_support::wait::until(what, DEADLINE, &mut cond).await;
}

pub async fn bucket(js: &jetstream::Context) -> kv::Store {
    herald_stats::store::bucket(js).await.unwrap()
}

/// The document of `t`/`p`; `None` while there is none (or while a test's garbage value
/// has not been recounted over yet).
pub async fn doc(kv: &kv::Store, t: &str, p: &str) -> Option<StatsDoc> {
    match herald_stats::read(kv, &tenant(t), &topic(p)).await {
        Err(herald_stats::store::StoreError::Decode { .. }) => None,
        other => other.unwrap().map(|s| s.doc),
    }
}

/// Waits until the document of `t`/`p` has counted up to stream sequence `seq`.
pub async fn doc_at(kv: &kv::Store, t: &str, p: &str, seq: u64) -> StatsDoc {
    eventually(&format!("{t}.{p} at seq {seq}"), || async {
        doc(kv, t, p).await.is_some_and(|d| d.last_seq >= seq)
    })
    .await;
    doc(kv, t, p).await.unwrap()
}

/// Publishes events the way ingest does (Nats-Msg-Id, await every PubAck), pipelined;
/// returns their stream sequences.
pub async fn publish(js: &jetstream::Context, events: &[Event]) -> Vec<u64> {
    let mut acks = Vec::with_capacity(events.len());
    for e in events {
        acks.push(herald_core::publish::send_event(js, e).await.unwrap());
    }
    let mut seqs = Vec::with_capacity(acks.len());
    for ack in acks {
        seqs.push(ack.await.unwrap().sequence);
    }
    seqs
}

/// A table whose rows change at random, emitting the CDC events Sequin would: `data` is the
/// row (the deleted row for deletes), `changes` the previous values of changed columns.
pub struct Table {
    pub tenant: TenantId,
    pub topic: Topic,
    next_id: u64,
    rows: BTreeMap<u64, Value>,
    emitted: u64,
}

/// Status values, including ones that land in documented buckets.
const STATUSES: [Option<&str>; 7] = [
    Some("new"),
    Some("contacted"),
    Some("won"),
    Some("lost"),
    None,
    Some("null"),
    Some("7"),
];

impl Table {
    pub fn new(t: &str, p: &str) -> Self {
        Self {
            tenant: tenant(t),
            topic: topic(p),
            next_id: 1,
            rows: BTreeMap::new(),
            emitted: 0,
        }
    }

    fn status(n: u8) -> Option<Value> {
        match STATUSES[n as usize % STATUSES.len()] {
            None => None,
            Some("null") => Some(Value::Null),
            Some("7") => Some(json!(7)),
            Some(s) => Some(json!(s)),
        }
    }

    /// The event for one operation: `op` 0–3 insert, 4–7 update, 8 delete, 9 a non-CDC verb;
    /// `pick` chooses the row, `status` the new status.
    pub fn op(&mut self, op: u8, pick: u16, status: u8) -> Event {
        let ids: Vec<u64> = self.rows.keys().copied().collect();
        let op = if ids.is_empty() && (4..=8).contains(&op) {
            0
        } else {
            op
        };
        let id = ids.get(pick as usize % ids.len().max(1)).copied();
        let (action, data, changes) = match (op, id) {
            (4..=7, Some(id)) => {
                let row = self.rows.get_mut(&id).unwrap();
                let old = row.clone();
                // A row without the column (not CDC-shaped) only ever changes other columns:
                // `changes` could not say "was absent".
                let changes = if status.is_multiple_of(3) || old.get("status").is_none() {
                    row["score"] = json!(u64::from(pick));
                    json!({"score": old["score"]})
                } else {
                    row["status"] = Self::status(status).unwrap_or(Value::Null);
                    // Sequin lists a column in `changes` only if its value changed.
                    let mut changes = json!({});
                    if old.get("status") != row.get("status") {
                        changes["status"] = old.get("status").cloned().unwrap_or(Value::Null);
                    }
                    changes
                };
                ("update", row.clone(), Some(changes))
            }
            (8, Some(id)) => ("delete", self.rows.remove(&id).unwrap(), None),
            (9, _) => ("viewed", json!({"id": id}), None),
            _ => {
                let id = self.next_id;
                self.next_id += 1;
                let mut row = json!({"id": id, "score": 0});
                if let Some(v) = Self::status(status) {
                    row["status"] = v;
                }
                self.rows.insert(id, row.clone());
                ("insert", row, None)
            }
        };
        self.emitted += 1;
        let mut e = Event::new(
            EventId::parse(format!("{}-{}", self.topic, self.emitted)).unwrap(),
            self.tenant.clone(),
            self.topic.clone(),
            action.parse().unwrap(),
            "/test",
            data,
        );
        e.changes = changes;
        e
    }

    /// `n` random operations.
    pub fn random(&mut self, rng: &mut impl rand::Rng, n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| self.op(rng.gen_range(0..10), rng.r#gen(), rng.r#gen()))
            .collect()
    }
}

/// What a plain recount of the stream says one document must hold.
#[derive(Debug, PartialEq)]
pub struct Recount {
    pub last_seq: u64,
    pub total: u64,
    pub by_action: BTreeMap<String, u64>,
    pub rows: i64,
    pub status: BTreeMap<String, i64>,
}

impl Recount {
    pub fn of(doc: &StatsDoc) -> Self {
        Self {
            last_seq: doc.last_seq,
            total: doc.total,
            by_action: doc.by_action.clone(),
            rows: doc.rows,
            status: doc.group_by.get("status").cloned().unwrap_or_default(),
        }
    }
}

/// Replays every event of `t`/`p` in the stream into a table keyed by `data.id` and counts
/// the live rows by status (for `leads`): no transitions, no increments — just the final
/// table.
pub async fn recount(js: &jetstream::Context, t: &str, p: &str) -> Recount {
    let stream = js.get_stream(EVENTS_STREAM).await.unwrap();
    let filter = subject::topic_filter(&tenant(t), &topic(p));
    let expected = stream.info_with_subjects(&filter).await.unwrap();
    let count: u64 = expected
        .map(|r| r.unwrap().1 as u64)
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum();
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut rc = Recount {
        last_seq: 0,
        total: 0,
        by_action: BTreeMap::new(),
        rows: 0,
        status: BTreeMap::new(),
    };
    let mut table: BTreeMap<String, Value> = BTreeMap::new();
    while rc.total < count {
        let msg = tokio::time::timeout(DEADLINE, messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let event: Event = serde_json::from_slice(&msg.payload).unwrap();
        rc.last_seq = msg.info().unwrap().stream_sequence;
        rc.total += 1;
        *rc.by_action.entry(event.action.to_string()).or_default() += 1;
        let id = event.data["id"].to_string();
        match event.action.as_str() {
            "insert" | "read" | "update" => drop(table.insert(id, event.data)),
            "delete" => drop(table.remove(&id)),
            _ => {}
        }
    }
    rc.rows = table.len() as i64;
    // Only `leads.status` is configured (see `test_config`).
    for row in table.values().filter(|_| p == "leads") {
        *rc.status
            .entry(herald_stats::fold::label(row.get("status")))
            .or_default() += 1;
    }
    rc
}
