//! The system under test: a nats-server (JetStream, plus its own WebSocket listener for the
//! peer), ingest in this process (events are published through its API, as producers do),
//! and the gateway as a separate release process (its CPU and memory are its own).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_test_support::{NatsServer, net};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::track::now_ns;

/// The HS256 secret the bench's gateway trusts.
const JWT_SECRET: &str = "bench-secret-not-for-production";
/// How long a service may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How clients spread over tenants and topics: client `i` belongs to group `i % groups`,
/// and each group is one (tenant, topic).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Layout {
    /// Tenants.
    pub tenants: usize,
    /// Topics per tenant.
    pub topics: usize,
}

impl Layout {
    /// (tenant, topic) pairs.
    pub fn groups(&self) -> usize {
        self.tenants * self.topics
    }

    /// The group of client `i`.
    pub fn group_of(&self, i: usize) -> usize {
        i % self.groups()
    }

    /// The tenant of group `g`.
    pub fn tenant(&self, g: usize) -> String {
        format!("t{}", g % self.tenants)
    }

    /// The topic of group `g`.
    pub fn topic(&self, g: usize) -> String {
        format!("p{}", g / self.tenants)
    }
}

/// The running system.
pub struct Stack {
    /// The nats-server.
    pub nats: NatsServer,
    /// Its process id.
    pub nats_pid: u32,
    /// Its WebSocket listener, `ws://127.0.0.1:<port>`.
    pub ws_url: String,
    /// A NATS client of the bench's own.
    pub client: async_nats::Client,
    /// The gateway's address.
    pub gateway_addr: SocketAddr,
    /// The gateway's process id.
    pub gateway_pid: u32,
    gateway: Child,
    ingest_url: String,
    ingest: tokio::task::JoinHandle<Result<(), herald_ingest::Error>>,
    shutdown: CancellationToken,
    http: reqwest::Client,
    layout: Layout,
}

impl Stack {
    /// Starts everything and waits until ingest and the gateway are ready.
    pub async fn start(layout: Layout) -> anyhow::Result<Self> {
        let (nats, ws_url) = nats_with_websocket().await?;
        let nats_pid = crate::proc::find_pid(nats.store_dir())?;

        let mut common = CommonConfig::default();
        common.nats.url = nats.url();
        let shutdown = CancellationToken::new();
        let ctx = ServiceContext::connect(&common, "bench-ingest", shutdown.clone()).await?;
        herald_core::streams::provision(&ctx.js, &ctx.streams).await?;
        let mut cfg = herald_ingest::Config::default();
        for t in 0..layout.tenants {
            let g = t; // group t has tenant t
            cfg.api_keys.insert(
                TenantId::parse(layout.tenant(g))?,
                vec![Secret::new(api_key(&layout.tenant(g)))],
            );
        }
        let app = herald_ingest::App::build(cfg, net::listener().await, ctx.clone()).await?;
        let ingest_url = format!("{}/v1/events", net::http_url(app.local_addr()));
        let ingest = tokio::spawn(app.run_until_stopped());

        let gateway_addr = net::listener().await.local_addr()?;
        let gateway = spawn_gateway(&nats.url(), gateway_addr)?;
        let gateway_pid = gateway.id().context("gateway exited at once")?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let stack = Self {
            client: ctx.client.clone(),
            nats,
            nats_pid,
            ws_url,
            gateway_addr,
            gateway_pid,
            gateway,
            ingest_url,
            ingest,
            shutdown,
            http,
            layout,
        };
        stack.wait_ready().await?;
        Ok(stack)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", self.gateway_addr);
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the gateway was not ready within {READY_DEADLINE:?}");
            }
            // Polling a condition under a deadline: the gateway is another process.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The SSE path of a client of group `g` (its own `sub`, so per-user limits do not bite).
    pub fn sse_path(&self, g: usize, sub: &str) -> anyhow::Result<String> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
        let claims = serde_json::json!({
            "sub": sub, "tenant": self.layout.tenant(g), "topics": ["*"], "exp": exp,
        });
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )?;
        Ok(format!(
            "/v1/stream?topics={}&access_token={token}",
            self.layout.topic(g)
        ))
    }

    /// The NATS subject a peer client of group `g` subscribes to.
    pub fn subject(&self, g: usize) -> String {
        format!(
            "herald.events.{}.{}.>",
            self.layout.tenant(g),
            self.layout.topic(g)
        )
    }

    /// Publishes event number `n` of group `g` through ingest's publish API, carrying the
    /// publish time; returns once ingest has answered (after JetStream's PubAck).
    pub async fn publish(&self, g: usize, n: u64) -> anyhow::Result<()> {
        let tenant = self.layout.tenant(g);
        let body = format!(
            r#"{{"topic":"{}","action":"insert","data":{{"bn":{n},"bt":{}}}}}"#,
            self.layout.topic(g),
            now_ns()
        );
        let resp = self
            .http
            .post(&self.ingest_url)
            .bearer_auth(api_key(&tenant))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "ingest answered {}", resp.status());
        Ok(())
    }

    /// The gateway's `/metrics` text.
    pub async fn gateway_metrics(&self) -> anyhow::Result<String> {
        let url = format!("http://{}/metrics", self.gateway_addr);
        Ok(self.http.get(url).send().await?.text().await?)
    }

    /// Stops the gateway (the peer runs without it).
    pub async fn stop_gateway(&mut self) -> anyhow::Result<()> {
        self.gateway.kill().await?;
        Ok(())
    }

    /// Stops everything.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.gateway.kill().await;
        self.shutdown.cancel();
        self.ingest.await??;
        Ok(())
    }
}

