//! Scenario C: a reconnect storm. Every SSE client drops its connection at the same moment
//! and resumes with its cursor (`Last-Event-ID`) while events keep flowing: the time until
//! all have caught up, the JetStream consumers created meanwhile (counted from nats-server's
//! `$JS.EVENT.ADVISORY.CONSUMER.CREATED` advisories), and gaps and duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::crowd::Crowd;
use crate::report::Report;
use crate::stack::{Counts, Load, Stack, feed};

/// How long the storm may take to settle.
const DEADLINE: Duration = Duration::from_secs(120);

/// Parameters of scenario C: the clients, their groups, and the publish rate while the storm
/// happens.
pub type Args = Load;

/// Runs scenario C.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let layout = args.layout();
    let stack = Arc::new(Stack::start(layout).await?);
    let counts = Counts::new(layout.groups());
    let mut crowd = Crowd::sse(&stack, layout, args.clients).await?;

    let stop = CancellationToken::new();
    let feeding = {
        let (stack, counts, stop) = (Arc::clone(&stack), Arc::clone(&counts), stop.clone());
        tokio::spawn(async move { feed(&stack, &counts, Some(args.rate), u64::MAX, stop).await })
    };
    // Everyone live and receiving before the storm.
    let first = counts_at_least(&counts, 3).await?;
    crowd.wait_for(&first, DEADLINE).await?;

    let (created, counting, probe) = count_consumers(&stack).await?;
    let created_before = created.load(Ordering::Relaxed);
    let resumes_before = resumes(&stack).await?;

    // The storm: everyone drops at once and resumes; caught up = reconnected and holding
    // every event published before the drop.
    let want = counts.snapshot();
    crowd.drop_all();
    let layout_ = layout;
    let catch_up = crowd
        .wait_until(DEADLINE, |i, slot| {
            slot.connects.load(Ordering::Relaxed) >= 2
                && slot.next.load(Ordering::Relaxed) >= want[layout_.group_of(i)]
        })
        .await?;

    // Keep flowing a little, then check everything arrived exactly once.
    let latest = counts.snapshot().into_iter().max().unwrap_or(0);
    counts_at_least(&counts, latest + 10).await?;
    stop.cancel();
    feeding.await??;
    crowd.wait_for(&counts.snapshot(), DEADLINE).await?;
    let resumes_after = resumes(&stack).await?;
    stack.client.flush().await?;
    counting.abort();

    let board = &crowd.board;
    let storm = Storm {
        catch_up,
        consumers: created.load(Ordering::Relaxed) - created_before,
        reconnects: board.sum(|s| &s.connects) - args.clients as u64,
        resumes: (
            resumes_after.0 - resumes_before.0,
            resumes_after.1 - resumes_before.1,
        ),
        gaps: board.sum(|s| &s.gaps),
        dups: board.sum(|s| &s.duplicates),
        resets: board.sum(|s| &s.resets),
        probe,
    };
    crowd.finish().await?;
    Arc::try_unwrap(stack)
        .map_err(|_| anyhow::anyhow!("the stack is still shared"))?
        .stop()
        .await?;
    storm.report(&args)
}

/// Counts the JetStream consumers created from now on (from nats-server's advisories), and
/// proves the count works: one consumer of our own must show up (`false` if it did not).
async fn count_consumers(
    stack: &Stack,
) -> anyhow::Result<(Arc<AtomicU64>, tokio::task::JoinHandle<()>, bool)> {
    let created = Arc::new(AtomicU64::new(0));
    let mut advisories = stack
        .client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.CREATED.HERALD_EVENTS.>")
        .await?;
    stack.client.flush().await?;
    let counting = {
        let created = Arc::clone(&created);
        tokio::spawn(async move {
            while advisories.next().await.is_some() {
                created.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Prove the counter counts: one consumer of our own must show up before the storm.
    let js = async_nats::jetstream::new(stack.client.clone());
    js.get_stream(herald_core::streams::EVENTS_STREAM)
        .await?
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await?;
    let probe = tokio::time::timeout(DEADLINE, async {
        while created.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok();
    Ok((created, counting, probe))
}

/// What the storm measured.
struct Storm {
    catch_up: Duration,
    consumers: u64,
    reconnects: u64,
    /// Resumes (from memory, from JetStream) during the storm.
    resumes: (f64, f64),
    gaps: u64,
    dups: u64,
    resets: u64,
    /// The consumer counter was seen to count.
    probe: bool,
}

impl Storm {
    fn report(&self, args: &Args) -> anyhow::Result<Report> {
        let Self {
            catch_up,
            consumers,
            reconnects,
            resumes,
            gaps,
            dups,
            resets,
            probe,
        } = *self;
        Ok(Report::new("storm", serde_json::to_value(args)?)
            .figure(
                "time until every client caught up",
                catch_up.as_secs_f64() * 1000.0,
                "ms",
            )
            .figure("JetStream consumers created", consumers as f64, "consumers")
            .figure("reconnects", reconnects as f64, "connections")
            .figure("resumes from memory", resumes.0, "resumes")
            .figure("resumes from JetStream", resumes.1, "resumes")
            .figure("gaps", gaps as f64, "events")
            .figure("duplicates", dups as f64, "events")
            .check("consumer advisories are counted (probe seen)", probe)
            .check("no gaps", gaps == 0)
            .check("no duplicates", dups == 0)
            .check("no reset or overflow", resets == 0)
            .check(
                "every client reconnected",
                reconnects >= args.clients as u64,
            ))
    }
}

/// Waits until every group has at least `n` events published; returns the counts then.
async fn counts_at_least(counts: &Counts, n: u64) -> anyhow::Result<Vec<u64>> {
    let wait = async {
        loop {
            let now = counts.snapshot();
            if now.iter().all(|&c| c >= n) {
                return now;
            }
            // The publishers are paced; checking every few ms costs nothing.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .map_err(|_| anyhow::anyhow!("publishing stalled below {n} events per topic"))
}

/// The gateway's resumes served from memory and from JetStream so far.
async fn resumes(stack: &Stack) -> anyhow::Result<(f64, f64)> {
    let text = stack.gateway_metrics().await?;
    let value = |source: &str| {
        let key = format!("herald_gateway_resumes_total{{source=\"{source}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((value("memory"), value("jetstream")))
}
