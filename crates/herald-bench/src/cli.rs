//! The command line of `herald-bench`: one subcommand per scenario.

use clap::{Parser, Subcommand};

use crate::{fanout, ingest, report, state, stats, storm};

/// Loopback-only benchmarks, bounded in count and time; results go to bench/results/.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// A and B. Fan-out and idle memory, gateway SSE next to nats-server WebSocket.
    Fanout(fanout::Args),
    /// C. Reconnect storm: everyone resumes by cursor while events flow.
    Storm(storm::Args),
    /// D. Signed webhooks/s through ingest next to raw JetStream publishes/s.
    Ingest(ingest::Args),
    /// E. Events/s aggregated by the stats service.
    Stats(stats::Args),
    /// F. Collections: row changes applied/s, mirror load, memory per row, snapshot latency.
    State(state::Args),
    /// Every scenario with its defaults.
    All,
    /// A, B and C with 200 clients: checks correctness only (no gaps, no duplicates), saves
    /// nothing. For CI.
    Quick,
}

/// The whole `herald-bench` command: runs the scenario the arguments name, writes its reports
/// (saved under bench/results/ except for `quick`) and fails if a correctness check failed.
pub async fn main() -> anyhow::Result<()> {
    let (reports, save) = match Cli::parse().scenario {
        Scenario::Fanout(args) => (fanout::run(args).await?, true),
        Scenario::Storm(args) => (vec![storm::run(args).await?], true),
        Scenario::Ingest(args) => (vec![ingest::run(args).await?], true),
        Scenario::Stats(args) => (vec![stats::run(args).await?], true),
        Scenario::State(args) => (vec![state::run(args).await?], true),
        Scenario::All => (crate::all().await?, true),
        Scenario::Quick => (crate::quick().await?, false),
    };
    for r in &reports {
        report::write(r, save)?;
    }
    anyhow::ensure!(
        reports.iter().all(report::Report::passed),
        "a correctness check failed"
    );
    Ok(())
}
