//! `GET /v1/ws`: WebSocket, subprotocol `herald.v1` (frames: `proto/websocket.md`).
//!
//! The token is checked at the upgrade. Client frames: `subscribe` (topics and an optional
//! `since`; replaces the current subscription, resuming from its cursor), `unsubscribe`,
//! `refresh` (a new token extends the session and narrows it to what the token grants), `ping` (answered `pong`). Server frames:
//! `event`, `cursor` (a filtered subscription's position past events its filter left out,
//! with a heartbeat), the control messages of SSE (a subscription opens with `status`, carrying
//! `heartbeat_ms` and, without a cursor, the starting `cursor`), `pong`, and `error` for a
//! refused client frame (the connection stays open).
//!
//! A ping goes out every `heartbeat`; a peer not heard from (not even a pong) for 2.5
//! heartbeats is disconnected, and so is one whose writes make no progress for
//! `write_timeout`.
//!
//! Browsers attach cookies to a WebSocket upgrade whichever site's page opens it, and CORS
//! does not apply to WebSockets: an upgrade whose token comes from the cookie must carry an
//! `Origin` that is the gateway's own or one of `cors_origins` (403 `origin_forbidden`
//! otherwise; browsers always send `Origin` on upgrades, so a missing one is refused too).
//! Tokens from the `Authorization` header or `access_token` cannot be attached by a foreign
//! page, so those upgrades are not checked.
//!
//! `subscribe`, `unsubscribe` and `refresh` frames cost the gateway work (a replay, a token
//! check), so each connection has a token bucket of `ws_subscribe_burst` frames refilled at
//! `ws_subscribe_rate` per second: a frame over it is answered with an `error` frame
//! (`rate_limited`) and not applied, and `ws_subscribe_burst` refused frames in a row close
//! the connection (1008, `subscribe rate exceeded`).

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use herald_core::cursor::Cursor;
use serde::Deserialize;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

use crate::auth::{Claims, TokenSource, TopicSet};
use crate::error::{ApiError, AuthError};
use crate::filter::Filter;
use crate::frame::{Control, Frame, ReconnectReason};
use crate::limits::Permit;
use crate::metrics::{ConnectionGuard, Transport};
use crate::routes::{
    ConnectQuery, QueryPairs, STATS_TOPIC, admit, parse_cursor, parsed_query, scope,
};
use crate::session::{Output, Session};
use crate::state::AppState;

mod budget;

use budget::{FrameBudget, flooded};

/// The WebSocket subprotocol.
pub const PROTOCOL: &str = "herald.v1";

/// The largest client frame accepted (a subscribe with many topics, or a token, fits easily).
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// A client frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientFrame {
    /// Subscribe to `topics` (none = all granted), resuming after `since`.
    Subscribe {
        /// Topics.
        #[serde(default)]
        topics: Vec<String>,
        /// A cursor.
        #[serde(default)]
        since: Option<String>,
        /// Only these actions (none: every action).
        #[serde(default)]
        actions: Option<Vec<String>>,
        /// `path:value` conditions that must all hold ([`crate::filter`]).
        #[serde(default, rename = "where")]
        conditions: Vec<String>,
        /// Start with a snapshot of the collections among the topics (without `since`:
        /// a fresh start, not a resume of the previous subscription).
        #[serde(default)]
        snapshot: bool,
    },
    /// Stop receiving `topics`.
    Unsubscribe {
        /// Topics.
        topics: Vec<String>,
    },
    /// Replace the token (same user and tenant) to extend the session.
    Refresh {
        /// The new token.
        token: String,
    },
    /// An application-level ping (browsers cannot see WebSocket pings): answered `pong`.
    Ping,
}

