//! `GET /v1/stream`: server-sent events.
//!
//! Events are unnamed messages (`id: <cursor>`, `data: <CloudEvent>`), so a plain
//! `EventSource.onmessage` receives them; control messages are named (`status`, `reset`,
//! `overflow`, `reconnect`). The stream opens with a `retry:` hint with jitter, and a `: hb`
//! comment keeps it open.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::Rng;

use crate::error::ApiError;
use crate::frame::{Control, Frame, ReconnectReason};
use crate::metrics::Transport;
use crate::routes::{ConnectQuery, admit};
use crate::session::{Output, Session};
use crate::state::AppState;

const HEARTBEAT: &[u8] = b": hb\n\n";

/// Opens an SSE stream. `Last-Event-ID` wins over `since`.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<ConnectQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let cursor = last_event_id.or(query.since.as_deref());
    let admitted = admit(&state, &headers, &query, cursor)?;
    let span = tracing::Span::current();
    span.record("tenant", admitted.claims.tenant.as_str());
    span.record("sub", admitted.claims.sub.as_str());
    let retry = retry_hint(&state);
    let opened = Session::open(
        &state,
        admitted.claims.tenant.clone(),
        admitted.topics,
        admitted.since,
        admitted.claims.remaining(),
    )
    .await;
    let session = match opened {
        Ok(session) => session,
        // A plain EventSource gives up for good on a non-200 answer, but reconnects (after
        // `retry:`) when a stream ends: say it in band, so it comes back.
        Err(ApiError::NotReady) => {
            let mut body = retry.to_vec();
            body.extend_from_slice(&Control::Status { live: false }.sse());
            body.extend_from_slice(
                &Control::Reconnect {
                    reason: ReconnectReason::Unavailable,
                }
                .sse(),
            );
            return Ok(sse_response(Body::from(body)));
        }
        Err(other) => return Err(other),
    };

    let guard = (admitted.permit, state.metrics.connection(Transport::Sse));
    let metrics = state.metrics.clone();
    let first = futures::stream::once(async move { Ok::<_, Infallible>(retry) });
    let rest = futures::stream::unfold((session, guard), move |(mut session, guard)| {
        let metrics = metrics.clone();
        async move {
            let bytes = match session.next().await {
                Output::End => return None,
                Output::Heartbeat => Bytes::from_static(HEARTBEAT),
                Output::Frame(Frame::Event(e)) => {
                    metrics.delivered(Transport::Sse, 1);
                    e.sse.clone()
                }
                Output::Frame(Frame::Control(c)) => c.sse(),
            };
            Some((Ok::<_, Infallible>(bytes), (session, guard)))
        }
    });
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    Ok(sse_response(body))
}

fn sse_response(body: Body) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `retry: <ms>` with the configured base plus random jitter.
fn retry_hint(state: &AppState) -> Bytes {
    let base = state.cfg.retry_base.as_millis() as u64;
    let jitter = state.cfg.retry_jitter.as_millis() as u64;
    let ms = base + rand::thread_rng().gen_range(0..=jitter);
    Bytes::from(format!("retry: {ms}\n\n"))
}
