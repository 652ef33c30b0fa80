//! The `herald-gateway` binary: `herald_core::service::main` with the gateway's `App`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    herald_core::service::main::<herald_gateway::App>().await
}