/// Upgrades to a WebSocket after checking the token and the limits.
#[tracing::instrument(skip_all, fields(tenant, sub))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ConnectQuery>, QueryRejection>,
    pairs: Result<Query<QueryPairs>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = parsed_query(query)?;
    let presence = query.wants_presence();
    if parsed_query(pairs)?
        .iter()
        .any(|(k, _)| k == "actions" || k == "where")
    {
        return Err(ApiError::BadRequest(
            "a WebSocket takes actions and where in its subscribe frame, not in the URL".into(),
        ));
    }
    // A request without a token gets 401 whatever its headers; one whose token is the
    // cookie must come from an allowed origin before anything else is done for it.
    let source = state
        .auth
        .token_source(&headers, query.access_token.as_deref());
    if source == Some(TokenSource::Cookie) {
        check_origin(&state.cfg.cors_origins, &headers)?;
    }
    let admitted = admit(
        &state,
        &headers,
        &ConnectQuery {
            topics: None,
            ..query
        },
        None,
        &[],
    )
    .await?;
    let ws = ws.map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let guard = state.metrics.connection(Transport::Ws);
    let claims = admitted.claims;
    let permit = admitted.permit;
    Ok(ws
        .protocols([PROTOCOL])
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| connection(state, socket, claims, presence, (permit, guard))))
}

/// Whether the upgrade's `Origin` is the gateway's own (its host is the `Host` header) or one
/// of `allowed` (exactly, ignoring case and a trailing `/`; `*` allows no cookie upgrade).
fn check_origin(allowed: &[String], headers: &HeaderMap) -> Result<(), ApiError> {
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(|o| o.trim().trim_end_matches('/'))
        .ok_or(ApiError::OriginForbidden)?;
    let listed = allowed
        .iter()
        .map(|a| a.trim().trim_end_matches('/'))
        .any(|a| a != "*" && a.eq_ignore_ascii_case(origin));
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let own = ["http://", "https://"].iter().any(|scheme| {
        origin
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && host.is_some_and(|h| h.eq_ignore_ascii_case(&origin[scheme.len()..]))
    });
    if listed || own {
        Ok(())
    } else {
        Err(ApiError::OriginForbidden)
    }
}

fn error_frame(code: &str, message: &str) -> Message {
    let body = serde_json::json!({"type": "error", "code": code, "message": message});
    Message::Text(Utf8Bytes::from(body.to_string()))
}

struct Conn {
    state: AppState,
    claims: Claims,
    /// `presence=1` in the upgrade URL: subscriptions receive `presence` events.
    presence: bool,
    session: Option<Session>,
    budget: FrameBudget,
}

