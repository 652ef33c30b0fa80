//! The per-connection budget of `subscribe`, `unsubscribe` and `refresh` frames.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use tokio::time::Instant;

/// A token bucket for one connection's `subscribe`, `unsubscribe` and `refresh` frames.
pub(super) struct FrameBudget {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
    /// Frames refused in a row.
    refused: u32,
}

impl FrameBudget {
    pub(super) fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            rate: f64::from(rate.max(1)),
            burst,
            last: Instant::now(),
            refused: 0,
        }
    }

    /// Takes one frame's token, or says how long until there is one.
    pub(super) fn take(&mut self) -> Result<(), std::time::Duration> {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            Ok(())
        } else {
            self.refused = self.refused.saturating_add(1);
            Err(std::time::Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rate,
            ))
        }
    }

    /// Whether the client kept sending while refused for a whole burst.
    pub(super) fn exhausted(&self) -> bool {
        f64::from(self.refused) >= self.burst
    }
}

/// The close for a connection that kept sending frames over its budget (1008, policy
/// violation).
pub(super) fn flooded() -> Message {
    tracing::debug!("closing a WebSocket that kept exceeding its subscribe rate");
    let close = CloseFrame {
        code: 1008,
        reason: Utf8Bytes::from_static("subscribe rate exceeded"),
    };
    Message::Close(Some(close))
}
