//! The one wait loop: re-check a condition every [`POLL`] until it holds or a deadline
//! passes. Never a sleep as synchronisation: the deadline bounds the wait, the condition ends it.
//!
//! These return errors (for `herald up` and the harness); `herald_test_support::wait` wraps
//! them into test assertions.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
pub const POLL: Duration = Duration::from_millis(20);

/// The deadline passed before the condition held.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {deadline:?}; last seen: {}", last.as_deref().unwrap_or("no attempt finished"))]
pub struct TimedOut {
    /// The deadline.
    pub deadline: Duration,
    /// The last error an attempt returned, if any.
    pub last: Option<String>,
}

/// Re-checks `cond` until it holds, or fails after `deadline`.
pub async fn until<F, Fut>(deadline: Duration, mut cond: F) -> Result<(), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until_ok(deadline, || {
        let check = cond();
        async move { if check.await { Ok(()) } else { Err("not yet") } }
    })
    .await
}

/// Re-tries `attempt` until it returns `Ok` and returns its value, or fails after `deadline`
/// with the last error seen.
pub async fn until_ok<T, E, F, Fut>(deadline: Duration, mut attempt: F) -> Result<T, TimedOut>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut last = None;
    let got = tokio::time::timeout(deadline, async {
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(err) => last = Some(err.to_string()),
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    got.map_err(|_| TimedOut { deadline, last })
}

/// Waits until `GET url` answers 200 (e.g. a service's `/readyz`).
pub async fn http_ok(
    http: &reqwest::Client,
    url: &str,
    deadline: Duration,
) -> Result<(), TimedOut> {
    until_ok(deadline, || async {
        let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {}", resp.status()))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_once_the_condition_holds_or_times_out() {
        let mut n = 0;
        until(Duration::from_secs(1), || {
            n += 1;
            std::future::ready(n == 3)
        })
        .await
        .expect("holds at the third poll");
        assert_eq!(n, 3);
        let err = until_ok::<(), _, _, _>(Duration::from_secs(1), || {
            std::future::ready(Err("still 503"))
        })
        .await
        .expect_err("never holds");
        assert_eq!(err.last.as_deref(), Some("still 503"));
    }
}
