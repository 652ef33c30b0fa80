//! Liveness that does not trust the socket: an active probe of the NATS server.
//!
//! A frozen server (SIGSTOP, a paused VM, a stalled host) keeps its TCP connections open and
//! silent. The client's connection state stays `Connected` until its own ping interval (a
//! minute by default) and two missed pongs have passed, so a service that only reads that
//! state looks healthy for minutes while nothing moves.
//!
//! The probe makes a cheap round trip to the server every [`ProbeConfig::interval`] — a
//! JetStream `$JS.API.INFO` request (the account's JetStream usage, answered by the server
//! from memory) — and gives it [`ProbeConfig::deadline`] to answer. (A client `flush()` is no
//! round trip: it only writes the client's buffer into the socket, which a frozen server's
//! kernel happily accepts.) The verdict is published through a [`tokio::sync::watch`]:
//! [`NatsLiveness::Alive`], or [`NatsLiveness::Silent`] with when the silence started and why.
//! Any answer counts as alive, an error too (e.g. JetStream disabled): the question is whether
//! the server is there, not whether it agrees; readiness asks the rest.
//!
//! With the defaults (every 500 ms, 1 s deadline) a server that goes silent right after a
//! successful probe is reported silent within 1.5 s, and one that answers again is reported
//! alive as soon as it answers the probe in flight (at most `interval` later).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::AccountErrorKind};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How the probe asks (`[nats.probe]`, `HERALD_NATS__PROBE__*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeConfig {
    /// How often the server is asked. Default 500 ms.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long the server has to answer before it is reported silent. Default 1 s.
    /// Silence is detected within `interval + deadline` (1.5 s by default).
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            deadline: Duration::from_secs(1),
        }
    }
}

/// Why the server is considered silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SilenceReason {
    /// No probe has been answered yet (start-up).
    #[error("NATS has not answered yet")]
    NotYetAnswered,
    /// The client has no connection to the server.
    #[error("NATS is not connected")]
    Disconnected,
    /// The connection is open but the server did not answer within the deadline.
    #[error("NATS did not answer within {0:?}")]
    NoAnswer(Duration),
    /// The request could not be sent.
    #[error("the NATS probe could not be sent")]
    SendFailed,
}

/// What the probe last concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsLiveness {
    /// The server answered the last probe.
    Alive,
    /// The server has not answered since `since`.
    Silent {
        /// When the first unanswered probe was sent (or the probe started).
        since: Instant,
        /// Why the last probe failed.
        reason: SilenceReason,
    },
}

impl NatsLiveness {
    /// Whether the server answered the last probe.
    pub fn is_alive(&self) -> bool {
        matches!(self, NatsLiveness::Alive)
    }

    /// `None` when alive; else the reason shown to operators, e.g.
    /// `NATS did not answer within 1s (silent for 2.3s)`.
    pub fn describe(&self) -> Option<String> {
        match self {
            NatsLiveness::Alive => None,
            NatsLiveness::Silent { since, reason } => Some(format!(
                "{reason} (silent for {:.1}s)",
                since.elapsed().as_secs_f64()
            )),
        }
    }
}

/// A handle on the probe's verdict (cheap to clone; the probe stops when shutdown fires or
/// every handle is dropped).
#[derive(Debug, Clone)]
pub struct Liveness {
    rx: watch::Receiver<NatsLiveness>,
    deadline: Duration,
}

impl Liveness {
    /// Starts probing the server behind `js` (its client and API prefix) until `shutdown`.
    pub fn spawn(js: jetstream::Context, cfg: ProbeConfig, shutdown: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(NatsLiveness::Silent {
            since: Instant::now(),
            reason: SilenceReason::NotYetAnswered,
        });
        tokio::spawn(run(js, cfg, tx, shutdown));
        Self {
            rx,
            deadline: cfg.deadline,
        }
    }

    /// How long the server has to answer a probe (also a fair bound for other cheap
    /// requests, e.g. readiness's STREAM.INFO).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The current verdict.
    pub fn current(&self) -> NatsLiveness {
        *self.rx.borrow()
    }

