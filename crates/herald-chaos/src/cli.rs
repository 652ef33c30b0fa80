//! The command line of `herald-chaos`.

use std::path::PathBuf;
use std::time::Duration;

use crate::Settings;
use crate::faults::FaultKind;

/// Runs the real Herald binaries under load while SIGKILLing and restarting every component
/// (nats-server included), then proves nothing was lost, duplicated or leaked.
#[derive(clap::Parser)]
#[command(version, args_override_self = true)]
pub struct Args {
    /// How long the soak (load + kills) lasts.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Seed of every random choice; printed in the report, pass it again to replay a run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Webhooks per second.
    #[arg(long, default_value_t = 40)]
    pub rate: u32,
    /// Concurrent producers.
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Shortest and longest pause between kills, e.g. `2s..8s`.
    #[arg(long, default_value = "2s..8s", value_parser = range)]
    pub kill_every: (Duration, Duration),
    /// Shortest and longest downtime of a killed component.
    #[arg(long, default_value = "200ms..3s", value_parser = range)]
    pub downtime: (Duration, Duration),
    /// How long the system may take to deliver everything once the soak ends.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Directory of the herald-* binaries (default: next to this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Keep the run directory (config and logs) even when the run passes.
    #[arg(long)]
    pub keep: bool,
    /// The fault kinds to draw from, comma-separated: kill, freeze, delay, drop, half-open,
    /// blackhole, store-full.
    #[arg(long, value_delimiter = ',', value_parser = FaultKind::parse,
          default_value = "kill,freeze,delay,drop,half-open,blackhole,store-full")]
    pub faults: Vec<FaultKind>,
    /// Shortest and longest freeze, proxy fault or full store (the longest outlasts
    /// publish_timeout 2 s, ack_wait 5 s and the probe deadline).
    #[arg(long, default_value = "100ms..7s", value_parser = range)]
    pub pause: (Duration, Duration),
}

fn range(s: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or("expected <min>..<max>, e.g. 2s..8s")?;
    let parse = |v: &str| humantime::parse_duration(v).map_err(|e| e.to_string());
    Ok((parse(lo)?, parse(hi)?))
}

/// Why the arguments cannot make settings.
#[derive(Debug, thiserror::Error)]
#[error("cannot find the directory of the herald-chaos binary")]
pub struct NoBinDir(#[source] Option<std::io::Error>);

impl Args {
    /// The run's settings: the seed drawn now if none was given, the binaries next to this
    /// one unless `--bin-dir` says otherwise.
    pub fn settings(self) -> Result<Settings, NoBinDir> {
        let bin_dir = match self.bin_dir {
            Some(d) => d,
            None => std::env::current_exe()
                .map_err(|e| NoBinDir(Some(e)))?
                .parent()
                .ok_or(NoBinDir(None))?
                .to_owned(),
        };
        Ok(Settings {
            duration: self.duration,
            seed: self.seed.unwrap_or_else(rand::random),
            rate: self.rate,
            producers: self.producers,
            kill_every: self.kill_every,
            downtime: self.downtime,
            settle: self.settle,
            bin_dir,
            keep: self.keep,
            faults: self.faults,
            pause: self.pause,
        })
    }
}

/// The whole `herald-chaos` command: parses the arguments, runs the soak and prints the JSON
/// report on stdout. Exit code 1 when a promise was violated (or the harness failed).
pub async fn main() -> anyhow::Result<std::process::ExitCode> {
    let settings = <Args as clap::Parser>::parse().settings()?;
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "herald_chaos=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let seed = settings.seed;
    eprintln!("herald-chaos: seed {seed} (replay with --seed {seed})");
    let report = crate::run(&settings).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(match report.ok {
        true => std::process::ExitCode::SUCCESS,
        false => std::process::ExitCode::FAILURE,
    })
}
