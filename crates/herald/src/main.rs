//! The `herald` binary.

use clap::{Parser, Subcommand};

// The allocator the `herald-ingest` binary ships with (about a fifth more webhooks per second
// than glibc malloc, bench D); neutral for the gateway (bench A/B).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Up(herald::up::UpArgs),
    /// Mint a gateway JWT (HS256).
    Token(herald::token::TokenArgs),
    /// Sign a JSON payload (standard-webhooks, hmac-sha256 or bearer) and post it.
    Send(herald::send::SendArgs),
    /// Follow a tenant's events from a cursor, one JSON line each.
    Tail(herald::tail::TailArgs),
    /// List or re-drive the notifier's dead letters.
    #[command(subcommand)]
    Dlq(herald::dlq::DlqCommand),
    /// Create or update Herald's streams with the admin NATS identity, then exit.
    Provision(herald::provision::ProvisionArgs),
    /// GET a URL and exit 0 on 2xx (container healthchecks).
    Probe(herald::probe::ProbeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => herald::up::run(args).await,
        Command::Token(args) => herald::token::run(args),
        Command::Send(args) => herald::send::run(args).await,
        Command::Tail(args) => herald::tail::run(args).await,
        Command::Dlq(cmd) => herald::dlq::run(cmd).await,
        Command::Provision(args) => herald::provision::run(args).await,
        Command::Probe(args) => herald::probe::run(args).await,
    }
}
