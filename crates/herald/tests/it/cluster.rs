//! A real 3-node JetStream cluster with R3 streams: the stream leader is SIGKILLed while
//! events flow producer → ingest → HERALD_EVENTS → gateway → an SSE client, and nothing is
//! lost, duplicated or reordered.
//!
//! The producer retries each event (same id) until ingest answers 2xx, as Sequin or any
//! webhook sender does; the SSE client reconnects with `Last-Event-ID`, as EventSource does.
//! Both services get every node's URL and fail over by themselves. A second test connects the
//! gateway only to the surviving nodes, so its ordered consumer dies with the leader while its
//! connection lives: the gateway must notice the stall and follow the new leader in seconds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt;
use herald_core::service::CommonConfig;
use herald_core::streams::{EVENTS_STREAM, StreamSettings};
use herald_test_support::cluster::NatsCluster;
use herald_test_support::wait;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::services::{self, InProcess};
use crate::sse;

pub(crate) const TENANT: &str = "acme";
pub(crate) const API_KEY: &str = "cluster-api-key";
pub(crate) const JWT_SECRET: &str = "cluster-jwt-secret";
/// Events the producer sends in all.
pub(crate) const EVENTS: u64 = 200;
/// The stream leader is killed once this many events are acknowledged.
const KILL_AT: u64 = 60;
/// The whole scenario's bound.
const DEADLINE: Duration = Duration::from_secs(60);
/// A producer's pause before retrying an event ingest refused (503 while JetStream elects a
/// new leader): producer behaviour, not synchronisation.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Ingest and gateway in-process on the cluster.
pub(crate) struct Services {
    pub(crate) ingest: SocketAddr,
    pub(crate) gateway: SocketAddr,
    services: InProcess,
}

impl Services {
    /// Ingest gets every node's URL; the gateway gets `gateway_url`.
    async fn start(cluster: &NatsCluster, settings: &StreamSettings, gateway_url: String) -> Self {
        Self::start_on(cluster.url(), settings, gateway_url).await
    }

    /// Ingest on `ingest_url`, the gateway on `gateway_url`.
    pub(crate) async fn start_on(
        ingest_url: String,
        settings: &StreamSettings,
        gateway_url: String,
    ) -> Self {
        let mut common = CommonConfig::default();
        common.nats.url = ingest_url;
        common.nats.request_timeout = Duration::from_secs(2);
        common.stream = settings.clone();
        let mut services = InProcess::new(common);

        let ingest_cfg = herald_ingest::Config {
            publish_timeout: Duration::from_secs(2),
            ..services::ingest_config(TENANT, API_KEY)
        };
        let ingest = services.start::<herald_ingest::App>(ingest_cfg, None).await;

        let gateway_cfg = herald_gateway::Config {
            connection_check: Duration::from_millis(50),
            stream_check: Duration::from_millis(200),
            retry_base: Duration::from_millis(100),
            retry_jitter: Duration::from_millis(50),
            ..services::gateway_config(JWT_SECRET)
        };
        let gateway = services
            .start::<herald_gateway::App>(gateway_cfg, Some(&gateway_url))
            .await;
        services.wait_all_ready().await;
        Self {
            ingest,
            gateway,
            services,
        }
    }

    pub(crate) async fn stop(self) {
        self.services.stop().await;
    }

    /// Starts the flow: an SSE client following `leads` (as `sub`) and the producer.
    pub(crate) fn flow(&self, sub: &str) -> Flow {
        let token = services::token(JWT_SECRET, sub, TENANT, &["leads"]);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (progress_tx, progress) = watch::channel(0);
        Flow {
            follower: tokio::spawn(follow(self.gateway, token, seen_tx)),
            seen,
            producer: tokio::spawn(produce(self.ingest, progress_tx)),
            progress,
        }
    }
}

/// Provisions the streams with three replicas on `cluster`; their settings and a JetStream
/// context on the cluster.
pub(crate) async fn r3_streams(
    cluster: &NatsCluster,
) -> (StreamSettings, async_nats::jetstream::Context) {
    let settings = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    let js = cluster.jetstream().await;
    herald_core::streams::provision(&js, &settings)
        .await
        .expect("R3 streams on the cluster");
    (settings, js)
}

/// An SSE client and a producer running against [`Services`].
pub(crate) struct Flow {
    /// The SSE client.
    pub(crate) follower: JoinHandle<()>,
    /// What it saw.
    pub(crate) seen: mpsc::UnboundedReceiver<Seen>,
    /// The producer.
    pub(crate) producer: JoinHandle<Produced>,
    /// How many events are acknowledged so far.
    pub(crate) progress: watch::Receiver<u64>,
}

