//! Reading a tenant's latest events backwards, for `GET /v1/history`.
//!
//! A page is the newest `limit` events of some topics at or below an upper sequence: the
//! stream position of the read (the hub's head, taken under the publication lock together
//! with the ring's events), or just before a `before` cursor. The ring answers when it holds
//! enough of them; otherwise JetStream is read backwards in windows of sequences below what
//! the ring holds — each window a [`replay`] of `(lo - 1, hi]` filtered to the topics, so it
//! takes the same `max_replays` slots as every replay — doubling the window until the page is
//! full or the stream's first sequence is reached. One event more than `limit` is looked for,
//! which is how `more` is known.

use std::sync::Arc;

use async_nats::jetstream;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::TenantId;
use herald_core::streams::EVENTS_STREAM;
use tokio::sync::Semaphore;

use crate::auth::TopicSet;
use crate::error::ApiError;
use crate::filter::Filter;
use crate::frame::{EventFrame, ResetReason};
use crate::replay::{self, Plan, ReplayError};
use crate::state::AppState;

/// The smallest JetStream window, in stream sequences.
const MIN_WINDOW: u64 = 64;

/// What a page is asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The tenant (the token's).
    pub tenant: TenantId,
    /// The topics (already scoped to the token).
    pub topics: TopicSet,
    /// Which events of those topics (`actions`, `where`).
    pub filter: Filter,
    /// The most events in the page.
    pub limit: usize,
    /// Only events strictly before this cursor; none = the newest.
    pub before: Option<Cursor>,
}

/// One page of history.
#[derive(Debug)]
pub struct Page {
    /// The events, oldest first.
    pub events: Vec<Arc<EventFrame>>,
    /// Where a stream continues after the page with no gap and no repeat: the stream position
    /// of the read, or, with `before`, the position just before it.
    pub cursor: Cursor,
    /// Whether older events of these topics exist.
    pub more: bool,
    /// Whether JetStream was read (the ring did not hold the whole page).
    pub from_jetstream: bool,
}

/// The stream's bounds, read once per page that needs JetStream.
struct Bounds {
    first: u64,
    last: u64,
    epoch: Epoch,
}

/// Reads one page. 503 before the stream was reached or when JetStream cannot be read;
/// 409/410 for a `before` that cannot be paged back from.
pub async fn read(state: &AppState, req: &Request) -> Result<Page, ApiError> {
    let upper_asked = req.before.map(|b| b.seq.saturating_sub(1));
    let want = req.limit.saturating_add(1);
    let recent = state
        .hub
        .recent((&req.tenant, &req.topics, &req.filter), upper_asked, want)
        .ok_or(ApiError::NotReady)?;
    if req.before.is_some_and(|b| b.epoch != recent.epoch) {
        return Err(ApiError::CursorReset(ResetReason::EpochMismatch));
    }
    let upper = upper_asked.unwrap_or(recent.head);
    let cursor = Cursor::new(upper, recent.epoch);
    let past_head = upper > recent.head;
    let mut events = if past_head { Vec::new() } else { recent.events };
    // The ring holds every event in (floor, head]: enough found, or nothing older exists.
    if !past_head && (events.len() >= want || recent.floor == 0) {
        return Ok(page(events, cursor, req.limit, false));
    }
    let bounds = bounds(&state.js, &state.replay_slots).await?;
    check(req.before, &bounds, recent.epoch)?;
    let hi = if past_head {
        upper.min(bounds.last)
    } else {
        upper.min(recent.floor)
    };
    let older = backwards(state, req, &bounds, hi, want - events.len()).await?;
    events.splice(0..0, older);
    Ok(page(events, cursor, req.limit, true))
}

/// The page of `events` (oldest first, up to `limit + 1`): the extra oldest one only says
/// that there is more.
fn page(
    mut events: Vec<Arc<EventFrame>>,
    cursor: Cursor,
    limit: usize,
    from_jetstream: bool,
) -> Page {
    let more = events.len() > limit;
    if more {
        events.drain(..events.len() - limit);
    }
    Page {
        events,
        cursor,
        more,
        from_jetstream,
    }
}

/// A `before` of this stream that JetStream can page back from: the same rules as a resume.
fn check(before: Option<Cursor>, bounds: &Bounds, hub_epoch: Epoch) -> Result<(), ApiError> {
    if bounds.epoch != hub_epoch {
        // The stream was recreated and the tail has not caught up yet.
        return Err(match before {
            Some(_) => ApiError::CursorReset(ResetReason::EpochMismatch),
            None => ApiError::NotReady,
        });
    }
    let Some(before) = before else { return Ok(()) };
    if before.seq > bounds.last {
        return Err(ApiError::CursorReset(ResetReason::CursorAhead));
    }
    if before.seq.saturating_add(1) < bounds.first {
        return Err(ApiError::CursorReset(ResetReason::OutOfRetention));
    }
    Ok(())
}

