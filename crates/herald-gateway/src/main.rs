//! The `herald-gateway` binary: SSE, WebSocket and long-poll delivery.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_core::{config, shutdown, telemetry};
use herald_gateway::{App, Config, SECTION};

/// Herald gateway. Configured by an optional TOML file and `HERALD_*` environment variables
/// (see docs/gateway.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A TOML config file.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = args.config.as_deref();
    let common: CommonConfig = config::load(file, None).context("loading configuration")?;
    let cfg: Config = config::load(file, Some(SECTION)).context("loading gateway configuration")?;
    telemetry::init(&common.log);
    let shutdown = shutdown::on_signals();
    let ctx = ServiceContext::connect(&common, "herald-gateway", shutdown)
        .await
        .context("setting up NATS")?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let app = App::build(cfg, listener, ctx).await?;
    tracing::info!(addr = %app.local_addr(), "gateway listening");
    app.run_until_stopped().await?;
    Ok(())
}
