//! Real clients that parse what the gateway sends: `SseClient` (what an `EventSource` would
//! see, plus comments and `retry:`) and `WsClient` (`herald.v1`).

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use herald_core::cursor::Cursor;
use herald_core::sse::{EventStream, Item};
use serde_json::Value;
use tokio_tungstenite::tungstenite;

use crate::helpers::DEADLINE;

/// One SSE message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    /// The `id` it carried itself, if any.
    pub id: Option<String>,
    /// Its type; `None` for an unnamed (`message`) event.
    pub event: Option<String>,
    /// Its `data` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("data is JSON")
    }

    pub fn cursor(&self) -> Cursor {
        self.id
            .as_deref()
            .expect("an id")
            .parse()
            .expect("a cursor")
    }

    pub fn seq(&self) -> u64 {
        self.cursor().seq
    }
}

/// A parsing SSE client, over [`herald_core::sse`] (the one SSE parser).
pub struct SseClient {
    body: EventStream<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    /// `retry:` values seen (ms).
    pub retries: Vec<u64>,
    /// Comments (heartbeats) seen.
    pub comments: usize,
    /// The `Last-Event-ID` an EventSource would send now.
    pub last_id: Option<String>,
    /// The opening `status` message (with `heartbeat_ms`), kept out of [`SseClient::next`].
    /// [`TestApp::sse`] reads it before returning.
    pub hello: Option<SseEvent>,
}

impl SseClient {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            body: EventStream::new(resp.bytes_stream().boxed()),
            retries: Vec::new(),
            comments: 0,
            last_id: None,
            hello: None,
        }
    }

    /// Reads the opening `status` message into [`SseClient::hello`].
    pub async fn open(&mut self) -> anyhow::Result<()> {
        if self.hello.is_none() {
            let first = self.next_message().await?;
            match first {
                Some(ev) if ev.event.as_deref() == Some("status") => self.hello = Some(ev),
                other => bail!("expected the opening `status`, got {other:?}"),
            }
        }
        Ok(())
    }

    /// The next message after the opening `status`, or `None` when the stream ends.
    pub async fn next(&mut self) -> anyhow::Result<Option<SseEvent>> {
        self.open().await?;
        self.next_message().await
    }

    /// The next message, or `None` when the stream ends. Fails after [`DEADLINE`].
    async fn next_message(&mut self) -> anyhow::Result<Option<SseEvent>> {
        tokio::time::timeout(DEADLINE, self.next_inner())
            .await
            .context("no SSE message within the deadline")?
    }

    async fn next_inner(&mut self) -> anyhow::Result<Option<SseEvent>> {
        loop {
            let item = match self.body.next_item().await {
                None => return Ok(None),
                Some(item) => item?,
            };
            let id = self.body.last_event_id();
            self.last_id = (!id.is_empty()).then(|| id.to_owned());
            match item {
                Item::Comment => self.comments += 1,
                Item::Retry(after) => self.retries.push(u64::try_from(after.as_millis())?),
                Item::Event(ev) => {
                    return Ok(Some(SseEvent {
                        event: (!ev.is_message()).then(|| ev.event.into_owned()),
                        id: ev.id,
                        data: ev.data,
                    }));
                }
            }
        }
    }

    /// The next message, which must be an event (unnamed).
    pub async fn event(&mut self) -> anyhow::Result<SseEvent> {
        match self.next().await? {
            Some(ev) if ev.event.is_none() => Ok(ev),
            other => bail!("expected an event, got {other:?}"),
        }
    }

    /// Reads `n` events, skipping nothing (a control message fails).
    pub async fn events(&mut self, n: usize) -> anyhow::Result<Vec<SseEvent>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.event().await?);
        }
        Ok(out)
    }

    /// Reads until a message named `name`; returns it and the events seen before.
    pub async fn until(&mut self, name: &str) -> anyhow::Result<(SseEvent, Vec<SseEvent>)> {
        let mut before = Vec::new();
        loop {
            match self.next().await? {
                None => bail!("stream ended before `{name}`"),
                Some(ev) if ev.event.as_deref() == Some(name) => return Ok((ev, before)),
                Some(ev) => before.push(ev),
            }
        }
    }
}

/// A WebSocket client speaking `herald.v1`.
pub struct WsClient {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    /// The opening `status` frame of each subscription (with `heartbeat_ms`), kept out of
    /// [`WsClient::next`].
    pub hellos: Vec<Value>,
}

impl WsClient {
    pub fn new(
        socket: tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Self {
        Self {
            socket,
            hellos: Vec::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(tungstenite::Message::text(frame.to_string()))
            .await
            .expect("send a frame");
    }

    /// The next JSON text frame (pings and subscription `status` openers are skipped),
    /// `None` on close.
    pub async fn next(&mut self) -> anyhow::Result<Option<Value>> {
        let fut = async {
            loop {
                match self.socket.next().await {
                    None | Some(Ok(tungstenite::Message::Close(_))) => return Ok(None),
                    Some(Err(e)) => return Err(anyhow::Error::from(e)),
                    Some(Ok(tungstenite::Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str())?;
                        if v["type"] == "status" && v["heartbeat_ms"].is_u64() {
                            self.hellos.push(v);
                            continue;
                        }
                        return Ok(Some(v));
                    }
                    Some(Ok(_)) => continue,
                }
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .context("no WebSocket frame within the deadline")?
    }

    /// Reads (answering pings, as any client library does) until `n` pings have come.
    pub async fn pings(&mut self, n: usize) -> anyhow::Result<()> {
        let fut = async {
            let mut seen = 0;
            while seen < n {
                match self.socket.next().await {
                    Some(Ok(tungstenite::Message::Ping(_))) => seen += 1,
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => bail!("closed after {seen} pings"),
                }
            }
            Ok(())
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .context("not enough pings within the deadline")?
    }

    /// The next frame of `type`, failing on anything else.
    pub async fn expect(&mut self, ty: &str) -> anyhow::Result<Value> {
        match self.next().await? {
            Some(v) if v["type"] == ty => Ok(v),
            other => bail!("expected a `{ty}` frame, got {other:?}"),
        }
    }
}
