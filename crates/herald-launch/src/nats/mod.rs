//! The one nats-server launcher: JetStream on loopback, a free or fixed port, a temp or given
//! store, optional `-c` config (the deploy/ configs with their identities, TLS), cluster
//! routes, and a log file.
//!
//! The port is learned from the server's own log line ("Listening for client connections on
//! …") and readiness from "Server is ready", both awaited with a deadline: never slept on.
//! [`NatsServer::stop`] is SIGTERM, then kill after a grace; [`NatsServer::restart`] starts it
//! again on the same port and store. The process is killed (and a temp store deleted) on drop.

mod files;
mod log;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};

pub use files::{binary, copy_config, deploy_conf, workspace_root};

use crate::identities::Identities;
use crate::process::{self, STOP_GRACE, Signal, SignalError};
use log::Log;

/// How long a server may take to become ready.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// Why nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// No binary was found.
    #[error(
        "nats-server not found (looked at $HERALD_NATS_SERVER, ./.venv/bin/nats-server and PATH) — run `./dev up`, which installs it"
    )]
    NotFound,
    /// The process could not be spawned.
    #[error("could not start {path} — run `./dev up`, which installs nats-server into .venv/")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It exited or stayed silent before becoming ready.
    #[error("nats-server did not become ready within {timeout:?}; last log lines:\n{log}")]
    NotReady {
        /// The deadline.
        timeout: Duration,
        /// Its last log lines.
        log: String,
    },
    /// A store, config or log file could not be prepared.
    #[error("could not prepare {0}")]
    Files(PathBuf, #[source] std::io::Error),
}

/// Cluster membership: this node's route port, the cluster's name and its routes.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `--cluster_name`.
    pub name: String,
    /// This node's cluster (route) port on 127.0.0.1.
    pub port: u16,
    /// `--routes`: the other nodes' route URLs.
    pub routes: Vec<String>,
    /// `--cluster_advertise` (e.g. a closed port, so nodes dial only the given routes).
    pub advertise: Option<String>,
}

/// How to start a [`NatsServer`].
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// The client port; `None` picks a free one (`-p -1`).
    pub port: Option<u16>,
    /// The JetStream store; `None` is a temp dir deleted on drop.
    pub store: Option<PathBuf>,
    /// The server name (`-n`); `herald` if unset.
    pub name: Option<String>,
    /// A config file (`-c`). It is copied, with every `*.conf` of its directory (its
    /// includes), into a temp dir, its `store_dir:` line pointing at the store; the port,
    /// address and monitoring port are set on the command line, which wins over the file.
    pub config: Option<PathBuf>,
    /// The users and passwords the config file reads from the environment; clients of
    /// [`NatsServer::client`] connect as `admin`.
    pub identities: Option<Identities>,
    /// More environment variables for the config file (e.g. route URLs).
    pub env: Vec<(String, String)>,
    /// Cluster membership.
    pub cluster: Option<ClusterOptions>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// A file the server's log is appended to (besides the in-memory tail).
    pub log_file: Option<PathBuf>,
}

impl NatsOptions {
    /// The real `deploy/nats/single.conf` (no anonymous access, one identity per service),
    /// with fresh random passwords.
    pub fn deploy() -> Self {
        Self {
            config: Some(deploy_conf("single.conf")),
            identities: Some(Identities::random()),
            ..Self::default()
        }
    }
}

/// Where the JetStream store lives.
enum Store {
    Temp(tempfile::TempDir),
    Dir(PathBuf),
}

impl Store {
    fn path(&self) -> &Path {
        match self {
            Self::Temp(t) => t.path(),
            Self::Dir(d) => d,
        }
    }
}

/// A running (or stopped) `nats-server -js`.
pub struct NatsServer {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    store: Store,
    /// The copied config, deleted on drop.
    conf: Option<(tempfile::TempDir, PathBuf)>,
    opts: NatsOptions,
    log: Arc<Log>,
}

