//! Scenario F: collections. How fast the state writer applies a backlog of row changes to
//! KV `herald_state`, how long a gateway takes to load its mirror, what a row costs in the
//! gateway's memory, and how long a whole 100,000-row snapshot takes to serve (paged).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use herald_core::event::{Event, EventId};
use herald_core::names::{TenantId, Topic};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_core::state::{CollectionConfig, Marker, StateConfig, marker_key};
use herald_launch::service::bin_dir;
use herald_launch::{Component, NatsOptions, StackOptions};
use herald_test_support::net;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::proc;
use crate::report::Report;
use crate::stack::{JWT_SECRET, gateway_env};
use crate::track::percentiles;

const TENANT: &str = "acme";
const TOPIC: &str = "leads";
const GATEWAY: Component = Component::Gateway(0);

/// Parameters of scenario F.
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct Args {
    /// Rows inserted (keys `0..rows`).
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Updates after the inserts, spread over the keys.
    #[arg(long, default_value_t = 100_000)]
    pub updates: u64,
    /// Whole snapshots read (each paged through `/v1/snapshot`).
    #[arg(long, default_value_t = 20)]
    pub snapshots: usize,
    /// Rows per snapshot page.
    #[arg(long, default_value_t = 10_000)]
    pub page: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            rows: 100_000,
            updates: 100_000,
            snapshots: 20,
            page: 10_000,
        }
    }
}

/// The key update `u` writes (a fixed stride through the keys, so some keys get several).
fn update_key(args: &Args, u: u64) -> u64 {
    (u * 7919) % args.rows
}

/// Runs scenario F.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    anyhow::ensure!(args.rows > 0, "--rows must be at least 1");
    let dir = tempfile::Builder::new().prefix("herald-bench-").tempdir()?;
    let mut stack = herald_launch::Stack::start_nats(StackOptions {
        log_dir: dir.path().join("logs"),
        bin_dir: bin_dir(),
        log_filter: "error".to_owned(),
        nats: NatsOptions::default(),
        config: None,
    })
    .await?;
    let nats_url = stack.nats().url();
    let state = StateConfig {
        collections: [(
            TENANT.to_owned(),
            [(TOPIC.to_owned(), CollectionConfig { key: "id".into() })].into(),
        )]
        .into(),
    };
    let mut common = CommonConfig::default();
    common.nats.url = nats_url.clone();
    common.state = state;
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "bench-state", shutdown.clone()).await?;
    herald_core::streams::provision(&ctx.js, &ctx.streams).await?;

    // The gateway first, with an empty mirror: its RSS before and after the rows arrive is
    // what they cost it. A tiny ring, so the events themselves are not what is measured.
    let mut env = gateway_env();
    env.push((
        "HERALD_STATE__COLLECTIONS".into(),
        format!("{{{TENANT}={{{TOPIC}={{key=\"id\"}}}}}}"),
    ));
    env.push(("HERALD_GATEWAY__RING_EVENTS".into(), "16".into()));
    let gateway = stack.add(GATEWAY, env)?;
    stack.start_ready(GATEWAY).await?;
    let base = format!("http://{gateway}");
    let http = reqwest::Client::new();
    let token = token()?;
    let pid = gateway_pid(&stack)?;
    snapshot(&http, &base, &token, args.page).await?; // loaded (empty)
    let rss_empty = proc::rss_kib(pid)?;

    let last = publish(&ctx, &args).await?;

    // The writer: the stats-aggregator, in this process, from the start of the backlog.
    let writer = herald_stats::App::build(
        herald_stats::Config::default(),
        net::listener().await,
        ctx.clone(),
    )
    .await?;
    let started = Instant::now();
    let writer = tokio::spawn(writer.run_until_stopped());
    applied_through(&ctx, last).await?;
    let applied_s = started.elapsed().as_secs_f64();

    // The running gateway's mirror followed the tail; wait until it holds every row.
    let followed = wait_for_cursor(&http, &base, &token, last, args.page).await?;
    let rss_full = proc::rss_kib(pid)?;

    // A restarted gateway loads its mirror from the rows (the events are still retained, but
    // only those after the writer's marker are replayed).
    stack.kill(GATEWAY).await?;
    let restarted = Instant::now();
    stack.start_ready(GATEWAY).await?;
    let loaded = wait_for_cursor(&http, &base, &token, last, args.page).await?;
    let load_ms = restarted.elapsed().as_secs_f64() * 1e3;

    let mut took_us = Vec::with_capacity(args.snapshots);
    let mut exact = loaded == followed && exact(&args, &loaded.1);
    for _ in 0..args.snapshots {
        let t = Instant::now();
        let (_, rows) = snapshot(&http, &base, &token, args.page).await?;
        took_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
        exact &= rows.len() as u64 == args.rows;
    }
    took_us.sort_unstable();
    let [p50, _, p99, _] = percentiles(&took_us);

    shutdown.cancel();
    writer.await??;
    stack.shutdown(Duration::from_secs(5)).await;

    let events = args.rows + args.updates;
    Ok(Report::new("state", serde_json::to_value(&args)?)
        .figure(
            "row changes applied to KV/s",
            events as f64 / applied_s,
            "events/s",
        )
        .figure("gateway mirror load after restart", load_ms, "ms")
        .figure(
            "gateway memory per row",
            (rss_full.saturating_sub(rss_empty) as f64 * 1024.0) / args.rows as f64,
            "bytes",
        )
        .figure("whole snapshot served, p50", p50 / 1e3, "ms")
        .figure("whole snapshot served, p99", p99 / 1e3, "ms")
        .check(
            "every snapshot holds every row at its last value, the same after a restart",
            exact,
        ))
}

