//! `herald-launch`: starts a [`Stack`] described by flags, prints one JSON line with its
//! URLs, ports and secrets, then obeys line commands on stdin, answering one JSON line each:
//!
//! ```text
//! kill gateway        SIGKILL (a crash)
//! stop gateway        SIGTERM, then kill after a grace
//! start gateway       start again on the same port, wait until ready
//! restart nats        stop, then start
//! signal nats STOP    send a signal (STOP, CONT, HUP, TERM, KILL)
//! ```
//!
//! Components: `nats`, `ingest`, `gateway` (= `gateway-0`), `gateway-<n>`, `notifier`,
//! `stats`. Everything is stopped when stdin closes. The browser e2e drives it
//! (web/e2e/stack.mjs).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use herald_launch::service::bin_dir;
use herald_launch::{Component, NatsOptions, Signal, Stack, StackOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Flags: which services, and their environment.
#[derive(Debug, Parser)]
#[command(about = "Start a Herald stack (nats-server + real service binaries) driven over stdin")]
struct Args {
    /// Run herald-ingest.
    #[arg(long)]
    ingest: bool,
    /// How many herald-gateway instances to run.
    #[arg(long, default_value_t = 0)]
    gateways: usize,
    /// Run herald-notifier.
    #[arg(long)]
    notifier: bool,
    /// Run herald-stats.
    #[arg(long)]
    stats: bool,
    /// Run nats-server from deploy/nats/single.conf with fresh random identities.
    #[arg(long)]
    deploy: bool,
    /// An environment variable for one component: `gateway:HERALD_GATEWAY__HEARTBEAT=1s`
    /// (`gateway` is every gateway instance).
    #[arg(long = "env", value_name = "COMPONENT:KEY=VALUE")]
    env: Vec<String>,
    /// Every service's log filter.
    #[arg(long, default_value = "info")]
    log_filter: String,
    /// Where logs go (`<log-dir>/<component>.log`); a temp dir if unset.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Where the service binaries are (default: next to this one, or $HERALD_BIN_DIR).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

impl Args {
    fn components(&self) -> Vec<Component> {
        let mut all = Vec::new();
        all.extend(self.ingest.then_some(Component::Ingest));
        all.extend((0..self.gateways).map(Component::Gateway));
        all.extend(self.notifier.then_some(Component::Notifier));
        all.extend(self.stats.then_some(Component::Stats));
        all
    }

    /// The `--env` pairs that apply to `component`.
    fn env_for(&self, component: Component) -> anyhow::Result<Vec<(String, String)>> {
        let mut env = Vec::new();
        for spec in &self.env {
            let (who, pair) = spec.split_once(':').context("--env COMPONENT:KEY=VALUE")?;
            let (key, value) = pair.split_once('=').context("--env COMPONENT:KEY=VALUE")?;
            let applies = match (who, component) {
                ("gateway", Component::Gateway(_)) => true,
                _ => Component::parse(who) == Some(component),
            };
            if applies {
                env.push((key.to_owned(), value.to_owned()));
            }
        }
        Ok(env)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let temp = tempfile::Builder::new()
        .prefix("herald-launch-")
        .tempdir()?;
    let opts = StackOptions {
        log_dir: args
            .log_dir
            .clone()
            .unwrap_or_else(|| temp.path().to_owned()),
        bin_dir: args.bin_dir.clone().unwrap_or_else(bin_dir),
        log_filter: args.log_filter.clone(),
        nats: if args.deploy {
            NatsOptions::deploy()
        } else {
            NatsOptions::default()
        },
        config: None,
    };
    let mut stack = Stack::start_nats(opts).await?;
    for c in args.components() {
        stack.add(c, args.env_for(c)?)?;
    }
    stack.start_all().await?;
    say(&describe(&stack)).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match obey(&mut stack, &line).await {
            Ok(()) => json!({ "ok": true, "command": line }),
            Err(err) => json!({ "ok": false, "command": line, "error": format!("{err:#}") }),
        };
        say(&answer).await?;
    }
    stack.shutdown(herald_launch::process::STOP_GRACE).await;
    Ok(())
}

/// The stack's URLs, ports and secrets.
fn describe(stack: &Stack) -> Value {
    let mut out = json!({
        "nats": stack.nats().url(),
        "nats_port": stack.nats().port(),
        "log_dir": stack.log_dir(),
    });
    let gateways: Vec<String> = stack
        .services()
        .into_iter()
        .filter(|c| matches!(c, Component::Gateway(_)))
        .filter_map(|c| stack.url(c))
        .collect();
    for c in stack.services() {
        let key = match c {
            Component::Gateway(0) => "gateway".to_owned(),
            c => c.to_string(),
        };
        out[key] = json!(stack.url(c));
    }
    out["gateways"] = json!(gateways);
    if let Some(ids) = stack.nats().identities() {
        let users = herald_launch::identities::USERS;
        let passwords: serde_json::Map<String, Value> = users
            .iter()
            .map(|u| ((*u).to_owned(), json!(ids.password(u))))
            .collect();
        out["nats_passwords"] = Value::Object(passwords);
    }
    out
}

/// Runs one command line.
async fn obey(stack: &mut Stack, line: &str) -> anyhow::Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (verb, who) = match words.as_slice() {
        [verb, who, ..] => (*verb, *who),
        _ => anyhow::bail!("expected `<verb> <component>`"),
    };
    let c = Component::parse(who).with_context(|| format!("no component {who}"))?;
    match verb {
        "kill" => stack.kill(c).await?,
        "stop" => stack.stop(c).await?,
        "start" => stack.start_ready(c).await?,
        "restart" => stack.restart(c).await?,
        "signal" => {
            let sig = words.get(2).and_then(|s| Signal::parse(s));
            stack.signal(
                c,
                sig.context("signal <component> <STOP|CONT|HUP|TERM|KILL>")?,
            )?;
        }
        other => anyhow::bail!("unknown command {other}"),
    }
    Ok(())
}

async fn say(value: &Value) -> std::io::Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("{value}\n").as_bytes()).await?;
    out.flush().await
}
