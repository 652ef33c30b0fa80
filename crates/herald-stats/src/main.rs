//! The `herald-stats` binary: load config, init telemetry, run the aggregator (or rebuild).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_core::config::{self, file_from_env};
use herald_core::names::{TenantId, Topic};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_stats::{App, Config, rebuild};

/// Herald stats-aggregator: exact live counters from NATS JetStream into KV `herald_stats`.
///
/// Configuration: defaults, then the TOML file, then HERALD_* environment variables
/// (nested keys with `__`, e.g. HERALD_NATS__URL, HERALD_GROUP_BY). See docs/stats.md.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML config file (also HERALD_CONFIG).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Recount documents from the stream (all of them, or one with --tenant and --topic).
    Rebuild {
        /// The tenant of the one document to recount.
        #[arg(long, requires = "topic")]
        tenant: Option<TenantId>,
        /// The topic of the one document to recount.
        #[arg(long, requires = "tenant")]
        topic: Option<Topic>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = args.config.or_else(file_from_env);
    let common: CommonConfig = config::load(file.as_deref(), None)?;
    let cfg: Config = config::load(file.as_deref(), Some("stats"))?;
    herald_core::telemetry::init(&common.log);
    let shutdown = herald_core::shutdown::on_signals();
    let ctx = ServiceContext::connect(&common, "herald-stats", shutdown).await?;
    if let Some(Command::Rebuild { tenant, topic }) = args.command {
        let n = rebuild::run(&ctx.js, &cfg, tenant.zip(topic)).await?;
        println!("rebuilt {n} stats documents");
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let app = App::build(cfg, listener, ctx).await?;
    Ok(app.run_until_stopped().await?)
}
