//! `herald-bench`: Herald's benchmarks. See bench/README.md.

use clap::{Parser, Subcommand};

/// Loopback-only benchmarks, bounded in count and time; results go to bench/results/.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// D. Signed webhooks/s through ingest next to raw JetStream publishes/s.
    Ingest(herald_bench::ingest::Args),
    /// Every scenario with its defaults.
    All,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = match Cli::parse().scenario {
        Scenario::Ingest(args) => herald_bench::ingest::run(args).await?,
        Scenario::All => herald_bench::ingest::run(herald_bench::ingest::Args::default()).await?,
    };
    herald_bench::report::write(&report)?;
    Ok(())
}
