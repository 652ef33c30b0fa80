//! Waiting for a condition with a deadline — the one way tests wait for something that has
//! no event to await (a KV document, a metric, readiness over HTTP, a fake server's log).
//!
//! The condition is re-checked every [`POLL`]; the deadline, not the poll, bounds the test.

use std::future::Future;
use std::time::Duration;

/// How often a condition is re-checked.
pub const POLL: Duration = Duration::from_millis(20);

/// Re-checks `cond` until it holds; fails the test with `what` after `deadline`.
pub async fn until<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = tokio::time::timeout(deadline, async {
        while !cond().await {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
    assert!(
        held.is_ok(),
        "timed out after {deadline:?} waiting for: {what}"
    );
}

/// [`until`] for a condition that needs no awaiting.
pub async fn until_sync(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    until(what, deadline, || std::future::ready(cond())).await;
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
}
