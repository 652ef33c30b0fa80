//! nats-server's log: the last lines kept in memory (and appended to a file), and the client
//! port and readiness read from it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::ChildStderr;
use tokio::sync::oneshot;

/// How many of the server's last log lines are kept.
const LOG_LINES: usize = 200;

/// The server's log across restarts.
pub(super) struct Log {
    lines: Mutex<VecDeque<String>>,
    file: Option<PathBuf>,
}

impl Log {
    pub(super) fn new(file: Option<PathBuf>) -> Self {
        Self {
            lines: Mutex::default(),
            file,
        }
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == LOG_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `n` lines.
    pub(super) fn tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = lines.len().saturating_sub(n);
        lines
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads `stderr` until it closes; the receiver gets the client port once the server
    /// said "Server is ready" (and is dropped if it exits first).
    pub(super) fn follow(log: Arc<Self>, stderr: ChildStderr) -> oneshot::Receiver<u16> {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut file = match &log.file {
                Some(path) => tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .ok(),
                None => None,
            };
            let mut lines = BufReader::new(stderr).lines();
            let (mut tx, mut port) = (Some(tx), None);
            while let Ok(Some(line)) = lines.next_line().await {
                if port.is_none() {
                    port = parse_client_port(&line);
                }
                if line.contains("Server is ready")
                    && let (Some(tx), Some(p)) = (tx.take(), port)
                {
                    let _ = tx.send(p);
                }
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                }
                log.push(line);
            }
        });
        rx
    }
}

/// The port of "Listening for client connections on 127.0.0.1:<port>".
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
}
