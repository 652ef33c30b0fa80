//! Aggregation throughput: how fast the aggregator drains a backlog of CDC events.
//!
//! `cargo run --release -p herald-stats --example throughput -- [events] [topics]`
//!
//! Starts a real nats-server on 127.0.0.1 (temp store), publishes `events` (default 200000)
//! Sequin-shaped CDC events spread over `topics` (default 10) topics of one tenant, with
//! `status` grouped, then starts the aggregator and times until every document has counted
//! its last event. Bounded and loopback-only.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use herald_core::event::{Event, EventId};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_core::streams::StreamSettings;
use herald_stats::{App, Config};
use herald_test_support::{NatsServer, net};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let topics: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    herald_core::streams::provision(&js, &StreamSettings::default()).await?;

    let statuses = ["new", "contacted", "won", "lost"];
    let started = Instant::now();
    let mut last = vec![0u64; topics];
    for chunk in 0..events.div_ceil(1000) {
        let mut acks = Vec::with_capacity(1000);
        for i in chunk * 1000..((chunk + 1) * 1000).min(events) {
            let topic = i % topics;
            let action = if i % 3 == 0 { "insert" } else { "update" };
            let mut e = Event::new(
                EventId::parse(format!("e{i}"))?,
                "acme".parse()?,
                format!("t{topic}").parse()?,
                action.parse()?,
                "/bench",
                json!({"id": i / 3, "status": statuses[i % 4]}),
            );
            e.changes = (action == "update").then(|| json!({"status": statuses[(i + 1) % 4]}));
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.msg_id().as_str());
            acks.push((
                topic,
                js.publish_with_headers(e.subject(), headers, e.to_bytes())
                    .await?,
            ));
        }
        for (topic, ack) in acks {
            last[topic] = ack.await?.sequence;
        }
    }
    eprintln!("published {events} events in {:?}", started.elapsed());

    let mut common = CommonConfig::default();
    common.nats.url = nats.url();
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "stats-bench", shutdown.clone()).await?;
    let cfg = Config {
        group_by: (0..topics)
            .map(|t| format!("t{t}.status").parse())
            .collect::<Result<_, _>>()?,
        ..Config::default()
    };
    let app = App::build(cfg, net::listener().await, ctx).await?;
    let metrics = app.metrics();
    let started = Instant::now();
    let task = tokio::spawn(app.run_until_stopped());
    let kv = herald_stats::store::bucket(&js).await?;
    for (t, seq) in last.iter().enumerate() {
        let topic = format!("t{t}").parse()?;
        tokio::time::timeout(Duration::from_secs(600), async {
            loop {
                let snap = herald_stats::read(&kv, &"acme".parse()?, &topic).await?;
                if snap.is_some_and(|s| s.doc.last_seq >= *seq) {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .context("aggregation did not finish within 10 minutes")??;
    }
    let elapsed = started.elapsed();
    println!(
        "aggregated {events} events over {topics} topics in {elapsed:?}: {:.0} events/s ({} writes)",
        events as f64 / elapsed.as_secs_f64(),
        metrics.writes.get(),
    );
    shutdown.cancel();
    task.await??;
    Ok(())
}
