//! One shape for every service, and what the process that hosts it hands it.
//!
//! A service is a type that implements [`Service`]: its config section ([`Service::SECTION`])
//! with a [`ServiceConfig`] (defaults, `listen`, `validate`), `build` on a bound listener and a
//! [`ServiceContext`], `local_addr`, then `run_until_stopped` (a service's `App` gets the trait
//! from its inherent methods with [`impl_service!`](crate::impl_service)). Three hosts build
//! it the same way:
//!
//! - a standalone binary: `main.rs` calls [`main`] (or [`main_with`] for extra subcommands),
//!   which loads the config, binds with [`bind`], builds, runs and exits cleanly;
//! - `herald up`: every service in one process, on one shared [`ServiceContext`];
//! - tests: herald-test-support's `TestService`, on a test nats-server and `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;

use async_nats::jetstream;
use axum::Router;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;
use crate::nats::{self, ConnectError, NatsConfig};
use crate::serve::{HttpConfig, ServerMetrics};
use crate::state::StateConfig;
use crate::streams::StreamSettings;
use crate::telemetry::LogConfig;

mod bind;
mod entry;

pub use bind::{BACKLOG, BindError, bind};
pub use entry::{Args, Command, NoCommand, StartError, main, main_with};

/// The configuration every service shares: `[nats]`, `[stream]`, `[log]`, `[http]` and
/// `[state]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// How to reach NATS (`HERALD_NATS__*`).
    pub nats: NatsConfig,
    /// Retention and replication of Herald's streams (`HERALD_STREAM__*`).
    pub stream: StreamSettings,
    /// Logging (`HERALD_LOG__*`).
    pub log: LogConfig,
    /// Header timeout and connection caps of every HTTP listener (`HERALD_HTTP__*`).
    pub http: HttpConfig,
    /// Which topics are collections (`HERALD_STATE__*`, see [`crate::state`]).
    pub state: StateConfig,
}

/// A service's own config section: loaded by [`crate::config::load`] over its defaults,
/// checked once by [`ServiceConfig::validate`] before anything starts.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default + Send + 'static {
    /// Why the settings are unusable.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Where the service listens (its `listen` key).
    fn listen(&self) -> SocketAddr;

    /// Checks what serde cannot (names, ranges, combinations).
    fn validate(&self) -> Result<(), Self::Error>;
}

/// A Herald service: built on a bound listener, then run until the context's shutdown token
/// fires.
pub trait Service: Sized + Send + 'static {
    /// The binary and the NATS client name, `herald-<section>`.
    const NAME: &'static str;
    /// The config section (`[ingest]`, `HERALD_INGEST__*`).
    const SECTION: &'static str;
    /// One line for `--help`; the binary adds how configuration is read.
    const ABOUT: &'static str;

    /// The service's config section.
    type Config: ServiceConfig;
    /// Why the service could not start or stopped with an error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Validates `cfg` and wires the service on `listener`. Does not wait for NATS.
    fn build(
        cfg: Self::Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> impl Future<Output = Result<Self, Self::Error>> + Send;

    /// The address the service listens on (port 0 resolved).
    fn local_addr(&self) -> SocketAddr;

    /// Serves until `ctx.shutdown` fires, then finishes in-flight work.
    fn run_until_stopped(self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Implements [`Service`] for a service's `App` from its inherent `build`, `local_addr` and
/// `run_until_stopped` (which callers keep using without importing the trait):
///
/// ```ignore
/// herald_core::impl_service!(App {
///     name: "herald-ingest",
///     section: "ingest",
///     about: "Herald ingest: verified webhooks and CDC into NATS JetStream.",
///     config: Config,
///     error: Error,
/// });
/// ```
#[macro_export]
macro_rules! impl_service {
    ($app:ty {
        name: $name:expr,
        section: $section:expr,
        about: $about:expr,
        config: $config:ty,
        error: $error:ty $(,)?
    }) => {
        impl $crate::service::Service for $app {
            const NAME: &'static str = $name;
            const SECTION: &'static str = $section;
            const ABOUT: &'static str = $about;
            type Config = $config;
            type Error = $error;

            async fn build(
                cfg: $config,
                listener: ::tokio::net::TcpListener,
                ctx: $crate::service::ServiceContext,
            ) -> ::std::result::Result<Self, $error> {
                <$app>::build(cfg, listener, ctx).await
            }

            fn local_addr(&self) -> ::std::net::SocketAddr {
                <$app>::local_addr(self)
            }

            async fn run_until_stopped(self) -> ::std::result::Result<(), $error> {
                <$app>::run_until_stopped(self).await
            }
        }
    };
}

/// Why a service whose only failures are its config section and its listener could not start
/// or stopped with an error (ingest, stats).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError<C: std::error::Error + 'static> {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(C),
    /// The listener failed.
    #[error("HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// NATS, stream settings and the shutdown token, as handed to each service.
#[derive(Clone)]
pub struct ServiceContext {
    /// The NATS client (reconnects by itself).
    pub client: async_nats::Client,
    /// JetStream on that client, with the configured request timeout.
    pub js: jetstream::Context,
    /// The stream settings to provision with.
    pub streams: StreamSettings,
    /// Cancelled when the process should stop.
    pub shutdown: CancellationToken,
    /// Header timeout and connection caps for the service's listener.
    pub http: HttpConfig,
    /// The verdict of the active NATS probe (one probe per context, shared by its clones).
    pub liveness: Liveness,
    /// Which topics are collections (validated by the services that use it).
    pub state: StateConfig,
}

impl ServiceContext {
    /// Connects to NATS as `name` (returns at once; connection happens in the background).
    pub async fn connect(
        common: &CommonConfig,
        name: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, ConnectError> {
        let client = nats::connect(&common.nats, name).await?;
        let js = nats::jetstream(client.clone(), &common.nats);
        let liveness = Liveness::spawn(js.clone(), common.nats.probe, shutdown.clone());
        Ok(Self {
            client,
            js,
            streams: common.stream.clone(),
            shutdown,
            http: common.http.clone(),
            liveness,
            state: common.state.clone(),
        })
    }
}

/// Serves `router` on `listener` under `http`'s header timeout and connection caps until
/// `shutdown` fires, then finishes in-flight requests (see [`crate::serve`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: &HttpConfig,
    metrics: ServerMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    crate::serve::serve(listener, router, http, metrics, shutdown).await
}

/// A service's metrics registry: every name under `prefix` (`herald_ingest`), holding the
/// HTTP server's metrics when the service serves through [`serve`]. Each service's
/// `Metrics::new()` starts from it and registers its own metrics.
pub fn metrics_registry(prefix: &str, server: Option<&ServerMetrics>) -> Registry {
    let mut registry = Registry::with_prefix(prefix);
    if let Some(server) = server {
        server.register(&mut registry);
    }
    registry
}
