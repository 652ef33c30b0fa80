//! `herald dlq list|replay`: the notifier's dead letters.

use herald_core::names::TenantId;

use crate::nats_args::NatsArgs;

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
pub async fn run(cmd: DlqCommand) -> anyhow::Result<()> {
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
