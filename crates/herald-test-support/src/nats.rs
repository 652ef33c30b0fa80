//! A real `nats-server` with JetStream, on a free loopback port, with a temporary store.
//!
//! The port is learned from the server's own log line ("Listening for client connections
//! on …") and readiness from "Server is ready", both awaited with a deadline: no sleeping.
//! Tests stop, kill and restart the server (on the same port and store) to simulate outages.
//! The process is killed and the store deleted on drop.
//!
//! [`NatsServer::start_deploy`] starts the server from the real `deploy/nats/single.conf`
//! (its identities and permissions from `deploy/nats/auth.conf`), only the ports and store
//! overridden on the command line, with fresh random passwords ([`Identities`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to become ready.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How many of the server's last log lines are kept for failure messages.
const LOG_LINES: usize = 200;

/// A running (or stopped) `nats-server -js`.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// The copied config (see [`Options::config`]), deleted on drop.
    conf: Option<(tempfile::TempDir, PathBuf)>,
    opts: Options,
    log: Arc<Mutex<Vec<String>>>,
}

/// How to start a [`NatsServer`] beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra command-line arguments (e.g. `--cluster …`).
    pub args: Vec<String>,
    /// A config file (`-c`). It is copied, with every `*.conf` of its directory (its
    /// includes), into a temp dir, its `store_dir:` line pointing at the temp store; the port,
    /// address and monitoring port are set on the command line, which wins over the file.
    pub config: Option<PathBuf>,
    /// The users and passwords the config file reads from the environment; test clients
    /// connect as `admin`.
    pub identities: Option<Identities>,
    /// More environment variables for the config file (e.g. route URLs).
    pub env: Vec<(String, String)>,
}

/// The identities of `deploy/nats/auth.conf`.
pub const USERS: [&str; 5] = ["admin", "ingest", "gateway", "notifier", "stats"];

/// Random passwords for every identity of `deploy/nats/auth.conf`, and for cluster routes.
#[derive(Debug, Clone)]
pub struct Identities {
    passwords: Vec<(&'static str, String)>,
    route_password: String,
}

/// The user name cluster routes authenticate with.
pub const ROUTE_USER: &str = "route";

impl Identities {
    /// Fresh random passwords (128 bits each).
    pub fn random() -> Self {
        Self {
            passwords: USERS.iter().map(|u| (*u, random_secret())).collect(),
            route_password: random_secret(),
        }
    }

    /// `user`'s password (panics on a user `deploy/nats/auth.conf` does not have).
    pub fn password(&self, user: &str) -> &str {
        self.passwords
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
            .unwrap_or_else(|| panic!("no NATS identity {user}"))
    }

    /// The routes' password.
    pub fn route_password(&self) -> &str {
        &self.route_password
    }

    /// The variables the deploy/ NATS configs read: `HERALD_NATS_<USER>_PASSWORD`,
    /// `HERALD_NATS_ROUTE_USER`, `HERALD_NATS_ROUTE_PASSWORD` (what `deploy/.env` holds).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .passwords
            .iter()
            .map(|(u, p)| {
                (
                    format!("HERALD_NATS_{}_PASSWORD", u.to_ascii_uppercase()),
                    p.clone(),
                )
            })
            .collect();
        env.push(("HERALD_NATS_ROUTE_USER".into(), ROUTE_USER.into()));
        env.push((
            "HERALD_NATS_ROUTE_PASSWORD".into(),
            self.route_password.clone(),
        ));
        env
    }

    /// A service's `[nats]` settings as `user` on `url`: user, password and its own inbox
    /// prefix (`_INBOX_<user>`), as the compose files set them.
    pub fn nats_config(&self, user: &str, url: &str) -> herald_core::nats::NatsConfig {
        herald_core::nats::NatsConfig {
            url: url.to_owned(),
            user: Some(user.to_owned()),
            password: Some(herald_core::secret::Secret::new(self.password(user))),
            inbox_prefix: format!("_INBOX_{user}"),
            ..Default::default()
        }
    }

    /// The `HERALD_NATS__*` variables for a service binary connecting as `user`.
    pub fn service_env(&self, user: &str) -> Vec<(String, String)> {
        vec![
            ("HERALD_NATS__USER".into(), user.to_owned()),
            (
                "HERALD_NATS__PASSWORD".into(),
                self.password(user).to_owned(),
            ),
            ("HERALD_NATS__INBOX_PREFIX".into(), format!("_INBOX_{user}")),
        ]
    }

    /// Connect options for `user` (with its inbox prefix).
    pub fn connect_options(&self, user: &str) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            self.password(user).to_owned(),
        )
        .custom_inbox_prefix(format!("_INBOX_{user}"))
    }
}

