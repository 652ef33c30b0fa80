//! The `herald-ingest` binary: load config, init telemetry, run the service.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use herald_core::config::{self, file_from_env};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_ingest::{App, Config};

// Every request makes many small, short-lived allocations on whichever worker runs it; with
// mimalloc's per-thread heaps ingest serves about a fifth more webhooks per second than with
// glibc malloc on two cores (bench scenario D, docs/bench.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Herald ingest: verified webhooks and CDC into NATS JetStream.
///
/// Configuration: defaults, then the TOML file, then HERALD_* environment variables
/// (nested keys with `__`, e.g. HERALD_NATS__URL). See docs/ingest.md.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file (also HERALD_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = args.config.or_else(file_from_env);
    let common: CommonConfig = config::load(file.as_deref(), None)?;
    let cfg: Config = config::load(file.as_deref(), Some("ingest"))?;
    herald_core::telemetry::init(&common.log);
    let shutdown = herald_core::shutdown::on_signals();
    let ctx = ServiceContext::connect(&common, "herald-ingest", shutdown).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    App::build(cfg, listener, ctx)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