impl Conn {
    /// Takes one frame from the subscribe budget, or refuses the frame.
    fn charge(&mut self) -> Result<(), Message> {
        self.budget.take().map_err(|wait| {
            let body = serde_json::json!({
                "type": "error",
                "code": "rate_limited",
                "message": "too many subscribe, unsubscribe or refresh frames; this one was ignored",
                "retry_after_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            });
            Message::Text(Utf8Bytes::from(body.to_string()))
        })
    }

    /// Replaces the subscription, resuming from `since` or from where the previous one was.
    async fn subscribe(
        &mut self,
        topics: &[String],
        (since, snapshot): (Option<String>, bool),
        filter: Result<Filter, crate::filter::FilterError>,
    ) -> Result<(), Message> {
        let api = |e: ApiError| error_frame(e.code(), &e.to_string());
        let mut scope = scope(
            &self.claims,
            topics,
            self.state.cfg.limits.topics_per_connection,
        )
        .map_err(api)?;
        scope.filter = filter.map_err(|e| api(e.into()))?;
        if snapshot {
            scope.snapshot = Some(
                crate::routes::snapshot::snapshot_scope(&self.state, &self.claims, topics, false)
                    .map_err(api)?,
            );
        }
        let since: Option<Cursor> = match parse_cursor(since.as_deref()).map_err(api)? {
            Some(c) => Some(c),
            // A snapshot replaces the table: a fresh start, not a resume.
            None if snapshot => None,
            None => self.session.as_ref().map(Session::cursor),
        };
        self.session = None;
        let session = Session::open(
            &self.state,
            self.claims.tenant.clone(),
            scope,
            since,
            self.claims.remaining(),
        )
        .await
        .map_err(api)?;
        let mut session = session;
        let topics = session.topics().clone();
        session.attach_presence(self.state.presence.attach(
            &self.claims.tenant,
            Some(&self.claims.sub),
            &topics,
            self.presence,
            self.claims.presence,
        ));
        self.session = Some(session);
        Ok(())
    }

    /// Drops `topics` from the subscription (all of them, or `*`: ends it).
    fn unsubscribe(&mut self, topics: Vec<String>) -> Result<(), Message> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        if topics.iter().any(|t| t == STATS_TOPIC) {
            session.drop_stats();
            if topics.iter().all(|t| t == STATS_TOPIC) {
                return Ok(());
            }
        }
        let topics: Vec<String> = topics.into_iter().filter(|t| t != STATS_TOPIC).collect();
        let everything = topics.is_empty() || topics.iter().any(|t| t == "*");
        match session.topics().clone() {
            _ if everything => self.session = None,
            TopicSet::All => {
                return Err(error_frame(
                    "bad_request",
                    "a wildcard subscription cannot drop single topics; subscribe to the topics you want instead",
                ));
            }
            TopicSet::Only(mut set) => {
                set.retain(|t| !topics.iter().any(|u| u == t.as_str()));
                if set.is_empty() {
                    self.session = None;
                } else {
                    session.set_topics(TopicSet::Only(set));
                }
            }
        }
        Ok(())
    }

    /// Handles one client frame; `Ok` may carry a reply, `Err` carries the error frame.
    async fn handle(&mut self, text: &str) -> Result<Option<Message>, Message> {
        let frame: ClientFrame = serde_json::from_str(text)
            .map_err(|e| error_frame("bad_frame", &format!("unrecognised frame: {e}")))?;
        if !matches!(frame, ClientFrame::Ping) {
            self.charge()?;
        }
        match frame {
            ClientFrame::Subscribe {
                topics,
                since,
                actions,
                conditions,
                snapshot,
            } => {
                let filter = Filter::parse(actions.as_deref(), &conditions);
                self.subscribe(&topics, (since, snapshot), filter).await?;
            }
            ClientFrame::Unsubscribe { topics } => self.unsubscribe(topics)?,
            ClientFrame::Refresh { token } => {
                let claims = self
                    .state
                    .auth
                    .verify(&token)
                    .await
                    .map_err(|e| error_frame(e.code(), &e.to_string()))?;
                if claims.tenant != self.claims.tenant || claims.sub != self.claims.sub {
                    let e = AuthError::IdentityChanged;
                    return Err(error_frame(e.code(), &e.to_string()));
                }
                if let Some(session) = self.session.as_mut() {
                    session.extend(claims.remaining());
                    session.narrow(&claims);
                }
                self.claims = claims;
            }
            ClientFrame::Ping => {
                return Ok(Some(Message::Text(Utf8Bytes::from_static(
                    r#"{"type":"pong"}"#,
                ))));
            }
        }
        Ok(None)
    }
}

async fn next_output(session: &mut Option<Session>) -> Output {
    match session {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// What one turn of a connection's loop leads to.
enum Step {
    /// Write this message (within `write_timeout`).
    Send(Message),
    /// Write these two messages.
    Pair(Message, Message),
    /// Nothing to write.
    Skip,
    /// Write this message, then close.
    Last(Message),
    /// Close without a word.
    End,
}

/// A text message, or nothing when the bytes are not UTF-8.
fn text_step<T>(bytes: T) -> Step
where
    Utf8Bytes: TryFrom<T>,
{
    match Utf8Bytes::try_from(bytes) {
        Ok(text) => Step::Send(Message::Text(text)),
        Err(_) => Step::Skip,
    }
}

fn reconnect(reason: ReconnectReason) -> Step {
    Step::Last(Message::Text(Utf8Bytes::from(
        Control::Reconnect { reason }.ws_text(),
    )))
}

impl Conn {
    /// Opens a connection's state: no subscription yet, a full frame budget.
    fn open(state: AppState, claims: Claims, presence: bool) -> Self {
        let budget = FrameBudget::new(state.cfg.ws_subscribe_rate, state.cfg.ws_subscribe_burst);
        Self {
            state,
            claims,
            presence,
            session: None,
            budget,
        }
    }

    /// A message from the peer; `expires` follows the token (a refresh may move it).
    async fn on_peer(&mut self, message: Message, expires: Pin<&mut Sleep>) -> Step {
        match message {
            Message::Text(text) => match self.handle(text.as_str()).await {
                Ok(Some(reply)) => Step::Send(reply),
                Ok(None) => {
                    // A refresh may have moved the expiry (sessions track their own).
                    expires.reset(Instant::now() + self.claims.remaining());
                    Step::Skip
                }
                Err(_) if self.budget.exhausted() => Step::Last(flooded()),
                Err(reply) => Step::Send(reply),
            },
            Message::Close(_) => Step::End,
            // Pongs (and pings, answered by the library) prove the peer is there.
            _ => Step::Skip,
        }
    }

    /// What the session produced, as a WebSocket message.
    fn on_session(&mut self, out: Output) -> Step {
        let ping = || Message::Ping(bytes::Bytes::new());
        match out {
            // Events were filtered out since the last cursor the client got: hand it the
            // current one, so a resume starts after them.
            Output::Heartbeat => match self.session.as_mut().and_then(Session::take_skipped) {
                Some(cursor) => {
                    let frame = serde_json::json!({"type": "cursor", "cursor": cursor.to_string()});
                    Step::Pair(Message::Text(Utf8Bytes::from(frame.to_string())), ping())
                }
                None => Step::Send(ping()),
            },
            Output::Frame(Frame::Event(e)) => {
                self.state.metrics.delivered(Transport::Ws, 1);
                text_step(e.ws_text())
            }
            Output::Frame(Frame::Stats(s)) => text_step(s.ws.clone()),
            Output::Frame(Frame::Snapshot(s)) => text_step(s.ws_text()),
            Output::Frame(Frame::Control(c)) => {
                Step::Send(Message::Text(Utf8Bytes::from(c.ws_text())))
            }
            Output::End => Step::Last(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: Utf8Bytes::from_static("bye"),
            }))),
        }
    }
}

