//! Building and running the ingest service.

use std::net::SocketAddr;
use std::sync::Arc;

use herald_core::http::{NatsReadiness, ops_router};
use herald_core::service::{ServiceConfig, ServiceContext, serve};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::full::{IngestReadiness, StoreFull};
use crate::legacy::LegacyIndex;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::routes::{self, AppState};

/// Why ingest could not start or stopped with an error.
pub type Error = herald_core::service::ServiceError<ConfigError>;

/// A built ingest service: bound, configured, not yet serving.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    ctx: ServiceContext,
    addr: SocketAddr,
    legacy: Option<Arc<LegacyIndex>>,
    server_metrics: herald_core::serve::ServerMetrics,
}

impl App {
    /// Validates `cfg` and wires the routes. Does not wait for NATS.
    pub async fn build(
        cfg: Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> Result<Self, Error> {
        cfg.validate().map_err(Error::Config)?;
        cfg.validate_windows(ctx.streams.duplicate_window)
            .map_err(Error::Config)?;
        let addr = listener.local_addr()?;
        let secrets = cfg.sources.values().flat_map(|s| &s.secrets);
        herald_core::dev::refuse_exposed(
            "ingest",
            addr,
            secrets.chain(cfg.api_keys.values().flatten()),
        )?;
        let (metrics, registry) = Metrics::new();
        let server_metrics = metrics.server.clone();
        let mut publisher = Publisher::new(
            ctx.client.clone(),
            ctx.js.clone(),
            cfg.publish_timeout,
            metrics.clone(),
        );
        let full = StoreFull::new(std::time::Duration::from_secs(cfg.retry_after_secs.into()));
        publisher = publisher.with_store_full(full.clone());
        let legacy = cfg
            .legacy_dedup_until
            .map(|until| Arc::new(LegacyIndex::new(until, ctx.streams.duplicate_window)));
        if let Some(index) = &legacy {
            publisher = publisher.with_legacy(Arc::clone(index));
            tracing::info!(until = ?cfg.legacy_dedup_until, "honouring the old dedup key <tenant>/<id> until then");
        }
        let state = AppState::new(&cfg, publisher, metrics).map_err(Error::Config)?;
        let readiness = IngestReadiness {
            nats: NatsReadiness {
                client: ctx.client.clone(),
                js: ctx.js.clone(),
                liveness: ctx.liveness.clone(),
            },
            full,
        };
        let router =
            routes::router(state).merge(ops_router(registry, std::sync::Arc::new(readiness)));
        if cfg.sources.is_empty() && cfg.api_keys.is_empty() {
            tracing::warn!(
                "no webhook sources and no API keys are configured: every request will be refused"
            );
        }
        tracing::info!(%addr, sources = cfg.sources.len(), tenants_with_keys = cfg.api_keys.len(), "ingest built");
        Ok(Self {
            listener,
            router,
            ctx,
            addr,
            legacy,
            server_metrics,
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
            legacy,
            server_metrics,
            ..
        } = self;
        let follower = legacy.map(|index| {
            let (js, shutdown) = (ctx.js.clone(), ctx.shutdown.clone());
            tokio::spawn(async move { index.follow(js, shutdown).await })
        });
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
        let result = serve(
            listener,
            router,
            &ctx.http,
            server_metrics,
            ctx.shutdown.clone(),
        )
        .await;
        provision.abort();
        if let Some(follower) = follower {
            follower.abort();
        }
        tracing::info!("ingest stopped");
        Ok(result?)
    }
}

herald_core::impl_service!(App {
    name: "herald-ingest",
    section: "ingest",
    about: "Herald ingest: verified webhooks and CDC into NATS JetStream.",
    config: Config,
    error: Error,
});
