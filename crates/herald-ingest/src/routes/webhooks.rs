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
use crate::publish::Outgoing;

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
    let events = formats::parse(&ctx, &raw)?;
    let audiences = audiences(&source.cfg, &raw, events.len())?;
    // The door is part of the dedup key: this source's ids can only collide with its own.
    let via = herald_core::event::via_webhook(name);
    let events: Vec<Outgoing> = events
        .into_iter()
        .zip(audiences)
        .map(|(mut event, to)| {
            event.via = Some(via.clone());
            Outgoing { event, to }
        })
        .collect();
    tracing::Span::current().record("events", events.len());
    let stored = state.store(&source.metrics, &events).await?;
    Ok(Accepted { events: stored })
}

/// The audience of each of the `n` events parsed from `raw`: none without a configured `to`,
/// else the configured path read from each raw item (400 `invalid_audience` if one has none).
fn audiences(
    cfg: &crate::config::SourceConfig,
    raw: &[u8],
    n: usize,
) -> Result<Vec<Option<crate::audience::Audience>>, ApiError> {
    let Some(paths) = &cfg.to else {
        return Ok(vec![None; n]);
    };
    // The body parsed (it did a moment ago), as a tree this time: the path may point anywhere.
    let body: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let items = formats::items(cfg.format, &body);
    debug_assert_eq!(items.len(), n, "one raw item per event");
    items
        .into_iter()
        .map(|(at, item)| Ok(Some(paths.audience(item, &at)?)))
        .collect()
}
