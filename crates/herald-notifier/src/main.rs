//! The `herald-notifier` binary: `herald_core::service::main` with the notifier's `App`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    herald_core::service::main::<herald_notifier::App>().await
}
