//! The command line of `herald`: one subcommand per module of this crate.

use clap::{Parser, Subcommand};

use crate::{probe, send, token, up};

/// Herald: a realtime event backbone on NATS JetStream.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole stack locally: nats-server (data under ./.herald/) and every service.
    Up(up::UpArgs),
    /// Mint a gateway JWT (HS256).
    Token(token::TokenArgs),
    /// Sign a JSON payload (standard-webhooks, hmac-sha256 or bearer) and post it.
    Send(send::SendArgs),
    /// Follow a tenant's events from a cursor, one JSON line each.
    Tail(crate::tail::TailArgs),
    /// List or re-drive the notifier's dead letters.
    #[command(subcommand)]
    Dlq(crate::dlq::DlqCommand),
    /// Create or update Herald's streams with the admin NATS identity, then exit.
    Provision(crate::provision::ProvisionArgs),
    /// GET a URL and exit 0 on 2xx (container healthchecks).
    Probe(probe::ProbeArgs),
}

/// The whole `herald` command: parses the arguments and runs the subcommand they name.
pub async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Token(args) => token::run(args),
        Command::Send(args) => send::run(args).await,
        Command::Tail(args) => crate::tail::run(args).await,
        Command::Dlq(cmd) => crate::dlq::run(cmd).await,
        Command::Provision(args) => crate::provision::run(args).await,
        Command::Probe(args) => probe::run(args).await,
    }
}
