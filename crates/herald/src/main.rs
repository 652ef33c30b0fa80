//! The `herald` binary: [`herald::cli`].

// mimalloc, as `herald-ingest` ships with (about a fifth more webhooks/s, bench D).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    herald::cli::main().await
}
