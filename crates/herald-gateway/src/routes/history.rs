//! `GET /v1/history`: the latest events of some topics, oldest first, and the cursor to stream
//! from after them.
//!
//! `?topics=leads,services&limit=50[&before=<cursor>]` answers
//! `{"events":[…],"cursor":"<seq>-<epoch>","more":bool}`. Each item is
//! `{"cursor","topic","event"}`: the CloudEvent the stream sends (`event`), its cursor and
//! topic — a WebSocket `event` frame without `type`. Without `before`, `cursor` is the stream position
//! at the moment of reading (the newest event of the whole stream, not only of these topics):
//! a stream opened with it as `Last-Event-ID` continues with no gap and no repeat. With
//! `before` (the cursor of the oldest event already held), the page holds the events strictly
//! before it and `cursor` is the position just before `before`: a stream from it would deliver
//! the event at `before` and everything after. `more` says whether older events exist.
//! Authentication, topic scoping and errors are those of the stream; a `before` that cannot be
//! paged back from is 409 (`epoch_mismatch`, `cursor_ahead`) or 410 (`out_of_retention`).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::filter::Filter;
use crate::frame::EventFrame;
use crate::history::{self, Request};
use crate::routes::{ConnectQuery, QueryPairs, STATS_TOPIC, parse_cursor, parsed_query};
use crate::state::AppState;

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 500;

/// Query parameters of `GET /v1/history`.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// Comma-separated topics; none = every topic the token grants.
    pub topics: Option<String>,
    /// Events per page, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<u64>,
    /// Only events strictly before this cursor.
    pub before: Option<String>,
    /// The token, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    /// The events, oldest first: `{"cursor","topic","event"}`.
    pub events: Vec<Box<RawValue>>,
    /// Where a stream continues after this page (see the module docs).
    pub cursor: String,
    /// Whether older events of these topics exist.
    pub more: bool,
}

/// Answers one page of history.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let claims = super::authenticate(&state, &headers, query.access_token.as_deref()).await?;
    let requested = ConnectQuery {
        topics: query.topics.clone(),
        ..ConnectQuery::default()
    }
    .topic_list();
    if requested.iter().any(|t| t == STATS_TOPIC) {
        return Err(ApiError::BadRequest(
            "history holds events only: leave $stats out".into(),
        ));
    }
    let topics = claims.scope(&requested, state.cfg.limits.topics_per_connection)?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n @ 1..) if n <= MAX_LIMIT as u64 => n as usize,
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {n}"
            )));
        }
    };
    let before = parse_cursor(query.before.as_deref())?;
    let req = Request {
        tenant: claims.tenant,
        topics,
        // Private events appear only in their audience's history.
        filter: Filter::from_pairs(&pairs)?.for_viewer(claims.sub.as_str()),
        limit,
        before,
    };
    let page = history::read(&state, &req).await?;
    Ok(Json(HistoryResponse {
        events: page.events.iter().filter_map(|e| item(e)).collect(),
        cursor: page.cursor.to_string(),
        more: page.more,
    }))
}

/// `{"cursor":…,"topic":…,"event":<CloudEvent>}`: a WebSocket `event` frame without its
/// `type`. (The CloudEvent itself is a closed schema, so the cursor goes next to it.)
fn item(frame: &EventFrame) -> Option<Box<RawValue>> {
    let event = std::str::from_utf8(&frame.json).ok()?;
    let cursor = frame.cursor;
    let topic = frame.topic.as_str();
    RawValue::from_string(format!(
        "{{\"cursor\":\"{cursor}\",\"topic\":\"{topic}\",\"event\":{event}}}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::cursor::{Cursor, Epoch};

    fn frame(json: &str) -> EventFrame {
        EventFrame::new(
            Cursor::new(7, Epoch(0xab)),
            "herald.events.acme.leads.insert",
            json.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn an_item_is_the_event_with_its_cursor_and_topic() {
        let cursor = Cursor::new(7, Epoch(0xab)).to_string();
        let raw = item(&frame(r#"{"id":"x","data":{"a":1}}"#)).unwrap();
        let v: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(v["cursor"], cursor.as_str());
        assert_eq!(v["topic"], "leads");
        assert_eq!(v["event"], serde_json::json!({"id": "x", "data": {"a": 1}}));
    }
}
