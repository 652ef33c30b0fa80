//! `herald up`: the whole stack in one process on a laptop.
//!
//! Spawns nats-server (JetStream data under `--data-dir`, default `./.herald/`), provisions
//! the streams, runs every service on its documented default port, prints where everything
//! is, and shuts it all down cleanly on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use herald_core::config::{self, file_from_env};
use herald_core::service::{CommonConfig, ServiceContext};
use herald_core::telemetry::{LogConfig, LogFormat};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::dev;
use crate::nats_server::LocalNats;

/// Options of `herald up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where nats-server keeps its JetStream data and logs.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = ".herald")]
    pub data_dir: PathBuf,
    /// The client port of the spawned nats-server.
    #[arg(long, env = "HERALD_NATS_PORT", default_value_t = 4222)]
    pub nats_port: u16,
    /// Do not spawn nats-server: connect to HERALD_NATS__URL (or the config file's [nats]).
    #[arg(long)]
    pub external_nats: bool,
    /// A TOML config file with [nats], [stream], [log], [ingest], … sections (also HERALD_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the stack until shutdown.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let file = args.config.clone().or_else(file_from_env);
    let mut common: CommonConfig = config::load(file.as_deref(), None)?;
    let mut ingest: herald_ingest::Config = config::load(file.as_deref(), Some("ingest"))?;
    if file.is_none() && std::env::var_os("HERALD_LOG__FORMAT").is_none() {
        common.log = LogConfig {
            format: LogFormat::Pretty,
            ..common.log
        };
    }
    herald_core::telemetry::init(&common.log);
    let demo = dev::apply_ingest_defaults(&mut ingest);

    let nats = if args.external_nats {
        None
    } else {
        let nats = LocalNats::start(&args.data_dir, args.nats_port)
            .await
            .with_context(|| format!("starting nats-server on 127.0.0.1:{}", args.nats_port))?;
        common.nats.url = nats.url.clone();
        Some(nats)
    };

    let shutdown = herald_core::shutdown::on_signals();
    let result = serve(&common, ingest, demo, &shutdown).await;
    shutdown.cancel();
    if let Some(nats) = nats {
        nats.stop().await;
    }
    tracing::info!("herald stopped");
    result
}

async fn bind(name: &str, addr: std::net::SocketAddr, env: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{name} cannot listen on {addr} (in use? set {env})"))
}

async fn serve(
    common: &CommonConfig,
    ingest: herald_ingest::Config,
    demo: bool,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let ctx = ServiceContext::connect(common, "herald", shutdown.clone()).await?;
    let provisioned = tokio::time::timeout(
        Duration::from_secs(30),
        herald_core::nats::provision_until_ready(&ctx.js, &ctx.streams, shutdown),
    )
    .await
    .with_context(|| format!("NATS at {} is not reachable", common.nats.url))?;
    let Some(provisioned) = provisioned else {
        return Ok(()); // shut down before NATS was ready
    };
    tracing::info!(epoch = %provisioned.epoch, "streams ready");

    let mut tasks = JoinSet::new();
    let ingest_listener = bind("ingest", ingest.listen, "HERALD_INGEST__LISTEN").await?;
    let ingest_app = herald_ingest::App::build(ingest, ingest_listener, ctx.clone()).await?;
    let ingest_addr = ingest_app.local_addr();
    tasks.spawn(async move { ingest_app.run_until_stopped().await.context("ingest") });

    print_banner(&common.nats.url, ingest_addr, demo);

    // Run until shutdown, or until any service fails (then stop the others).
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.context("a service panicked").and_then(|r| r);
        if let Err(err) = outcome {
            tracing::error!(
                error = format!("{err:#}"),
                "a service failed; stopping herald"
            );
            first_error.get_or_insert(err);
            shutdown.cancel();
        } else if !shutdown.is_cancelled() {
            first_error.get_or_insert(anyhow::anyhow!("a service stopped unexpectedly"));
            shutdown.cancel();
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn print_banner(nats_url: &str, ingest: std::net::SocketAddr, demo: bool) {
    let mut out = format!(
        "\n  Herald is up.\n\n  NATS     {nats_url}\n  ingest   http://{ingest}   (POST /v1/webhooks/{{source}}, POST /v1/events)\n"
    );
    if demo {
        let body = r#"{"record":{"id":1,"name":"Ada Lovelace","status":"new"},"changes":null,"action":"insert","metadata":{"table_name":"leads","idempotency_key":"demo-1"}}"#;
        out.push_str(&format!(
            "\n  Demo tenant `{tenant}` (dev credentials, loopback only).\n\n  \
             Send a Sequin-style webhook (a bearer token, as Sequin sends it):\n\n    \
             curl -sS http://{ingest}/v1/webhooks/demo-sequin -H 'Authorization: Bearer {token}' \\\n      \
             -H 'Content-Type: application/json' -d '{body}'\n\n  \
             The same, HMAC-signed (X-Hub-Signature-256):\n\n    \
             body='{signed}'\n    \
             sig=$(printf %s \"$body\" | openssl dgst -sha256 -hmac '{secret}' | sed 's/^.* //')\n    \
             curl -sS http://{ingest}/v1/webhooks/demo-signed -H \"X-Hub-Signature-256: sha256=$sig\" \\\n      \
             -H 'Content-Type: application/json' -d \"$body\"\n",
            tenant = dev::TENANT,
            token = dev::SEQUIN_TOKEN,
            secret = dev::WEBHOOK_SECRET,
            signed = body.replace("demo-1", "demo-2"),
        ));
    }
    out.push_str("\n  Ctrl-C stops everything.\n");
    if std::env::var_os("HERALD_QUIET_BANNER").is_none() {
        eprintln!("{out}");
    }
    if demo {
        tracing::warn!(
            "using the public dev credentials from the README; configure sources and keys for anything but local use"
        );
    }
}
