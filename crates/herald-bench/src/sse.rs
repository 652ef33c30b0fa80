//! A small SSE client over raw HTTP/1.1 (so 10,000 of them fit in the load generator):
//! de-chunks the body into the one SSE parser ([`herald_core::sse`]), records each event on its [`Slot`](crate::track::Slot), and on request
//! drops its connection and resumes with `Last-Event-ID`, like a browser's EventSource.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use herald_core::sse::{Item, Parser};

use crate::track::{Board, parse_marks};

/// What one client needs to know.
#[derive(Debug, Clone)]
pub struct Client {
    /// The gateway.
    pub addr: SocketAddr,
    /// `/v1/stream?topics=…&access_token=…`.
    pub path: Arc<str>,
    /// Its index on the board.
    pub index: usize,
    /// Where it records.
    pub board: Arc<Board>,
}

/// How the orchestrator steers the clients.
#[derive(Debug, Clone)]
pub struct Control {
    /// Told once per client, when its first stream is open.
    pub opened: mpsc::Sender<()>,
    /// Cancelled to end every client.
    pub stop: CancellationToken,
    /// Bumped to make every client drop its connection and resume by cursor.
    pub drops: watch::Receiver<u64>,
}

/// Why a connection ended.
enum End {
    Stop,
    Dropped,
    Closed,
}

/// Runs one client until `stop`; returns the latencies (µs) it measured.
pub async fn run(client: Client, mut ctl: Control) -> anyhow::Result<Vec<u32>> {
    let mut latencies = Vec::new();
    let mut cursor: Option<String> = None;
    let mut opened = Some(ctl.opened.clone());
    loop {
        let slot = &client.board.slots[client.index];
        slot.connects.fetch_add(1, Ordering::Relaxed);
        let end = connection(&client, &mut ctl, &mut cursor, &mut opened, &mut latencies).await?;
        match end {
            End::Stop => return Ok(latencies),
            End::Dropped | End::Closed => {}
        }
    }
}

async fn connection(
    client: &Client,
    ctl: &mut Control,
    cursor: &mut Option<String>,
    opened: &mut Option<mpsc::Sender<()>>,
    latencies: &mut Vec<u32>,
) -> anyhow::Result<End> {
    let mut sock = TcpStream::connect(client.addr).await?;
    let resume = cursor
        .as_deref()
        .map(|c| format!("Last-Event-ID: {c}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{resume}\r\n",
        client.path, client.addr
    );
    sock.write_all(request.as_bytes()).await?;
    let mut raw = BytesMut::with_capacity(4096);
    let mut parser = Parser::new();
    let mut chunks: Option<Dechunk> = None;
    let slot = &client.board.slots[client.index];
    loop {
        let n = tokio::select! {
            biased;
            () = ctl.stop.cancelled() => return Ok(End::Stop),
            changed = ctl.drops.changed() => {
                changed.context("the orchestrator went away")?;
                return Ok(End::Dropped);
            }
            n = sock.read_buf(&mut raw) => n?,
        };
        slot.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            if chunks.is_none() {
                bail!("closed before the response");
            }
            return Ok(End::Closed);
        }
        let dechunk = match chunks.as_mut() {
            Some(d) => d,
            None => {
                let Some(end) = find(&raw, b"\r\n\r\n") else {
                    continue;
                };
                let head = raw.split_to(end + 4);
                if !head.starts_with(b"HTTP/1.1 200") {
                    bail!("refused: {}", String::from_utf8_lossy(&head));
                }
                chunks.insert(Dechunk::default())
            }
        };
        let last = dechunk.feed(&mut raw, |bytes| parser.feed(bytes));
        while let Some(item) = parser.next_item() {
            match item {
                Item::Event(ev) if ev.is_message() => {
                    if let (Some(id), Some((n, sent))) = (ev.id, parse_marks(ev.data.as_bytes())) {
                        let measuring = client.board.measuring.load(Ordering::Relaxed);
                        slot.record(n, sent, measuring.then_some(&mut *latencies));
                        *cursor = Some(id);
                    }
                }
                Item::Event(ev) if ev.event == "reset" || ev.event == "overflow" => {
                    slot.resets.fetch_add(1, Ordering::Relaxed);
                }
                Item::Retry(_) => {
                    if let Some(tx) = opened.take() {
                        let _ = tx.send(()).await;
                    }
                }
                Item::Event(_) | Item::Comment => {}
            }
        }
        if last {
            return Ok(End::Closed);
        }
    }
}

/// HTTP/1.1 chunked transfer decoding, incremental.
#[derive(Debug, Default)]
struct Dechunk {
    /// Bytes left in the current chunk.
    remaining: usize,
    /// The chunk's trailing CRLF is still to skip.
    crlf: bool,
}

impl Dechunk {
    /// Hands what `raw` holds of the body to `out`; true at the final chunk.
    fn feed(&mut self, raw: &mut BytesMut, mut out: impl FnMut(&[u8])) -> bool {
        loop {
            if self.remaining > 0 {
                let k = self.remaining.min(raw.len());
                if k == 0 {
                    return false;
                }
                out(&raw[..k]);
                raw.advance(k);
                self.remaining -= k;
                self.crlf = self.remaining == 0;
            } else if self.crlf {
                if raw.len() < 2 {
                    return false;
                }
                raw.advance(2);
                self.crlf = false;
            } else {
                let Some(end) = find(raw, b"\r\n") else {
                    return false;
                };
                let line = raw.split_to(end + 2);
                let hex = line[..end].split(|&b| b == b';').next().unwrap_or_default();
                let size = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                    .unwrap_or(0);
                if size == 0 {
                    return true;
                }
                self.remaining = size;
            }
        }
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_arbitrary_splits() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunk::default();
            let (mut raw, mut out) = (BytesMut::new(), BytesMut::new());
            raw.extend_from_slice(&wire[..split]);
            let early = d.feed(&mut raw, |b| out.extend_from_slice(b));
            raw.extend_from_slice(&wire[split..]);
            assert!(
                early || d.feed(&mut raw, |b| out.extend_from_slice(b)),
                "split at {split}"
            );
            assert_eq!(&out[..], b"hello, world", "split at {split}");
        }
    }
}