/// The stream's first and last sequences and epoch, under a replay slot.
async fn bounds(js: &jetstream::Context, slots: &Arc<Semaphore>) -> Result<Bounds, ApiError> {
    let read = async {
        let _slot = Arc::clone(slots)
            .acquire_owned()
            .await
            .map_err(|_| ReplayError::Task)?;
        let mut stream = js.get_stream(EVENTS_STREAM).await?;
        let info = stream.info().await?;
        Ok::<_, ReplayError>(Bounds {
            first: info.state.first_sequence,
            last: info.state.last_sequence,
            epoch: Epoch::from_created(info.created),
        })
    };
    read.await.map_err(unavailable)
}

/// Up to `need` of the newest matching events at or below `hi`, oldest first, read from
/// JetStream in windows that double until enough are found or the first sequence is reached.
async fn backwards(
    state: &AppState,
    req: &Request,
    bounds: &Bounds,
    mut hi: u64,
    need: usize,
) -> Result<Vec<Arc<EventFrame>>, ApiError> {
    let mut found: Vec<Arc<EventFrame>> = Vec::new();
    let mut window = (need as u64).saturating_mul(2).max(MIN_WINDOW);
    let first = bounds.first.max(1);
    while found.len() < need && hi >= first {
        let lo = hi.saturating_sub(window - 1).max(first);
        let Some(mut chunk) = range(state, req, bounds.epoch, lo, hi).await? else {
            break; // the window expired while being read: nothing older is left
        };
        let missing = need - found.len();
        if chunk.len() > missing {
            chunk.drain(..chunk.len() - missing);
        }
        chunk.append(&mut found);
        found = chunk;
        hi = lo - 1;
        window = window.saturating_mul(2);
    }
    Ok(found)
}

/// The matching events in `[lo, hi]`, oldest first; `None` if they left the stream meanwhile.
async fn range(
    state: &AppState,
    req: &Request,
    epoch: Epoch,
    lo: u64,
    hi: u64,
) -> Result<Option<Vec<Arc<EventFrame>>>, ApiError> {
    let target = replay::Target {
        tenant: &req.tenant,
        topics: &req.topics,
        read: state.metrics.replay_messages.clone(),
    };
    let since = Cursor::new(lo - 1, epoch);
    let plan = replay::plan(&state.js, &state.replay_slots, target, since, hi)
        .await
        .map_err(unavailable)?;
    let mut replay = match plan {
        Plan::Empty => return Ok(Some(Vec::new())),
        Plan::Reset(ResetReason::OutOfRetention) => return Ok(None),
        Plan::Reset(reason) => return Err(ApiError::CursorReset(reason)),
        Plan::Replay(replay) => replay,
    };
    let mut events = Vec::new();
    while let Some(frame) = replay.next().await {
        let frame = frame.map_err(unavailable)?;
        if req.filter.matches(&frame) {
            events.push(frame);
        }
    }
    Ok(Some(events))
}

fn unavailable(err: ReplayError) -> ApiError {
    tracing::warn!(error = %herald_core::error_chain(&err), "reading history failed");
    ApiError::NotReady
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(seqs: &[u64]) -> Vec<Arc<EventFrame>> {
        seqs.iter()
            .map(|&s| {
                let cursor = Cursor::new(s, Epoch(1));
                Arc::new(EventFrame::new(cursor, "herald.events.acme.a.b", b"{}").unwrap())
            })
            .collect()
    }

    #[test]
    fn a_page_keeps_the_newest_and_says_whether_there_is_more() {
        let cursor = Cursor::new(9, Epoch(1));
        let full = page(frames(&[3, 5, 7]), cursor, 2, false);
        let seqs: Vec<u64> = full.events.iter().map(|e| e.seq()).collect();
        assert_eq!((seqs, full.more), (vec![5, 7], true));
        let short = page(frames(&[5, 7]), cursor, 2, false);
        assert!(!short.more);
        assert_eq!(short.events.len(), 2);
    }

    #[test]
    fn before_is_checked_like_a_resume() {
        let bounds = Bounds {
            first: 10,
            last: 20,
            epoch: Epoch(1),
        };
        let at = |seq| Some(Cursor::new(seq, Epoch(1)));
        assert!(check(at(15), &bounds, Epoch(1)).is_ok());
        assert!(
            check(at(9), &bounds, Epoch(1)).is_ok(),
            "nothing before it is lost"
        );
        assert!(matches!(
            check(at(8), &bounds, Epoch(1)),
            Err(ApiError::CursorReset(ResetReason::OutOfRetention))
        ));
        assert!(matches!(
            check(at(21), &bounds, Epoch(1)),
            Err(ApiError::CursorReset(ResetReason::CursorAhead))
        ));
        assert!(matches!(
            check(at(15), &bounds, Epoch(2)),
            Err(ApiError::CursorReset(ResetReason::EpochMismatch))
        ));
        assert!(matches!(
            check(None, &bounds, Epoch(2)),
            Err(ApiError::NotReady)
        ));
    }
}