/// A nats-server with JetStream and its WebSocket listener (plain, loopback); returns it
/// and `ws://127.0.0.1:<port>`.
pub async fn nats_with_websocket() -> anyhow::Result<(NatsServer, String)> {
    let ws_port = net::listener().await.local_addr()?.port();
    let conf = tempfile_path(&format!("nats-ws-{ws_port}.conf"));
    std::fs::write(
        &conf,
        format!("websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n"),
    )?;
    let nats = NatsServer::start_with_args(vec!["-c".into(), conf.display().to_string()]).await;
    // The server has read it; the file is not needed any more.
    std::fs::remove_file(&conf)?;
    Ok((nats, format!("ws://127.0.0.1:{ws_port}")))
}

fn api_key(tenant: &str) -> String {
    format!("bench-key-{tenant}")
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("herald-bench-{}-{name}", std::process::id()))
}

/// The gateway binary: `$HERALD_BENCH_GATEWAY`, else `herald-gateway` next to this binary
/// (the `bench` recipes build both in release mode).
fn gateway_binary() -> anyhow::Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("HERALD_BENCH_GATEWAY") {
        return Ok(p.into());
    }
    let bin = std::env::current_exe()?.with_file_name("herald-gateway");
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: cargo build --release -p herald-gateway",
        bin.display()
    );
    Ok(bin)
}

fn spawn_gateway(nats_url: &str, addr: SocketAddr) -> anyhow::Result<Child> {
    let child = Command::new(gateway_binary()?)
        .env("HERALD_NATS__URL", nats_url)
        .env("HERALD_LOG__FILTER", "error")
        .env("HERALD_GATEWAY__LISTEN", addr.to_string())
        .env("HERALD_GATEWAY__JWT__SECRET", JWT_SECRET)
        // The limits protect production from abuse; the bench is the abuse, on purpose.
        .env("HERALD_GATEWAY__LIMITS__PER_TENANT", "1000000")
        .env("HERALD_GATEWAY__LIMITS__CONNECT_RATE", "1000000")
        .env("HERALD_GATEWAY__LIMITS__CONNECT_BURST", "1000000")
        .env("HERALD_GATEWAY__LIMITS__PER_IP", "0")
        .env("HERALD_HTTP__MAX_CONNECTIONS", "1000000")
        .env("HERALD_HTTP__MAX_PENDING_CONNECTIONS", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    Ok(child)
}

/// Events published (and acknowledged) so far, per group.
#[derive(Debug)]
pub struct Counts(Vec<AtomicU64>);

impl Counts {
    /// Zero for each of `groups`.
    pub fn new(groups: usize) -> Arc<Self> {
        Arc::new(Self((0..groups).map(|_| AtomicU64::new(0)).collect()))
    }

    /// Events published to group `g`.
    pub fn get(&self, g: usize) -> u64 {
        self.0[g].load(Ordering::Acquire)
    }

    /// A snapshot of every group.
    pub fn snapshot(&self) -> Vec<u64> {
        (0..self.0.len()).map(|g| self.get(g)).collect()
    }
}

/// Publishes to every group from its own task (so each topic's events stay in order): at
/// `rate` events/s in total if given, else as fast as ingest answers; until each group has
/// `per_group` events or `stop` fires.
pub async fn feed(
    stack: &Arc<Stack>,
    counts: &Arc<Counts>,
    rate: Option<f64>,
    per_group: u64,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let groups = counts.0.len();
    let mut tasks = tokio::task::JoinSet::new();
    for g in 0..groups {
        let (stack, counts, stop) = (Arc::clone(stack), Arc::clone(counts), stop.clone());
        let period = rate.map(|r| Duration::from_secs_f64(groups as f64 / r));
        tasks.spawn(async move {
            let mut ticker = period.map(|p| {
                let offset = p.mul_f64(g as f64 / groups as f64);
                tokio::time::interval_at(tokio::time::Instant::now() + offset, p)
            });
            loop {
                let n = counts.get(g);
                if n >= per_group || stop.is_cancelled() {
                    return anyhow::Ok(());
                }
                if let Some(t) = ticker.as_mut() {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        _ = t.tick() => {}
                    }
                }
                stack.publish(g, n).await?;
                counts.0[g].store(n + 1, Ordering::Release);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}
