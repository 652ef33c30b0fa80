//! Building and running the notifier, and reloading its rules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use herald_core::http::{NatsReadiness, Readiness, ReadyFuture, ops_router};
use herald_core::retry::{Policy, with_backoff};
use herald_core::service::{ServiceConfig, ServiceContext, serve};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError};
use crate::consumer::{self, SharedRules, Source};
use crate::dedup::Dedup;
use crate::handler::Handler;
use crate::limiter::SharedLimiters;
use crate::metrics::{Metrics, ResultLabel};
use crate::rules::{Rules, RulesError};
use crate::targets::Senders;
use crate::worker::{Dispatcher, WorkerContext};

/// Why the notifier could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The rules file is invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// An HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client")]
    Http(#[from] reqwest::Error),
    /// The listener failed.
    #[error("HTTP server failed")]
    Io(#[from] std::io::Error),
}

/// Reloads the rules file; the old rules stay in force if the new file is invalid.
#[derive(Clone)]
pub struct Reloader {
    path: Option<PathBuf>,
    rules: SharedRules,
    filters: watch::Sender<Vec<String>>,
    metrics: Metrics,
}

impl Reloader {
    /// Reads the rules file again. On success the new rules apply to every event handled
    /// from now on (and the consumer's filter subjects follow); on error nothing changes.
    pub fn reload(&self) -> Result<usize, RulesError> {
        let result = match &self.path {
            Some(p) => Rules::load(p),
            None => Ok(Rules::default()),
        };
        match result {
            Ok(rules) => {
                let n = rules.len();
                let filters = rules.filter_subjects();
                *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
                self.filters.send_if_modified(|f| {
                    let changed = *f != filters;
                    *f = filters;
                    changed
                });
                self.metrics.rules.set(i64::try_from(n).unwrap_or(i64::MAX));
                self.metrics
                    .reloads
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                tracing::info!(rules = n, "rules reloaded");
                Ok(n)
            }
            Err(err) => {
                self.metrics
                    .reloads
                    .get_or_create(&ResultLabel { result: "error" })
                    .inc();
                tracing::error!(error = %herald_core::error_chain(&err), "rules reload failed; the previous rules stay in force");
                Err(err)
            }
        }
    }
}

/// Ready when NATS and the streams are there and the events consumer exists.
struct NotifierReadiness {
    nats: NatsReadiness,
    consumer: watch::Receiver<bool>,
}

impl Readiness for NotifierReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            self.nats.check().await?;
            if !*self.consumer.borrow() {
                return Err("the notifier consumer is not set up yet".into());
            }
            Ok(())
        })
    }
}

/// A built notifier: configured, rules compiled, ops endpoints bound; not yet consuming.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    addr: SocketAddr,
    reloader: Reloader,
    consumers: Consumers,
}

impl App {
    /// Validates `cfg`, compiles the rules file (an invalid one is an error here) and wires
    /// the ops endpoints. Does not wait for NATS.
    pub async fn build(
        cfg: Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let rules = match &cfg.rules_file {
            Some(p) => Rules::load(p)?,
            None => Rules::default(),
        };
        let senders = Senders::new(&cfg)?;
        let addr = listener.local_addr()?;
        herald_core::dev::refuse_exposed("notifier", addr, cfg.secrets())?;
        let (metrics, registry) = Metrics::new();
        metrics
            .rules
            .set(i64::try_from(rules.len()).unwrap_or(i64::MAX));
        let (filters_tx, filters) = watch::channel(rules.filter_subjects());
        let (ready, ready_rx) = watch::channel(false);
        let readiness = NotifierReadiness {
            nats: NatsReadiness {
                client: ctx.client.clone(),
                js: ctx.js.clone(),
                liveness: ctx.liveness.clone(),
            },
            consumer: ready_rx,
        };
        let router = ops_router(registry, Arc::new(readiness));
        let telegram_targets = rules.targets().any(|t| t.destination.kind() == "telegram");
        if telegram_targets
            && cfg.telegram.bot_token.is_none()
            && cfg.telegram.tenant_tokens.is_empty()
        {
            tracing::warn!(
                "telegram targets are configured but no bot token: their events will be dead-lettered"
            );
        }
        if rules.is_empty() {
            tracing::warn!("no notification rules configured (set rules_file): the notifier idles");
        } else {
            tracing::info!(
                rules = rules.len(),
                targets = rules.targets().count(),
                "notification rules loaded"
            );
        }
        tracing::info!(%addr, "notifier built");
        let rules: SharedRules = Arc::new(RwLock::new(Arc::new(rules)));
        let reloader = Reloader {
            path: cfg.rules_file.clone(),
            rules: rules.clone(),
            filters: filters_tx,
            metrics: metrics.clone(),
        };
        Ok(Self {
            listener,
            router,
            addr,
            reloader,
            consumers: Consumers {
                cfg: Arc::new(cfg),
                ctx,
                rules,
                filters,
                ready,
                metrics,
                senders,
            },
        })
    }

