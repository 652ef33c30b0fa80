//! Scenario D: signed webhooks/s through ingest at N concurrent requests, next to raw
//! async-nats JetStream publishes with `Nats-Msg-Id` at the same concurrency, in one run
//! against one nats-server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::{Buf, BytesMut};
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_ingest::config::{Format, SourceConfig, Verify};
use herald_test_support::{NatsServer, net, webhook};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::proc::CpuMeter;
use crate::report::Report;

/// A pre-signed request: the body and its signature headers.
type Signed = (Vec<u8>, Vec<(String, String)>);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Parameters of scenario D.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Requests (and raw publishes) to send.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u64,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            requests: 20_000,
            concurrency: 64,
        }
    }
}

fn sequin_body(i: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "record": {"id": i, "name": "Ada Lovelace", "status": "new", "score": 82},
        "changes": null,
        "action": "insert",
        "metadata": {"table_name": "leads", "idempotency_key": format!("bench-{i}"),
                     "commit_timestamp": "2026-11-20T09:14:03.127470Z"}
    }))
    .unwrap_or_default()
}

/// Wall time of a phase and the CPU time it cost this process and nats-server.
struct Phase {
    wall: Duration,
    bench_cpu: Duration,
    nats_cpu: Duration,
}

impl Phase {
    /// Runs `work` and measures it.
    async fn measure<F>(nats_pid: u32, work: F) -> anyhow::Result<Self>
    where
        F: std::future::Future<Output = anyhow::Result<Duration>>,
    {
        let bench = CpuMeter::start(std::process::id())?;
        let nats = CpuMeter::start(nats_pid)?;
        let wall = work.await?;
        Ok(Self {
            wall,
            bench_cpu: bench.used()?,
            nats_cpu: nats.used()?,
        })
    }

    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.wall.as_secs_f64()
    }

    /// (herald-bench, nats-server) CPU per operation, in µs.
    fn cpu_per_op(&self, n: u64) -> (f64, f64) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        (per(self.bench_cpu), per(self.nats_cpu))
    }
}

/// Runs `concurrency` workers pulling request numbers until `total` are done.
async fn drive<F, Fut>(total: u64, concurrency: u64, op: F) -> anyhow::Result<Duration>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, op) = (Arc::clone(&next), op.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                op(i).await?;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(started.elapsed())
}

/// One request on the wire: `POST /v1/webhooks/crm` with its signature headers and body.
fn raw_request(addr: SocketAddr, body: &[u8], headers: &[(String, String)]) -> Vec<u8> {
    let mut req = format!(
        "POST /v1/webhooks/crm HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

/// Sends every request over `concurrency` keep-alive connections, one request in flight on
/// each; every answer must be 200.
async fn drive_raw_http(
    addr: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    concurrency: u64,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let total = requests.len() as u64;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (next, requests) = (Arc::clone(&next), Arc::clone(&requests));
        workers.spawn(async move {
            let mut sock = TcpStream::connect(addr).await?;
            let mut buf = BytesMut::with_capacity(1024);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                sock.write_all(&requests[i as usize]).await?;
                read_response(&mut sock, &mut buf).await?;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(started.elapsed())
}

/// Reads one response (headers, then `Content-Length` bytes) and checks it is a 200.
async fn read_response(sock: &mut TcpStream, buf: &mut BytesMut) -> anyhow::Result<()> {
    loop {
        if let Some(end) = crate::sse::find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
            anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "answered {head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                anyhow::ensure!(sock.read_buf(buf).await? > 0, "closed mid-response");
            }
            buf.advance(end + 4 + length);
            return Ok(());
        }
        anyhow::ensure!(sock.read_buf(buf).await? > 0, "closed before answering");
    }
}

/// The HTTP floor: the same `serve()`, layers and client as ingest, with a handler that
/// answers at once with a body like ingest's. What HTTP alone costs on this machine; no
/// ingest figure can beat it.
async fn http_floor(args: &Args, nats_pid: u32) -> anyhow::Result<Phase> {
    let listener = net::listener().await;
    let addr = listener.local_addr()?;
    let router = axum::Router::new()
        .route(
            "/v1/webhooks/{source}",
            axum::routing::post(|body: bytes::Bytes| async move {
                let answer = serde_json::json!({"events": [{
                    "id": "bench-0",
                    "subject": "herald.events.bench.leads.insert",
                    "seq": body.len(),
                    "duplicate": false,
                }]});
                axum::Json(answer)
            }),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http());
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move {
            let http = herald_core::serve::HttpConfig::default();
            let metrics = herald_core::serve::ServerMetrics::default();
            herald_core::service::serve(listener, router, &http, metrics, stop).await
        }
    });
    let wire = signed_wire(addr, 2 * args.requests, args.requests);
    let floor = Phase::measure(nats_pid, drive_raw_http(addr, wire, args.concurrency)).await;
    stop.cancel();
    server.await??;
    floor
}

/// `count` requests on the wire, signed with fresh ids from `first` on.
fn signed_wire(addr: SocketAddr, first: u64, count: u64) -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        (first..first + count)
            .map(|i| {
                let body = sequin_body(i);
                let headers = webhook::standard_headers(SECRET, &format!("msg-{i}"), &body);
                raw_request(addr, &body, &headers)
            })
            .collect(),
    )
}

