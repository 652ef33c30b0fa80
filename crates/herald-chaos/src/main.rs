//! `herald-chaos`: the chaos soak. Prints the JSON report; exits 1 on any violation.

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    herald_chaos::cli::main().await
}
