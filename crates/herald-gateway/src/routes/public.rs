//! `/v1/public/<tenant>/{stream,ws,poll}`: the tenant's public topics
//! (`[gateway.public.<tenant>] topics = […]`), readable without a token.
//!
//! The same delivery as the private transports — cursors, `Last-Event-ID`, replay, `reset`,
//! filters — with these differences:
//! - no token: the tenant comes from the path, and only its public topics can be asked for
//!   (none asked = all of them); a tenant with none is 404 `not_public`, another topic 403
//!   `topic_not_public`;
//! - **no private event, ever**: a public session's filter names no viewer, and a filter
//!   without a viewer passes no event that has an audience (`Herald-To`); see
//!   [`crate::filter`];
//! - limits per client address ([`PublicLimiter`]): `limits.public_per_ip` open connections
//!   (429) and `limits.public_connect_rate` new ones per second (503), both with
//!   `Retry-After`;
//! - `Access-Control-Allow-Origin: *` (no credentials), whatever `cors_origins` says;
//! - the WebSocket takes its topics and cursor in the URL and answers only `ping` frames;
//! - a public reader is never a presence member; with `presence=1` it receives counts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use herald_core::cursor::Cursor;
use herald_core::names::TenantId;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{MAX_LIFETIME, TopicSet};
use crate::error::ApiError;
use crate::filter::Filter;
use crate::metrics::Transport;
use crate::routes::sse::StreamSlot;
use crate::routes::{ConnectQuery, QueryPairs, parse_cursor, parsed_query};
use crate::session::{Scope, Session};
use crate::state::AppState;

mod limiter;
mod ws;

pub use limiter::{PublicLimiter, PublicPermit};

/// The public routes, with their own CORS (any origin, no credentials).
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
        ]);
    Router::new()
        .route("/v1/public/{tenant}/stream", get(stream))
        .route("/v1/public/{tenant}/ws", get(upgrade))
        .route("/v1/public/{tenant}/poll", get(poll))
        .with_state(state)
        .layer(cors)
}

/// An admitted public connection.
struct Admitted {
    tenant: TenantId,
    scope: Scope,
    since: Option<Cursor>,
    permit: PublicPermit,
}

/// The client's address; unspecified when the request did not come through the server (tests
/// that call the router directly).
fn client_ip(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    )
}

/// Checks the tenant (404), the topics (400/403), the filter and cursor (400), then the
/// address's limits (429/503).
fn admit(
    state: &AppState,
    tenant: &str,
    ip: IpAddr,
    query: &ConnectQuery,
    cursor: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Admitted, ApiError> {
    let tenant = TenantId::parse(tenant).map_err(|_| ApiError::NotPublic)?;
    tracing::Span::current().record("tenant", tenant.as_str());
    let public = state.public.of(&tenant).ok_or(ApiError::NotPublic)?;
    let requested = query.topic_list();
    let max = state.cfg.limits.topics_per_connection;
    if requested.len() > max {
        return Err(ApiError::BadRequest(format!(
            "at most {max} topics per connection"
        )));
    }
    let mut topics = std::collections::BTreeSet::new();
    for raw in &requested {
        let topic = herald_core::names::Topic::parse(raw.as_str())
            .map_err(|e| ApiError::BadRequest(format!("invalid topic: {e}")))?;
        if !public.contains(&topic) {
            return Err(ApiError::TopicNotPublic(raw.clone()));
        }
        topics.insert(topic);
    }
    if topics.is_empty() {
        topics = public.clone();
    }
    // No viewer: a public session passes no private event (one with an audience).
    let filter = Filter::from_pairs(pairs)?;
    let since = parse_cursor(cursor)?;
    let permit = state.public_limiter.admit(ip).inspect_err(|_| {
        state.metrics.rejected.inc();
    })?;
    Ok(Admitted {
        tenant,
        scope: Scope {
            topics: TopicSet::Only(topics),
            stats: None,
            filter,
            // No viewer: the session passes no private event (the audience check fails closed).
            viewer: None,
            // Public topics get events only: no snapshot of collections.
            snapshot: None,
        },
        since,
        permit,
    })
}

/// Opens `admitted`'s session: no expiry (there is no token), presence counts if asked.
async fn open(
    state: &AppState,
    admitted: Admitted,
    presence: bool,
) -> (Result<Session, ApiError>, PublicPermit) {
    let Admitted {
        tenant,
        scope,
        since,
        permit,
    } = admitted;
    let opened = Session::open(state, tenant.clone(), scope, since, MAX_LIFETIME)
        .await
        .map(|mut session| {
            if presence {
                let topics = session.topics().clone();
                session.attach_presence(state.presence.attach(&tenant, None, &topics, true, false));
            }
            session
        });
    (opened, permit)
}

/// `GET /v1/public/<tenant>/stream`: SSE, as `/v1/stream`.
#[tracing::instrument(skip_all, fields(tenant))]
async fn stream(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    slot: Option<Extension<StreamSlot>>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let cursor = super::resume_cursor(&headers, &query);
    let admitted = admit(&state, &tenant, client_ip(peer), &query, cursor, &pairs)?;
    let (opened, permit) = open(&state, admitted, query.wants_presence()).await;
    super::sse::respond(&state, slot, opened, Box::new(permit))
}

/// `GET /v1/public/<tenant>/poll`: long-poll, as `/v1/poll`.
#[tracing::instrument(skip_all, fields(tenant))]
async fn poll(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let since = query.since.as_deref();
    let admitted = admit(&state, &tenant, client_ip(peer), &query, since, &pairs)?;
    let since = admitted.since;
    let (opened, _permit) = open(&state, admitted, false).await;
    let _guard = state.metrics.connection(Transport::Poll);
    let answer = super::poll::answer(&state, opened?, since, query.wait).await;
    Ok(Json(answer).into_response())
}

/// `GET /v1/public/<tenant>/ws`: a read-only WebSocket (subprotocol `herald.v1`) of the
/// topics and cursor in the URL.
#[tracing::instrument(skip_all, fields(tenant))]
async fn upgrade(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let since = query.since.as_deref();
    let admitted = admit(&state, &tenant, client_ip(peer), &query, since, &pairs)?;
    let upgrade =
        upgrade.map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let (opened, permit) = open(&state, admitted, query.wants_presence()).await;
    let session = opened?;
    let guard = state.metrics.connection(Transport::Ws);
    Ok(upgrade
        .protocols([super::ws::PROTOCOL])
        .max_message_size(4096)
        .on_upgrade(move |socket| ws::connection(state, socket, session, (permit, guard))))
}
