//! The one retry-with-backoff loop: every reconnect and retry-until-ready loop in Herald
//! waits through it.
//!
//! [`with_backoff`] retries an attempt until it succeeds or shutdown is requested.
//! Loops that run for as long as the process does (a watch, a consumer) keep a [`Backoff`]
//! of their own: [`Backoff::wait`] after a failure, [`Backoff::reset`] once they are back
//! on their feet. Either way the delay doubles from [`Policy::first`] up to [`Policy::max`],
//! optionally jittered, every failure is logged the same way, and a shutdown ends the wait
//! at once.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first delay.
    pub first: Duration,
    /// The longest delay: doubling stops here.
    pub max: Duration,
    /// Wait a random time between half the delay and all of it, so many clients that failed
    /// together do not retry together.
    pub jitter: bool,
}

impl Policy {
    /// `first`, doubling up to `max`, without jitter.
    pub const fn doubling(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: false,
        }
    }

    /// The delay after `failures` failures (before jitter): `first` doubled `failures`
    /// times, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        self.first
            .checked_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The same policy with jitter.
    pub const fn with_jitter(self) -> Self {
        Self {
            jitter: true,
            ..self
        }
    }
}

/// One backoff in progress: the delay before the next attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
}

impl Backoff {
    /// A backoff at its first delay.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// Back to the first delay (the operation is healthy again).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The delay the next [`Backoff::wait`] will (before jitter) sleep.
    pub fn delay(&self) -> Duration {
        self.policy.delay(self.failures)
    }

    /// The delay to wait now (jittered if the policy says so); the next one doubles. For a
    /// caller that waits (and logs) on its own terms; most call [`Backoff::wait`].
    pub fn advance(&mut self) -> Duration {
        let delay = self.delay();
        self.failures = self.failures.saturating_add(1);
        if self.policy.jitter {
            jitter(delay)
        } else {
            delay
        }
    }

    /// Logs that `what` failed because of `err`, then sleeps the current delay and doubles
    /// it. The wait resolves to `false` (at once) when `shutdown` fires: the caller stops.
    /// (It holds neither `err` nor `shutdown`, so it may outlive both.)
    pub fn wait(
        &mut self,
        shutdown: &CancellationToken,
        what: &str,
        err: &(dyn std::error::Error + '_),
    ) -> impl Future<Output = bool> + Send + 'static + use<> {
        let delay = self.advance();
        tracing::warn!(error = %crate::error_chain(err), retry_in = ?delay, "{what}");
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                () = shutdown.cancelled() => false,
                () = tokio::time::sleep(delay) => true,
            }
        }
    }
}

/// Runs `attempt` until it succeeds, waiting by `policy` after each failure (logged as
/// `what`). Returns `None` as soon as `shutdown` fires, even in the middle of an attempt.
pub async fn with_backoff<T, E, F, Fut>(
    policy: Policy,
    shutdown: &CancellationToken,
    what: &str,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error,
{
    let mut backoff = Backoff::new(policy);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return None,
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Some(value),
            Err(err) => {
                let wait = backoff.wait(shutdown, what, &err);
                drop(err);
                if !wait.await {
                    return None;
                }
            }
        }
    }
}

/// A random duration between half of `delay` and all of it.
fn jitter(delay: Duration) -> Duration {
    use std::hash::BuildHasher;
    // A fresh `RandomState` is randomly keyed: enough randomness to spread retries.
    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
    let half = delay / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(random % nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const POLICY: Policy = Policy::doubling(Duration::from_millis(100), Duration::from_millis(500));

    #[derive(Debug, thiserror::Error)]
    #[error("not yet")]
    struct NotYet;

    #[tokio::test(start_paused = true)]
    async fn doubles_up_to_the_cap_then_succeeds() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let got = with_backoff(POLICY, &CancellationToken::new(), "test", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0..5 => Err(NotYet),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got, Some(5));
        // 100 + 200 + 400 + 500 + 500 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(1700));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait_and_the_attempt() {
        let shutdown = CancellationToken::new();
        let failing = with_backoff(POLICY, &shutdown, "test", || async { Err::<(), _>(NotYet) });
        let stop = async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            shutdown.cancel();
        };
        let (got, ()) = tokio::join!(failing, stop);
        assert_eq!(got, None);

        let hanging = with_backoff(POLICY, &shutdown, "test", || {
            std::future::pending::<Result<(), NotYet>>()
        });
        assert_eq!(hanging.await, None, "an attempt in flight is abandoned");
    }

    #[tokio::test(start_paused = true)]
    async fn reset_starts_over_and_jitter_stays_in_range() {
        let shutdown = CancellationToken::new();
        let mut backoff = Backoff::new(POLICY);
        assert!(backoff.wait(&shutdown, "test", &NotYet).await);
        assert_eq!(backoff.delay(), Duration::from_millis(200));
        backoff.reset();
        assert_eq!(backoff.delay(), Duration::from_millis(100));
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(400));
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
        let start = tokio::time::Instant::now();
        let mut jittered = Backoff::new(POLICY.with_jitter());
        assert!(jittered.wait(&shutdown, "test", &NotYet).await);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(start.elapsed() <= Duration::from_millis(100));
    }

    #[test]
    fn the_nth_delay_doubles_and_never_overflows() {
        assert_eq!(POLICY.delay(0), Duration::from_millis(100));
        assert_eq!(POLICY.delay(2), Duration::from_millis(400));
        assert_eq!(POLICY.delay(3), Duration::from_millis(500));
        assert_eq!(POLICY.delay(1000), Duration::from_millis(500));
    }
}
