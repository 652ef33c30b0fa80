//! Browser-like clients: SSE and WebSocket, each resuming from its last cursor after any
//! disconnect — on the *other* gateway — as `herald.js` does.
//!
//! A client records every event exactly as it arrived (no deduplication of its own), so the
//! checker sees what a browser would have seen.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use herald_core::cursor::Cursor;
use herald_core::sse::{self, EventStream, Item};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest as _};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::plan::{self, ClientSpec, Transport};

/// A connection that shows no sign of life (no event, heartbeat or ping) this long is
/// considered dead and replaced. The gateways send heartbeats every 2 s.
const IDLE: Duration = Duration::from_secs(10);
/// The pause before reconnecting, as a browser's `retry:` would.
const RECONNECT_PAUSE: Duration = Duration::from_millis(150);

/// One event as a client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    /// The cursor it came with.
    pub cursor: Cursor,
    /// The envelope's `id`.
    pub id: String,
    /// The envelope's `tenant`.
    pub tenant: String,
    /// The envelope's `topic`.
    pub topic: String,
}

/// What one client saw over the whole run.
#[derive(Debug, Default)]
pub struct ClientLog {
    /// Every event, in arrival order.
    pub received: Vec<Got>,
    /// The cursor it would resume from.
    pub last: Option<Cursor>,
    /// Connections opened (successfully).
    pub connects: u32,
    /// `reset` frames (reasons): a reset means the gateway could not fill a gap.
    pub resets: Vec<String>,
    /// `overflow` frames.
    pub overflows: u32,
    /// `status: degraded` frames.
    pub degraded: u32,
    /// Frames the client could not make sense of.
    pub garbled: Vec<String>,
    /// Every `status` frame: when it arrived and whether it said `live`.
    pub statuses: Vec<(tokio::time::Instant, bool)>,
    /// Every connection opened: when, and to which gateway (index).
    pub connections: Vec<(tokio::time::Instant, usize)>,
    /// The gateway the client is connecting to now.
    pub gateway: usize,
}

impl ClientLog {
    fn connected(&mut self) {
        self.connects += 1;
        self.connections
            .push((tokio::time::Instant::now(), self.gateway));
    }

    fn status(&mut self, live: bool) {
        if !live {
            self.degraded += 1;
        }
        self.statuses.push((tokio::time::Instant::now(), live));
    }
}

/// A client's log, shared with the checker.
pub type SharedLog = Arc<Mutex<ClientLog>>;

/// Locks a log, surviving a poisoned lock (a panicked task must not hide the evidence).
pub fn lock(log: &SharedLog) -> std::sync::MutexGuard<'_, ClientLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HS256 token for `spec` that outlives the run.
pub fn token(spec: &ClientSpec) -> Result<String, Error> {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 6 * 3600;
    let claims = serde_json::json!({
        "sub": spec.name,
        "tenant": spec.tenant,
        "topics": spec.topics,
        "exp": exp,
    });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(plan::JWT_SECRET.as_bytes()),
    )
    .map_err(Error::Token)
}

