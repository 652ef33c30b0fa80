//! Freezing a running `nats-server` with SIGSTOP, the nastiest of the simple faults: the
//! process keeps its sockets open and says nothing (a paused VM, a stalled host). The kernel
//! still accepts connections and buffers writes, so clients see no error, only silence.
//!
//! [`NatsServer::freeze`] returns a [`Frozen`] guard that borrows the server: the server
//! cannot be dropped (killed) or restarted while it is frozen, and the guard sends SIGCONT
//! when it is dropped, so a failing test never leaves a stopped process behind.

use herald_launch::Signal;

use crate::NatsServer;

/// A frozen server; [`Frozen::thaw`] (or dropping the guard) resumes it.
#[must_use = "dropping the guard thaws the server at once"]
pub struct Frozen<'a> {
    server: &'a NatsServer,
    pid: u32,
}

impl NatsServer {
    /// Stops the server process with SIGSTOP until the guard is thawed or dropped.
    ///
    /// # Panics
    /// If the server is not running or the signal cannot be sent.
    pub fn freeze(&self) -> Frozen<'_> {
        let pid = self.pid().expect("freeze a running nats-server");
        signal(pid, Signal::Stop);
        wait_stopped(pid);
        Frozen { server: self, pid }
    }
}

impl Frozen<'_> {
    /// Resumes the server (SIGCONT).
    pub fn thaw(self) {
        // Drop sends SIGCONT.
    }

    /// The frozen server (e.g. for its URL).
    pub fn server(&self) -> &NatsServer {
        self.server
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        signal(self.pid, Signal::Cont);
    }
}

/// How long NATS has been silent according to a `/readyz` reason such as
/// `NATS did not answer within 1s (silent for 2.3s)`; `None` if it does not say.
pub fn silent_for(reason: &str) -> Option<std::time::Duration> {
    let secs = reason.split("(silent for ").nth(1)?.split('s').next()?;
    secs.parse().ok().map(std::time::Duration::from_secs_f64)
}

/// Waits until the service at `readyz` (a `/readyz` URL) reports NATS silent for longer than
/// `at_least`: a freeze held until the service itself has seen it last that long.
pub async fn until_silent_for(http: &reqwest::Client, readyz: &str, at_least: std::time::Duration) {
    let deadline = at_least + std::time::Duration::from_secs(20);
    crate::wait::until_ok(
        "`/readyz` to report NATS silent long enough",
        deadline,
        || async {
            let resp = http.get(readyz).send().await.map_err(|e| e.to_string())?;
            let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
            let reason = body["reason"].as_str().unwrap_or_default();
            match silent_for(reason) {
                Some(d) if d > at_least => Ok(()),
                _ => Err(body.to_string()),
            }
        },
    )
    .await;
}

/// Returns once every thread of `pid` is stopped. `kill` only queues SIGSTOP: a thread that is
/// running at that moment can still answer a request before the stop reaches it, which on a
/// loaded machine let a publish sent right after `freeze` be stored and acknowledged.
fn wait_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !all_threads_stopped(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server {pid} was not stopped 5 s after SIGSTOP"
        );
        std::thread::yield_now();
    }
}

/// Whether every thread of `pid` is in state `T` (stopped) in `/proc/<pid>/task/*/stat`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // `<tid> (<comm>) <state> …`: the name may hold spaces and parentheses.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        state.is_some_and(|s| s.starts_with('T') || s.starts_with('t'))
    })
}

fn signal(pid: u32, sig: Signal) {
    let sent = herald_launch::process::signal(pid, sig);
    assert!(sent.is_ok() || std::thread::panicking(), "{sent:?}");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_the_silence_from_a_readyz_reason() {
        let reason = "NATS did not answer within 1s (silent for 2.3s)";
        assert_eq!(silent_for(reason), Some(Duration::from_millis(2300)));
        assert_eq!(silent_for("stream HERALD_EVENTS is not available"), None);
    }

    #[tokio::test]
    async fn a_frozen_server_is_silent_and_answers_after_thaw() {
        let server = NatsServer::start().await;
        let client = server.client().await;
        let frozen = server.freeze();
        // `flush` only writes into the socket, which the kernel accepts: no liveness test.
        let flushed = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
        assert!(
            matches!(flushed, Ok(Ok(()))),
            "flush succeeds against a frozen server"
        );
        let request = client.request("$JS.API.INFO", "".into());
        let answer = tokio::time::timeout(Duration::from_millis(500), request).await;
        assert!(answer.is_err(), "a frozen server does not answer");
        frozen.thaw();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            client.request("$JS.API.INFO", "".into()),
        )
        .await;
        assert!(matches!(answer, Ok(Ok(_))), "it answers after thaw");
    }
}
