//! Scenarios A (fan-out) and B (idle memory), each with its peer in the same run:
//! nats-server's own WebSocket listener delivering the same events to the same number of
//! WebSocket clients subscribed to the subjects.
//!
//! For each side: open N clients (B: the server's RSS before and after, per connection),
//! then publish through ingest at a steady `rate` for `seconds` (A: deliveries/s, latency
//! from the publish time carried in each event, server CPU), then a burst of `burst` events
//! per group as fast as ingest takes them (A: the most deliveries/s).
//!
//! Between the two, the floor ([`RawWriter`]): the same clients and events, one thread doing
//! nothing but a blocking write of a pre-built frame to every socket; the gateway's latency,
//! CPU per delivery and burst rate are also reported as ratios to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::crowd::Crowd;
use crate::proc::{CpuMeter, rss_kib};
use crate::rawwriter::RawWriter;
use crate::report::Report;
use crate::stack::{Counts, Load, Stack, feed};
use crate::track::percentiles;

/// How long deliveries may trail the last publish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

/// Parameters of scenarios A and B.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Clients, groups and steady rate.
    #[command(flatten)]
    #[serde(flatten)]
    pub load: Load,
    /// How long the steady phase lasts, seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Events per (tenant, topic) in the burst phase.
    #[arg(long, default_value_t = 100)]
    pub burst: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            load: Load::default(),
            seconds: 10,
            burst: 100,
        }
    }
}

/// One side's figures.
#[derive(Debug, Default)]
struct Side {
    rss_per_conn_kib: f64,
    steady_rate: f64,
    steady_cpu: f64,
    latency_ms: [f64; 4],
    burst_rate: f64,
    burst_cpu: f64,
    burst_cpu_us: f64,
    steady_cpu_us: f64,
    steady_generator_cpu: f64,
    burst_generator_cpu: f64,
    rss_kib: u64,
    gaps: u64,
    duplicates: u64,
    resets: u64,
    bytes_per_delivery: f64,
}

/// Runs A and B; returns their reports.
pub async fn run(args: Args) -> anyhow::Result<Vec<Report>> {
    let layout = args.load.layout();
    let stack = Stack::start(layout).await?;
    let counts = Counts::new(layout.groups());

    let before = rss_kib(stack.gateway_pid)?;
    let crowd = Crowd::sse(&stack, layout, args.load.clients).await?;
    let stack_arc = Arc::new(stack);
    let herald = side(
        &stack_arc,
        crowd,
        &counts,
        ("gateway", stack_arc.gateway_pid),
        before,
        &args,
    )
    .await?;
    let mut stack =
        Arc::try_unwrap(stack_arc).map_err(|_| anyhow::anyhow!("the stack is still shared"))?;
    stack.stop_gateway().await?;

    // The raw writer serves its sockets from this process, next to the clients: both ends
    // must fit under the open-file limit (20,000 here).
    let fits = 2 * args.load.clients + 1_000 <= crate::proc::open_file_limit();
    let (floor, stack) = if fits {
        let (floor, stack) = raw_side(stack, &counts, &args).await?;
        (Some(floor), stack)
    } else {
        eprintln!(
            "raw writer skipped: {} clients and as many server sockets exceed this process's \
             open-file limit; run with --clients {} or fewer for the floor",
            args.load.clients,
            crate::proc::open_file_limit().saturating_sub(1_000) / 2
        );
        (None, stack)
    };

    let before = rss_kib(stack.nats_pid)?;
    let crowd = Crowd::nats_ws(&stack, layout, args.load.clients).await?;
    let stack_arc = Arc::new(stack);
    let peer = side(
        &stack_arc,
        crowd,
        &counts,
        ("nats-server", stack_arc.nats_pid),
        before,
        &args,
    )
    .await?;
    Arc::try_unwrap(stack_arc)
        .map_err(|_| anyhow::anyhow!("the stack is still shared"))?
        .stop()
        .await?;

    reports(&args, &herald, floor.as_ref(), &peer)
}

