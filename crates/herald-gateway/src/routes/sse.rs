//! `GET /v1/stream`: server-sent events.
//!
//! Events are unnamed messages (`id: <cursor>`, `data: <CloudEvent>`), so a plain
//! `EventSource.onmessage` receives them; control messages are named (`status`, `reset`,
//! `overflow`, `reconnect`, `stats`). The stream opens with a `retry:` hint with jitter and a
//! `status` message carrying `heartbeat_ms` (and, without a cursor, `id: <head cursor>`), and
//! a `: hb` comment keeps it open.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use prometheus_client::metrics::counter::Counter;
use rand::Rng;

use crate::error::ApiError;
use crate::frame::{Control, Frame, ReconnectReason};
use crate::metrics::{Transport, TransportLabels};
use crate::routes::{ConnectQuery, admit, parsed_query};
use crate::session::{Output, Session};
use crate::state::AppState;

const HEARTBEAT: &[u8] = b": hb\n\n";
/// Queued frames are written together up to about this many bytes.
const BATCH: usize = 16 * 1024;

/// Opens an SSE stream. `Last-Event-ID` wins over `since`.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
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
        admitted.scope,
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
            let hello = Control::Hello {
                live: false,
                heartbeat_ms: u64::try_from(state.cfg.heartbeat.as_millis()).unwrap_or(u64::MAX),
                cursor: None,
            };
            body.extend_from_slice(&hello.sse());
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
    // One counter handle per connection keeps the metric family's lock off the per-event path.
    let delivered = state
        .metrics
        .delivered
        .get_or_create(&TransportLabels {
            transport: Transport::Sse,
        })
        .clone();
    let first = futures::stream::once(async move { Ok::<_, Infallible>(retry) });
    let rest = futures::stream::unfold(
        (session, guard, delivered),
        |(mut session, guard, delivered)| async move {
            let first = frame_bytes(session.next().await, &delivered)?;
            // Frames already queued (a burst, a resume) go out in one write, not one each.
            let mut batch: Option<BytesMut> = None;
            while session.has_ready() && batch.as_ref().map_or(first.len(), BytesMut::len) < BATCH {
                // `next` is cancel-safe and a frame is waiting, so this rarely comes back empty.
                let Some(out) = session.next().now_or_never() else {
                    break;
                };
                let Some(more) = frame_bytes(out, &delivered) else {
                    break; // the end: the next call returns it again
                };
                batch
                    .get_or_insert_with(|| BytesMut::from(&first[..]))
                    .extend_from_slice(&more);
            }
            let bytes = batch.map_or(first, BytesMut::freeze);
            Some((Ok::<_, Infallible>(bytes), (session, guard, delivered)))
        },
    );
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    Ok(sse_response(body))
}

/// The bytes of one output, or `None` at the end of the stream.
fn frame_bytes(out: Output, delivered: &Counter) -> Option<Bytes> {
    Some(match out {
        Output::End => return None,
        Output::Heartbeat => Bytes::from_static(HEARTBEAT),
        Output::Frame(Frame::Event(e)) => {
            delivered.inc();
            e.sse.clone()
        }
        Output::Frame(Frame::Stats(s)) => s.sse.clone(),
        Output::Frame(Frame::Control(c)) => c.sse(),
    })
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
