//! The `herald-ingest` binary: `herald_core::service::main` with ingest's `App`.

// mimalloc's per-thread heaps serve about a fifth more webhooks/s than glibc malloc (bench D).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    herald_core::service::main::<herald_ingest::App>().await
}
