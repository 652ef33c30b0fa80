//! What every service gets from the process that hosts it.
//!
//! A standalone binary and `herald up` (all services in one process) build the same
//! [`ServiceContext`] and hand it to each service's `App::build`, together with a bound
//! listener. Tests do the same with a test nats-server and `127.0.0.1:0`.

use async_nats::jetstream;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;
use crate::nats::{self, ConnectError, NatsConfig};
use crate::serve::{HttpConfig, ServerMetrics};
use crate::streams::StreamSettings;
use crate::telemetry::LogConfig;

/// The configuration every service shares: `[nats]`, `[stream]`, `[log]` and `[http]`.
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
