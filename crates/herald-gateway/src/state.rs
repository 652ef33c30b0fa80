//! What every handler shares.

use std::sync::Arc;

use async_nats::jetstream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::Limiter;
use crate::metrics::Metrics;

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub cfg: Arc<Config>,
    /// The fan-out.
    pub hub: Arc<Hub>,
    /// JetStream, for replays.
    pub js: jetstream::Context,
    /// Token verification.
    pub auth: Arc<Authenticator>,
    /// Connection limits.
    pub limiter: Arc<Limiter>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Slots for concurrent JetStream replays.
    pub replay_slots: Arc<Semaphore>,
    /// Snapshots kept for their later pages (`GET /v1/snapshot`).
    pub snapshots: Arc<crate::snapshot::Retained>,
    /// Cancelled on shutdown (WebSocket connections without a subscription watch it; sessions
    /// learn it from the hub's drain).
    pub shutdown: CancellationToken,
    /// Who is connected to presence topics, across gateways.
    pub presence: Arc<crate::presence::Presence>,
    /// The topics anyone may read without a token.
    pub public: Arc<crate::presence::TopicMap>,
    /// Limits of public (token-less) connections, per client address.
    pub public_limiter: Arc<crate::routes::public::PublicLimiter>,
}
