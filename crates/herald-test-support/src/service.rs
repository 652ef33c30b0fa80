//! Starting any service in this process on 127.0.0.1:0 against a test nats-server: the shared
//! config, a context, and [`TestService`], which every service crate's `TestApp` is built on.

use std::net::SocketAddr;
use std::time::Duration;

use herald_core::service::{CommonConfig, Service, ServiceContext};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::NatsServer;

/// The shared config pointing at `nats`, with a short request timeout for snappy failures.
pub fn common_config(nats: &NatsServer) -> CommonConfig {
    common_config_at(&nats.url())
}

/// The shared config pointing at `url` (which need not be reachable), with a short request
/// timeout for snappy failures.
pub fn common_config_at(url: &str) -> CommonConfig {
    let mut common = CommonConfig::default();
    common.nats.url = url.to_owned();
    common.nats.request_timeout = Duration::from_secs(2);
    common
}

/// A service context on `nats` and the token that stops the service.
pub async fn context(nats: &NatsServer, name: &str) -> (ServiceContext, CancellationToken) {
    connect(&common_config(nats), name).await
}

async fn connect(common: &CommonConfig, name: &str) -> (ServiceContext, CancellationToken) {
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(common, name, shutdown.clone())
        .await
        .expect("a NATS client");
    (ctx, shutdown)
}

/// One service running in this process: where it listens, the token that stops it, and its
/// task. Dropping it cancels the token (the service finishes in the background).
pub struct TestService<S: Service> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancelling it stops the service.
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), S::Error>>>,
}

impl<S: Service> TestService<S> {
    /// Builds `S` with `cfg` on 127.0.0.1:0, connected to `nats` by [`common_config`], and
    /// runs it. Panics if it does not build.
    pub async fn start(cfg: S::Config, nats: &NatsServer) -> Self {
        Self::start_with(cfg, &common_config(nats)).await
    }

    /// [`TestService::start`] with the shared settings `common`.
    pub async fn start_with(cfg: S::Config, common: &CommonConfig) -> Self {
        let (service, shutdown) = build::<S>(cfg, common).await.expect("the service builds");
        Self::run(service, shutdown)
    }

    /// Runs a service built by [`build`] (when the test needs a handle from it first).
    pub fn run(service: S, shutdown: CancellationToken) -> Self {
        Self {
            addr: service.local_addr(),
            shutdown,
            handle: Some(tokio::spawn(service.run_until_stopped())),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Cancels the token and waits (under `deadline`) for the service to return; panics
    /// unless it stops cleanly.
    pub async fn stop(&mut self, deadline: Duration) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(deadline, handle).await;
            assert!(
                matches!(result, Ok(Ok(Ok(())))),
                "{} stops cleanly: {result:?}",
                S::NAME
            );
        }
    }

    /// Cancels the token and aborts the task at once (no clean stop is waited for).
    pub fn abort(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

impl<S: Service> Drop for TestService<S> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Builds `S` with `cfg` on 127.0.0.1:0 and a context on `common` (client name
/// `<S::NAME>-test`), without running it; the token stops it once run.
pub async fn build<S: Service>(
    cfg: S::Config,
    common: &CommonConfig,
) -> Result<(S, CancellationToken), S::Error> {
    let (ctx, shutdown) = connect(common, &format!("{}-test", S::NAME)).await;
    let service = S::build(cfg, crate::net::listener().await, ctx).await?;
    Ok((service, shutdown))
}
