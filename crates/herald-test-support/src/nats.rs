//! A real `nats-server` with JetStream, on a free loopback port, with a temporary store: the
//! one launcher of [`herald_launch::nats`], wrapped so a test fails with the server's log
//! instead of handling errors.
//!
//! Tests stop, kill and restart the server (on the same port and store) to simulate outages;
//! everything [`herald_launch::NatsServer`] offers (`url`, `port`, `kill`, `stop`, `pid`,
//! `log_tail`, …) is reachable through `Deref`. The process is killed and the store deleted
//! on drop.
//!
//! [`NatsServer::start_deploy`] starts the server from the real `deploy/nats/single.conf`
//! (its identities and permissions from `deploy/nats/auth.conf`), only the ports and store
//! overridden on the command line, with fresh random passwords ([`Identities`]).

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use herald_launch::NatsOptions;
pub use herald_launch::identities::{Identities, ROUTE_USER, USERS};
pub use herald_launch::nats::{ClusterOptions, deploy_conf};

/// A running (or stopped) `nats-server -js`.
pub struct NatsServer(herald_launch::NatsServer);

/// How to start a [`NatsServer`] beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra command-line arguments (e.g. `-n <name>`).
    pub args: Vec<String>,
    /// A config file (`-c`), copied with its includes, its `store_dir` pointing at the temp
    /// store (see [`NatsOptions::config`]).
    pub config: Option<PathBuf>,
    /// The users and passwords the config file reads from the environment; test clients
    /// connect as `admin`.
    pub identities: Option<Identities>,
    /// More environment variables for the config file (e.g. route URLs).
    pub env: Vec<(String, String)>,
    /// Cluster membership.
    pub cluster: Option<ClusterOptions>,
}

impl From<Options> for NatsOptions {
    fn from(o: Options) -> Self {
        Self {
            name: Some("herald-test".to_owned()),
            config: o.config,
            identities: o.identities,
            env: o.env,
            cluster: o.cluster,
            args: o.args,
            ..Self::default()
        }
    }
}

/// The `nats-server` binary (see [`herald_launch::nats::binary`]); `nats-server` if none is
/// found, so the spawn error names it.
pub fn binary() -> PathBuf {
    herald_launch::nats::binary().unwrap_or_else(|| PathBuf::from("nats-server"))
}

impl NatsServer {
    /// Starts a server with JetStream on a free port.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts a server with extra command-line arguments.
    pub async fn start_with_args(args: Vec<String>) -> Self {
        Self::start_with(Options {
            args,
            ..Default::default()
        })
        .await
    }

    /// Starts a server from the real `deploy/nats/single.conf` (no anonymous access, one
    /// identity per service), with fresh random passwords; [`client`](Self::client) is admin.
    pub async fn start_deploy() -> Self {
        Self::start_with(Options {
            config: Some(deploy_conf("single.conf")),
            identities: Some(Identities::random()),
            ..Default::default()
        })
        .await
    }

    /// Starts a server with `opts`.
    pub async fn start_with(opts: Options) -> Self {
        Self::launch(opts.into()).await
    }

    /// Starts a server with the launcher's full options.
    pub async fn launch(opts: NatsOptions) -> Self {
        match herald_launch::NatsServer::start(opts).await {
            Ok(server) => Self(server),
            Err(err) => panic!("{err}; run the README's test command, which installs it"),
        }
    }

    /// Starts the server again on the same port with the same store (stopping it first if it
    /// is running), and waits until it is ready.
    pub async fn restart(&mut self) {
        if let Err(err) = self.0.restart().await {
            panic!("restarting nats-server: {err}");
        }
    }

    /// Connects a client for test assertions: anonymous, or `admin` on a deploy/ config.
    pub async fn client(&self) -> async_nats::Client {
        self.0
            .client()
            .await
            .expect("connect to the test nats-server")
    }

    /// Connects as `user` of a deploy/ config (with its inbox prefix); the error if refused.
    pub async fn client_as(
        &self,
        user: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        let ids = self
            .identities()
            .expect("client_as needs a server started from a deploy/ config");
        ids.connect_options(user).connect(self.url()).await
    }

    /// A JetStream context on a fresh client.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }

    /// The launcher's server (e.g. to hand to a [`herald_launch::Stack`]).
    pub fn into_inner(self) -> herald_launch::NatsServer {
        self.0
    }
}

impl Deref for NatsServer {
    type Target = herald_launch::NatsServer;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_restarts_and_keeps_data() {
        let mut server = NatsServer::start().await;
        let js = server.jetstream().await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("t.a", "1".into()).await.unwrap().await.unwrap();
        let port = server.port();
        server.kill().await;
        assert!(!server.is_running());
        server.restart().await;
        assert_eq!(server.port(), port, "restarts on the same port");
        let js = server.jetstream().await;
        let mut stream = js.get_stream("T").await.unwrap();
        assert_eq!(
            stream.info().await.unwrap().state.messages,
            1,
            "the store survives"
        );
    }
}