impl NatsServer {
    /// Starts a server with `opts` and waits until it is ready.
    pub async fn start(opts: NatsOptions) -> Result<Self, NatsError> {
        let bin = binary().ok_or(NatsError::NotFound)?;
        let store = match &opts.store {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| NatsError::Files(dir.clone(), e))?;
                Store::Dir(dir.clone())
            }
            None => Store::Temp(
                tempfile::Builder::new()
                    .prefix("herald-nats-")
                    .tempdir()
                    .map_err(|e| NatsError::Files(std::env::temp_dir(), e))?,
            ),
        };
        let conf = match &opts.config {
            Some(c) => {
                Some(copy_config(c, store.path()).map_err(|e| NatsError::Files(c.clone(), e))?)
            }
            None => None,
        };
        let mut server = Self {
            bin,
            child: None,
            port: opts.port.unwrap_or(0),
            store,
            conf,
            log: Arc::new(Log::new(opts.log_file.clone())),
            opts,
        };
        server.spawn(server.opts.port).await?;
        Ok(server)
    }

    fn command(&self, port: Option<u16>) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some((_, config)) = &self.conf {
            // The file's own ports are overridden below; a random monitoring port.
            cmd.arg("-c").arg(config).args(["-m", "-1"]);
        } else {
            cmd.arg("-sd").arg(self.store.path());
        }
        if let Some(ids) = &self.opts.identities {
            cmd.envs(ids.env());
        }
        cmd.envs(self.opts.env.iter().cloned());
        let port = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port]);
        // A cluster names each node itself (names must be unique in a JetStream cluster).
        if !self.opts.args.iter().any(|a| a == "-n" || a == "--name") {
            cmd.args(["-n", self.opts.name.as_deref().unwrap_or("herald")]);
        }
        if let Some(c) = &self.opts.cluster {
            cmd.arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", c.port))
                .args(["--cluster_name", &c.name]);
            if let Some(a) = &c.advertise {
                cmd.args(["--cluster_advertise", a]);
            }
            if !c.routes.is_empty() {
                cmd.args(["--routes", &c.routes.join(",")]);
            }
        }
        cmd.args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn spawn(&mut self, port: Option<u16>) -> Result<(), NatsError> {
        let mut child = self
            .command(port)
            .spawn()
            .map_err(|source| NatsError::Spawn {
                path: self.bin.clone(),
                source,
            })?;
        let ready = match child.stderr.take() {
            Some(stderr) => Log::follow(Arc::clone(&self.log), stderr),
            None => return Err(self.not_ready(&mut child).await),
        };
        match tokio::time::timeout(START_DEADLINE, ready).await {
            Ok(Ok(p)) => {
                self.port = p;
                self.child = Some(child);
                Ok(())
            }
            _ => Err(self.not_ready(&mut child).await),
        }
    }

    async fn not_ready(&self, child: &mut Child) -> NatsError {
        let _ = child.kill().await;
        NatsError::NotReady {
            timeout: START_DEADLINE,
            log: self.log.tail(15),
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// The options it was started with.
    pub fn options(&self) -> &NatsOptions {
        &self.opts
    }

    /// The identities the server was started with, if it runs a deploy/ config.
    pub fn identities(&self) -> Option<&Identities> {
        self.opts.identities.as_ref()
    }

    /// The server's last log lines (for error and assertion messages).
    pub fn log_tail(&self) -> String {
        self.log.tail(usize::MAX)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the server process is running (it has not been stopped or killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `sig` to the running server (e.g. [`Signal::Stop`] to freeze it).
    pub fn signal(&self, sig: Signal) -> Result<(), SignalError> {
        match self.pid() {
            Some(pid) => process::signal(pid, sig),
            None => Err(SignalError {
                flag: sig.flag(),
                pid: 0,
                source: None,
            }),
        }
    }

    /// Kills the server with SIGKILL (a crash) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server with SIGTERM (a clean shutdown), killing it after [`STOP_GRACE`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::terminate(&mut child, STOP_GRACE).await;
        }
    }

    /// Starts the server again on the same port with the same store (stopping it first if it
    /// is running), and waits until it is ready.
    pub async fn restart(&mut self) -> Result<(), NatsError> {
        self.stop().await;
        self.spawn(Some(self.port)).await
    }

    /// Connects a client: anonymous, or `admin` on a deploy/ config.
    pub async fn client(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        let opts = match &self.opts.identities {
            Some(ids) => ids.connect_options("admin"),
            None => async_nats::ConnectOptions::new(),
        };
        opts.connect(self.url()).await
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_on_a_free_port_and_restarts_on_the_same_one() {
        let dir = tempfile::tempdir().unwrap();
        let log_file = dir.path().join("nats.log");
        let mut server = NatsServer::start(NatsOptions {
            log_file: Some(log_file.clone()),
            ..NatsOptions::default()
        })
        .await
        .unwrap();
        let port = server.port();
        assert!(server.client().await.is_ok());
        server.kill().await;
        assert!(!server.is_running());
        server.restart().await.unwrap();
        assert_eq!(server.port(), port, "restarts on the same port");
        assert!(server.client().await.is_ok());
        server.stop().await;
        let log = std::fs::read_to_string(log_file).unwrap();
        assert_eq!(log.matches("Server is ready").count(), 2, "{log}");
    }
}
