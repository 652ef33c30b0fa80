//! Scenario D: signed webhooks/s through ingest at N concurrent requests, next to raw
//! async-nats JetStream publishes with `Nats-Msg-Id` at the same concurrency, in one run
//! against one nats-server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_ingest::config::{Format, SourceConfig, Verify};
use herald_test_support::{NatsServer, net, webhook};
use tokio_util::sync::CancellationToken;

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

/// Runs scenario D.
pub async fn run(args: Args) -> anyhow::Result<Report> {
    let nats = NatsServer::start().await;
    let mut common = CommonConfig::default();
    common.nats.url = nats.url();
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "bench-ingest", shutdown.clone()).await?;
    herald_core::streams::provision(&ctx.js, &ctx.streams).await?;
    let mut cfg = herald_ingest::Config::default();
    cfg.sources.insert(
        "crm".into(),
        SourceConfig {
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
        },
    );
    let app = herald_ingest::App::build(cfg, net::listener().await, ctx.clone()).await?;
    let url = format!("{}/v1/webhooks/crm", net::http_url(app.local_addr()));
    let server = tokio::spawn(app.run_until_stopped());

    // Pre-sign every request so the measurement is ingest's work, not the generator's.
    let signed: Arc<Vec<Signed>> = Arc::new(
        (0..args.requests)
            .map(|i| {
                let body = sequin_body(i);
                let headers = webhook::standard_headers(SECRET, &format!("msg-{i}"), &body);
                (body, headers)
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    let webhooks = {
        let (http, url, signed) = (http.clone(), url.clone(), Arc::clone(&signed));
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
        })
        .await?
    };

    let js = ctx.js.clone();
    let payload = bytes::Bytes::from(sequin_body(0));
    let raw = drive(args.requests, args.concurrency, move |i| {
        let (js, payload) = (js.clone(), payload.clone());
        async move {
            let msg = PublishMessage::build()
                .message_id(format!("raw/{i}"))
                .payload(payload);
            js.send_publish("herald.events.raw.leads.insert", msg)
                .await?
                .await?;
            Ok(())
        }
    })
    .await?;

    let mut stream = ctx
        .js
        .get_stream(herald_core::streams::EVENTS_STREAM)
        .await?;
    let stored = stream.info().await?.state.messages;
    shutdown.cancel();
    let _ = server.await;

    let n = args.requests as f64;
    let webhook_rate = n / webhooks.as_secs_f64();
    let raw_rate = n / raw.as_secs_f64();
    Ok(Report {
        scenario: "ingest".into(),
        params: serde_json::to_value(&args)?,
        figures: vec![
            (
                "signed webhooks/s (ingest, 2xx after PubAck)".into(),
                webhook_rate,
                "req/s".into(),
            ),
            (
                "raw JetStream publishes/s (Nats-Msg-Id)".into(),
                raw_rate,
                "msg/s".into(),
            ),
            ("ingest / raw".into(), webhook_rate / raw_rate, "x".into()),
        ],
        checks: vec![(
            "every request and publish stored exactly once".into(),
            stored == 2 * args.requests,
        )],
    })
}