    /// The address the ops endpoints listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that reloads the rules file (what SIGHUP does).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Provisions streams and the delivery-record bucket in the background, consumes until
    /// shutdown, then lets sends in progress finish and puts held events back.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let Self {
            listener,
            router,
            reloader,
            consumers,
            ..
        } = self;
        let tracker = TaskTracker::new();
        let shutdown = consumers.ctx.shutdown.clone();
        #[cfg(unix)]
        tracker.spawn(reload_on_sighup(reloader, shutdown.clone()));
        #[cfg(not(unix))]
        drop(reloader);
        let http = consumers.ctx.http.clone();
        let server_metrics = consumers.metrics.server.clone();
        tracker.spawn(consumers.run(tracker.clone()));
        let result = serve(listener, router, &http, server_metrics, shutdown).await;
        tracker.close();
        tracker.wait().await;
        tracing::info!("notifier stopped");
        Ok(result?)
    }
}

/// What the notifier's consumers need once it runs.
struct Consumers {
    cfg: Arc<Config>,
    ctx: ServiceContext,
    rules: SharedRules,
    filters: watch::Receiver<Vec<String>>,
    ready: watch::Sender<bool>,
    metrics: Metrics,
    senders: Senders,
}

impl Consumers {
    /// Provisions the streams and the delivery-record bucket, then runs the re-drive and the
    /// events consumers until shutdown. `None` if shutdown came first.
    async fn run(self, tracker: TaskTracker) -> Option<()> {
        let (ctx, cfg, metrics) = (self.ctx, self.cfg, self.metrics);
        let shutdown = ctx.shutdown.clone();
        // A provisioning request in flight when shutdown comes is not waited for.
        tokio::select! {
            () = shutdown.cancelled() => return None,
            p = herald_core::nats::provision_until_ready(&ctx.js, &ctx.streams, &shutdown) => p?,
        };
        let dedup = open_dedup(&ctx, &shutdown).await?;
        let workers = WorkerContext {
            senders: self.senders,
            dedup: dedup.clone(),
            metrics: metrics.clone(),
            rate: cfg.rate.clone(),
            digest: cfg.digest.clone(),
            max_hold: cfg.max_hold,
            bots: SharedLimiters::default(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        };
        let handler = Arc::new(Handler {
            js: ctx.js.clone(),
            rules: self.rules,
            dispatcher: Dispatcher::new(workers),
            dedup,
            metrics,
            cfg,
        });
        let (redrive_filters_tx, redrive_filters) =
            watch::channel(vec![consumer::redrive_filter()]);
        let (redrive_ready, _) = watch::channel(false);
        for (source, filters, ready) in [
            (Source::Redrive, redrive_filters, redrive_ready),
            (Source::Events, self.filters, self.ready),
        ] {
            let (handler, tasks) = (Arc::clone(&handler), tracker.clone());
            tracker.spawn(consumer::run(
                handler,
                source,
                filters,
                ready,
                tasks,
                shutdown.clone(),
            ));
        }
        // Keep the redrive filter channel open for the consumer's lifetime.
        shutdown.cancelled().await;
        drop(redrive_filters_tx);
        Some(())
    }
}

herald_core::impl_service!(App {
    name: "herald-notifier",
    section: "notifier",
    about: "Herald notifier: Telegram and Slack notifications from NATS JetStream. \
            SIGHUP reloads the rules file.",
    config: Config,
    error: Error,
});

async fn open_dedup(
    ctx: &ServiceContext,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<Dedup> {
    let policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
    let what = "cannot open the delivery-record bucket";
    with_backoff(policy, shutdown, what, || {
        Dedup::open(&ctx.js, &ctx.streams)
    })
    .await
}

#[cfg(unix)]
async fn reload_on_sighup(reloader: Reloader, shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!(%err, "cannot listen for SIGHUP; rules reload is unavailable");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() { return }
                tracing::info!("SIGHUP: reloading rules");
                let _ = reloader.reload();
            }
        }
    }
}
