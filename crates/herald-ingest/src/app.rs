//! Building and running the ingest service.

use std::net::SocketAddr;

use herald_core::http::{NatsReadiness, ops_router};
use herald_core::service::{ServiceContext, serve};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::routes::{self, AppState};

/// Why ingest could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listener failed.
    #[error("HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// A built ingest service: bound, configured, not yet serving.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    ctx: ServiceContext,
    addr: SocketAddr,
}

impl App {
    /// Validates `cfg` and wires the routes. Does not wait for NATS.
    pub async fn build(
        cfg: Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let addr = listener.local_addr()?;
        let (metrics, registry) = Metrics::new();
        let publisher = Publisher::new(
            ctx.client.clone(),
            ctx.js.clone(),
            cfg.publish_timeout,
            metrics.clone(),
        );
        let state = AppState::new(&cfg, publisher, metrics)?;
        let readiness = NatsReadiness {
            client: ctx.client.clone(),
            js: ctx.js.clone(),
            liveness: ctx.liveness.clone(),
        };
        let router =
            routes::router(state).merge(ops_router(registry, std::sync::Arc::new(readiness)));
        if cfg.sources.is_empty() && cfg.api_keys.is_empty() {
            tracing::warn!(
                "no webhook sources and no API keys are configured: every request will be refused"
            );
        }
        tracing::info!(%addr, sources = cfg.sources.len(), tenants_with_keys = cfg.api_keys.len(), "ingest listening");
        Ok(Self {
            listener,
            router,
            ctx,
            addr,
        })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Provisions the streams in the background and serves until shutdown; in-flight requests
    /// (and their PubAcks) finish before it returns.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let Self {
            listener,
            router,
            ctx,
            ..
        } = self;
        let provision = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Some(p) =
                    herald_core::nats::provision_until_ready(&ctx.js, &ctx.streams, &ctx.shutdown)
                        .await
                {
                    tracing::info!(epoch = %p.epoch, "streams ready");
                }
            })
        };
        let result = serve(listener, router, ctx.shutdown.clone()).await;
        provision.abort();
        tracing::info!("ingest stopped");
        Ok(result?)
    }
}