/// What the producer learned: each acknowledged event id with the sequence ingest reported.
#[derive(Debug, Default)]
pub(crate) struct Produced {
    pub(crate) acked: Vec<(String, u64)>,
    /// Requests that ingest refused (or that failed) and were retried.
    pub(crate) retries: u64,
    /// From the first refused request to the next acknowledged one, at most.
    pub(crate) longest_outage: Duration,
}

/// Posts `EVENTS` events one after another, each retried with the same id until 2xx.
/// Reports the number acknowledged so far on `progress`.
pub(crate) async fn produce(ingest: SocketAddr, progress: watch::Sender<u64>) -> Produced {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut produced = Produced::default();
    for n in 0..EVENTS {
        let id = format!("evt-{n:04}");
        let body = json!({"topic": "leads", "action": "insert", "id": id, "data": {"n": n}});
        let mut refused_since = None;
        loop {
            let resp = http
                .post(format!("http://{ingest}/v1/events"))
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    let stored: serde_json::Value = r.json().await.unwrap();
                    let seq = stored["events"][0]["seq"].as_u64().unwrap();
                    produced.acked.push((id, seq));
                    if let Some(since) = refused_since {
                        let outage = Instant::now() - since;
                        produced.longest_outage = produced.longest_outage.max(outage);
                    }
                    break;
                }
                Ok(r) => assert_eq!(r.status(), 503, "only unavailability is retried"),
                Err(_) => {} // a timeout or a dropped connection: retry, as a producer would
            }
            produced.retries += 1;
            refused_since.get_or_insert_with(Instant::now);
            // A producer's back-off before retrying (part of the scenario, not a wait).
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        progress.send_replace(n + 1);
    }
    produced
}

/// What the SSE client saw: an event's (sequence, id), or a control message's name and data.
#[derive(Debug)]
pub(crate) enum Seen {
    /// An event's sequence and id, and when the client received it.
    Event(u64, String, Instant),
    Control(String, String),
}

/// Follows `/v1/stream` like EventSource: on `reconnect`, end of stream or error, it
/// reconnects with `Last-Event-ID`. Reports everything it sees on `seen`.
pub(crate) async fn follow(gateway: SocketAddr, token: String, seen: mpsc::UnboundedSender<Seen>) {
    let http = reqwest::Client::new();
    let mut last_id: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("http://{gateway}/v1/stream?topics=leads"))
            .bearer_auth(&token);
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id);
        }
        if let Ok(resp) = req.send().await
            && resp.status().is_success()
        {
            let mut reader = sse::Reader::new(resp);
            while let Ok(Some(msg)) = reader.next().await {
                if msg.id.is_some() {
                    last_id.clone_from(&msg.id);
                }
                let Some(name) = msg.event.clone() else {
                    let id = msg.json()["id"].as_str().unwrap().to_owned();
                    if seen
                        .send(Seen::Event(msg.seq(), id, Instant::now()))
                        .is_err()
                    {
                        return;
                    }
                    continue;
                };
                if seen.send(Seen::Control(name.clone(), msg.data)).is_err() {
                    return;
                }
                if name == "reconnect" || name == "overflow" {
                    break;
                }
            }
        }
        // EventSource's reconnection delay (part of the scenario, not a wait).
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Every event in `HERALD_EVENTS`, in order: (sequence, event id). Retried under a deadline:
/// right after a node died, the JetStream API may still be electing its own (meta) leader.
pub(crate) async fn stored(cluster: &NatsCluster) -> Vec<(u64, String)> {
    let js = cluster.jetstream().await;
    wait::until_ok(
        "HERALD_EVENTS to be readable",
        Duration::from_secs(20),
        || async { read_stream(&js).await.map_err(|err| format!("{err:#}")) },
    )
    .await
}

async fn read_stream(js: &async_nats::jetstream::Context) -> anyhow::Result<Vec<(u64, String)>> {
    let mut stream = js.get_stream(EVENTS_STREAM).await?;
    let total = stream.info().await?.state.messages;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?.take(total as usize);
    let mut out = Vec::new();
    while let Some(msg) = messages.next().await {
        let msg = msg?;
        let event: serde_json::Value = serde_json::from_slice(&msg.payload)?;
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        out.push((msg.info().map_err(anyhow::Error::msg)?.stream_sequence, id));
    }
    Ok(out)
}

#[tokio::test]
async fn killing_the_stream_leader_mid_flow_loses_and_duplicates_nothing() {
    herald_core::telemetry::init_for_tests();
    let outcome = tokio::time::timeout(DEADLINE, scenario(false)).await;
    assert!(outcome.is_ok(), "the scenario finishes within {DEADLINE:?}");
}

