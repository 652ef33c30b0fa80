//! `GET /v1/snapshot`: every row of some collections at one cursor, paged
//! (`proto/state.md`).
//!
//! `?topics=leads,services[&limit=1000][&cursor=<c>&after=<token>]` answers
//! `{"cursor","topics":{"leads":{"<key>":<row>,…},…},"more"[,"after"]}`: the state after the
//! event at `cursor`, so a stream from `cursor` gives every later change once. Pages of one
//! snapshot are cut from the same [`crate::mirror::Cut`], kept `snapshot_ttl` after its last
//! page (`410 snapshot_expired` once gone, unless none of its collections changed since).
//! Same authentication and topic scoping as `/v1/stream`; not counted against the
//! connection limits (it holds no connection). `400 not_a_collection` for a topic that is
//! not one, `503 state_loading` while the mirror loads.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use herald_core::cursor::Cursor;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::Claims;
use crate::error::ApiError;
use crate::routes::{ConnectQuery, STATS_TOPIC, parse_cursor, parsed_query};
use crate::session::SnapshotScope;
use crate::snapshot::{DEFAULT_LIMIT, MAX_LIMIT, Page, Position, View, collection_topics};
use crate::state::AppState;

/// Query parameters of `GET /v1/snapshot`.
#[derive(Debug, Default, Deserialize)]
pub struct SnapshotQuery {
    /// Comma-separated collection topics; none = every collection the token grants.
    pub topics: Option<String>,
    /// Rows per page, 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]).
    pub limit: Option<u64>,
    /// The snapshot a later page belongs to.
    pub cursor: Option<String>,
    /// Where the previous page ended (its `after`).
    pub after: Option<String>,
    /// The token, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// Answers one page of a snapshot.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<SnapshotQuery>, QueryRejection>,
) -> Result<Json<Box<RawValue>>, ApiError> {
    let query = parsed_query(query)?;
    let claims = super::authenticate(&state, &headers, query.access_token.as_deref()).await?;
    let requested = ConnectQuery {
        topics: query.topics.clone(),
        ..ConnectQuery::default()
    }
    .topic_list();
    let scope = snapshot_scope(&state, &claims, &requested, true)?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n @ 1..) if n <= MAX_LIMIT as u64 => n as usize,
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}, not {n}"
            )));
        }
    };
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let after = query
        .after
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .map(|a| Position::parse(a, &scope.topics))
        .transpose()?;
    if after.is_some() && cursor.is_none() {
        return Err(ApiError::BadRequest(
            "`after` needs the `cursor` of its snapshot".into(),
        ));
    }
    let page = first_or_later_page(&state, &claims, scope, cursor, (after, limit))?;
    RawValue::from_string(page.json).map(Json).map_err(|err| {
        tracing::error!(%err, "a snapshot page is not JSON");
        ApiError::Internal
    })
}

/// A page: of a new snapshot (no `cursor`), or of the one cut at `cursor`.
fn first_or_later_page(
    state: &AppState,
    claims: &Claims,
    scope: SnapshotScope,
    cursor: Option<Cursor>,
    (after, limit): (Option<Position>, usize),
) -> Result<Page, ApiError> {
    let ids: Vec<_> = scope
        .topics
        .iter()
        .map(|t| (claims.tenant.clone(), t.clone()))
        .collect();
    let cut = match cursor {
        None => state.hub.snapshot().ok_or(ApiError::StateLoading)?,
        Some(c) => match state.snapshots.get(c) {
            Some(cut) => cut,
            None if !state.hub.mirror_live() => return Err(ApiError::StateLoading),
            None => state
                .hub
                .snapshot_unchanged_since(c, &ids)
                .ok_or(ApiError::SnapshotExpired)?,
        },
    };
    let view = View::new(cut.clone(), &claims.tenant, scope.topics, scope.user);
    let page = view.page(after.as_ref(), limit, true);
    if page.more {
        state.snapshots.keep(&cut);
    }
    state.metrics.snapshots.inc();
    Ok(page)
}

/// The first page of a new snapshot of `scope` (a long-poll's `snapshot=1`): the page and
/// its `after` token. `503 state_loading` while the mirror loads.
pub fn first_page(
    state: &AppState,
    claims: &Claims,
    scope: SnapshotScope,
) -> Result<Page, ApiError> {
    first_or_later_page(state, claims, scope, None, (None, DEFAULT_LIMIT))
}

/// The collections a request for `requested` gets snapshots of, for the token's user;
/// `strict`: every requested topic must be a collection (`/v1/snapshot`).
pub fn snapshot_scope(
    state: &AppState,
    claims: &Claims,
    requested: &[String],
    strict: bool,
) -> Result<SnapshotScope, ApiError> {
    if strict && requested.iter().any(|t| t == STATS_TOPIC) {
        return Err(ApiError::NotACollection(
            "$stats is not a collection".into(),
        ));
    }
    let events: Vec<String> = requested
        .iter()
        .filter(|t| *t != STATS_TOPIC)
        .cloned()
        .collect();
    let scope = claims.scope(&events, state.cfg.limits.topics_per_connection)?;
    let topics = collection_topics(
        state.hub.collections(),
        &claims.tenant,
        &events,
        &scope,
        strict,
    )?;
    Ok(SnapshotScope {
        topics,
        user: claims.sub.clone(),
    })
}

/// Whether a query's `snapshot` parameter asks for one (`1` or `true`; 400 otherwise).
pub fn wants_snapshot(raw: Option<&str>) -> Result<bool, ApiError> {
    match raw.map(str::trim) {
        None | Some("" | "0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "snapshot must be 1 or 0, not {other:?}"
        ))),
    }
}
