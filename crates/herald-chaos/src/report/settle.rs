//! After the soak: waiting until the system has converged (every client caught up, the
//! stats equal to a recount, the notifier's backlog empty) before it is checked.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;

use crate::check;
use crate::client::{self, SharedLog};
use crate::error::Error;
use crate::facts::{self, Events};
use crate::plan::{ClientSpec, TENANTS, TOPICS};

/// How often convergence is re-checked while the system settles.
const SETTLE_POLL: Duration = Duration::from_millis(500);

/// Reads the stream, retrying while NATS comes back from its last restart.
pub(super) async fn read_events(
    js: &jetstream::Context,
    within: Duration,
) -> Result<Events, Error> {
    let deadline = Instant::now() + within;
    loop {
        match facts::events(js).await {
            Ok(e) => return Ok(e),
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(error = %herald_core::error_chain(&err), "reading the stream; retrying");
                tokio::time::sleep(SETTLE_POLL).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Waits (at most `within`) until every client has caught up, the stats documents equal the
/// recount, and the notifier's consumer has nothing left. Returns whether it got there.
pub(super) async fn settle(
    js: &jetstream::Context,
    events: &Events,
    clients: &[(ClientSpec, SharedLog)],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if settled(js, events, clients).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

async fn settled(
    js: &jetstream::Context,
    events: &Events,
    clients: &[(ClientSpec, SharedLog)],
) -> bool {
    for (spec, log) in clients {
        let want = check::expected_for(spec, &events.events)
            .last()
            .map_or(0, |e| e.seq);
        let have = client::lock(log)
            .received
            .iter()
            .map(|g| g.cursor.seq)
            .max()
            .unwrap_or(0);
        if have < want {
            return false;
        }
    }
    for tenant in TENANTS {
        for topic in TOPICS {
            let recount = check::recount(&events.events, tenant, topic);
            match facts::stats_doc(js, tenant, topic).await {
                Ok(doc) if recount.total == 0 || doc.as_ref() == Some(&recount) => {}
                _ => return false,
            }
        }
    }
    matches!(facts::consumer_backlog(js, "notifier").await, Ok((0, 0)))
}
