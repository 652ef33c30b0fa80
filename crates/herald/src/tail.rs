//! `herald tail`: follow a tenant's events straight from `HERALD_EVENTS` (NATS, not SSE),
//! one JSON line each.

use anyhow::Context;
use async_nats::jetstream::{consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use herald_core::streams::EVENTS_STREAM;
use herald_core::subject;

use crate::nats_args::NatsArgs;

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
pub async fn run(args: TailArgs) -> anyhow::Result<()> {
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
