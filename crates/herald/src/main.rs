//! The `herald` binary.

use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => herald::up::run(args).await,
    }
}
