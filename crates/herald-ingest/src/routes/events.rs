//! `POST /v1/events`: the publish API for a team's own services.
//!
//! Authenticated by a per-tenant API key (`Authorization: Bearer <key>`); the key decides the
//! tenant. The body is one event or an array of events:
//! `{"topic","action","data", "id"?, "type"?, "source"?, "time"?, "changes"?, "to"?}`.
//! Without an `id`, a single event takes the `Idempotency-Key` header, else a UUIDv7.
//! `to` (an array of user ids) makes the event private to those users ([`crate::audience`]);
//! it is stored as the `Herald-To` header, not in the event.

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use herald_core::event::{Event, EventId, VIA_API};
use herald_core::names::TenantId;
use serde::Deserialize;
use serde_json::Value;

use super::{Accepted, AppState, body, require_json};
use crate::audience::Audience;
use crate::error::{ApiError, AuthError, ParseError};
use crate::formats;
use crate::metrics::PUBLISH_API;
use crate::publish::Outgoing;

/// The publish route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(publish))
}

/// One event as a team's service sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    topic: String,
    action: String,
    #[serde(default)]
    data: Value,
    id: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    source: Option<String>,
    time: Option<String>,
    changes: Option<Value>,
    tenant: Option<String>,
    #[serde(default)]
    to: Value,
}

#[tracing::instrument(skip_all, fields(tenant, events))]
async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    let response = match handle(&state, &headers, raw).await {
        Ok(accepted) => Json(accepted).into_response(),
        Err(err) => {
            if err.status().is_client_error() {
                tracing::info!(code = err.code(), reason = %err, "publish refused");
            }
            err.into_response()
        }
    };
    state.count(
        Some(&state.inner.api_metrics),
        PUBLISH_API,
        response.status(),
    );
    response
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let tenant = authenticate(state, headers)?;
    tracing::Span::current().record("tenant", tenant.as_str());
    require_json(headers)?;
    let raw = body(raw, state.inner.body_limit)?;
    let value: Value =
        serde_json::from_slice(&raw).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let events = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::InvalidShape("the array holds no events".into()));
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| to_event(&tenant, v, &format!("[{i}]"), None))
            .collect::<Result<Vec<_>, _>>()?,
        v => vec![to_event(&tenant, v, "body", idempotency_key)?],
    };
    tracing::Span::current().record("events", events.len());
    let stored = state.store(&state.inner.api_metrics, &events).await?;
    Ok(Accepted { events: stored })
}

/// The tenant whose key was presented. Every key is compared, in constant time.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| AuthError::MissingToken("Authorization".into()))?
        .to_str()
        .map_err(|_| AuthError::InvalidToken)?;
    let token = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| value[7..].trim())
        .ok_or(AuthError::InvalidToken)?;
    let mut found = None;
    for (tenant, key) in &state.inner.api_keys {
        if herald_core::signature::token_matches(token, key.expose()) && found.is_none() {
            found = Some(tenant.clone());
        }
    }
    Ok(found.ok_or(AuthError::InvalidToken)?)
}

fn to_event(
    tenant: &TenantId,
    value: Value,
    at: &str,
    idempotency_key: Option<&str>,
) -> Result<Outgoing, ApiError> {
    let input: Input =
        serde_json::from_value(value).map_err(|e| ApiError::InvalidShape(format!("{at}: {e}")))?;
    if let Some(t) = &input.tenant {
        let named = TenantId::parse(t.as_str())
            .map_err(|e| ApiError::InvalidName(format!("{at}.tenant: {e}")))?;
        if &named != tenant {
            return Err(ApiError::TenantMismatch(format!(
                "{at}.tenant: this API key belongs to another tenant"
            )));
        }
    }
    let id = match input.id.as_deref().or(idempotency_key) {
        Some(id) => formats::event_id(id, &format!("{at}.id"))?,
        None => EventId::generate(),
    };
    let topic = formats::topic(&input.topic, &format!("{at}.topic"))?;
    let action = formats::action(&input.action, &format!("{at}.action"))?;
    let to = Audience::from_api(&input.to, &format!("{at}.to"))?;
    let source = input
        .source
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("/apps/{tenant}"));
    let mut event = Event::new(id, tenant.clone(), topic, action, source, input.data);
    // The publish API is its own door: its ids never collide with a webhook source's.
    event.via = Some(VIA_API.to_owned());
    if let Some(ty) = input.ty.filter(|t| !t.is_empty()) {
        event.ty = ty;
    }
    if let Some(changes) = input.changes {
        if !(changes.is_object() || changes.is_null()) {
            return Err(ParseError::Shape(format!("{at}.changes must be an object")).into());
        }
        event.changes = Some(changes).filter(|c| !c.is_null());
    }
    if let Some(t) = input.time {
        event.time = formats::rfc3339(&t, &format!("{at}.time"))?;
    }
    Ok(Outgoing { event, to })
}