    /// Whether the server answered the last probe.
    pub fn is_alive(&self) -> bool {
        self.current().is_alive()
    }

    /// Waits until the server is silent and returns why; at once if it is already.
    /// Pending forever once the probe has stopped.
    pub async fn silent(&mut self) -> SilenceReason {
        loop {
            if let NatsLiveness::Silent { reason, .. } = *self.rx.borrow_and_update() {
                return reason;
            }
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits until the server answers; returns at once if it does already.
    pub async fn alive(&mut self) {
        while !self.rx.borrow_and_update().is_alive() {
            if self.rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

async fn run(
    js: jetstream::Context,
    cfg: ProbeConfig,
    tx: watch::Sender<NatsLiveness>,
    shutdown: CancellationToken,
) {
    let client = js.client();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            _ = tick.tick() => {}
        }
        let sent = Instant::now();
        let verdict = tokio::select! {
            () = shutdown.cancelled() => return,
            verdict = probe(&js, &client, cfg.deadline) => verdict,
        };
        record(&tx, verdict, sent);
    }
}

/// One round trip: `Ok` if the server answered anything within `deadline`.
async fn probe(
    js: &jetstream::Context,
    client: &async_nats::Client,
    deadline: Duration,
) -> Result<(), SilenceReason> {
    if !crate::nats::is_connected(client) {
        return Err(SilenceReason::Disconnected);
    }
    match tokio::time::timeout(deadline, js.query_account()).await {
        Err(_) => Err(SilenceReason::NoAnswer(deadline)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => match err.kind() {
            // The server answered, if only to say no.
            AccountErrorKind::JetStream(_) | AccountErrorKind::JetStreamUnavailable => Ok(()),
            AccountErrorKind::TimedOut => Err(SilenceReason::NoAnswer(deadline)),
            _ if !crate::nats::is_connected(client) => Err(SilenceReason::Disconnected),
            _ => Err(SilenceReason::SendFailed),
        },
    }
}

/// Publishes a verdict; a silence keeps the time it started.
fn record(tx: &watch::Sender<NatsLiveness>, verdict: Result<(), SilenceReason>, sent: Instant) {
    tx.send_if_modified(|state| {
        let next = match (verdict, *state) {
            (Ok(()), _) => NatsLiveness::Alive,
            (Err(reason), NatsLiveness::Silent { since, .. }) => {
                NatsLiveness::Silent { since, reason }
            }
            (Err(reason), NatsLiveness::Alive) => NatsLiveness::Silent {
                since: sent,
                reason,
            },
        };
        if next == *state {
            return false;
        }
        match (&next, state.is_alive()) {
            (NatsLiveness::Alive, false) => tracing::info!("NATS answers again"),
            (NatsLiveness::Silent { reason, .. }, true) => {
                tracing::warn!(%reason, "NATS is silent");
            }
            _ => {}
        }
        *state = next;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_detect_silence_within_two_seconds() {
        let cfg = ProbeConfig::default();
        assert!(cfg.interval + cfg.deadline <= Duration::from_secs(2));
    }

    #[test]
    fn a_silence_keeps_its_start_and_ends_with_an_answer() {
        let (tx, rx) = watch::channel(NatsLiveness::Alive);
        let t0 = Instant::now();
        record(
            &tx,
            Err(SilenceReason::NoAnswer(Duration::from_secs(1))),
            t0,
        );
        let later = t0 + Duration::from_secs(1);
        record(&tx, Err(SilenceReason::Disconnected), later);
        assert_eq!(
            *rx.borrow(),
            NatsLiveness::Silent {
                since: t0,
                reason: SilenceReason::Disconnected
            }
        );
        let said = rx.borrow().describe().unwrap();
        assert!(
            said.starts_with("NATS is not connected (silent for "),
            "{said}"
        );
        record(&tx, Ok(()), later);
        assert!(rx.borrow().is_alive());
        assert_eq!(rx.borrow().describe(), None);
    }
}