/// Publishes the inserts then the updates straight to JetStream, pipelined; returns the last
/// stream sequence.
async fn publish(ctx: &ServiceContext, args: &Args) -> anyhow::Result<u64> {
    let total = args.rows + args.updates;
    let mut last = 0;
    for chunk in 0..total.div_ceil(1000) {
        let mut acks = Vec::with_capacity(1000);
        for i in chunk * 1000..((chunk + 1) * 1000).min(total) {
            let (action, key, version) = if i < args.rows {
                ("insert", i, 0)
            } else {
                let u = i - args.rows;
                ("update", update_key(args, u), u + 1)
            };
            let e = Event::new(
                EventId::parse(format!("s{i}"))?,
                TENANT.parse()?,
                TOPIC.parse()?,
                action.parse()?,
                "/bench",
                json!({"id": key, "name": format!("lead {key}"), "status": "new", "v": version}),
            );
            acks.push(herald_core::publish::send_event(&ctx.js, &e).await?);
        }
        for ack in acks {
            last = ack.await?.sequence;
        }
    }
    Ok(last)
}

/// Waits (10 minutes at most) until the collection's marker has applied `last`.
async fn applied_through(ctx: &ServiceContext, last: u64) -> anyhow::Result<()> {
    let kv = ctx
        .js
        .get_key_value(herald_core::state::STATE_BUCKET)
        .await?;
    let key = marker_key(&TenantId::parse(TENANT)?, &Topic::parse(TOPIC)?);
    tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if let Some(bytes) = kv.get(&key).await? {
                let marker: Marker = serde_json::from_slice(&bytes)?;
                if marker.applied >= last {
                    return anyhow::Ok(());
                }
            }
            // The writer offers no completion signal; its marker is the truth, polled under
            // the deadline.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .context("the state writer did not apply the backlog within 10 minutes")?
}

/// Reads whole snapshots until one is at or past `last` (60 s at most); returns it.
async fn wait_for_cursor(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    last: u64,
    page: usize,
) -> anyhow::Result<(u64, Vec<(String, Value)>)> {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match snapshot(http, base, token, page).await {
                Ok(snap) if snap.0 >= last => return anyhow::Ok(snap),
                Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .context("the gateway's snapshot did not reach the last event within 60 s")?
}

/// One whole snapshot, every page: its cursor's sequence and its rows in order.
async fn snapshot(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    page: usize,
) -> anyhow::Result<(u64, Vec<(String, Value)>)> {
    let mut rows = Vec::new();
    let mut query = format!("topics={TOPIC}&limit={page}");
    let mut first_cursor: Option<String> = None;
    loop {
        let resp = http
            .get(format!("{base}/v1/snapshot?{query}"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "snapshot answered {}", resp.status());
        let body: Value = resp.json().await?;
        let cursor = body["cursor"].as_str().context("no cursor")?.to_owned();
        if let Some(first) = &first_cursor {
            anyhow::ensure!(*first == cursor, "a page of another snapshot");
        }
        if let Some(map) = body["topics"][TOPIC].as_object() {
            rows.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if body["more"] != Value::Bool(true) {
            let seq = cursor.split('-').next().unwrap_or("0").parse()?;
            return Ok((seq, rows));
        }
        let after = body["after"].as_str().context("more without after")?;
        query = format!("topics={TOPIC}&limit={page}&cursor={cursor}&after={after}");
        first_cursor = Some(cursor);
    }
}

/// Whether `rows` holds every key once at its last version.
fn exact(args: &Args, rows: &[(String, Value)]) -> bool {
    if rows.len() as u64 != args.rows {
        return false;
    }
    let mut want = vec![0u64; args.rows as usize];
    for u in 0..args.updates {
        want[update_key(args, u) as usize] = u + 1;
    }
    rows.iter().all(|(key, row)| {
        key.parse::<usize>()
            .ok()
            .and_then(|k| want.get(k))
            .is_some_and(|v| row["v"].as_u64() == Some(*v))
    })
}

fn gateway_pid(stack: &herald_launch::Stack) -> anyhow::Result<u32> {
    stack
        .service(GATEWAY)
        .and_then(|g| g.pid())
        .context("gateway exited at once")
}

/// A token for the bench's tenant, every topic.
fn token() -> anyhow::Result<String> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let claims = json!({"sub": "bench", "tenant": TENANT, "topics": ["*"], "exp": exp});
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )?)
}
