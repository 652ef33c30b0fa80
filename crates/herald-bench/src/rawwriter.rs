//! The floor next to scenario A: one thread that does nothing but a blocking `write` of a
//! pre-built SSE frame to every socket of the event's group. No fan-out structure, no queues,
//! no async runtime, no per-client state: what delivering an event costs on this host when
//! nothing else does. Fed the same events (a core NATS subscription in the bench process,
//! not counted) and read by the same SSE clients as the gateway, in the same run.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use anyhow::Context as _;
use futures::StreamExt as _;

use crate::stack::Layout;

/// Each group's open sockets.
type Groups = Arc<Mutex<Vec<Vec<TcpStream>>>>;

/// The running raw writer.
pub struct RawWriter {
    /// Where SSE clients connect: `GET /raw?g=<group>`.
    pub addr: SocketAddr,
    /// The writing thread's id (its CPU time is `/proc/<tid>/stat`).
    pub tid: u32,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    forward: tokio::task::JoinHandle<()>,
}

impl RawWriter {
    /// Starts the acceptor, the writing thread and the feed from `client` (every event of
    /// `layout`'s groups).
    pub async fn start(client: &async_nats::Client, layout: Layout) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let groups: Groups = Arc::new(Mutex::new(
            (0..layout.groups()).map(|_| Vec::new()).collect(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (groups, stop) = (Arc::clone(&groups), Arc::clone(&stop));
            std::thread::spawn(move || accept(&listener, &groups, &stop))
        };
        let (tx, rx) = mpsc::channel::<(usize, bytes::Bytes)>();
        let (tid_tx, tid_rx) = mpsc::channel();
        let writer = std::thread::spawn(move || {
            let _ = tid_tx.send(own_tid());
            write_all(&rx, &groups);
        });
        let tid = tid_rx.recv()?.context("the writer's thread id")?;
        let by_name: HashMap<(String, String), usize> = (0..layout.groups())
            .map(|g| ((layout.tenant(g), layout.topic(g)), g))
            .collect();
        let mut sub = client.subscribe("herald.events.>").await?;
        let forward = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let mut tokens = msg.subject.split('.').skip(2);
                let (Some(tenant), Some(topic)) = (tokens.next(), tokens.next()) else {
                    continue;
                };
                if let Some(&g) = by_name.get(&(tenant.to_owned(), topic.to_owned()))
                    && tx.send((g, msg.payload)).is_err()
                {
                    return;
                }
            }
        });
        Ok(Self {
            addr,
            tid,
            stop,
            acceptor: Some(acceptor),
            writer: Some(writer),
            forward,
        })
    }

    /// Stops feeding (which ends the writing thread), closes every socket and joins the
    /// threads.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.forward.abort();
        let _ = (&mut self.forward).await; // dropped: the feed's sender with it
        self.stop.store(true, Ordering::Release);
        let (addr, threads) = (self.addr, [self.acceptor.take(), self.writer.take()]);
        tokio::task::spawn_blocking(move || {
            // Wake the acceptor out of accept().
            let _ = TcpStream::connect(addr);
            for handle in threads.into_iter().flatten() {
                let _ = handle.join();
            }
        })
        .await?;
        Ok(())
    }
}

/// The calling thread's id, from `/proc/thread-self` (a link to `<pid>/task/<tid>`).
fn own_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Accepts clients until `stop`: reads the request head, answers the SSE response head and
/// a `retry:` hint (what the clients wait for), files the socket under its group.
fn accept(listener: &TcpListener, groups: &Groups, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut sock) = conn else { continue };
        let Some(group) = read_group(&mut sock) else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        let hello = b"retry: 1000\n\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
            hello.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(hello);
        out.extend_from_slice(b"\r\n");
        if sock.write_all(&out).is_ok()
            && let Ok(mut all) = groups.lock()
            && let Some(list) = all.get_mut(group)
        {
            list.push(sock);
        }
    }
}

/// The group of a `GET /raw?g=<group>` request head read from `sock`.
fn read_group(sock: &mut TcpStream) -> Option<usize> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).ok().filter(|n| *n > 0)?;
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    let line = std::str::from_utf8(&head).ok()?.lines().next()?;
    let query = line.split_whitespace().nth(1)?.split_once("?g=")?.1;
    query.parse().ok()
}

/// Writes each event, framed once, to every socket of its group with a blocking write; drops
/// a socket whose write fails. Returns when the feed ends.
fn write_all(rx: &mpsc::Receiver<(usize, bytes::Bytes)>, groups: &Groups) {
    let mut n = 0u64;
    while let Ok((group, payload)) = rx.recv() {
        n += 1;
        let frame_len = format!("id: r{n}\ndata: ").len() + payload.len() + 2;
        let mut chunk = Vec::with_capacity(frame_len + 16);
        chunk.extend_from_slice(format!("{frame_len:x}\r\nid: r{n}\ndata: ").as_bytes());
        chunk.extend_from_slice(&payload);
        chunk.extend_from_slice(b"\n\n\r\n");
        let Ok(mut all) = groups.lock() else { return };
        if let Some(list) = all.get_mut(group) {
            list.retain_mut(|sock| sock.write_all(&chunk).is_ok());
        }
    }
}
