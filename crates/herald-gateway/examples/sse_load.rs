//! A quick loopback load test: idle-connection memory and fan-out throughput of a running
//! gateway. Not the benchmark harness; see docs/gateway.md ("Performance") for how it is run.
//!
//! ```text
//! cargo run --release -p herald-gateway --example sse_load -- \
//!     --url http://127.0.0.1:8080 --nats nats://127.0.0.1:4222 --secret <HS256 secret> \
//!     --connections 10000 --events 100 --gateway-pid <pid>
//! ```
//!
//! 1. opens `--connections` SSE streams (raw HTTP/1.1, so the client stays small) and reads
//!    the gateway's RSS before and after: memory per idle connection;
//! 2. publishes `--events` events to JetStream and waits until every connection received all
//!    of them: deliveries per second = connections × events / elapsed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Parser)]
struct Args {
    /// The gateway's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// NATS, to publish the events.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The gateway's HS256 secret.
    #[arg(long)]
    secret: String,
    /// SSE connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Events to publish once every connection is open.
    #[arg(long, default_value_t = 100)]
    events: u64,
    /// The gateway's process id, to read its RSS.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

fn token(secret: &str) -> anyhow::Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let claims = serde_json::json!({"sub": "load", "tenant": "bench", "topics": ["*"], "exp": exp});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Opens one stream; reports when it is open, then counts events until `want`.
async fn client(
    host: String,
    request: Arc<Vec<u8>>,
    want: u64,
    opened: mpsc::Sender<()>,
    done: mpsc::Sender<Instant>,
) -> anyhow::Result<()> {
    let mut sock = TcpStream::connect(&host).await?;
    sock.write_all(&request).await?;
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    // Headers and the `retry:` line.
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("closed before the stream opened");
        }
        head.extend_from_slice(&buf[..n]);
        if !head.starts_with(b"HTTP/1.1 200") && head.len() > 12 {
            bail!(
                "refused: {}",
                String::from_utf8_lossy(&head[..head.len().min(200)])
            );
        }
        if head.windows(6).any(|w| w == b"retry:") {
            break;
        }
    }
    let _ = opened.send(()).await;
    let mut seen = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    while seen < want {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("closed after {seen} events");
        }
        carry.extend_from_slice(&buf[..n]);
        seen += carry.windows(4).filter(|w| w == b"id: ").count() as u64;
        let keep = carry.len().saturating_sub(3);
        carry.drain(..keep);
    }
    let _ = done.send(Instant::now()).await;
    // Stay connected until the process exits, like a browser tab would.
    let _ = sock.read(&mut buf).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let host = args
        .url
        .strip_prefix("http://")
        .context("--url must be http://host:port")?
        .trim_end_matches('/')
        .to_owned();
    let token = token(&args.secret)?;
    let request = Arc::new(
        format!("GET /v1/stream?access_token={token} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n")
            .into_bytes(),
    );
    let before = args.gateway_pid.map(rss_kib).transpose()?;

    let (opened_tx, mut opened_rx) = mpsc::channel(args.connections);
    let (done_tx, mut done_rx) = mpsc::channel(args.connections);
    let failures = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let started = Instant::now();
    for _ in 0..args.connections {
        let (host, request) = (host.clone(), Arc::clone(&request));
        let (opened, done) = (opened_tx.clone(), done_tx.clone());
        let (failures, gate) = (Arc::clone(&failures), Arc::clone(&gate));
        let want = args.events;
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let (tx, mut rx) = mpsc::channel(1);
            let run = tokio::spawn(client(host, request, want, tx, done));
            if rx.recv().await.is_some() {
                let _ = opened.send(()).await;
            }
            drop(permit);
            match run.await {
                Ok(Err(err)) if failures.fetch_add(1, Ordering::Relaxed) < 5 => {
                    eprintln!("connection failed: {err:#}");
                }
                _ => {}
            }
        });
    }
    drop((opened_tx, done_tx));
    for _ in 0..args.connections {
        tokio::time::timeout(Duration::from_secs(120), opened_rx.recv())
            .await
            .context("connections did not open within 120 s")?
            .context("a connection failed to open")?;
    }
    println!(
        "opened {} SSE connections in {:.2?}",
        args.connections,
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await; // let allocations settle before measuring
    if let (Some(pid), Some(before)) = (args.gateway_pid, before) {
        let after = rss_kib(pid)?;
        println!(
            "gateway RSS: {before} KiB idle, {after} KiB with {} connections: {:.1} KiB per connection",
            args.connections,
            (after.saturating_sub(before)) as f64 / args.connections as f64
        );
    }

    let client = async_nats::connect(&args.nats).await?;
    let js = async_nats::jetstream::new(client);
    let t0 = Instant::now();
    let mut acks = Vec::with_capacity(args.events as usize);
    for i in 0..args.events {
        let event = Event::new(
            EventId::generate(),
            TenantId::parse("bench")?,
            Topic::parse("load")?,
            Action::parse("insert")?,
            "/bench",
            serde_json::json!({"i": i, "pad": "x".repeat(200)}),
        );
        acks.push(js.publish(event.subject(), event.to_bytes()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    let published = t0.elapsed();
    let mut last = t0;
    for _ in 0..args.connections {
        let at = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
            .await
            .context("deliveries did not finish within 120 s")?
            .context("a connection failed while receiving")?;
        last = last.max(at);
    }
    let elapsed = last - t0;
    let deliveries = args.connections as u64 * args.events;
    println!(
        "published {} events in {published:.2?}; {deliveries} deliveries in {elapsed:.2?}: {:.0} deliveries/s",
        args.events,
        deliveries as f64 / elapsed.as_secs_f64()
    );
    println!("failed connections: {}", failures.load(Ordering::Relaxed));
    Ok(())
}
