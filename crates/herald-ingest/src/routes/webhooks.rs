//! `POST /v1/webhooks/{source}`: verify, parse, publish, then answer.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use time::OffsetDateTime;

use super::{Accepted, AppState, body, require_json};
use crate::error::ApiError;
use crate::formats::{self, Context};
use crate::metrics::UNKNOWN_SOURCE;

/// The webhook route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/webhooks/{source}", post(webhook))
}

#[tracing::instrument(skip_all, fields(source = %name, tenant, events))]
async fn webhook(
    State(state): State<AppState>,
    Path(name): Path<String>,
    mut request: Request,
) -> Response {
    // Moved out rather than cloned (as the `HeaderMap` extractor would); reading the body
    // needs only the extensions (the body limit).
    let headers = std::mem::take(request.headers_mut());
    let raw = Bytes::from_request(request, &state).await;
    let result = handle(&state, &name, &headers, raw).await;
    let counters = state.source(&name).map(|s| &s.metrics);
    let label = if counters.is_some() {
        name.as_str()
    } else {
        UNKNOWN_SOURCE
    };
    let response = match result {
        Ok(accepted) => Json(accepted).into_response(),
        Err(err) => {
            if err.status().is_client_error() {
                tracing::info!(code = err.code(), reason = %err, "webhook refused");
            }
            err.into_response()
        }
    };
    state.count(counters, label, response.status());
    response
}

async fn handle(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let source = state
        .source(name)
        .ok_or_else(|| ApiError::UnknownSource(name.to_owned()))?;
    tracing::Span::current().record("tenant", source.cfg.tenant.as_str());
    require_json(headers)?;
    let raw = body(raw, state.inner.body_limit)?;
    let verified =
        source
            .verifier
            .verify(headers, &raw, OffsetDateTime::now_utc().unix_timestamp())?;
    let ctx = Context {
        name,
        source: &source.cfg,
        headers,
        verified: &verified,
    };
    let mut events = formats::parse(&ctx, &raw)?;
    // The door is part of the dedup key: this source's ids can only collide with its own.
    let via = herald_core::event::via_webhook(name);
    for event in &mut events {
        event.via = Some(via.clone());
    }
    tracing::Span::current().record("events", events.len());
    let stored = state.store(&source.metrics, &events).await?;
    Ok(Accepted { events: stored })
}