/// When the node leading HERALD_EVENTS dies but the gateway's own NATS connection survives,
/// its ordered consumer (which lived on the dead leader) goes silent without an error. The
/// gateway's stream check sees the stream move on while nothing arrives and restarts the
/// consumer from its head (before the fix: 10 to 31 s of silence while clients were told
/// `live`).
#[tokio::test]
async fn the_gateway_follows_a_new_stream_leader_within_seconds() {
    herald_core::telemetry::init_for_tests();
    let lag = tokio::time::timeout(DEADLINE, scenario(true))
        .await
        .expect("the scenario finishes");
    assert!(
        lag <= MAX_DELIVERY_LAG,
        "SSE delivery lagged ingest by {lag:?} after the failover"
    );
}

/// How much later than ingest's last acknowledgement the SSE client may have every event.
const MAX_DELIVERY_LAG: Duration = Duration::from_secs(5);

/// Runs the scenario; returns how long after ingest acknowledged the last event the SSE
/// client had received it. With `gateway_avoids_leader`, the gateway is connected only to
/// the nodes that survive, so its connection never drops.
async fn scenario(gateway_avoids_leader: bool) -> Duration {
    let started = Instant::now();
    let mut cluster = NatsCluster::start(3).await;
    let cluster_up = started.elapsed();
    let (settings, js) = r3_streams(&cluster).await;
    let initial_leader = cluster.stream_leader(&js, EVENTS_STREAM).await;
    let gateway_url = match initial_leader {
        Some(leader) if gateway_avoids_leader => (0..cluster.len())
            .filter(|i| *i != leader)
            .map(|i| cluster.node(i).url())
            .collect::<Vec<_>>()
            .join(","),
        _ => cluster.url(),
    };
    let services = Services::start(&cluster, &settings, gateway_url).await;
    let info = js
        .get_stream(EVENTS_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.num_replicas, 3);

    let Flow {
        follower,
        seen: mut seen_rx,
        producer,
        mut progress,
    } = services.flow("cluster-test");

    // Mid-flow: kill the node leading HERALD_EVENTS (any node if no leader is reported).
    progress.wait_for(|n| *n >= KILL_AT).await.unwrap();
    let leader = cluster.stream_leader(&js, EVENTS_STREAM).await;
    let victim = leader.unwrap_or(0);
    if gateway_avoids_leader {
        assert_eq!(
            leader, initial_leader,
            "the stream leader did not move before the kill"
        );
    }
    cluster.kill(victim).await;
    let acked_at_kill = *progress.borrow();

    let killed_at = Instant::now();
    let produced = producer.await.unwrap();
    let produced_after = killed_at.elapsed();
    assert!(
        acked_at_kill < EVENTS,
        "events were still flowing when the node died"
    );

    // Every acknowledged event is in the stream exactly once, and nothing else is.
    let stored = stored(&cluster).await;
    let acked: HashSet<&str> = produced.acked.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(acked.len() as u64, EVENTS, "every event was acknowledged");
    assert_eq!(
        stored.len() as u64,
        EVENTS,
        "stored exactly once each (retries deduplicated); {} retries",
        produced.retries
    );
    let stored_ids: HashSet<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        stored_ids, acked,
        "the stream holds exactly the acknowledged events"
    );
    for (id, seq) in &produced.acked {
        assert!(
            stored.contains(&(*seq, id.clone())),
            "{id} acknowledged at sequence {seq}, which holds it"
        );
    }

    // The SSE client got every one, in stream order, with no gap and no duplicate.
    let (mut received, mut controls) = (Vec::with_capacity(stored.len()), Vec::new());
    // When the client had the last event: taken as it arrived, so the time this test spends
    // reading the stream itself (above) is not counted against the gateway.
    let mut last_arrival = killed_at;
    while received.len() < stored.len() {
        match seen_rx.recv().await.expect("the follower runs") {
            Seen::Event(seq, id, at) => {
                received.push((seq, id));
                last_arrival = last_arrival.max(at);
            }
            Seen::Control(name, data) => controls.push(format!("{name} {data}")),
        }
    }
    let delivered_after = last_arrival.duration_since(killed_at);
    assert!(
        !controls.iter().any(|c| c.starts_with("reset")),
        "a reset would mean the cursor was lost: {controls:?}"
    );
    assert_eq!(
        received, stored,
        "SSE delivered the stream, in order, exactly once"
    );
    let seqs: Vec<u64> = received.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>(), "no gap");
    follower.abort();

    eprintln!(
        "cluster ready in {cluster_up:?}; killed {} (stream leader: {}) after {acked_at_kill} \
         acks; ingest refused {} requests, longest outage {:?}; all acknowledged {produced_after:?} \
         and all delivered over SSE {delivered_after:?} after the kill; the SSE client saw \
         {controls:?}",
        NatsCluster::name(victim),
        leader.is_some(),
        produced.retries,
        produced.longest_outage,
    );
    services.stop().await;
    delivered_after.saturating_sub(produced_after)
}