/// The reports of A and B from each side's figures.
fn reports(
    args: &Args,
    herald: &Side,
    floor: Option<&Side>,
    peer: &Side,
) -> anyhow::Result<Vec<Report>> {
    let params = serde_json::to_value(args)?;
    let fanout = burst_figures(Report::new("fanout", params.clone()), herald, peer);
    let fanout = nats_steady_figures(gateway_steady_figures(fanout, herald), peer);
    let fanout = match floor {
        Some(floor) => floor_figures(fanout, herald, floor).check(
            "raw writer: no gaps, no duplicates",
            floor.gaps + floor.duplicates == 0,
        ),
        None => fanout.figure(
            "gateway bytes per delivery (steady, on the wire)",
            herald.bytes_per_delivery,
            "bytes",
        ),
    };
    let fanout = fanout
        .check("gateway: no gaps", herald.gaps == 0)
        .check("gateway: no duplicates", herald.duplicates == 0)
        .check("gateway: no reset or overflow", herald.resets == 0)
        .check("nats-server WS: no duplicates", peer.duplicates == 0);
    let idle = Report::new("idle", params)
        .figure(
            "gateway RSS per idle SSE connection",
            herald.rss_per_conn_kib,
            "KiB",
        )
        .figure(
            "nats-server RSS per idle WS connection",
            peer.rss_per_conn_kib,
            "KiB",
        );
    Ok(vec![fanout, idle])
}

/// The floor's side: the same clients and events, one thread writing pre-built frames.
async fn raw_side(
    stack: Stack,
    counts: &Arc<Counts>,
    args: &Args,
) -> anyhow::Result<(Side, Stack)> {
    let layout = args.load.layout();
    let raw = RawWriter::start(&stack.client, layout).await?;
    let paths = (0..args.load.clients)
        .map(|i| format!("/raw?g={}", layout.group_of(i)))
        .collect();
    let crowd = Crowd::sse_to(raw.addr, paths, layout).await?;
    let stack = Arc::new(stack);
    let floor = side(&stack, crowd, counts, ("raw writer", raw.tid), 0, args).await?;
    raw.stop().await?;
    let stack = Arc::try_unwrap(stack).map_err(|_| anyhow::anyhow!("the stack is still shared"))?;
    Ok((floor, stack))
}

/// The burst phase's figures, both sides.
fn burst_figures(report: Report, herald: &Side, peer: &Side) -> Report {
    report
        .figure(
            "gateway SSE deliveries/s (burst)",
            herald.burst_rate,
            "msg/s",
        )
        .figure(
            "nats-server WS deliveries/s (burst)",
            peer.burst_rate,
            "msg/s",
        )
        .figure(
            "gateway / nats-server (burst)",
            herald.burst_rate / peer.burst_rate,
            "x",
        )
        .figure("gateway CPU (burst)", herald.burst_cpu, "% of a core")
        .figure(
            "gateway CPU per delivery (burst)",
            herald.burst_cpu_us,
            "µs",
        )
        .figure(
            "nats-server CPU per delivery (burst)",
            peer.burst_cpu_us,
            "µs",
        )
        .figure(
            "nats-server CPU (burst, incl. JetStream)",
            peer.burst_cpu,
            "% of a core",
        )
        .figure(
            "load generator CPU (gateway burst)",
            herald.burst_generator_cpu,
            "% of a core",
        )
        .figure(
            "load generator CPU (nats-server burst)",
            peer.burst_generator_cpu,
            "% of a core",
        )
}

/// The gateway's steady-phase figures.
fn gateway_steady_figures(report: Report, herald: &Side) -> Report {
    let [hp50, hp99, hp999, hmax] = herald.latency_ms;
    report
        .figure(
            "gateway SSE deliveries/s (steady)",
            herald.steady_rate,
            "msg/s",
        )
        .figure("gateway latency p50 (steady)", hp50, "ms")
        .figure("gateway latency p99 (steady)", hp99, "ms")
        .figure("gateway latency p99.9 (steady)", hp999, "ms")
        .figure("gateway latency max (steady)", hmax, "ms")
        .figure("gateway CPU (steady)", herald.steady_cpu, "% of a core")
        .figure(
            "gateway CPU per delivery (steady)",
            herald.steady_cpu_us,
            "µs",
        )
        .figure(
            "load generator CPU (gateway steady)",
            herald.steady_generator_cpu,
            "% of a core",
        )
        .figure("gateway RSS (end)", herald.rss_kib as f64 / 1024.0, "MiB")
}

/// The raw writer's figures, and the gateway's as ratios to them.
fn floor_figures(report: Report, herald: &Side, floor: &Side) -> Report {
    let [fp50, fp99, ..] = floor.latency_ms;
    let [hp50, hp99, ..] = herald.latency_ms;
    report
        .figure("raw writer latency p50 (steady)", fp50, "ms")
        .figure("raw writer latency p99 (steady)", fp99, "ms")
        .figure(
            "raw writer CPU per delivery (steady)",
            floor.steady_cpu_us,
            "µs",
        )
        .figure(
            "raw writer CPU per delivery (burst)",
            floor.burst_cpu_us,
            "µs",
        )
        .figure("raw writer deliveries/s (burst)", floor.burst_rate, "msg/s")
        .figure("gateway / raw writer: p50 (steady)", hp50 / fp50, "x")
        .figure("gateway / raw writer: p99 (steady)", hp99 / fp99, "x")
        .figure(
            "gateway / raw writer: CPU per delivery (steady)",
            herald.steady_cpu_us / floor.steady_cpu_us,
            "x",
        )
        .figure(
            "gateway / raw writer: deliveries/s (burst)",
            herald.burst_rate / floor.burst_rate,
            "x",
        )
        .figure(
            "gateway bytes per delivery (steady, on the wire)",
            herald.bytes_per_delivery,
            "bytes",
        )
        .figure(
            "raw writer bytes per delivery (steady, on the wire)",
            floor.bytes_per_delivery,
            "bytes",
        )
}

