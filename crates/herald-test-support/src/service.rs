//! What every service's `TestApp` needs to start a service on 127.0.0.1:0 against a test
//! nats-server.

use std::time::Duration;

use herald_core::service::{CommonConfig, ServiceContext};
use tokio_util::sync::CancellationToken;

use crate::NatsServer;

/// The shared config pointing at `nats`, with a short request timeout for snappy failures.
pub fn common_config(nats: &NatsServer) -> CommonConfig {
    let mut common = CommonConfig::default();
    common.nats.url = nats.url();
    common.nats.request_timeout = Duration::from_secs(2);
    common
}

/// A service context on `nats` and the token that stops the service.
pub async fn context(nats: &NatsServer, name: &str) -> (ServiceContext, CancellationToken) {
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common_config(nats), name, shutdown.clone())
        .await
        .expect("a NATS client");
    (ctx, shutdown)
}
