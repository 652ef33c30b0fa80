//! Signals, free ports and the one "SIGTERM, then kill after a grace" for child processes.
//!
//! Signals are sent with `kill(1)` (the workspace forbids `unsafe`, so no `libc::kill`).

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;

/// How long a process may take to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A signal the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A clean shutdown request.
    Term,
    /// A crash: no shutdown hook runs.
    Kill,
    /// Freeze: sockets stay open, nothing is answered.
    Stop,
    /// Thaw a stopped process.
    Cont,
    /// A reload request.
    Hup,
}

impl Signal {
    /// The `kill(1)` flag (`-TERM`).
    pub fn flag(self) -> &'static str {
        match self {
            Self::Term => "-TERM",
            Self::Kill => "-KILL",
            Self::Stop => "-STOP",
            Self::Cont => "-CONT",
            Self::Hup => "-HUP",
        }
    }

    /// Parses `TERM`, `SIGTERM`, `-TERM` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim_start_matches('-').to_ascii_uppercase();
        Some(match s.trim_start_matches("SIG") {
            "TERM" => Self::Term,
            "KILL" => Self::Kill,
            "STOP" => Self::Stop,
            "CONT" => Self::Cont,
            "HUP" => Self::Hup,
            _ => return None,
        })
    }
}

/// The signal could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("kill {flag} {pid} failed")]
pub struct SignalError {
    /// The signal's flag.
    pub flag: &'static str,
    /// The process.
    pub pid: u32,
    /// Why, if `kill` itself could not run.
    #[source]
    pub source: Option<std::io::Error>,
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: Signal) -> Result<(), SignalError> {
    let flag = sig.flag();
    match std::process::Command::new("kill")
        .args([flag, &pid.to_string()])
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(SignalError {
            flag,
            pid,
            source: None,
        }),
        Err(e) => Err(SignalError {
            flag,
            pid,
            source: Some(e),
        }),
    }
}

/// Stops `child` with SIGTERM and waits up to `grace` for it to exit; kills it after that.
/// Returns its exit status if it exited by itself.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = signal(pid, Signal::Term);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.kill().await;
            None
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released: for a child process to listen on).
pub fn free_port() -> std::io::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct free loopback ports, held together and released together.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_names_and_picks_distinct_ports() {
        assert_eq!(Signal::parse("SIGSTOP"), Some(Signal::Stop));
        assert_eq!(Signal::parse("-term"), Some(Signal::Term));
        assert_eq!(Signal::parse("USR1"), None);
        let mut ports = free_ports(3).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3);
    }
}
