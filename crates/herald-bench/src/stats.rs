//! Scenario E: how fast the stats aggregator drains a backlog of CDC events into exact
//! counters in JetStream KV.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use herald_core::event::{Event, EventId};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_core::streams::StreamSettings;
use herald_stats::{App, Config};
use herald_test_support::{NatsServer, net};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::report::Report;

/// Parameters of scenario E.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// CDC events in the backlog.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Topics they spread over (one tenant), each grouped by `status`.
    #[arg(long, default_value_t = 10)]
    pub topics: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            events: 200_000,
            topics: 10,
        }
    }
}

/// Runs scenario E.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let nats = NatsServer::start().await;
    let js = nats.jetstream().await;
    herald_core::streams::provision(&js, &StreamSettings::default()).await?;

    // The backlog: Sequin-shaped inserts and updates with `changes`, pipelined 1,000 at a time.
    let statuses = ["new", "contacted", "won", "lost"];
    let mut last = vec![0u64; args.topics];
    for chunk in 0..args.events.div_ceil(1000) {
        let mut acks = Vec::with_capacity(1000);
        for i in chunk * 1000..((chunk + 1) * 1000).min(args.events) {
            let topic = i % args.topics;
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
            let ack = herald_core::publish::send_event(&js, &e).await?;
            acks.push((topic, ack));
        }
        for (topic, ack) in acks {
            last[topic] = ack.await?.sequence;
        }
    }

    let mut common = CommonConfig::default();
    common.nats.url = nats.url();
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "bench-stats", shutdown.clone()).await?;
    let cfg = Config {
        group_by: (0..args.topics)
            .map(|t| format!("t{t}.status").parse())
            .collect::<Result<_, _>>()?,
        ..Config::default()
    };
    let app = App::build(cfg, net::listener().await, ctx).await?;
    let metrics = app.metrics();
    let started = Instant::now();
    let task = tokio::spawn(app.run_until_stopped());
    let kv = herald_stats::store::bucket(&js).await?;
    let counted = counted_when_done(&kv, &last).await?;
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await??;

    Ok(Report::new("stats", serde_json::to_value(&args)?)
        .figure(
            "events aggregated/s",
            args.events as f64 / elapsed.as_secs_f64(),
            "events/s",
        )
        .figure("KV writes", metrics.writes.get() as f64, "writes")
        .check(
            "every event counted exactly once",
            counted == args.events as u64,
        ))
}

/// Waits until each topic's stats document has counted up to its last sequence in `last`
/// (5 minutes at most); returns the events counted over all topics.
async fn counted_when_done(
    kv: &async_nats::jetstream::kv::Store,
    last: &[u64],
) -> anyhow::Result<u64> {
    let mut counted = 0u64;
    for (t, seq) in last.iter().enumerate() {
        let topic = format!("t{t}").parse()?;
        let snap = tokio::time::timeout(Duration::from_secs(300), async {
            loop {
                let snap = herald_stats::read(kv, &"acme".parse()?, &topic).await?;
                if let Some(s) = snap.filter(|s| s.doc.last_seq >= *seq) {
                    return anyhow::Ok(s);
                }
                // The aggregator is in this process but offers no completion signal; its
                // KV document is the truth, polled under the deadline.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .context("aggregation did not finish within 5 minutes")??;
        counted += snap.doc.total;
    }
    Ok(counted)
}
