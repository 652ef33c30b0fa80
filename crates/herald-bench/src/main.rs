//! `herald-bench`: Herald's benchmarks ([`herald_bench::cli`]). See bench/README.md.

// The service binaries' allocator, so the in-process ingest is measured as in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald_bench::cli::main().await
}
