//! Building and running the stats-aggregator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_core::http::{NatsReadiness, Readiness, ReadyFuture, ops_router};
use herald_core::names::{TenantId, Topic};
use herald_core::service::{Command, ServiceConfig, ServiceContext, serve};
use herald_core::state::Collections;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::consumer;
use crate::metrics::Metrics;
use crate::rebuild;
use crate::state::StateWriter;

/// Why the aggregator could not start or stopped with an error.
pub type Error = herald_core::service::ServiceError<ConfigError>;

/// A built aggregator: configured and bound, not yet consuming.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    ctx: ServiceContext,
    cfg: Arc<Config>,
    metrics: Metrics,
    consuming: Arc<AtomicBool>,
    collections: Collections,
    addr: SocketAddr,
}

/// Ready when NATS is connected, the streams exist and the durable consumer is attached.
struct StatsReadiness {
    nats: NatsReadiness,
    consuming: Arc<AtomicBool>,
}

impl Readiness for StatsReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            self.nats.check().await?;
            if !self.consuming.load(Ordering::Relaxed) {
                return Err("the stats consumer is not attached yet".into());
            }
            Ok(())
        })
    }
}

impl App {
    /// Validates `cfg` and wires the ops endpoints. Does not wait for NATS.
    pub async fn build(
        cfg: Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> Result<Self, Error> {
        cfg.validate().map_err(Error::Config)?;
        let collections = ctx
            .state
            .collections()
            .map_err(|e| Error::Config(e.into()))?;
        let addr = listener.local_addr()?;
        let (metrics, registry) = Metrics::new();
        let consuming = Arc::new(AtomicBool::new(false));
        let readiness = StatsReadiness {
            nats: NatsReadiness {
                client: ctx.client.clone(),
                js: ctx.js.clone(),
                liveness: ctx.liveness.clone(),
            },
            consuming: Arc::clone(&consuming),
        };
        let router = ops_router(registry, Arc::new(readiness));
        let fields: Vec<String> = cfg.group_by.iter().map(ToString::to_string).collect();
        tracing::info!(%addr, consumer = %cfg.consumer, group_by = ?fields, collections = collections.len(), "stats-aggregator built");
        Ok(Self {
            listener,
            router,
            ctx,
            cfg: Arc::new(cfg),
            metrics,
            consuming,
            collections,
            addr,
        })
    }

    /// The address the ops endpoints listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The aggregator's metrics (shared with `/metrics`).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Provisions the streams in the background, consumes and serves until shutdown; the
    /// batch in flight is written and acknowledged before it returns. When collections are
    /// declared, the state writer runs alongside (it does not affect `/readyz`).
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let Self {
            listener,
            router,
            ctx,
            cfg,
            metrics,
            consuming,
            collections,
            ..
        } = self;
        // A child token: if the HTTP server fails, stop our consumer but not the host.
        let stop = ctx.shutdown.child_token();
        let (http, server_metrics) = (ctx.http.clone(), metrics.server.clone());
        let writer = (!collections.is_empty()).then(|| {
            let writer = StateWriter::new(
                ctx.js.clone(),
                collections,
                cfg.state_writer.clone(),
                metrics.state.clone(),
            );
            tokio::spawn(writer.run(stop.clone()))
        });
        let consumer = tokio::spawn(consumer::run(
            ServiceContext {
                shutdown: stop.clone(),
                ..ctx.clone()
            },
            cfg,
            metrics,
            consuming,
        ));
        let served = serve(listener, router, &http, server_metrics, stop.clone()).await;
        stop.cancel();
        if let Err(err) = consumer.await {
            tracing::error!(%err, "stats consumer task failed");
        }
        if let Some(Err(err)) = match writer {
            Some(writer) => Some(writer.await),
            None => None,
        } {
            tracing::error!(%err, "state writer task failed");
        }
        tracing::info!("stats-aggregator stopped");
        Ok(served?)
    }
}

herald_core::impl_service!(App {
    name: "herald-stats",
    section: "stats",
    about: "Herald stats-aggregator: exact live counters from NATS JetStream into KV \
            `herald_stats`.",
    config: Config,
    error: Error,
});

/// What `herald-stats` runs instead of the aggregator.
#[derive(Debug, clap::Subcommand)]
pub enum StatsCommand {
    /// Recount documents from the stream (all of them, or one with --tenant and --topic).
    Rebuild {
        /// The tenant of the one document to recount.
        #[arg(long, requires = "topic")]
        tenant: Option<TenantId>,
        /// The topic of the one document to recount.
        #[arg(long, requires = "tenant")]
        topic: Option<Topic>,
    },
}

impl Command<App> for StatsCommand {
    async fn run(
        self,
        cfg: Config,
        ctx: ServiceContext,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Self::Rebuild { tenant, topic } = self;
        let n = rebuild::run(&ctx.js, &cfg, tenant.zip(topic)).await?;
        println!("rebuilt {n} stats documents");
        Ok(())
    }
}
