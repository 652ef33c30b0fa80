//! The in-process stack of the cluster, partition and nats_auth tests: ingest, gateway(s),
//! notifier and stats built from their configs in this process, on one NATS URL (a server, or
//! a cluster's URLs, or a proxy's), each optionally as its own NATS identity.
//!
//! `herald_launch::Stack` (real binaries, used by the CLI tests,
//! chaos, bench and the browser e2e) runs one nats-server it starts itself; these tests need
//! what it does not model: a NATS cluster, per-service URLs to a subset of its nodes or to
//! proxies, and services started before an admin provisions the streams.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::service::{CommonConfig, Service, ServiceContext};
use herald_test_support::nats::Identities;
use herald_test_support::{net, wait};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a service may take to answer `/readyz` with 200.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A token for `tenant`'s `topics`, signed with `secret`, valid for ten minutes.
pub(crate) fn token(secret: &str, sub: &str, tenant: &str, topics: &[&str]) -> String {
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    herald::token::mint(
        secret,
        sub,
        &TenantId::parse(tenant).expect("a tenant id"),
        &topics,
        Duration::from_secs(600),
    )
    .expect("a token")
}

/// Ingest on 127.0.0.1:0 with one API key for `tenant`.
pub(crate) fn ingest_config(tenant: &str, api_key: &str) -> herald_ingest::Config {
    let mut cfg = herald_ingest::Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        ..Default::default()
    };
    cfg.api_keys = BTreeMap::from([(
        TenantId::parse(tenant).expect("a tenant id"),
        vec![Secret::new(api_key)],
    )]);
    cfg
}

/// A gateway on 127.0.0.1:0 trusting HS256 tokens signed with `secret`, with no drain window.
pub(crate) fn gateway_config(secret: &str) -> herald_gateway::Config {
    let mut cfg = herald_gateway::Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        drain_window: Duration::ZERO,
        ..Default::default()
    };
    cfg.jwt.secret = Some(Secret::new(secret));
    cfg
}

/// Services running in this process; cancelled on drop.
pub(crate) struct InProcess {
    common: CommonConfig,
    identities: Option<Identities>,
    addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// No services yet; each connects with `common` (its NATS URL, stream settings, timeouts).
    pub(crate) fn new(common: CommonConfig) -> Self {
        Self {
            common,
            identities: None,
            addrs: Vec::new(),
            shutdown: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Each service connects as its own identity of `ids` (deploy/nats/auth.conf).
    pub(crate) fn with_identities(mut self, ids: Identities) -> Self {
        self.identities = Some(ids);
        self
    }

    /// A context for `user` on `url` (the stack's URL if `None`).
    async fn context(&self, user: &str, url: Option<&str>) -> ServiceContext {
        let mut common = self.common.clone();
        if let Some(url) = url {
            common.nats.url = url.to_owned();
        }
        if let Some(ids) = &self.identities {
            let timeout = common.nats.request_timeout;
            common.nats = ids.nats_config(user, &common.nats.url);
            common.nats.request_timeout = timeout;
        }
        ServiceContext::connect(&common, &format!("it-{user}"), self.shutdown.clone())
            .await
            .expect("a NATS client")
    }

    /// Starts service `S` with `cfg` as its own NATS identity, on `url` (the stack's URL if
    /// `None`); returns its address.
    pub(crate) async fn start<S: Service>(
        &mut self,
        cfg: S::Config,
        url: Option<&str>,
    ) -> SocketAddr {
        let ctx = self.context(S::SECTION, url).await;
        let app = S::build(cfg, net::listener().await, ctx)
            .await
            .unwrap_or_else(|err| panic!("{} builds: {err}", S::NAME));
        let addr = app.local_addr();
        self.addrs.push(addr);
        self.tasks.push(tokio::spawn(
            async move { Ok(app.run_until_stopped().await?) },
        ));
        addr
    }

    /// Waits until each of `addrs` answers `/readyz` with 200.
    pub(crate) async fn wait_ready(addrs: &[SocketAddr]) {
        let http = reqwest::Client::new();
        for addr in addrs {
            let what = format!("{addr}/readyz to answer 200");
            let url = format!("http://{addr}/readyz");
            wait::until(&what, READY_DEADLINE, || async {
                let r = http.get(&url).send().await;
                r.is_ok_and(|r| r.status().is_success())
            })
            .await;
        }
    }

    /// Waits until every service answers `/readyz` with 200.
    pub(crate) async fn wait_all_ready(&self) {
        Self::wait_ready(&self.addrs).await;
    }

    /// Stops every service and asserts each stopped cleanly.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let res = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert!(
                matches!(res, Ok(Ok(Ok(())))),
                "a service stops cleanly: {res:?}"
            );
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
