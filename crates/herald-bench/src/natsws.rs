//! The peer: a browser talking to nats-server's own WebSocket listener, speaking the NATS
//! protocol (`CONNECT`, `SUB`, then `MSG` frames; `PING` answered with `PONG`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::sse::find;
use crate::track::{Board, parse_marks};

/// One WebSocket client subscribed to `subject`.
#[derive(Debug, Clone)]
pub struct Client {
    /// `ws://127.0.0.1:<port>`.
    pub url: Arc<str>,
    /// What it subscribes to, e.g. `herald.events.t0.p1.>`.
    pub subject: String,
    /// Its index on the board.
    pub index: usize,
    /// Where it records.
    pub board: Arc<Board>,
}

/// Runs one client until `stop`; returns the latencies (µs) it measured. `opened` is told
/// once the server has answered the `PING` sent after `SUB` (so the subscription is live).
pub async fn run(
    client: Client,
    opened: mpsc::Sender<()>,
    stop: CancellationToken,
) -> anyhow::Result<Vec<u32>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&*client.url).await?;
    let hello = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"name\":\"bench\"}}\r\nSUB {} 1\r\nPING\r\n",
        client.subject
    );
    ws.send(Message::binary(hello.into_bytes())).await?;
    let slot = &client.board.slots[client.index];
    slot.connects.fetch_add(1, Ordering::Relaxed);
    let mut opened = Some(opened);
    let mut latencies = Vec::new();
    let mut buf = BytesMut::new();
    loop {
        let msg = tokio::select! {
            () = stop.cancelled() => return Ok(latencies),
            msg = ws.next() => msg.context("closed by the server")??,
        };
        match msg {
            Message::Binary(b) => buf.extend_from_slice(&b),
            Message::Text(t) => buf.extend_from_slice(t.as_bytes()),
            Message::Close(_) => bail!("closed by the server"),
            _ => continue,
        }
        while let Some(eol) = find(&buf, b"\r\n") {
            if buf.starts_with(b"MSG ") {
                let size: usize = std::str::from_utf8(&buf[..eol])?
                    .rsplit(' ')
                    .next()
                    .context("MSG size")?
                    .parse()?;
                if buf.len() < eol + 2 + size + 2 {
                    break;
                }
                let payload = &buf[eol + 2..eol + 2 + size];
                if let Some((n, sent)) = parse_marks(payload) {
                    let measuring = client.board.measuring.load(Ordering::Relaxed);
                    slot.record(n, sent, measuring.then_some(&mut latencies));
                }
                buf.advance(eol + 2 + size + 2);
                continue;
            }
            let line = buf.split_to(eol + 2);
            if line.starts_with(b"PING") {
                ws.send(Message::binary(&b"PONG\r\n"[..])).await?;
            } else if line.starts_with(b"PONG") {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(()).await;
                }
            } else if line.starts_with(b"-ERR") {
                bail!("server error: {}", String::from_utf8_lossy(&line));
            }
        }
    }
}
