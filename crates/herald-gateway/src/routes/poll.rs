//! `GET /v1/poll`: long-poll fallback.
//!
//! Answers `{"events":[…],"cursor":…}` as soon as at least one event is available (with
//! whatever else is ready at that moment), or empty when `wait` runs out. A resume that
//! cannot be honoured answers `"reset":{"reason":…}` with the cursor to continue from. With
//! `$stats` among the topics, `"stats":[…]` holds the latest document of each topic in scope;
//! a document counted past `since` ends the wait too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::frame::{Control, Frame, StatsFrame};
use crate::metrics::Transport;
use crate::routes::{ConnectQuery, admit, parsed_query};
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
}

/// Waits up to `wait` seconds (≤ `poll_max_wait`) for events after `since`.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn poll(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
) -> Result<Json<PollResponse>, ApiError> {
    let query = parsed_query(query)?;
    let admitted = admit(&state, &headers, &query, query.since.as_deref()).await?;
    let span = tracing::Span::current();
    span.record("tenant", admitted.claims.tenant.as_str());
    span.record("sub", admitted.claims.sub.as_str());
    let _guard = (admitted.permit, state.metrics.connection(Transport::Poll));
    let max_wait = state.cfg.poll_max_wait;
    let wait = query
        .wait
        .map_or(max_wait, Duration::from_secs)
        .min(max_wait);
    let mut session = Session::open(
        &state,
        admitted.claims.tenant.clone(),
        admitted.scope,
        admitted.since,
        admitted.claims.remaining(),
    )
    .await?;

    let mut resp = PollResponse {
        events: Vec::new(),
        cursor: String::new(),
        state: if state.hub.is_live() {
            "live"
        } else {
            "degraded"
        },
        reset: None,
        stats: Vec::new(),
    };
    // A document counted past `since` is news and ends the wait like an event; older ones
    // ride along with whatever ends it.
    let since_seq = admitted.since.map_or(0, |c| c.seq);
    let mut stats: BTreeMap<Topic, Arc<StatsFrame>> = BTreeMap::new();
    let mut news = false;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Until the first event, wait for the deadline; after it, take only what is ready.
        let until = if resp.events.is_empty() && !news {
            deadline
        } else {
            tokio::time::Instant::now()
        };
        let out = match tokio::time::timeout_at(until, session.next()).await {
            Ok(out) => out,
            Err(_) => break,
        };
        match out {
            Output::Heartbeat => {}
            Output::End => break,
            Output::Frame(Frame::Event(e)) => {
                if let Ok(raw) =
                    RawValue::from_string(String::from_utf8_lossy(&e.json).into_owned())
                {
                    resp.events.push(raw);
                }
                if resp.events.len() >= state.cfg.poll_max_events {
                    break;
                }
            }
            Output::Frame(Frame::Stats(doc)) => {
                news |= admitted.since.is_none() || doc.seq > since_seq;
                stats.insert(doc.topic.clone(), doc);
            }
            Output::Frame(Frame::Control(
                Control::Status { live } | Control::Hello { live, .. },
            )) => {
                resp.state = if live { "live" } else { "degraded" };
            }
            Output::Frame(Frame::Control(Control::Reset { reason, cursor })) => {
                resp.reset = Some(
                    serde_json::json!({"reason": reason.as_str(), "cursor": cursor.to_string()}),
                );
                break;
            }
            Output::Frame(Frame::Control(_)) => break,
        }
    }
    state
        .metrics
        .delivered(Transport::Poll, resp.events.len() as u64);
    resp.cursor = session.cursor().to_string();
    resp.stats = stats
        .into_values()
        .filter_map(|doc| {
            RawValue::from_string(String::from_utf8_lossy(&doc.json).into_owned()).ok()
        })
        .collect();
    Ok(Json(resp))
}
