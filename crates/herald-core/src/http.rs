//! HTTP pieces every service shares: the JSON error body and the operations endpoints
//! (`/healthz`, `/readyz`, `/metrics`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// The body of every 4xx/5xx: `{"error":{"code":…,"message":…}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// A stable, machine-readable code, e.g. `invalid_signature`.
    pub code: &'a str,
    /// A human-readable explanation. Never contains secrets or internal error text.
    pub message: &'a str,
}

/// A JSON error response.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: ErrorDetail { code, message },
        }),
    )
        .into_response()
}

/// A future returned by a readiness check.
pub type ReadyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Something `/readyz` asks. `Err` carries the reason shown to operators.
pub trait Readiness: Send + Sync + 'static {
    /// Checks readiness now.
    fn check(&self) -> ReadyFuture<'_>;
}

#[derive(Clone)]
struct OpsState {
    registry: Arc<Registry>,
    readiness: Arc<dyn Readiness>,
}

/// `/healthz` (the process answers), `/readyz` (the readiness check passes) and `/metrics`
/// (Prometheus text format of `registry`).
pub fn ops_router(registry: Arc<Registry>, readiness: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

async fn readyz(State(state): State<OpsState>) -> Response {
    match state.readiness.check().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not_ready", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Readiness of a service that needs NATS answering and Herald's streams present.
pub struct NatsReadiness {
    /// The client whose connection state is checked.
    pub client: async_nats::Client,
    /// The JetStream context used to look the streams up.
    pub js: async_nats::jetstream::Context,
    /// The active probe: a connected but silent (e.g. frozen) server is not ready.
    pub liveness: crate::liveness::Liveness,
}

/// Not ready while `client` is disconnected or the probe finds the server silent; the
/// reason, as `/readyz` shows it.
pub fn nats_answering(
    client: &async_nats::Client,
    liveness: &crate::liveness::Liveness,
) -> Result<(), String> {
    if !crate::nats::is_connected(client) {
        return Err("NATS is not connected".into());
    }
    match liveness.current().describe() {
        Some(silence) => Err(silence),
        None => Ok(()),
    }
}

impl Readiness for NatsReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            nats_answering(&self.client, &self.liveness)?;
            // A real STREAM.INFO request: a lookup that does not ask the server would say
            // ready before the streams exist. Bounded by the probe's deadline, so `/readyz`
            // answers promptly when the server has just gone silent.
            let deadline = self.liveness.deadline();
            for stream in [crate::streams::EVENTS_STREAM, crate::streams::DLQ_STREAM] {
                match tokio::time::timeout(deadline, self.js.get_stream(stream)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return Err(format!("stream {stream} is not available")),
                    Err(_) => {
                        return Err(format!(
                            "NATS did not answer STREAM.INFO {stream} within {deadline:?}"
                        ));
                    }
                }
            }
            Ok(())
        })
    }
}
