//! HTTP routes: one `router()` per module, merged here with the shared layers.

pub mod events;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::{Config, ConfigError, SourceConfig};
use crate::error::ApiError;
use crate::metrics::{Metrics, PUBLISH_API, SourceMetrics};
use crate::publish::{Outgoing, Publisher, Stored};
use crate::verify::Verifier;

/// A configured webhook source with its verifier built.
pub struct Source {
    /// The configuration.
    pub cfg: SourceConfig,
    /// Its verifier (secrets decoded once).
    pub verifier: Verifier,
    /// Its counters.
    pub metrics: SourceMetrics,
}

/// Shared state of the routes.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    sources: HashMap<String, Source>,
    api_keys: Vec<(TenantId, Secret)>,
    publisher: Publisher,
    metrics: Metrics,
    api_metrics: SourceMetrics,
    body_limit: usize,
    retry_after: u32,
}

impl AppState {
    /// Builds the state from a validated config.
    pub fn new(cfg: &Config, publisher: Publisher, metrics: Metrics) -> Result<Self, ConfigError> {
        let sources = cfg
            .sources
            .iter()
            .map(|(name, src)| {
                Ok((
                    name.clone(),
                    Source {
                        cfg: src.clone(),
                        verifier: Verifier::new(name, &src.verify, &src.secrets)?,
                        metrics: metrics.source(name),
                    },
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        let api_keys = cfg
            .api_keys
            .iter()
            .flat_map(|(t, keys)| keys.iter().map(move |k| (t.clone(), k.clone())))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                sources,
                api_keys,
                publisher,
                api_metrics: metrics.source(PUBLISH_API),
                metrics: metrics.clone(),
                body_limit: cfg.body_limit,
                retry_after: cfg.retry_after_secs,
            }),
        })
    }

    fn source(&self, name: &str) -> Option<&Source> {
        self.inner.sources.get(name)
    }

    /// Counts a finished request of `label`, whose counters are `counters` when it is
    /// configured.
    fn count(&self, counters: Option<&SourceMetrics>, label: &str, status: StatusCode) {
        match counters {
            Some(counters) if status == StatusCode::OK => counters.ok(),
            _ => self.inner.metrics.request(label, status.as_u16()),
        }
    }

    /// Stores events, mapping any failure to 503 + `Retry-After`: `store_full` when JetStream
    /// refused for lack of space, else `unavailable`.
    async fn store(
        &self,
        counters: &SourceMetrics,
        events: &[Outgoing],
    ) -> Result<Vec<Stored>, ApiError> {
        self.inner.publisher.publish(counters, events).await.map_err(|err| {
            tracing::warn!(error = %herald_core::error_chain(&err), events = events.len(), "events not stored; answering 503");
            let retry_after = self.inner.retry_after;
            if err.store_full().is_some() {
                ApiError::StoreFull { retry_after }
            } else {
                ApiError::Unavailable { retry_after }
            }
        })
    }
}

/// Every ingest route, with tracing, a request timeout and the body limit.
pub fn router(state: AppState) -> Router {
    let limit = state.inner.body_limit;
    Router::new()
        .merge(webhooks::router())
        .merge(events::router())
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
}

/// Refuses bodies not declared as JSON (`application/json` or `application/*+json`).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(ct.to_owned()))
    }
}

/// The body, or 413 when it exceeded the limit.
fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BodyRead
        }
    })
}

/// The JSON body of a successful request.
#[derive(serde::Serialize)]
struct Accepted {
    events: Vec<Stored>,
}