/// 32 hex digits from the OS's random source.
fn random_secret() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies `config` and the other `*.conf` files of its directory into a temp dir, with the
/// main file's `store_dir:` set to `store` (nats-server refuses `-sd` next to a `store_dir`).
fn copy_config(config: &Path, store: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("herald-nats-conf-")
        .tempdir()
        .expect("a temp config dir");
    let src = config.parent().expect("a config file's directory");
    for entry in std::fs::read_dir(src).expect("read the config's directory") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "conf") {
            std::fs::copy(
                &path,
                dir.path().join(path.file_name().expect("a file name")),
            )
            .expect("copy a config file");
        }
    }
    let text = std::fs::read_to_string(config).expect("read the config");
    let store_line = format!("  store_dir: \"{}\"", store.display());
    let text: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("store_dir:") {
                store_line.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    let main = dir.path().join(config.file_name().expect("a file name"));
    std::fs::write(&main, text.join("\n")).expect("write the config");
    (dir, main)
}

/// A file under the workspace's `deploy/nats/`.
pub fn deploy_conf(name: &str) -> PathBuf {
    crate::workspace_root().join("deploy/nats").join(name)
}

/// The `nats-server` binary: `$HERALD_NATS_SERVER`, else `.venv/bin/nats-server` in the
/// workspace (what the README's commands install), else `nats-server` on `PATH`.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HERALD_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let venv = crate::workspace_root().join(".venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

impl NatsServer {
    /// Starts a server with JetStream on a free port.
    pub async fn start() -> Self {
        Self::start_with_args(Vec::new()).await
    }

    /// Starts a server with extra command-line arguments (e.g. `--cluster …`).
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

    /// The identities the server was started with, if it runs a deploy/ config.
    pub fn identities(&self) -> Option<&Identities> {
        self.opts.identities.as_ref()
    }

    /// Starts a server with `opts`.
    pub async fn start_with(opts: Options) -> Self {
        let store = tempfile::Builder::new()
            .prefix("herald-nats-")
            .tempdir()
            .expect("create a temp store");
        let mut server = Self {
            child: None,
            port: 0,
            conf: opts.config.as_deref().map(|c| copy_config(c, store.path())),
            store,
            opts,
            log: Arc::default(),
        };
        server.spawn(None).await;
        server
    }

    async fn spawn(&mut self, port: Option<u16>) {
        let bin = binary();
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new(&bin);
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
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port_arg]);
        // A cluster names each node itself (names must be unique in a JetStream cluster).
        if !self.opts.args.iter().any(|a| a == "-n" || a == "--name") {
            cmd.args(["-n", "herald-test"]);
        }
        cmd.args(&self.opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); run the README's test command, which installs it",
                bin.display()
            )
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = tokio::sync::oneshot::channel::<u16>();
        let log = Arc::clone(&self.log);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            let mut port = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if port.is_none() {
                    port = parse_client_port(&line);
                }
                if line.contains("Server is ready")
                    && let (Some(tx), Some(p)) = (tx.take(), port)
                {
                    let _ = tx.send(p);
                }
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                if log.len() == LOG_LINES {
                    log.remove(0);
                }
                log.push(line);
            }
        });
        match tokio::time::timeout(START_DEADLINE, rx).await {
            Ok(Ok(p)) => self.port = p,
            _ => panic!(
                "nats-server did not become ready within {START_DEADLINE:?}; its log:\n{}",
                self.log_tail()
            ),
        }
        self.child = Some(child);
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

    /// The server's last log lines (for assertion messages).
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// The server's process id, while it runs (for signals, e.g. [`NatsServer::freeze`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL (a crash) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops the server with SIGTERM (a clean shutdown) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }

    /// Starts the server again on the same port with the same store (stopping it first if it
    /// is running), and waits until it is ready.
    pub async fn restart(&mut self) {
        self.stop().await;
        let port = self.port;
        self.spawn(Some(port)).await;
    }

    /// Connects a client for test assertions: anonymous, or `admin` on a deploy/ config.
    pub async fn client(&self) -> async_nats::Client {
        let opts = match &self.opts.identities {
            Some(ids) => ids.connect_options("admin"),
            None => async_nats::ConnectOptions::new(),
        };
        opts.connect(self.url())
            .await
            .expect("connect to the test nats-server")
    }

    /// Connects as `user` of a deploy/ config (with its inbox prefix); the error if refused.
    pub async fn client_as(
        &self,
        user: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        let ids = self
            .opts
            .identities
            .as_ref()
            .expect("client_as needs a server started from a deploy/ config");
        ids.connect_options(user).connect(self.url()).await
    }

    /// A JetStream context on a fresh client.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        async_nats::jetstream::new(self.client().await)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn parse_client_port(line: &str) -> Option<u16> {
    let rest = line.split("Listening for client connections on ").nth(1)?;
    rest.trim().rsplit(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listen_line() {
        let line = "[1] 2026/11/23 13:00:00.000000 [INF] Listening for client connections on 127.0.0.1:40123";
        assert_eq!(parse_client_port(line), Some(40123));
        assert_eq!(parse_client_port("[INF] Server is ready"), None);
    }

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
