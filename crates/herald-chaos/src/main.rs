//! `herald-chaos`: the chaos soak. Prints the JSON report; exits 1 on any violation.

use clap::Parser;
use herald_chaos::cli::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Args::parse().settings()?;
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "herald_chaos=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let seed = settings.seed;
    eprintln!("herald-chaos: seed {seed} (replay with --seed {seed})");
    let report = herald_chaos::run(&settings).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.ok {
        std::process::exit(1);
    }
    Ok(())
}