/// nats-server's steady-phase figures.
fn nats_steady_figures(report: Report, peer: &Side) -> Report {
    let [np50, np99, np999, nmax] = peer.latency_ms;
    report
        .figure(
            "nats-server WS deliveries/s (steady)",
            peer.steady_rate,
            "msg/s",
        )
        .figure("nats-server WS latency p50 (steady)", np50, "ms")
        .figure("nats-server WS latency p99 (steady)", np99, "ms")
        .figure("nats-server WS latency p99.9 (steady)", np999, "ms")
        .figure("nats-server WS latency max (steady)", nmax, "ms")
        .figure(
            "nats-server CPU (steady, incl. JetStream)",
            peer.steady_cpu,
            "% of a core",
        )
        .figure(
            "load generator CPU (nats-server steady)",
            peer.steady_generator_cpu,
            "% of a core",
        )
        .figure(
            "nats-server WS gaps (core NATS: at most once)",
            peer.gaps as f64,
            "events",
        )
}

/// Measures one side: idle memory, the steady phase, the burst phase.
async fn side(
    stack: &Arc<Stack>,
    mut crowd: Crowd,
    counts: &Arc<Counts>,
    (name, pid): (&str, u32),
    rss_before: u64,
    args: &Args,
) -> anyhow::Result<Side> {
    eprintln!("{name}: {} clients open; steady phase", args.load.clients);
    let mut out = Side {
        rss_per_conn_kib: rss_kib(pid)?.saturating_sub(rss_before) as f64
            / args.load.clients as f64,
        ..Side::default()
    };

    // Steady: `rate` events/s for `seconds`, latency recorded.
    let received = crowd.board.sum(|s| &s.received);
    let bytes = crowd.board.sum(|s| &s.bytes);
    crowd.measure(true);
    let meter = CpuMeter::start(pid)?;
    let own = CpuMeter::start(std::process::id())?;
    let started = Instant::now();
    let stop = CancellationToken::new();
    let timer = {
        let stop = stop.clone();
        let secs = args.seconds;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.cancel();
        })
    };
    feed(stack, counts, Some(args.load.rate), u64::MAX, stop).await?;
    timer.await?;
    crowd.wait_for(&counts.snapshot(), DRAIN_DEADLINE).await?;
    crowd.measure(false);
    let delivered = crowd.board.sum(|s| &s.received) - received;
    out.bytes_per_delivery = (crowd.board.sum(|s| &s.bytes) - bytes) as f64 / delivered as f64;
    out.steady_rate = delivered as f64 / started.elapsed().as_secs_f64();
    out.steady_cpu = meter.percent()?;
    out.steady_cpu_us = meter.used()?.as_secs_f64() * 1e6 / delivered as f64;
    out.steady_generator_cpu = own.percent()?;

    // Burst: `burst` more events per group, as fast as ingest answers.
    eprintln!("{name}: burst phase");
    let received = crowd.board.sum(|s| &s.received);
    let target = counts.snapshot().into_iter().max().unwrap_or(0) + args.burst;
    let meter = CpuMeter::start(pid)?;
    let own = CpuMeter::start(std::process::id())?;
    let started = Instant::now();
    feed(stack, counts, None, target, CancellationToken::new()).await?;
    crowd.wait_for(&counts.snapshot(), DRAIN_DEADLINE).await?;
    let delivered = crowd.board.sum(|s| &s.received) - received;
    out.burst_rate = delivered as f64 / started.elapsed().as_secs_f64();
    out.burst_cpu = meter.percent()?;
    out.burst_cpu_us = meter.used()?.as_secs_f64() * 1e6 / delivered as f64;
    out.burst_generator_cpu = own.percent()?;
    out.rss_kib = rss_kib(pid)?;

    out.gaps = crowd.board.sum(|s| &s.gaps);
    out.duplicates = crowd.board.sum(|s| &s.duplicates);
    out.resets = crowd.board.sum(|s| &s.resets);
    let latencies = crowd.finish().await?;
    out.latency_ms = percentiles(&latencies);
    Ok(out)
}