/// Writes one message within `write_timeout`; `false` when the connection is over.
async fn write(socket: &mut WebSocket, message: Message, conn: &Conn) -> bool {
    match tokio::time::timeout(conn.state.cfg.write_timeout, socket.send(message)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!("closing a WebSocket whose peer stopped reading");
            conn.state.metrics.write_timeouts.inc();
            false
        }
    }
}

/// Opens the connection, then pumps: peer frames in, session frames out, pings while
/// unsubscribed, until either side ends it.
#[tracing::instrument(skip_all, fields(tenant = %claims.tenant, sub = %claims.sub))]
async fn connection(
    state: AppState,
    mut socket: WebSocket,
    claims: Claims,
    presence: bool,
    _guard: (Permit, ConnectionGuard),
) {
    let shutdown = state.shutdown.clone();
    let heartbeat = state.cfg.heartbeat;
    let expires = tokio::time::sleep(claims.remaining());
    tokio::pin!(expires);
    // A ping goes out every heartbeat and a live peer answers it: a peer not heard from for
    // 2.5 heartbeats is gone (the same allowance the browser client gives the gateway).
    let silence_limit = heartbeat.saturating_mul(5) / 2;
    let silence = tokio::time::sleep(silence_limit);
    tokio::pin!(silence);
    let mut conn = Conn::open(state, claims, presence);
    let mut idle_ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    loop {
        let has_session = conn.session.is_some();
        let step = tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(message)) = msg else { return };
                silence.as_mut().reset(Instant::now() + silence_limit);
                conn.on_peer(message, expires.as_mut()).await
            }
            out = next_output(&mut conn.session) => conn.on_session(out),
            () = &mut expires, if !has_session => reconnect(ReconnectReason::TokenExpired),
            () = shutdown.cancelled(), if !has_session => reconnect(ReconnectReason::Draining),
            _ = idle_ping.tick(), if !has_session => Step::Send(Message::Ping(bytes::Bytes::new())),
            () = &mut silence => {
                tracing::debug!(?silence_limit, "closing a WebSocket whose peer went silent");
                conn.state.metrics.silent_peers.inc();
                return;
            }
        };
        match step {
            Step::Send(message) => {
                if !write(&mut socket, message, &conn).await {
                    return;
                }
            }
            Step::Pair(first, second) => {
                for message in [first, second] {
                    if !write(&mut socket, message, &conn).await {
                        return;
                    }
                }
            }
            Step::Skip => {}
            Step::Last(message) => {
                let _ = socket.send(message).await;
                return;
            }
            Step::End => return,
        }
    }
}
