//! A 3-node JetStream cluster partitioned with the `HERALD_EVENTS` leader in the minority.
//!
//! Every route goes through a TCP proxy per ordered pair of nodes (loopback has no iptables);
//! the partition blackholes the four links of the leader: connections stay open and silent,
//! bytes wait in the proxy (as packets wait in a real network) and flow again on heal.
//! A producer posts to an ingest connected to the majority side, retrying each event until
//! 2xx; a second ingest, connected only to the isolated leader, is posted to during the
//! partition. The promises: the majority elects a new leader and acknowledges again; the
//! isolated leader acknowledges nothing (no quorum: 503); after heal every acknowledged
//! event is in the stream exactly once, the old leader catches up, and an SSE client
//! connected to the majority's gateway throughout received every event once, in order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_core::streams::EVENTS_STREAM;
use herald_test_support::cluster::{NatsCluster, free_ports};
use herald_test_support::proxy::{Mode, Proxy};
use herald_test_support::wait;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cluster::{API_KEY, EVENTS, Flow, Seen, Services, r3_streams, stored};

/// The partition starts once this many events are acknowledged.
const CUT_AT: u64 = 40;
/// The whole scenario's bound.
const DEADLINE: Duration = Duration::from_secs(60);
/// How long the majority may take to elect a new stream leader (Raft election timeouts).
const ELECTION: Duration = Duration::from_secs(20);

/// A minority-side request: when it started and ended, and its status (0: no answer).
struct Attempt {
    id: String,
    started: Instant,
    ended: Instant,
    status: u16,
}

