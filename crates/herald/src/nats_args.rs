//! `--config`: where the operator commands (`herald tail`, `herald dlq`, `herald provision`)
//! find NATS.
//!
//! They read the shared `[nats]` configuration (`--config`, `HERALD_CONFIG`, `HERALD_NATS__*`).

use std::path::PathBuf;

use anyhow::Context;
use async_nats::jetstream;
use herald_core::service::CommonConfig;

/// Where to find NATS.
#[derive(Debug, clap::Args)]
pub struct NatsArgs {
    /// A TOML config file with a `[nats]` section (also HERALD_CONFIG; HERALD_NATS__* apply).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl NatsArgs {
    /// The shared configuration: `--config`, `HERALD_CONFIG`, `HERALD_NATS__*`, `HERALD_STREAM__*`.
    pub fn common(&self) -> anyhow::Result<CommonConfig> {
        let file = self
            .config
            .clone()
            .or_else(herald_core::config::file_from_env);
        Ok(herald_core::config::load(file.as_deref(), None)?)
    }

    /// JetStream on a client with the configured credentials and TLS (`HERALD_NATS__USER`,
    /// `HERALD_NATS__PASSWORD`, …: the admin identity on a deploy/ stack).
    pub async fn jetstream(&self) -> anyhow::Result<jetstream::Context> {
        let common = self.common()?;
        let client = herald_core::nats::connect_once(&common.nats, "herald-cli")
            .await
            .with_context(|| format!("connecting to NATS at {}", common.nats.url))?;
        Ok(herald_core::nats::jetstream(client, &common.nats))
    }
}
