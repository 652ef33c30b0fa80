//! The fault kinds of a soak besides SIGKILL, and the record of every fault injected.
//!
//! - **freeze**: SIGSTOP, then SIGCONT after the pause; sockets stay open and silent.
//! - **delay**, **drop**, **half-open**, **blackhole**: the service's own TCP proxy to
//!   nats-server ([`herald_test_support::proxy`]) switches mode for the pause.
//! - **store-full**: `HERALD_EVENTS` gets `max_bytes` = its current size with
//!   `discard: new`, so every publish is refused, then its configuration is restored.

use std::time::Duration;

use async_nats::jetstream;
use herald_core::streams::EVENTS_STREAM;
use tokio::time::Instant;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL, then a restart on the same port.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Freeze,
    /// Every chunk between a service and NATS delayed.
    Delay,
    /// Every connection between a service and NATS closed, new ones refused.
    Drop,
    /// NATS's answers to a service withheld; the sockets stay open.
    HalfOpen,
    /// Nothing forwarded either way between a service and NATS; the sockets stay open.
    Blackhole,
    /// `HERALD_EVENTS` refuses every write.
    StoreFull,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::Kill,
        Self::Freeze,
        Self::Delay,
        Self::Drop,
        Self::HalfOpen,
        Self::Blackhole,
        Self::StoreFull,
    ];

    /// The name in the report and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Freeze => "freeze",
            Self::Delay => "delay",
            Self::Drop => "drop",
            Self::HalfOpen => "half-open",
            Self::Blackhole => "blackhole",
            Self::StoreFull => "store-full",
        }
    }

    /// Parses a name (see [`FaultKind::name`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown fault kind {s:?}"))
    }

    /// Whether it is injected through a service's proxy (so never on nats-server itself).
    pub fn via_proxy(self) -> bool {
        matches!(
            self,
            Self::Delay | Self::Drop | Self::HalfOpen | Self::Blackhole
        )
    }
}

/// One injected fault.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fault {
    /// Seconds since the soak started.
    pub at_s: f64,
    /// Its kind ([`FaultKind::name`]).
    pub kind: &'static str,
    /// The component it hit (`HERALD_EVENTS` for a full store).
    pub component: String,
    /// How long it lasted, in milliseconds.
    pub down_ms: u64,
    /// When it began.
    #[serde(skip)]
    pub began: Instant,
    /// When it ended (the process resumed, the proxy forwarded again, the limit was lifted).
    #[serde(skip)]
    pub ended: Instant,
}

/// Fills `HERALD_EVENTS` (its `max_bytes` becomes its current size, `discard: new`) for
/// `hold`, then restores its configuration. Errors say what could not be done.
pub async fn store_full(js: &jetstream::Context, hold: Duration) -> Result<(), String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let mut stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| err("get stream", &e))?;
    let info = stream.info().await.map_err(|e| err("stream info", &e))?;
    let original = info.config.clone();
    let mut full = original.clone();
    full.max_bytes = i64::try_from(info.state.bytes).unwrap_or(i64::MAX).max(1);
    full.discard = jetstream::stream::DiscardPolicy::New;
    js.update_stream(&full)
        .await
        .map_err(|e| err("limit the stream", &e))?;
    // The hold is the fault being injected, not a synchronisation.
    tokio::time::sleep(hold).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match js.update_stream(&original).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(err("restore the stream", &e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
