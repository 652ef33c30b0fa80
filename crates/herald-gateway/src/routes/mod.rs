//! HTTP routes: `/v1/stream` (SSE), `/v1/ws` (WebSocket), `/v1/poll` (long-poll),
//! `/v1/stats` (stats snapshots), `/v1/history` (the latest events, oldest first),
//! `/v1/snapshot` (the rows of collections at one cursor), `/v1/presence` (who is connected),
//! and the token-less `/v1/public/<tenant>/…` ([`public`], merged separately by the app: it
//! has its own CORS).
//!
//! Every transport admits a connection the same way ([`admit`]): verify the token (401),
//! scope the topics to the claim (400/403), parse the cursor (400), then the limits
//! (429/503).

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use herald_core::cursor::Cursor;
use serde::Deserialize;

use crate::auth::{Claims, TopicSet};
use crate::error::ApiError;
use crate::filter::Filter;
use crate::limits::Permit;
use crate::session::Scope;
use crate::state::AppState;

pub mod history;
pub mod poll;
pub mod presence;
pub mod public;
pub mod snapshot;
pub mod sse;
pub mod stats;
pub mod ws;

/// The client-facing routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/stream", get(sse::stream))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/poll", get(poll::poll))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/history", get(history::history))
        .route("/v1/snapshot", get(snapshot::snapshot))
        .route("/v1/presence", get(presence::presence))
        .with_state(state)
}

/// A query string that does not parse is a 400 with the JSON error body, like every other
/// refusal (axum's own rejection is plain text, which the OpenAPI contract does not allow).
pub fn parsed_query<T>(
    query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {}", e.body_text())))
}

/// Query parameters shared by the transports.
#[derive(Debug, Default, Deserialize)]
pub struct ConnectQuery {
    /// Comma-separated topics; none = every topic the token grants.
    pub topics: Option<String>,
    /// A cursor to resume after.
    pub since: Option<String>,
    /// The token, for clients that cannot set headers (EventSource).
    pub access_token: Option<String>,
    /// Long-poll only: seconds to wait for an event.
    pub wait: Option<u64>,
    /// `1`: start with a snapshot of the collections among the topics (no cursor only).
    pub snapshot: Option<String>,
    /// SSE and WebSocket: `1` (or `true`) to receive `presence` events of the presence
    /// topics in scope.
    pub presence: Option<String>,
}

impl ConnectQuery {
    /// Whether `presence=1` (or `true`) asks for `presence` events.
    pub fn wants_presence(&self) -> bool {
        matches!(self.presence.as_deref(), Some("1" | "true"))
    }

    /// The requested topics.
    pub fn topic_list(&self) -> Vec<String> {
        self.topics
            .as_deref()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The pseudo-topic that subscribes to live stats documents.
pub const STATS_TOPIC: &str = "$stats";

/// What a connection asking for `requested` (none = every topic granted) receives.
///
/// `$stats` adds the stats documents of every topic the token grants; alone, it subscribes
/// to no events.
pub fn scope(claims: &Claims, requested: &[String], max: usize) -> Result<Scope, ApiError> {
    let with_stats = requested.iter().any(|t| t == STATS_TOPIC);
    let topics: Vec<String> = requested
        .iter()
        .filter(|t| *t != STATS_TOPIC)
        .cloned()
        .collect();
    let events = if with_stats && topics.is_empty() {
        TopicSet::Only(Default::default())
    } else {
        claims.scope(&topics, max)?
    };
    let stats = if with_stats {
        Some(claims.scope(&[], usize::MAX)?)
    } else {
        None
    };
    Ok(Scope {
        topics: events,
        stats,
        filter: Filter::default(),
        viewer: Some(claims.sub.as_str().into()),
        snapshot: None,
    })
}

/// An admitted connection.
pub struct Admitted {
    /// The verified claims.
    pub claims: Claims,
    /// What it receives.
    pub scope: Scope,
    /// Where it resumes from.
    pub since: Option<Cursor>,
    /// Its slot in the connection limits.
    pub permit: Permit,
}

/// Where an SSE stream resumes: a non-blank `Last-Event-ID` header (what a reconnecting
/// `EventSource` sends) wins over `?since=`.
pub fn resume_cursor<'a>(headers: &'a HeaderMap, query: &'a ConnectQuery) -> Option<&'a str> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .or(query.since.as_deref())
}

/// Parses a cursor from a client, 400 if malformed.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Cursor>()
                .map_err(|e| ApiError::BadRequest(format!("invalid cursor: {e}")))
        })
        .transpose()
}

/// The query string as its pairs, every repeated key kept (`where` may be repeated).
pub type QueryPairs = Vec<(String, String)>;

/// Authenticates the request (header, cookie or `access_token`) and records its tenant and
/// `sub` on the handler's span, so every log line of the request names who made it.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    access_token: Option<&str>,
) -> Result<Claims, ApiError> {
    let claims = state.auth.authenticate(headers, access_token).await?;
    let span = tracing::Span::current();
    span.record("tenant", claims.tenant.as_str());
    span.record("sub", claims.sub.as_str());
    Ok(claims)
}

/// Authenticates and admits a connection; `cursor` is `Last-Event-ID` or `since`; `pairs`
/// are the whole query's, for the filter (`actions`, `where`: 400 if malformed).
pub async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query: &ConnectQuery,
    cursor: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Admitted, ApiError> {
    let claims = authenticate(state, headers, query.access_token.as_deref()).await?;
    let mut scope = scope(
        &claims,
        &query.topic_list(),
        state.cfg.limits.topics_per_connection,
    )?;
    scope.filter = Filter::from_pairs(pairs)?;
    let since = parse_cursor(cursor)?;
    let permit = state
        .limiter
        .admit(&claims.tenant, &claims.sub)
        .inspect_err(|_| {
            state.metrics.rejected.inc();
        })?;
    Ok(Admitted {
        claims,
        scope,
        since,
        permit,
    })
}
