//! `herald-chaos`: the chaos soak. Prints the JSON report; exits 1 on any violation.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use herald_chaos::Settings;

/// Runs the real Herald binaries under load while SIGKILLing and restarting every component
/// (nats-server included), then proves nothing was lost, duplicated or leaked.
#[derive(Parser)]
#[command(version, args_override_self = true)]
struct Args {
    /// How long the soak (load + kills) lasts.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Seed of every random choice; printed in the report, pass it again to replay a run.
    #[arg(long)]
    seed: Option<u64>,
    /// Webhooks per second.
    #[arg(long, default_value_t = 40)]
    rate: u32,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Shortest and longest pause between kills, e.g. `2s..8s`.
    #[arg(long, default_value = "2s..8s", value_parser = range)]
    kill_every: (Duration, Duration),
    /// Shortest and longest downtime of a killed component.
    #[arg(long, default_value = "200ms..3s", value_parser = range)]
    downtime: (Duration, Duration),
    /// How long the system may take to deliver everything once the soak ends.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Directory of the herald-* binaries (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Keep the run directory (config and logs) even when the run passes.
    #[arg(long)]
    keep: bool,
}

fn range(s: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or("expected <min>..<max>, e.g. 2s..8s")?;
    let parse = |v: &str| humantime::parse_duration(v).map_err(|e| e.to_string());
    Ok((parse(lo)?, parse(hi)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "herald_chaos=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("the binary's directory")?
            .to_owned(),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!("herald-chaos: seed {seed} (replay with --seed {seed})");
    let settings = Settings {
        duration: args.duration,
        seed,
        rate: args.rate,
        producers: args.producers,
        kill_every: args.kill_every,
        downtime: args.downtime,
        settle: args.settle,
        bin_dir,
        keep: args.keep,
    };
    let report = herald_chaos::run(&settings).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}
