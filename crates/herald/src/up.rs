//! `herald up`: the whole stack in one process on a laptop.
//!
//! Spawns nats-server (JetStream data under `--data-dir`, default `./.herald/`), provisions
//! the streams, runs ingest, gateway, notifier and stats on their documented default ports,
//! prints where everything is, and shuts it all down cleanly on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use herald_core::config::{self, file_from_env};
use herald_core::service::{CommonConfig, Service, ServiceConfig, ServiceContext};
use herald_core::telemetry::{LogConfig, LogFormat};
use herald_launch::{NatsOptions, NatsServer};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dev;

/// Options of `herald up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where nats-server keeps its JetStream data and logs.
    #[arg(long, env = "HERALD_DATA_DIR", default_value = ".herald")]
    pub data_dir: PathBuf,
    /// The client port of the spawned nats-server.
    #[arg(long, env = "HERALD_NATS_PORT", default_value_t = 4222)]
    pub nats_port: u16,
    /// Do not spawn nats-server: connect to HERALD_NATS__URL (or the config file's `[nats]`).
    #[arg(long)]
    pub external_nats: bool,
    /// Post demo traffic (Sequin-style webhooks for a fake `leads` table) so the dashboard
    /// moves.
    #[arg(long)]
    pub demo: bool,
    /// A TOML config file with `[nats]`, `[stream]`, `[log]`, `[ingest]`, `[gateway]`, `[notifier]`,
    /// `[stats]` sections (also HERALD_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Every service's configuration, as `herald up` hosts them.
struct Stack {
    common: CommonConfig,
    ingest: herald_ingest::Config,
    gateway: herald_gateway::Config,
    notifier: herald_notifier::Config,
    stats: herald_stats::Config,
    /// Whether the public dev credentials are in use.
    dev_credentials: bool,
}

impl Stack {
    fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut common: CommonConfig = config::load(file, None)?;
        if file.is_none() && std::env::var_os("HERALD_LOG__FORMAT").is_none() {
            common.log = LogConfig {
                format: LogFormat::Pretty,
                ..common.log
            };
        }
        let mut ingest = section::<herald_ingest::App>(file)?;
        let mut gateway = section::<herald_gateway::App>(file)?;
        let dev_credentials = dev::apply_defaults(&mut ingest, &mut gateway);
        if dev_credentials {
            // The demo's `leads` and `services` are collections: the dashboard's live tables.
            dev::apply_state_defaults(&mut common.state);
        }
        if dev_credentials && gateway.presence.is_empty() {
            // The dashboard shows who is online on the demo's topic.
            gateway.presence.insert(
                dev::TENANT.to_owned(),
                herald_gateway::config::TenantTopics {
                    topics: vec![dev::DEMO_TOPIC.to_owned()],
                },
            );
        }
        if gateway.web_dir.is_none() && Path::new("web/index.html").exists() {
            gateway.web_dir = Some(PathBuf::from("web"));
        }
        let mut stats = section::<herald_stats::App>(file)?;
        if dev_credentials && stats.group_by.is_empty() {
            // The demo's `leads` rows move through statuses: count them live.
            stats.group_by = vec!["leads.status".parse()?];
        }
        let stack = Self {
            common,
            ingest,
            gateway,
            notifier: section::<herald_notifier::App>(file)?,
            stats,
            dev_credentials,
        };
        stack.check_dev_listeners()?;
        Ok(stack)
    }

    /// With the public dev credentials, every listener must be loopback: anyone who can reach
    /// the stack could otherwise sign webhooks and read every event with them.
    fn check_dev_listeners(&self) -> Result<(), DevOnPublicListener> {
        if !self.dev_credentials {
            return Ok(());
        }
        let listeners = [
            ("INGEST", self.ingest.listen),
            ("GATEWAY", self.gateway.listen),
            ("NOTIFIER", self.notifier.listen),
            ("STATS", self.stats.listen),
        ];
        match listeners
            .iter()
            .find(|(_, a)| !a.ip().to_canonical().is_loopback())
        {
            Some(&(service, addr)) => Err(DevOnPublicListener { service, addr }),
            None => Ok(()),
        }
    }
}