/// Runs one client from `start` until `stop` fires, alternating between `gateways`.
#[tracing::instrument(skip_all, fields(client = %spec.name))]
pub async fn run(
    spec: ClientSpec,
    first_gateway: usize,
    gateways: Vec<String>,
    token: String,
    start: Cursor,
    log: SharedLog,
    stop: CancellationToken,
) {
    lock(&log).last = Some(start);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a reqwest client");
    let mut gw = first_gateway;
    while !stop.is_cancelled() {
        let since = lock(&log).last.unwrap_or(start);
        let base = &gateways[gw % gateways.len()];
        lock(&log).gateway = gw % gateways.len();
        let ended = tokio::select! {
            () = stop.cancelled() => break,
            ended = async {
                match spec.transport {
                    Transport::Sse => sse(&http, base, &spec, &token, since, &log).await,
                    Transport::Ws => ws(base, &spec, &token, since, &log).await,
                }
            } => ended,
        };
        tracing::debug!(gateway = %base, why = %ended, "connection ended; resuming elsewhere");
        gw += 1;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// One SSE connection, resumed with `Last-Event-ID`. Returns why it ended.
async fn sse(
    http: &reqwest::Client,
    base: &str,
    spec: &ClientSpec,
    token: &str,
    since: Cursor,
    log: &SharedLog,
) -> String {
    let resp = match http
        .get(format!("{base}/v1/stream"))
        .query(&[("topics", spec.topics.join(","))])
        .bearer_auth(token)
        .header("Last-Event-ID", since.to_string())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return format!("HTTP {}", r.status()),
        Err(e) => return format!("connect: {e}"),
    };
    lock(log).connected();
    let mut body = EventStream::new(resp.bytes_stream());
    loop {
        match tokio::time::timeout(IDLE, body.next_item()).await {
            Err(_) => return "idle".into(),
            Ok(None) => return "closed".into(),
            Ok(Some(Err(e))) => return format!("read: {e}"),
            Ok(Some(Ok(Item::Event(ev)))) => sse_event(&ev, log),
            // A heartbeat or `retry:`: a sign of life.
            Ok(Some(Ok(Item::Comment | Item::Retry(_)))) => {}
        }
    }
}

fn sse_event(ev: &sse::Event, log: &SharedLog) {
    let id = ev.id.as_deref();
    match (ev.event.as_ref(), id) {
        (sse::Event::MESSAGE, Some(id)) => {
            match (
                id.parse::<Cursor>(),
                serde_json::from_str::<Value>(&ev.data),
            ) {
                (Ok(cursor), Ok(envelope)) => record(log, cursor, &envelope),
                _ => lock(log).garbled.push(format!("{ev:?}")),
            }
        }
        ("reset", id) => {
            let mut l = lock(log);
            l.resets.push(ev.data.clone());
            if let Some(c) = id.and_then(|i| i.parse().ok()) {
                l.last = Some(c);
            }
        }
        ("overflow", _) => lock(log).overflows += 1,
        ("status", _) => lock(log).status(!ev.data.contains("degraded")),
        _ => {}
    }
}

/// One WebSocket connection, subscribed with `since`. Returns why it ended.
async fn ws(base: &str, spec: &ClientSpec, token: &str, since: Cursor, log: &SharedLog) -> String {
    let url = format!("{}/v1/ws", base.replacen("http", "ws", 1));
    let mut req = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return format!("request: {e}"),
    };
    let headers = req.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("herald.v1"),
    );
    match tungstenite::http::HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(v) => {
            headers.insert("Authorization", v);
        }
        Err(e) => return format!("token header: {e}"),
    }
    let connect = tokio_tungstenite::connect_async(req);
    let mut socket = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok((s, _))) => s,
        Ok(Err(e)) => return format!("connect: {e}"),
        Err(_) => return "connect: timed out".into(),
    };
    let subscribe = serde_json::json!({
        "op": "subscribe",
        "topics": spec.topics,
        "since": since.to_string(),
    });
    if let Err(e) = socket.send(Message::text(subscribe.to_string())).await {
        return format!("subscribe: {e}");
    }
    lock(log).connected();
    loop {
        let msg = match tokio::time::timeout(IDLE, socket.next()).await {
            Err(_) => return "idle".into(),
            Ok(None) => return "closed".into(),
            Ok(Some(Err(e))) => return format!("read: {e}"),
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return "close frame".into(),
            _ => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            lock(log).garbled.push(text.to_string());
            continue;
        };
        let cursor = frame["cursor"]
            .as_str()
            .and_then(|c| c.parse::<Cursor>().ok());
        match (frame["type"].as_str(), cursor) {
            (Some("event"), Some(cursor)) => record(log, cursor, &frame["event"]),
            (Some("reset"), cursor) => {
                let mut l = lock(log);
                l.resets.push(text.to_string());
                if cursor.is_some() {
                    l.last = cursor;
                }
            }
            (Some("overflow"), _) => lock(log).overflows += 1,
            (Some("status"), _) => lock(log).status(frame["state"] != "degraded"),
            // The gateway has not reached NATS yet and refused the subscription: try again,
            // as herald.js does.
            (Some("error"), _) if frame["code"] == "not_ready" => return "not ready".into(),
            (Some("event"), None) | (Some("error"), _) => lock(log).garbled.push(text.to_string()),
            _ => {}
        }
    }
}

fn record(log: &SharedLog, cursor: Cursor, envelope: &Value) {
    let field = |k: &str| envelope[k].as_str().unwrap_or_default().to_owned();
    let mut l = lock(log);
    l.received.push(Got {
        cursor,
        id: field("id"),
        tenant: field("tenant"),
        topic: field("topic"),
    });
    l.last = Some(cursor);
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::cursor::Epoch;

    /// Feeds `stream` through the SSE parser into the log.
    fn feed(stream: &str, log: &SharedLog) {
        let mut parser = sse::Parser::new();
        parser.feed(stream.as_bytes());
        while let Some(item) = parser.next_item() {
            if let Item::Event(ev) = item {
                sse_event(&ev, log);
            }
        }
    }

    #[test]
    fn sse_frames_become_events_resets_and_counts() {
        let log = SharedLog::default();
        feed(
            "id: 7-0000000a\ndata: {\"id\":\"evt-1\",\"tenant\":\"alpha\",\"topic\":\"leads\"}\n\n",
            &log,
        );
        feed("event: status\ndata: {\"state\":\"degraded\"}\n\n", &log);
        feed(
            "id:9-0000000a\nevent:reset\ndata:{\"reason\":\"out_of_retention\"}\n\n",
            &log,
        );
        feed(": hb\n\n", &log);
        let l = lock(&log);
        assert_eq!(l.received.len(), 1);
        assert_eq!(l.received[0].cursor, Cursor::new(7, Epoch(10)));
        assert_eq!(l.received[0].id, "evt-1");
        assert_eq!(l.degraded, 1);
        assert_eq!(l.resets.len(), 1);
        assert_eq!(
            l.last,
            Some(Cursor::new(9, Epoch(10))),
            "a reset moves the cursor"
        );
    }
}
