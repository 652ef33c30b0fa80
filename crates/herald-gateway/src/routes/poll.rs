//! `GET /v1/poll`: long-poll fallback.
//!
//! Answers `{"events":[…],"cursor":…}` as soon as at least one event is available (with
//! whatever else is ready at that moment), or empty when `wait` runs out. A resume that
//! cannot be honoured answers `"reset":{"reason":…}` with the cursor to continue from. With
//! `$stats` among the topics, `"stats":[…]` holds the latest document of each topic in scope;
//! a document counted past `since` ends the wait too.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::auth::Claims;
use crate::error::ApiError;
use crate::frame::{Control, Frame, StatsFrame};
use crate::metrics::Transport;
use crate::routes::{ConnectQuery, QueryPairs, admit, parsed_query, snapshot};
use crate::session::{Output, Session};
use crate::state::AppState;
use herald_core::names::Topic;

/// The long-poll answer.
#[derive(Debug, Serialize)]
pub struct PollResponse {
    /// The events, oldest first.
    pub events: Vec<Box<RawValue>>,
    /// Pass as `since` on the next poll.
    pub cursor: String,
    /// `live`, or `degraded` while NATS is unreachable.
    pub state: &'static str,
    /// Set when the cursor could not be resumed: refetch your snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<serde_json::Value>,
    /// With `$stats` among the topics: the latest document of each topic in scope, as
    /// `{"topic","cursor","doc"}`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<Box<RawValue>>,
    /// With `snapshot=1` and no `since`: the first page of a snapshot of the collections
    /// among the topics, at `cursor`, as `{"topics","more"[,"after"]}` (further pages from
    /// `/v1/snapshot?cursor=<cursor>&after=<after>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<RawValue>>,
}

/// Waits up to `wait` seconds (≤ `poll_max_wait`) for events after `since`.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let admitted = admit(&state, &headers, &query, query.since.as_deref(), &pairs).await?;
    let _guard = (admitted.permit, state.metrics.connection(Transport::Poll));
    if admitted.since.is_none() && snapshot::wants_snapshot(query.snapshot.as_deref())? {
        return snapshot_answer(&state, &admitted.claims, &query).map(Json);
    }
    let session = Session::open(
        &state,
        admitted.claims.tenant.clone(),
        admitted.scope,
        admitted.since,
        admitted.claims.remaining(),
    )
    .await?;
    Ok(Json(
        answer(&state, session, admitted.since, query.wait).await,
    ))
}

/// Collects `session`'s answer: waits up to `wait` seconds (≤ `poll_max_wait`) for events
/// after `since`.
pub(crate) async fn answer(
    state: &AppState,
    mut session: Session,
    since: Option<herald_core::cursor::Cursor>,
    wait: Option<u64>,
) -> PollResponse {
    let max_wait = state.cfg.poll_max_wait;
    let wait = wait.map_or(max_wait, Duration::from_secs).min(max_wait);
    let mut answer = Answer::new(state.hub.is_live(), since.map(|c| c.seq));
    let deadline = tokio::time::Instant::now() + wait;
    answer
        .collect(&mut session, deadline, state.cfg.poll_max_events)
        .await;
    state
        .metrics
        .delivered(Transport::Poll, answer.resp.events.len() as u64);
    answer.finish(&session)
}

/// A poll with `snapshot=1` and no `since`: answered at once with the snapshot's first
/// page; its cursor is the snapshot's, so the next poll (`since`) continues after it.
fn snapshot_answer(
    state: &AppState,
    claims: &Claims,
    query: &ConnectQuery,
) -> Result<PollResponse, ApiError> {
    let scope = snapshot::snapshot_scope(state, claims, &query.topic_list(), false)?;
    let page = snapshot::first_page(state, claims, scope)?;
    // The page is `{"cursor":…,"topics":…,"more":…[,"after":…]}`: the cursor moves up.
    let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&page.json)
        .map_err(|err| {
            tracing::error!(%err, "a snapshot page is not JSON");
            ApiError::Internal
        })?;
    body.remove("cursor");
    let snapshot = serde_json::value::to_raw_value(&body).map_err(|_| ApiError::Internal)?;
    Ok(PollResponse {
        events: Vec::new(),
        cursor: page.cursor.to_string(),
        state: if state.hub.is_live() {
            "live"
        } else {
            "degraded"
        },
        reset: None,
        stats: Vec::new(),
        snapshot: Some(snapshot),
    })
}

