//! `GET /v1/stream`: server-sent events.
//!
//! Events are unnamed messages (`id: <cursor>`, `data: <CloudEvent>`), so a plain
//! `EventSource.onmessage` receives them; control messages are named (`status`, `reset`,
//! `overflow`, `reconnect`, `stats`). The stream opens with a `retry:` hint with jitter and a
//! `status` message carrying `heartbeat_ms` (and, without a cursor, `id: <head cursor>`), and
//! a `: hb` comment keeps it open.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Extension;
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
use crate::frame::{Control, EventFrame, Frame, ReconnectReason};
use crate::metrics::{ConnectionGuard, Transport, TransportLabels};
use crate::routes::{ConnectQuery, QueryPairs, admit, parsed_query, snapshot};
use crate::session::{Output, Session};
use crate::state::AppState;

const HEARTBEAT: &[u8] = b": hb\n\n";
/// Queued frames are written together up to about this many bytes.
const BATCH: usize = 16 * 1024;

/// Opens an SSE stream. `Last-Event-ID` wins over `since`.
///
/// When the connection is served by the gateway's own HTTP/1 writer ([`crate::server`]), the
/// request carries a [`StreamSlot`]: the stream is left there and the response has no body;
/// otherwise the stream is the response body.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn stream(
    State(state): State<AppState>,
    slot: Option<Extension<StreamSlot>>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let pairs = parsed_query(pairs)?;
    let cursor = super::resume_cursor(&headers, &query);
    let mut admitted = admit(&state, &headers, &query, cursor, &pairs).await?;
    if snapshot::wants_snapshot(query.snapshot.as_deref())? {
        admitted.scope.snapshot = Some(snapshot::snapshot_scope(
            &state,
            &admitted.claims,
            &query.topic_list(),
            false,
        )?);
    }
    let tenant = admitted.claims.tenant.clone();
    let opened = Session::open(
        &state,
        tenant.clone(),
        admitted.scope,
        admitted.since,
        admitted.claims.remaining(),
    )
    .await
    .map(|mut session| {
        let topics = session.topics().clone();
        session.attach_presence(state.presence.attach(
            &tenant,
            Some(&admitted.claims.sub),
            &topics,
            query.wants_presence(),
            admitted.claims.presence,
        ));
        session
    });
    respond(&state, slot, opened, Box::new(admitted.permit))
}

/// The answer to a stream request once its session is `opened`: the stream, or (when the
/// gateway cannot serve one yet) `status: degraded` and `reconnect` in band. `permit` is held
/// as long as the stream.
pub(crate) fn respond(
    state: &AppState,
    slot: Option<Extension<StreamSlot>>,
    opened: Result<Session, ApiError>,
    permit: Box<dyn Send>,
) -> Result<Response, ApiError> {
    let retry = retry_hint(state);
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

    let stream = SseStream {
        retry: Some(retry),
        session,
        _guard: (permit, state.metrics.connection(Transport::Sse)),
        // One counter handle per connection keeps the metric family's lock off the per-event
        // path.
        delivered: state
            .metrics
            .delivered
            .get_or_create(&TransportLabels {
                transport: Transport::Sse,
            })
            .clone(),
        span: tracing::Span::current(),
    };
    match slot {
        Some(Extension(slot)) => {
            slot.put(stream);
            Ok(sse_response(Body::empty()))
        }
        None => Ok(sse_response(stream.into_body())),
    }
}

/// An open SSE stream: the `retry:` hint, then the session's output, piece by piece.
pub struct SseStream {
    retry: Option<Bytes>,
    session: Session,
    _guard: (Box<dyn Send>, ConnectionGuard),
    delivered: Counter,
    span: tracing::Span,
}

/// One write's worth of an SSE stream.
#[derive(Debug)]
pub enum Piece {
    /// One event alone: its shared, pre-rendered bytes.
    Event(Arc<EventFrame>),
    /// Anything else: frames that were queued together, a control message, a heartbeat.
    Bytes(Bytes),
}

impl Piece {
    /// The SSE bytes.
    pub fn sse(&self) -> &Bytes {
        match self {
            Self::Event(e) => &e.sse,
            Self::Bytes(b) => b,
        }
    }
}

impl SseStream {
    /// The next piece to write, or `None` at the end of the stream. Cancel-safe.
    pub async fn next(&mut self) -> Option<Piece> {
        if let Some(retry) = self.retry.take() {
            return Some(Piece::Bytes(retry));
        }
        let out = self.session.next().await;
        let first = self.piece(out)?;
        if !self.session.has_ready() {
            return Some(first);
        }
        // Frames already queued (a burst, a resume) go out in one write, not one each.
        let mut batch = BytesMut::from(&first.sse()[..]);
        while self.session.has_ready() && batch.len() < BATCH {
            // `next` is cancel-safe and a frame is waiting, so this rarely comes back empty.
            let Some(out) = self.session.next().now_or_never() else {
                break;
            };
            let Some(more) = self.piece(out) else {
                break; // the end: the next call returns it again
            };
            batch.extend_from_slice(more.sse());
        }
        Some(Piece::Bytes(batch.freeze()))
    }

    /// The request's span, for whoever drives the stream.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The piece of one output, or `None` at the end of the stream.
    fn piece(&mut self, out: Output) -> Option<Piece> {
        Some(match out {
            Output::End => return None,
            // Events were filtered out since the last `id:`: move `Last-Event-ID` past them
            // (a message with an id and no data sets it without firing an event).
            Output::Heartbeat => match self.session.take_skipped() {
                Some(cursor) => Piece::Bytes(Bytes::from(format!("id: {cursor}\n: hb\n\n"))),
                None => Piece::Bytes(Bytes::from_static(HEARTBEAT)),
            },
            Output::Frame(Frame::Event(e)) => {
                self.delivered.inc();
                Piece::Event(e)
            }
            Output::Frame(Frame::Stats(s)) => Piece::Bytes(s.sse.clone()),
            Output::Frame(Frame::Snapshot(s)) => Piece::Bytes(s.sse()),
            Output::Frame(Frame::Control(c)) => Piece::Bytes(c.sse()),
        })
    }

    /// The stream as an HTTP body (hyper writes it).
    fn into_body(self) -> Body {
        let pieces = futures::stream::unfold(self, |mut stream| async move {
            let piece = stream.next().await?;
            Some((Ok::<_, Infallible>(piece.sse().clone()), stream))
        });
        Body::from_stream(pieces)
    }
}

/// Where a request served by the gateway's own HTTP/1 writer ([`crate::server`]) receives its
/// SSE stream (a request extension).
#[derive(Clone, Default)]
pub struct StreamSlot(Arc<Mutex<Option<SseStream>>>);

impl StreamSlot {
    fn put(&self, stream: SseStream) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stream);
    }

    /// Takes the stream the handler left, if it opened one.
    pub fn take(&self) -> Option<SseStream> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
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
