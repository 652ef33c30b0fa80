//! Sliding-window rate limits on tokio's clock (so tests can pause and advance time).
//!
//! A [`Window`] allows at most `max` sends in any `period`. A [`Limiter`] enforces several
//! windows at once (Telegram groups: 1/s *and* 20/min) and keeps the send times it needs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// At most `max` sends in any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Sends allowed per period.
    pub max: u32,
    /// The period.
    pub period: Duration,
}

impl Window {
    /// `max` per second.
    pub fn per_sec(max: u32) -> Self {
        Self {
            max,
            period: Duration::from_secs(1),
        }
    }

    /// `max` per minute.
    pub fn per_min(max: u32) -> Self {
        Self {
            max,
            period: Duration::from_secs(60),
        }
    }
}

/// Several windows over one stream of sends.
#[derive(Debug, Clone)]
pub struct Limiter {
    windows: Vec<Window>,
    sent: VecDeque<Instant>,
}

impl Limiter {
    /// A limiter enforcing every window in `windows`.
    pub fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            sent: VecDeque::new(),
        }
    }

    /// How long until one more send is allowed (zero: now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.windows
            .iter()
            .filter_map(|w| {
                let max = usize::try_from(w.max).unwrap_or(usize::MAX).max(1);
                let recent = self.sent.iter().filter(|t| now < **t + w.period).count();
                if recent < max {
                    return None;
                }
                // The send that must age out of the window before another fits.
                let oldest = self.sent.get(self.sent.len() - max)?;
                Some((*oldest + w.period).saturating_duration_since(now))
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Records a send at `now`.
    pub fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        let longest = self
            .windows
            .iter()
            .map(|w| w.period)
            .max()
            .unwrap_or_default();
        let keep = self
            .windows
            .iter()
            .map(|w| w.max as usize)
            .max()
            .unwrap_or(1);
        while self.sent.len() > keep || self.sent.front().is_some_and(|t| *t + longest <= now) {
            self.sent.pop_front();
        }
    }

    /// Records a send at `now` if one is allowed, else says how long to wait.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        match self.wait(now) {
            d if d.is_zero() => {
                self.record(now);
                Ok(())
            }
            d => Err(d),
        }
    }
}

/// Limiters shared by every target worker, by key (e.g. one per Telegram bot: 30/s overall).
#[derive(Debug, Clone, Default)]
pub struct SharedLimiters {
    inner: Arc<Mutex<HashMap<String, Limiter>>>,
}

impl SharedLimiters {
    /// Records a send under `key` if `window` allows one now, else says how long to wait.
    pub fn try_acquire(&self, key: &str, window: Window, now: Instant) -> Result<(), Duration> {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key.to_owned())
            .or_insert_with(|| Limiter::new(vec![window]))
            .try_acquire(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn group_limits_hold_per_second_and_per_minute() {
        let mut l = Limiter::new(vec![Window::per_sec(1), Window::per_min(20)]);
        let start = Instant::now();
        let mut times = Vec::new();
        while times.len() < 22 {
            match l.try_acquire(Instant::now()) {
                Ok(()) => times.push(Instant::now() - start),
                Err(d) => tokio::time::advance(d).await,
            }
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(1), "{times:?}");
        }
        assert_eq!(times[19], Duration::from_secs(19));
        assert_eq!(
            times[20],
            Duration::from_secs(60),
            "the 21st waits for the minute"
        );
        assert_eq!(times[21], Duration::from_secs(61));
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_up_to_max_then_waits() {
        let mut l = Limiter::new(vec![Window::per_sec(30)]);
        let now = Instant::now();
        for _ in 0..30 {
            l.try_acquire(now).unwrap();
        }
        assert_eq!(l.try_acquire(now), Err(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert!(l.try_acquire(Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn shared_limiters_are_per_key() {
        let s = SharedLimiters::default();
        let now = Instant::now();
        assert!(s.try_acquire("bot-a", Window::per_sec(1), now).is_ok());
        assert!(s.try_acquire("bot-a", Window::per_sec(1), now).is_err());
        assert!(s.try_acquire("bot-b", Window::per_sec(1), now).is_ok());
    }
}
