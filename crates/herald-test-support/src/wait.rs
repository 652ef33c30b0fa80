//! Waiting for a condition with a deadline — the one way tests wait for something that has
//! no event to await (a KV document, a metric, readiness over HTTP, a fake server's log).
//!
//! The condition is re-checked every [`POLL`]; the deadline, not the poll, bounds the test.
//! These wrap the one wait loop, [`herald_launch::wait`], into test assertions.
//! [`until`] and [`until_sync`] wait for a condition; [`until_ok`] for a value (or reports the
//! last error it saw).

use std::future::Future;
use std::time::Duration;

pub use herald_launch::wait::POLL;

/// Re-checks `cond` until it holds; fails the test with `what` after `deadline`.
pub async fn until<F, Fut>(what: &str, deadline: Duration, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = herald_launch::wait::until(deadline, cond).await;
    assert!(
        held.is_ok(),
        "timed out after {deadline:?} waiting for: {what}"
    );
}

/// [`until`] for a condition that needs no awaiting.
pub async fn until_sync(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    until(what, deadline, || std::future::ready(cond())).await;
}

/// Re-tries `attempt` until it returns `Ok`, and returns its value; fails the test with `what`
/// and the last error after `deadline`. For a wait whose result the test goes on to use, or
/// whose failure is best explained by what was last seen (a metrics page, a status code).
pub async fn until_ok<T, E, F, Fut>(what: &str, deadline: Duration, attempt: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match herald_launch::wait::until_ok(deadline, attempt).await {
        Ok(value) => value,
        Err(err) => panic!(
            "timed out after {deadline:?} waiting for: {what}; last seen: {}",
            err.last.as_deref().unwrap_or("no attempt finished")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_once_the_condition_holds() {
        let mut n = 0;
        until_sync("three polls", Duration::from_secs(1), || {
            n += 1;
            n == 3
        })
        .await;
        assert_eq!(n, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for: never")]
    async fn fails_after_the_deadline() {
        until_sync("never", Duration::from_secs(1), || false).await;
    }

    #[tokio::test(start_paused = true)]
    async fn until_ok_returns_the_first_success() {
        let mut n = 0;
        let got = until_ok("the third attempt", Duration::from_secs(1), || {
            n += 1;
            std::future::ready(if n == 3 { Ok(n) } else { Err("not yet") })
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for: never; last seen: still 503")]
    async fn until_ok_fails_with_the_last_error() {
        until_ok::<(), _, _, _>("never", Duration::from_secs(1), || {
            std::future::ready(Err("still 503"))
        })
        .await;
    }
}