/// `S`'s config section of `file` and the environment.
fn section<S: Service>(file: Option<&Path>) -> anyhow::Result<S::Config> {
    Ok(config::load(file, Some(S::SECTION))?)
}

/// `herald up` would serve the public dev credentials on a non-loopback address.
#[derive(Debug, thiserror::Error)]
#[error(
    "HERALD_{service}__LISTEN={addr} is not loopback, and herald up is using the public dev \
     credentials; configure sources/api_keys/jwt or bind 127.0.0.1"
)]
pub struct DevOnPublicListener {
    /// The service, as in its environment variables (`GATEWAY`).
    service: &'static str,
    /// The address it was configured to listen on.
    addr: SocketAddr,
}

/// Runs the stack until shutdown.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let file = args.config.clone().or_else(file_from_env);
    let mut stack = Stack::load(file.as_deref())?;
    herald_core::telemetry::init(&stack.common.log);

    let nats = if args.external_nats {
        None
    } else {
        let nats = NatsServer::start(NatsOptions {
            port: Some(args.nats_port),
            store: Some(args.data_dir.join("jetstream")),
            name: Some("herald-local".to_owned()),
            log_file: Some(args.data_dir.join("nats-server.log")),
            ..NatsOptions::default()
        })
        .await
        .with_context(|| format!("starting nats-server on 127.0.0.1:{}", args.nats_port))?;
        stack.common.nats.url = nats.url();
        Some(nats)
    };

    let shutdown = herald_core::shutdown::on_signals();
    let result = serve(stack, args.demo, &shutdown).await;
    shutdown.cancel();
    if let Some(mut nats) = nats {
        nats.stop().await;
    }
    tracing::info!("herald stopped");
    result
}

/// Where the services ended up listening.
struct Addrs {
    ingest: SocketAddr,
    gateway: SocketAddr,
    notifier: SocketAddr,
    stats: SocketAddr,
}

/// The services' tasks: each returns when its service has stopped.
type Tasks = JoinSet<anyhow::Result<()>>;

async fn serve(stack: Stack, demo: bool, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let ctx = ServiceContext::connect(&stack.common, "herald", shutdown.clone()).await?;
    if !provision(&ctx, &stack.common.nats.url).await? {
        return Ok(()); // shut down before NATS was ready
    }
    let mut tasks = Tasks::new();
    let addrs = match start(&mut tasks, &stack, &ctx).await {
        Ok(addrs) => addrs,
        Err(err) => {
            // Stop the services already running before saying why.
            shutdown.cancel();
            while tasks.join_next().await.is_some() {}
            return Err(err);
        }
    };
    if demo {
        spawn_demo(&mut tasks, addrs.ingest, stack.dev_credentials, shutdown);
    }
    // Only the public dev secret ever signs a token here: a real one is never used to mint
    // (let alone print) a long-lived token for every topic.
    let dashboard_token = stack.dev_credentials.then(dashboard_token).flatten();
    print_banner(
        &stack.common.nats.url,
        &addrs,
        stack.dev_credentials,
        dashboard_token.as_deref(),
    );
    supervise(tasks, shutdown).await
}

/// Provisions the streams (30 s at most); `false` if shutdown came first.
async fn provision(ctx: &ServiceContext, url: &str) -> anyhow::Result<bool> {
    let provisioned = tokio::time::timeout(
        Duration::from_secs(30),
        herald_core::nats::provision_until_ready(&ctx.js, &ctx.streams, &ctx.shutdown),
    )
    .await
    .with_context(|| format!("NATS at {url} is not reachable"))?;
    if let Some(provisioned) = &provisioned {
        tracing::info!(epoch = %provisioned.epoch, "streams ready");
    }
    Ok(provisioned.is_some())
}

