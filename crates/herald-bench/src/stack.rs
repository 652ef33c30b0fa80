//! The system under test: a [`herald_launch::Stack`] of nats-server (JetStream, plus its own
//! WebSocket listener for the peer) and the gateway as a separate release process (its CPU
//! and memory are its own, its binary next to `herald-bench` or in `$HERALD_BIN_DIR`); ingest
//! runs in this process (events are published through its API, as producers do).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_launch::service::bin_dir;
use herald_launch::{Component, NatsOptions, StackOptions};
use herald_test_support::{NatsServer, net};
use tokio_util::sync::CancellationToken;

use crate::track::now_ns;

/// The HS256 secret the bench's gateway trusts.
pub(crate) const JWT_SECRET: &str = "bench-secret-not-for-production";

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

/// The load of scenarios A, B and C: how many SSE clients, spread over which (tenant, topic)
/// groups, under which steady publish rate.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Load {
    /// SSE clients (and, for scenario B's peer, WebSocket clients).
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Tenants the clients spread over.
    #[arg(long, default_value_t = 2)]
    pub tenants: usize,
    /// Topics per tenant; each client follows one (tenant, topic).
    #[arg(long, default_value_t = 5)]
    pub topics: usize,
    /// Steady publish rate through ingest, events/s over all topics. Each event reaches
    /// clients / (tenants × topics) clients: 100/s × 1,000 = 100k deliveries/s.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            clients: 10_000,
            tenants: 2,
            topics: 5,
            rate: 100.0,
        }
    }
}

impl Load {
    /// How the clients spread.
    pub fn layout(&self) -> Layout {
        Layout {
            tenants: self.tenants,
            topics: self.topics,
        }
    }
}

/// The running system.
pub struct Stack {
    /// nats-server and the gateway binary.
    launched: herald_launch::Stack,
    /// nats-server's process id.
    pub nats_pid: u32,
    /// Its WebSocket listener, `ws://127.0.0.1:<port>`.
    pub ws_url: String,
    /// A NATS client of the bench's own.
    pub client: async_nats::Client,
    /// The gateway's address.
    pub gateway_addr: SocketAddr,
    /// The gateway's process id.
    pub gateway_pid: u32,
    ingest_url: String,
    ingest: tokio::task::JoinHandle<Result<(), herald_ingest::Error>>,
    shutdown: CancellationToken,
    http: reqwest::Client,
    layout: Layout,
    /// The nats-server config and every log, deleted on drop.
    _dir: tempfile::TempDir,
}

/// The gateway's instance in the stack.
const GATEWAY: Component = Component::Gateway(0);

impl Stack {
    /// Starts everything and waits until ingest and the gateway are ready.
    pub async fn start(layout: Layout) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("herald-bench-").tempdir()?;
        let (nats, ws_url) = websocket_options(dir.path())?;
        let mut launched = herald_launch::Stack::start_nats(StackOptions {
            log_dir: dir.path().join("logs"),
            bin_dir: bin_dir(),
            log_filter: "error".to_owned(),
            nats,
            config: None,
        })
        .await?;
        let nats_pid = launched
            .nats()
            .pid()
            .context("nats-server exited at once")?;
        let (ctx, shutdown) = connect_ingest(&launched.nats().url()).await?;
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

        let gateway_addr = launched.add(GATEWAY, gateway_env())?;
        launched.start_all().await?;
        let gateway_pid = launched
            .service(GATEWAY)
            .and_then(|g| g.pid())
            .context("gateway exited at once")?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            client: ctx.client.clone(),
            launched,
            nats_pid,
            ws_url,
            gateway_addr,
            gateway_pid,
            ingest_url,
            ingest,
            shutdown,
            http,
            layout,
            _dir: dir,
        })
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
        self.launched.kill(GATEWAY).await?;
        Ok(())
    }

    /// Stops everything.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.launched.kill(GATEWAY).await?;
        self.shutdown.cancel();
        self.ingest.await??;
        Ok(())
    }
}

/// A service context for the bench's in-process ingest on `nats_url`, with the streams
/// provisioned, and the token that stops it.
pub async fn connect_ingest(nats_url: &str) -> anyhow::Result<(ServiceContext, CancellationToken)> {
    let mut common = CommonConfig::default();
    common.nats.url = nats_url.to_owned();
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "bench-ingest", shutdown.clone()).await?;
    herald_core::streams::provision(&ctx.js, &ctx.streams).await?;
    Ok((ctx, shutdown))
}

/// nats-server options with JetStream and a WebSocket listener (plain, loopback), its config
/// written under `dir`; and `ws://127.0.0.1:<port>`.
fn websocket_options(dir: &Path) -> anyhow::Result<(NatsOptions, String)> {
    let ws_port = herald_launch::process::free_port()?;
    let conf_dir = dir.join("nats-conf");
    std::fs::create_dir_all(&conf_dir)?;
    let conf = conf_dir.join("nats-ws.conf");
    std::fs::write(
        &conf,
        format!("websocket {{\n  listen: \"127.0.0.1:{ws_port}\"\n  no_tls: true\n}}\n"),
    )?;
    let opts = NatsOptions {
        config: Some(conf),
        ..NatsOptions::default()
    };
    Ok((opts, format!("ws://127.0.0.1:{ws_port}")))
}

/// A nats-server with JetStream and its WebSocket listener (plain, loopback); returns it
/// and `ws://127.0.0.1:<port>`.
pub async fn nats_with_websocket() -> anyhow::Result<(NatsServer, String)> {
    let dir = tempfile::Builder::new().prefix("herald-bench-").tempdir()?;
    let (opts, ws_url) = websocket_options(dir.path())?;
    // The server has read its (copied) config: the directory is not needed any more.
    Ok((NatsServer::launch(opts).await, ws_url))
}

fn api_key(tenant: &str) -> String {
    format!("bench-key-{tenant}")
}

/// The gateway's environment: the bench's JWT secret, and limits raised — the limits protect
/// production from abuse; the bench is the abuse, on purpose.
pub(crate) fn gateway_env() -> Vec<(String, String)> {
    [
        ("HERALD_GATEWAY__JWT__SECRET", JWT_SECRET),
        ("HERALD_GATEWAY__LIMITS__PER_TENANT", "1000000"),
        ("HERALD_GATEWAY__LIMITS__CONNECT_RATE", "1000000"),
        ("HERALD_GATEWAY__LIMITS__CONNECT_BURST", "1000000"),
        ("HERALD_GATEWAY__LIMITS__PER_IP", "0"),
        ("HERALD_HTTP__MAX_CONNECTIONS", "1000000"),
        ("HERALD_HTTP__MAX_PENDING_CONNECTIONS", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
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
