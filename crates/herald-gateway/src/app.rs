//! Building and running the gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use herald_core::http::{Readiness, ReadyFuture, nats_answering, ops_router};
use herald_core::service::{ServiceConfig, ServiceContext};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::Error;
use crate::hub::Hub;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::presence::{Presence, TopicMap};
use crate::routes::public::PublicLimiter;
use crate::state::AppState;
use crate::stats_feed::StatsFeed;
use crate::tail::Tail;
use crate::{auth, routes, server, web};

/// A built gateway, ready to run.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
    timeouts: server::Timeouts,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
    tail: Tail,
    stats: StatsFeed,
    presence: crate::presence::sync::Sync,
    jwks: Option<JwksTask>,
    background: CancellationToken,
    ctx: ServiceContext,
}

/// The JWK Set refresher, if `jwt.jwks_url` is set.
type JwksTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

struct GatewayReadiness {
    client: async_nats::Client,
    liveness: herald_core::liveness::Liveness,
    hub: Arc<Hub>,
}

impl Readiness for GatewayReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            nats_answering(&self.client, &self.liveness)?;
            if !self.hub.is_live() {
                return Err("not following the event stream yet".into());
            }
            Ok(())
        })
    }
}

impl App {
    /// Builds the gateway on `listener`. Does not wait for NATS: the tail provisions and
    /// connects in the background, and `/readyz` says not-ready until it follows the stream.
    pub async fn build(
        cfg: Config,
        listener: TcpListener,
        ctx: ServiceContext,
    ) -> Result<App, Error> {
        let addr = listener.local_addr()?;
        herald_core::dev::refuse_exposed("gateway", addr, &cfg.jwt.secret)?;
        cfg.validate()?;
        let (metrics, registry) = Metrics::new();
        let metrics = Arc::new(metrics);
        let collections = Arc::new(ctx.state.collections()?);
        let hub = Hub::with_collections(
            cfg.ring_events,
            cfg.ring_bytes,
            Arc::clone(&metrics),
            collections,
        );
        let auth = Arc::new(Authenticator::new(&cfg.jwt)?);
        // Background work stops on a child token: when serving ends (or fails) without
        // stopping the other services that share `ctx.shutdown` under `herald up`.
        let background = ctx.shutdown.child_token();
        let jwks = cfg.jwt.jwks_url.clone().map(|url| {
            auth::refresh_jwks(
                Arc::clone(&auth),
                url,
                cfg.jwt.jwks_refresh,
                background.clone(),
            )
        });
        let presence = Presence::from_config(&cfg, ctx.streams.presence_ttl())?;
        let state = app_state(&cfg, &ctx, &hub, auth, &metrics, &presence)?;
        let public = routes::public::router(state.clone());
        let readiness = Arc::new(GatewayReadiness {
            client: ctx.client.clone(),
            liveness: ctx.liveness.clone(),
            hub: Arc::clone(&hub),
        });
        let router = with_layers(
            routes::router(state).merge(ops_router(registry, readiness)),
            public,
            &cfg,
        );
        let stats = StatsFeed {
            js: ctx.js.clone(),
            hub: Arc::clone(&hub),
            metrics: Arc::clone(&metrics),
            shutdown: background.clone(),
        };
        let presence = presence.sync(ctx.js.clone(), background.clone());
        let tail = tail(&ctx, &hub, &metrics, &cfg, background.clone());
        Ok(App {
            listener,
            addr,
            router,
            timeouts: server::Timeouts {
                head: cfg.head_timeout,
                write: cfg.write_timeout,
                caps: ctx.http.clone(),
                per_ip: cfg.limits.per_ip,
            },
            metrics,
            hub,
            tail,
            stats,
            presence,
            jwks: jwks.map(|f| Box::pin(f) as JwksTask),
            background,
            ctx,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `ctx.shutdown` is cancelled, then drains: every open stream is told to
    /// `reconnect` within the drain window, and this returns once they are closed.
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        let loader = crate::mirror::load::Loader {
            js: self.ctx.js.clone(),
            hub: Arc::clone(&self.hub),
            shutdown: self.background.clone(),
        };
        tokio::spawn(loader.run());
        let tail = tokio::spawn(self.tail.run());
        let stats = tokio::spawn(self.stats.run());
        let presence = tokio::spawn(self.presence.run());
        if let Some(jwks) = self.jwks {
            tokio::spawn(jwks);
        }
        let drain = {
            let (hub, shutdown) = (self.hub, self.ctx.shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                hub.drain();
            })
        };
        let served = server::serve(
            self.listener,
            self.router,
            self.timeouts,
            self.metrics,
            self.ctx.shutdown.clone(),
        )
        .await;
        drain.abort();
        self.background.cancel();
        if let Err(err) = tail.await {
            tracing::error!(%err, "the event tail panicked");
        }
        if let Err(err) = stats.await {
            tracing::error!(%err, "the stats watch panicked");
        }
        // The presence writer deletes this gateway's entries (bounded), so its users leave
        // at once rather than within the TTL.
        match tokio::time::timeout(std::time::Duration::from_secs(5), presence).await {
            Ok(Err(err)) => tracing::error!(%err, "the presence sync panicked"),
            Ok(Ok(())) => {}
            Err(_) => tracing::warn!("the presence sync did not stop in time"),
        }
        served.map_err(Error::Io)
    }
}

/// The tail of `hub`, stopped by `shutdown`.
fn tail(
    ctx: &ServiceContext,
    hub: &Arc<Hub>,
    metrics: &Arc<Metrics>,
    cfg: &Config,
    shutdown: CancellationToken,
) -> Tail {
    Tail {
        client: ctx.client.clone(),
        liveness: ctx.liveness.clone(),
        js: ctx.js.clone(),
        settings: ctx.streams.clone(),
        hub: Arc::clone(hub),
        metrics: Arc::clone(metrics),
        connection_check: cfg.connection_check,
        stream_check: cfg.stream_check,
        shutdown,
    }
}

/// What every handler shares.
fn app_state(
    cfg: &Config,
    ctx: &ServiceContext,
    hub: &Arc<Hub>,
    auth: Arc<Authenticator>,
    metrics: &Arc<Metrics>,
    presence: &Arc<Presence>,
) -> Result<AppState, Error> {
    Ok(AppState {
        hub: Arc::clone(hub),
        js: ctx.js.clone(),
        auth,
        limiter: Limiter::new(cfg.limits.clone()),
        metrics: Arc::clone(metrics),
        replay_slots: Arc::new(Semaphore::new(cfg.max_replays.max(1))),
        shutdown: ctx.shutdown.clone(),
        presence: Arc::clone(presence),
        public: Arc::new(TopicMap::parse("public", &cfg.public)?),
        public_limiter: PublicLimiter::new(&cfg.limits),
        snapshots: Arc::new(crate::snapshot::Retained::new(
            cfg.snapshot_ttl,
            cfg.snapshot_retained,
        )),
        cfg: Arc::new(cfg.clone()),
    })
}

herald_core::impl_service!(App {
    name: "herald-gateway",
    section: crate::SECTION,
    about: "Herald gateway: SSE, WebSocket and long-poll delivery.",
    config: Config,
    error: Error,
});

/// `router` plus `web_dir`'s files, under the tracing and CORS layers; `public` (which has
/// its own CORS: any origin) is merged after the CORS layer and under the tracing one.
fn with_layers(mut router: Router, public: Router, cfg: &Config) -> Router {
    if let Some(dir) = &cfg.web_dir {
        router = router.merge(web::router(dir));
    }
    if let Some(cors) = cors_layer(&cfg.cors_origins) {
        router = router.layer(cors);
    }
    router.merge(public).layer(
        // The span names the path only: the query may hold `access_token`, and no secret is
        // ever logged.
        tower_http::trace::TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            },
        ),
    )
}

/// CORS for `origins`: none → no layer; `*` → any origin; else those origins, with
/// credentials.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ]);
    if origins.iter().any(|o| o == "*") {
        return Some(base.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring an invalid CORS origin");
                None
            }
        })
        .collect();
    Some(base.allow_origin(list).allow_credentials(true))
}
