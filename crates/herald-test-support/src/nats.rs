//! A real `nats-server` with JetStream, on a free loopback port, with a temporary store.
//!
//! The port is learned from the server's own log line ("Listening for client connections
//! on …") and readiness from "Server is ready", both awaited with a deadline: no sleeping.
//! Tests stop, kill and restart the server (on the same port and store) to simulate outages.
//! The process is killed and the store deleted on drop.

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
    args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
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
        let store = tempfile::Builder::new()
            .prefix("herald-nats-")
            .tempdir()
            .expect("create a temp store");
        let mut server = Self {
            child: None,
            port: 0,
            store,
            args,
            log: Arc::default(),
        };
        server.spawn(None).await;
        server
    }

    async fn spawn(&mut self, port: Option<u16>) {
        let bin = binary();
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new(&bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.store.path());
        // A cluster names each node itself (names must be unique in a JetStream cluster).
        if !self.args.iter().any(|a| a == "-n" || a == "--name") {
            cmd.args(["-n", "herald-test"]);
        }
        cmd.args(&self.args)
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

    /// Connects a plain client (for test assertions).
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to the test nats-server")
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
