//! Operator commands that talk to NATS directly: `herald tail`, `herald dlq list|replay` and
//! `herald provision`.
//!
//! They read the shared `[nats]` configuration (`--config`, `HERALD_CONFIG`, `HERALD_NATS__*`).

use std::path::PathBuf;

use anyhow::Context;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use herald_core::service::CommonConfig;
use herald_core::streams::EVENTS_STREAM;
use herald_core::subject;

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

/// Options of `herald tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The tenant to follow.
    #[arg(long)]
    pub tenant: TenantId,
    /// Only this topic.
    #[arg(long)]
    pub topic: Option<Topic>,
    /// Resume after this cursor (`<seq>-<epoch>`); default: only new events.
    #[arg(long, conflicts_with = "from_start")]
    pub since: Option<Cursor>,
    /// Start from the oldest event the stream still holds.
    #[arg(long)]
    pub from_start: bool,
    /// Where NATS is.
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Follows a tenant's events, one JSON line each: `{"cursor":…,"subject":…,"event":…}`.
pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let js = args.nats.jetstream().await?;
    let mut stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .context("HERALD_EVENTS")?;
    let info = stream.info().await?;
    let epoch = Epoch::from_created(info.created);
    let deliver_policy = match (args.since, args.from_start) {
        (Some(c), _) if c.epoch != epoch => anyhow::bail!(
            "cursor {c} is from another stream epoch (now {epoch}): the stream was recreated; use --from-start"
        ),
        (Some(c), _) if c.seq + 1 < info.state.first_sequence => anyhow::bail!(
            "cursor {c} is older than the stream's first event ({}): events after it have expired; use --from-start",
            info.state.first_sequence
        ),
        (Some(c), _) => DeliverPolicy::ByStartSequence {
            start_sequence: c.seq + 1,
        },
        (None, true) => DeliverPolicy::All,
        (None, false) => DeliverPolicy::New,
    };
    let filter_subject = match &args.topic {
        Some(topic) => subject::topic_filter(&args.tenant, topic),
        None => subject::tenant_filter(&args.tenant),
    };
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject,
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let shutdown = herald_core::shutdown::on_signals();
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            msg = messages.next() => msg,
        };
        let Some(msg) = msg else { return Ok(()) };
        let msg = msg?;
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let event: serde_json::Value =
            serde_json::from_slice(&msg.payload).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "cursor": Cursor::new(seq, epoch).to_string(),
            "subject": msg.subject.as_str(),
            "event": event,
        });
        println!("{line}");
    }
}

/// `herald dlq …`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List the notifier's dead letters, oldest first.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Where NATS is.
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Re-drive one dead letter (by its HERALD_DLQ sequence) to the target that failed.
    Replay {
        /// The sequence shown by `herald dlq list`.
        seq: u64,
        /// Where NATS is.
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// Runs a `herald dlq` command.
pub async fn dlq(cmd: DlqCommand) -> anyhow::Result<()> {
    match cmd {
        DlqCommand::List {
            tenant,
            limit,
            nats,
        } => {
            let js = nats.jetstream().await?;
            let letters = herald_notifier::dlq::list(&js, tenant.as_ref(), limit).await?;
            if letters.is_empty() {
                eprintln!("no dead letters");
            }
            for l in letters {
                let event_id = l.event().map(|e| e.id.to_string()).unwrap_or_default();
                println!(
                    "{}",
                    serde_json::json!({
                        "seq": l.seq,
                        "time": l.time.unix_timestamp(),
                        "tenant": l.tenant,
                        "reason": l.reason,
                        "target": l.target,
                        "rule": l.rule,
                        "subject": l.original_subject,
                        "stream_seq": l.original_sequence,
                        "deliveries": l.deliveries,
                        "event_id": event_id,
                    })
                );
            }
            Ok(())
        }
        DlqCommand::Replay { seq, nats } => {
            let js = nats.jetstream().await?;
            let redriven = herald_notifier::dlq::replay(&js, seq).await?;
            println!("dead letter {seq} re-driven (as HERALD_DLQ sequence {redriven})");
            Ok(())
        }
    }
}

/// Options of `herald provision`.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// Where NATS is (and the `[stream]` settings: HERALD_STREAM__*).
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// Creates or updates `HERALD_EVENTS`, `HERALD_DLQ` and `herald_stats` to the configured
/// `[stream]` settings, then exits: run once with the admin NATS identity before the services
/// (whose own identities may only look the streams up).
pub async fn provision(args: ProvisionArgs) -> anyhow::Result<()> {
    let common = args.nats.common()?;
    let js = args.nats.jetstream().await?;
    let provisioned = herald_core::streams::apply(&js, &common.stream)
        .await
        .context("provisioning Herald's streams")?;
    println!(
        "streams provisioned: {EVENTS_STREAM} (epoch {}), {}, KV {}",
        provisioned.epoch,
        herald_core::streams::DLQ_STREAM,
        herald_core::streams::STATS_BUCKET
    );
    Ok(())
}