/// A long-poll answer being collected.
struct Answer {
    resp: PollResponse,
    /// The latest stats document of each topic.
    stats: BTreeMap<Topic, Arc<StatsFrame>>,
    /// The sequence of `since`, if the poll named one.
    since_seq: Option<u64>,
    /// A stats document counted past `since` arrived.
    news: bool,
}

impl Answer {
    fn new(live: bool, since_seq: Option<u64>) -> Self {
        Self {
            resp: PollResponse {
                events: Vec::new(),
                cursor: String::new(),
                state: if live { "live" } else { "degraded" },
                reset: None,
                stats: Vec::new(),
                snapshot: None,
            },
            stats: BTreeMap::new(),
            since_seq,
            news: false,
        }
    }

    /// Takes the session's output until the deadline, or (once there is news) until nothing
    /// more is ready, `max_events` are in, or a control message ends the poll.
    async fn collect(
        &mut self,
        session: &mut Session,
        deadline: tokio::time::Instant,
        max_events: usize,
    ) {
        loop {
            // Until the first event, wait for the deadline; after it, take only what is ready.
            let until = if self.resp.events.is_empty() && !self.news {
                deadline
            } else {
                tokio::time::Instant::now()
            };
            let out = match tokio::time::timeout_at(until, session.next()).await {
                Ok(out) => out,
                Err(_) => break,
            };
            if self.take(out, max_events).is_break() {
                break;
            }
        }
    }

    /// Adds one output to the answer; breaks when it ends the poll.
    fn take(&mut self, out: Output, max_events: usize) -> ControlFlow<()> {
        match out {
            Output::Heartbeat => {}
            Output::End => return ControlFlow::Break(()),
            Output::Frame(Frame::Event(e)) => {
                if let Ok(raw) =
                    RawValue::from_string(String::from_utf8_lossy(&e.json).into_owned())
                {
                    self.resp.events.push(raw);
                }
                if self.resp.events.len() >= max_events {
                    return ControlFlow::Break(());
                }
            }
            Output::Frame(Frame::Stats(doc)) => {
                // A document counted past `since` is news and ends the wait like an event;
                // older ones ride along with whatever ends it.
                self.news |= self.since_seq.is_none_or(|since| doc.seq > since);
                self.stats.insert(doc.topic.clone(), doc);
            }
            // A poll session is never in snapshot mode (a poll's snapshot is in its answer).
            Output::Frame(Frame::Snapshot(_)) => {}
            Output::Frame(Frame::Control(
                Control::Status { live } | Control::Hello { live, .. },
            )) => {
                self.resp.state = if live { "live" } else { "degraded" };
            }
            Output::Frame(Frame::Control(Control::Reset { reason, cursor })) => {
                self.resp.reset = Some(
                    serde_json::json!({"reason": reason.as_str(), "cursor": cursor.to_string()}),
                );
                return ControlFlow::Break(());
            }
            Output::Frame(Frame::Control(_)) => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    /// The answer, with the session's cursor and the stats documents collected.
    fn finish(self, session: &Session) -> PollResponse {
        let mut resp = self.resp;
        resp.cursor = session.cursor().to_string();
        resp.stats = self
            .stats
            .into_values()
            .filter_map(|doc| {
                RawValue::from_string(String::from_utf8_lossy(&doc.json).into_owned()).ok()
            })
            .collect();
        resp
    }
}