/// Builds and spawns every service, in this order, on the one shared context.
async fn start(tasks: &mut Tasks, stack: &Stack, ctx: &ServiceContext) -> anyhow::Result<Addrs> {
    Ok(Addrs {
        ingest: spawn::<herald_ingest::App>(tasks, stack.ingest.clone(), ctx).await?,
        gateway: spawn::<herald_gateway::App>(tasks, stack.gateway.clone(), ctx).await?,
        notifier: spawn::<herald_notifier::App>(tasks, stack.notifier.clone(), ctx).await?,
        stats: spawn::<herald_stats::App>(tasks, stack.stats.clone(), ctx).await?,
    })
}

/// Binds `S`'s `listen` address, builds `S` and runs it in `tasks`; where it listens.
async fn spawn<S: Service>(
    tasks: &mut Tasks,
    cfg: S::Config,
    ctx: &ServiceContext,
) -> anyhow::Result<SocketAddr> {
    let (name, addr) = (S::SECTION, cfg.listen());
    let listener = herald_core::service::bind(addr)
        .map_err(|err| err.source)
        .with_context(|| {
            format!(
                "{name} cannot listen on {addr} (in use? set HERALD_{}__LISTEN)",
                name.to_ascii_uppercase()
            )
        })?;
    let service = S::build(cfg, listener, ctx.clone()).await?;
    let local = service.local_addr();
    tasks.spawn(async move { service.run_until_stopped().await.context(name) });
    Ok(local)
}

/// `--demo`: posts demo traffic to ingest at `addr`, if the demo source is there.
fn spawn_demo(tasks: &mut Tasks, addr: SocketAddr, dev: bool, shutdown: &CancellationToken) {
    if !dev {
        tracing::warn!("--demo needs the demo source; it is off because sources are configured");
        return;
    }
    let token = shutdown.clone();
    tasks.spawn(async move {
        crate::demo::run(addr, token).await;
        Ok(())
    });
}

/// Runs until shutdown, or until any service fails (then stops the others); the first error.
async fn supervise(mut tasks: Tasks, shutdown: &CancellationToken) -> anyhow::Result<()> {
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

/// A 30-day token for every topic of the demo tenant, signed with the public dev secret; it
/// may see who is online (claim `presence`).
fn dashboard_token() -> Option<String> {
    let tenant = herald_core::names::TenantId::parse(dev::TENANT).ok()?;
    let ttl = Duration::from_secs(30 * 24 * 3600);
    let claims = herald_gateway::auth::Claims {
        presence: true,
        ..crate::token::claims("dashboard", &tenant, &["*".to_owned()], ttl)
    };
    crate::token::mint_with(dev::JWT_SECRET, claims).ok()
}

fn print_banner(nats_url: &str, addrs: &Addrs, dev_credentials: bool, token: Option<&str>) {
    let Addrs {
        ingest,
        gateway,
        notifier,
        stats,
    } = addrs;
    let mut out = format!(
        "\n  Herald is up.\n\n\
         \x20 NATS      {nats_url}\n\
         \x20 ingest    http://{ingest}   (POST /v1/webhooks/{{source}}, POST /v1/events)\n\
         \x20 gateway   http://{gateway}   (GET /v1/stream, /v1/ws, /v1/poll, /v1/stats)\n\
         \x20 notifier  http://{notifier}   (/healthz, /readyz, /metrics)\n\
         \x20 stats     http://{stats}   (/healthz, /readyz, /metrics)\n"
    );
    match token {
        Some(token) => out.push_str(&format!("\n  dashboard http://{gateway}/#token={token}\n")),
        None => out.push_str(&format!(
            "\n  dashboard http://{gateway}/#token=<jwt>   (a token from your IdP, or with jwt.secret: \
             `herald token --tenant <t>`)\n"
        )),
    }
    if dev_credentials {
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
    eprintln!("{out}");
    if dev_credentials {
        tracing::warn!(
            "using the public dev credentials from the README; configure sources and keys for anything but local use"
        );
    }
}