/// Posts distinct events to `ingest` one after another until `stop`.
async fn produce_minority(ingest: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Attempt> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut attempts = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = format!("min-{n:04}");
        let body = json!({"topic": "leads", "action": "insert", "id": id, "data": {"n": n}});
        let started = Instant::now();
        let resp = http
            .post(format!("http://{ingest}/v1/events"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await;
        let status = resp.map_or(0, |r| r.status().as_u16());
        attempts.push(Attempt {
            id,
            started,
            ended: Instant::now(),
            status,
        });
    }
    attempts
}

/// Whether the stream leader reports node `name` as a current (caught-up, online) replica.
async fn replica_current(js: &async_nats::jetstream::Context, name: &str) -> Option<bool> {
    let mut stream = js.get_stream(EVENTS_STREAM).await.ok()?;
    let info = stream.info().await.ok()?;
    let cluster = info.cluster.as_ref()?;
    let replica = cluster.replicas.iter().find(|r| r.name == name)?;
    Some(replica.current && !replica.offline)
}

fn urls(cluster: &NatsCluster, nodes: &[usize]) -> String {
    let urls: Vec<String> = nodes.iter().map(|i| cluster.node(*i).url()).collect();
    urls.join(",")
}

#[tokio::test]
async fn a_partitioned_stream_leader_acknowledges_nothing_and_no_acknowledged_event_is_lost() {
    herald_core::telemetry::init_for_tests();
    let outcome = tokio::time::timeout(DEADLINE, scenario()).await;
    assert!(outcome.is_ok(), "the scenario finishes within {DEADLINE:?}");
}

async fn scenario() {
    let started = Instant::now();
    // One proxy per ordered pair of nodes: node `from` dials node `to` through it.
    let ports = free_ports(3);
    let mut links: HashMap<(usize, usize), Proxy> = HashMap::new();
    for from in 0..3 {
        for to in (0..3).filter(|t| *t != from) {
            let upstream = SocketAddr::from(([127, 0, 0, 1], ports[to]));
            links.insert((from, to), Proxy::start(upstream).await.unwrap());
        }
    }
    let cluster = NatsCluster::start_routed(ports, |from, to| links[&(from, to)].url()).await;
    let cluster_up = started.elapsed();
    let (settings, js) = r3_streams(&cluster).await;
    let leader = cluster
        .stream_leader(&js, EVENTS_STREAM)
        .await
        .expect("a stream leader");
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let services = Services::start_on(
        urls(&cluster, &majority),
        &settings,
        urls(&cluster, &majority),
    )
    .await;
    let minority = Services::start_on(
        urls(&cluster, &[leader]),
        &settings,
        urls(&cluster, &[leader]),
    )
    .await;
    let mut majority_js = async_nats::jetstream::new(
        async_nats::ConnectOptions::new()
            .connect(
                majority
                    .iter()
                    .map(|i| cluster.node(*i).url())
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap(),
    );
    // Short requests: a STREAM.INFO that reaches the cut leader fails fast, and the next one
    // measures the election.
    majority_js.set_timeout(Duration::from_secs(1));

    let Flow {
        follower,
        seen: mut seen_rx,
        producer,
        mut progress,
    } = services.flow("partition-test");

    // Mid-flow: blackhole every link to and from the leader.
    progress.wait_for(|n| *n >= CUT_AT).await.unwrap();
    for ((from, to), link) in &links {
        if *from == leader || *to == leader {
            link.set_mode(Mode::Blackhole);
        }
    }
    let cut_at = Instant::now();
    let acked_at_cut = *progress.borrow();
    let stop = Arc::new(AtomicBool::new(false));
    let minority_producer = tokio::spawn(produce_minority(minority.ingest, Arc::clone(&stop)));

    // The majority elects a new leader and acknowledges the rest of the events.
    let new_leader = wait::until_ok("a new leader on the majority side", ELECTION, || async {
        match cluster.stream_leader(&majority_js, EVENTS_STREAM).await {
            Some(l) if l != leader => Ok(l),
            other => Err(format!("leader {other:?}")),
        }
    })
    .await;
    let elected_after = cut_at.elapsed();
    let produced = producer.await.unwrap();
    let all_acked_after = cut_at.elapsed();
    stop.store(true, Ordering::SeqCst);
    let attempts = minority_producer.await.unwrap();

    // The majority sees the old leader as lagging; heal, and wait until it is current again.
    let old = NatsCluster::name(leader);
    wait::until(
        "the majority to see the old leader lag",
        ELECTION,
        || async { replica_current(&majority_js, &old).await == Some(false) },
    )
    .await;
    let healed_at = Instant::now();
    for link in links.values() {
        link.set_mode(Mode::Forward);
    }
    wait::until("the old leader to catch up", ELECTION, || async {
        replica_current(&majority_js, &old).await == Some(true)
    })
    .await;
    let caught_up_after = healed_at.elapsed();

    check(
        &cluster,
        &produced,
        &attempts,
        (cut_at, healed_at),
        &mut seen_rx,
    )
    .await;
    assert!(
        acked_at_cut < EVENTS,
        "events were still flowing at the cut"
    );
    assert!(produced.retries > 0, "the partition refused some requests");
    follower.abort();
    eprintln!(
        "cluster ready in {cluster_up:?}; cut n{} after {acked_at_cut} acks; new leader n{} \
         elected {elected_after:?} after the cut; all {EVENTS} acknowledged {all_acked_after:?} \
         after it ({} refused and retried, longest outage {:?}); the isolated leader's ingest \
         answered {} requests, none 2xx; caught up {caught_up_after:?} after heal",
        leader + 1,
        new_leader + 1,
        produced.retries,
        produced.longest_outage,
        attempts.len(),
    );
    services.stop().await;
    minority.stop().await;
}

/// After heal: every acknowledged event stored exactly once at its acknowledged sequence, the
/// isolated leader acknowledged nothing while cut, and the SSE client got the stream in order.
async fn check(
    cluster: &NatsCluster,
    produced: &crate::cluster::Produced,
    attempts: &[Attempt],
    (cut_at, healed_at): (Instant, Instant),
    seen_rx: &mut mpsc::UnboundedReceiver<Seen>,
) {
    let during: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.started >= cut_at && a.ended <= healed_at)
        .collect();
    assert!(!during.is_empty(), "the minority side was asked");
    for a in &during {
        assert_ne!(
            a.status / 100,
            2,
            "{} acknowledged by the isolated leader",
            a.id
        );
    }
    let stored = stored(cluster).await;
    let mut count: HashMap<&str, u32> = HashMap::new();
    for (_, id) in &stored {
        *count.entry(id.as_str()).or_default() += 1;
    }
    assert!(count.values().all(|n| *n == 1), "an event stored twice");
    assert_eq!(produced.acked.len() as u64, EVENTS);
    for (id, seq) in &produced.acked {
        assert!(
            stored.contains(&(*seq, id.clone())),
            "{id} acknowledged at sequence {seq}, which holds it"
        );
    }
    let refused_stored = during.iter().filter(|a| count.contains_key(a.id.as_str()));
    assert_eq!(
        refused_stored.count(),
        0,
        "a refused minority event was stored"
    );
    assert_eq!(
        stored.len() as u64,
        EVENTS,
        "nothing but the acknowledged events"
    );

    let mut received = Vec::with_capacity(stored.len());
    let mut controls = Vec::new();
    while received.len() < stored.len() {
        match seen_rx.recv().await.expect("the follower runs") {
            Seen::Event(seq, id, _) => received.push((seq, id)),
            Seen::Control(name, data) => controls.push(format!("{name} {data}")),
        }
    }
    assert!(
        !controls.iter().any(|c| c.starts_with("reset")),
        "a reset would mean the cursor was lost: {controls:?}"
    );
    assert_eq!(
        received, stored,
        "SSE delivered the stream, in order, exactly once"
    );
}
