//! `herald provision`: create or update Herald's streams and buckets with the admin NATS
//! identity, then exit.

use anyhow::Context;
use herald_core::streams::{DLQ_STREAM, EVENTS_STREAM, NOTIFIED_BUCKET, STATS_BUCKET};

use crate::nats_args::NatsArgs;

/// Options of `herald provision`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Where NATS is (and the `[stream]` settings: HERALD_STREAM__*).
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Creates or updates `HERALD_EVENTS`, `HERALD_DLQ`, `herald_stats` and the notifier's
/// `herald_notified` to the configured
/// `[stream]` settings, then exits: run once with the admin NATS identity before the services
/// (whose own identities may only look the streams up).
pub async fn run(args: ProvisionArgs) -> anyhow::Result<()> {
    let common = args.nats.common()?;
    let js = args.nats.jetstream().await?;
    let provisioned = herald_core::streams::apply(&js, &common.stream)
        .await
        .context("provisioning Herald's streams")?;
    println!(
        "streams provisioned: {EVENTS_STREAM} (epoch {}), {DLQ_STREAM}, KV {STATS_BUCKET}, \
         KV {NOTIFIED_BUCKET}",
        provisioned.epoch,
    );
    Ok(())
}
