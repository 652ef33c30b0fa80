//! The `herald-stats` binary: the aggregator, or `herald-stats rebuild` ([`StatsCommand`]).
//!
//! [`StatsCommand`]: herald_stats::StatsCommand

use herald_stats::{App, StatsCommand};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    herald_core::service::main_with::<App, StatsCommand>().await
}
