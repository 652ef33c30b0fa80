//! What every service gets from the process that hosts it.
//!
//! A standalone binary and `herald up` (all services in one process) build the same
//! [`ServiceContext`] and hand it to each service's `App::build`, together with a bound
//! listener. Tests do the same with a test nats-server and `127.0.0.1:0`.

use std::net::SocketAddr;

use async_nats::jetstream;
use axum::Router;
use axum::serve::ListenerExt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::liveness::Liveness;
use crate::nats::{self, ConnectError, NatsConfig};
use crate::streams::StreamSettings;
use crate::telemetry::LogConfig;

/// The configuration every service shares: `[nats]`, `[stream]` and `[log]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonConfig {
    /// How to reach NATS (`HERALD_NATS__*`).
    pub nats: NatsConfig,
    /// Retention and replication of Herald's streams (`HERALD_STREAM__*`).
    pub stream: StreamSettings,
    /// Logging (`HERALD_LOG__*`).
    pub log: LogConfig,
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
            liveness,
        })
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Frames and responses are written whole: Nagle's algorithm would only hold small writes
    // back (up to a delayed ACK) behind the previous one.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