/// Runs scenario D.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let nats = NatsServer::start().await;
    let nats_pid = nats
        .pid()
        .ok_or_else(|| anyhow::anyhow!("nats-server exited at once"))?;
    let (ctx, shutdown) = crate::stack::connect_ingest(&nats.url()).await?;
    let mut cfg = herald_ingest::Config::default();
    cfg.sources.insert("crm".into(), crm_source()?);
    let app = herald_ingest::App::build(cfg, net::listener().await, ctx.clone()).await?;
    let app_addr = app.local_addr();
    let url = format!("{}/v1/webhooks/crm", net::http_url(app_addr));
    let server = tokio::spawn(app.run_until_stopped());

    // Pre-sign every request so the measurement is ingest's work, not the generator's.
    let signed = presigned(args.requests);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    let webhooks = Phase::measure(
        nats_pid,
        drive(args.requests, args.concurrency, move |i| {
            let (http, url, signed) = (http.clone(), url.clone(), Arc::clone(&signed));
            async move {
                let (body, headers) = &signed[i as usize];
                let req = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                let resp = webhook::apply(req, headers).send().await?;
                anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
                Ok(())
            }
        }),
    )
    .await?;

    // The same requests, each re-signed with a fresh id, from a minimal keep-alive HTTP/1.1
    // client: on two shared cores, reqwest's own cost is charged to ingest otherwise.
    let wire = signed_wire(app_addr, args.requests, args.requests);
    let lean = Phase::measure(nats_pid, drive_raw_http(app_addr, wire, args.concurrency)).await?;
    let floor = http_floor(&args, nats_pid).await?;

    let raw = raw_publishes(&ctx.js, &args, nats_pid).await?;

    let mut stream = ctx
        .js
        .get_stream(herald_core::streams::EVENTS_STREAM)
        .await?;
    let stored = stream.info().await?.state.messages;
    shutdown.cancel();
    let _ = server.await;

    let phases = Phases {
        webhooks,
        lean,
        floor,
        raw,
    };
    phases.report(&args, stored)
}

/// The raw JetStream baseline: the same payloads published straight to the stream, each
/// with its own `Nats-Msg-Id`, so ingest's cost can be read as a ratio to it.
async fn raw_publishes(
    js: &async_nats::jetstream::Context,
    args: &Args,
    nats_pid: u32,
) -> anyhow::Result<Phase> {
    let js = js.clone();
    let payload = bytes::Bytes::from(sequin_body(0));
    Phase::measure(
        nats_pid,
        drive(args.requests, args.concurrency, move |i| {
            let (js, payload) = (js.clone(), payload.clone());
            async move {
                herald_core::publish::publish_with_id(
                    &js,
                    "herald.events.raw.leads.insert".into(),
                    async_nats::HeaderMap::new(),
                    &format!("raw/{i}"),
                    payload,
                )
                .await?;
                Ok(())
            }
        }),
    )
    .await
}

/// The one source the benchmark posts to: Sequin webhooks signed the Standard Webhooks way.
fn crm_source() -> anyhow::Result<SourceConfig> {
    Ok(SourceConfig {
        tenant: TenantId::parse("bench")?,
        format: Format::Sequin,
        verify: Verify::StandardWebhooks {
            tolerance: Duration::from_secs(300),
        },
        secrets: vec![Secret::new(SECRET)],
        topic: None,
        action: None,
        id_header: None,
        action_header: None,
        topic_header: None,
        to: None,
    })
}

/// Every request's body and signature headers, signed before the measurement so that it
/// measures ingest's work, not the generator's.
fn presigned(requests: u64) -> Arc<Vec<Signed>> {
    Arc::new(
        (0..requests)
            .map(|i| {
                let body = sequin_body(i);
                let headers = webhook::standard_headers(SECRET, &format!("msg-{i}"), &body);
                (body, headers)
            })
            .collect(),
    )
}

/// The measured phases of scenario D.
struct Phases {
    /// Signed webhooks from reqwest.
    webhooks: Phase,
    /// The same from a minimal HTTP/1.1 client.
    lean: Phase,
    /// An empty handler behind the same HTTP stack.
    floor: Phase,
    /// Raw JetStream publishes.
    raw: Phase,
}

impl Phases {
    fn report(&self, args: &Args, stored: u64) -> anyhow::Result<Report> {
        let Self {
            webhooks,
            lean,
            floor,
            raw,
        } = self;
        let n = args.requests;
        let (webhook_rate, lean_rate, raw_rate) = (webhooks.rate(n), lean.rate(n), raw.rate(n));
        let (lean_bench, lean_nats) = lean.cpu_per_op(n);
        let (raw_bench, raw_nats) = raw.cpu_per_op(n);
        Ok(Report::new("ingest", serde_json::to_value(args)?)
            .figure(
                "signed webhooks/s (ingest, 2xx after PubAck)",
                webhook_rate,
                "req/s",
            )
            .figure(
                "signed webhooks/s (minimal HTTP/1.1 client)",
                lean_rate,
                "req/s",
            )
            .figure("raw JetStream publishes/s (Nats-Msg-Id)", raw_rate, "msg/s")
            .figure("ingest / raw (reqwest)", webhook_rate / raw_rate, "x")
            .figure("ingest / raw (minimal client)", lean_rate / raw_rate, "x")
            .figure(
                "CPU per webhook: client + ingest (minimal client)",
                lean_bench,
                "µs",
            )
            .figure("CPU per webhook: nats-server", lean_nats, "µs")
            .figure("CPU per raw publish: publisher", raw_bench, "µs")
            .figure("CPU per raw publish: nats-server", raw_nats, "µs")
            .figure(
                "HTTP floor: empty handler, minimal client",
                floor.rate(n),
                "req/s",
            )
            .figure(
                "HTTP floor: CPU per request (client + server)",
                floor.cpu_per_op(n).0,
                "µs",
            )
            .check(
                "every request and publish stored exactly once",
                stored == 3 * args.requests,
            ))
    }
}
