//! The system under test: a real `nats-server` and the real service binaries as child
//! processes, each on its own loopback port, all reading one `herald.toml`.
//!
//! NATS runs as deployed: from `deploy/nats/single.conf` with its identities and permissions
//! (fresh random passwords), the streams provisioned once as `admin`, and each service
//! connecting as its own identity (`HERALD_NATS__USER`/`PASSWORD`/`INBOX_PREFIX`), so a soak
//! also proves that no service needs a right its identity lacks.
//!
//! Every component can be SIGKILLed and started again on the same port ([`Stack::kill`],
//! [`Stack::start`]); nats-server keeps its store across restarts. Each process's output
//! goes to `<run dir>/logs/<component>.log`.

use std::fmt;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use herald_core::nats::NatsConfig;
use herald_core::streams::StreamSettings;
use herald_test_support::NatsServer;
use herald_test_support::fake::{FakeSlack, FakeTelegram, Reply};
use herald_test_support::proxy::{Mode, Proxy};
use tokio::process::{Child, Command};

use crate::config::herald_toml;

use crate::error::Error;
use crate::plan::{self, GATEWAYS};

/// The services' log filter in a chaos run.
pub const DEFAULT_LOG_FILTER: &str = "info,async_nats=warn";
/// The bot token the notifier is configured with (the fake Telegram accepts any).
pub const TELEGRAM_BOT_TOKEN: &str = "123456:chaos-bot-token";

/// How long a component may take to answer `/readyz` with 200 at start-up.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// One killable part of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// nats-server (JetStream, file store).
    Nats,
    /// herald-ingest.
    Ingest,
    /// herald-gateway instance `n`.
    Gateway(usize),
    /// herald-notifier.
    Notifier,
    /// herald-stats.
    Stats,
}

impl Component {
    /// Every component of a stack.
    pub fn all() -> Vec<Self> {
        let mut all = vec![Self::Nats, Self::Ingest];
        all.extend((0..GATEWAYS).map(Self::Gateway));
        all.extend([Self::Notifier, Self::Stats]);
        all
    }

    /// The NATS identity the component connects as (deploy/nats/auth.conf).
    fn nats_user(self) -> &'static str {
        match self {
            Self::Nats => "admin",
            Self::Ingest => "ingest",
            Self::Gateway(_) => "gateway",
            Self::Notifier => "notifier",
            Self::Stats => "stats",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Self::Nats => "nats-server",
            Self::Ingest => "herald-ingest",
            Self::Gateway(_) => "herald-gateway",
            Self::Notifier => "herald-notifier",
            Self::Stats => "herald-stats",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gateway(n) => write!(f, "gateway-{n}"),
            other => f.write_str(other.binary().trim_start_matches("herald-")),
        }
    }
}

/// A service binary, its port, and its process while it runs.
struct Service {
    component: Component,
    bin: PathBuf,
    listen: SocketAddr,
    child: Option<Child>,
}

/// The fake chat platforms the notifier sends to.
pub struct Fakes {
    /// Fake Telegram Bot API: chat [`plan::LIVE_CHAT`] accepts, [`plan::DEAD_CHAT`] refuses.
    pub telegram: FakeTelegram,
    /// Fake Slack incoming webhooks.
    pub slack: FakeSlack,
}

/// The running system.
pub struct Stack {
    nats: NatsServer,
    /// One proxy per service between it and nats-server (see [`Stack::proxy`]).
    proxies: std::collections::BTreeMap<Component, Proxy>,
    services: Vec<Service>,
    /// The fake chat platforms.
    pub fakes: Fakes,
    dir: PathBuf,
    config: PathBuf,
}

/// The Standard Webhooks secret every source verifies with.
pub fn webhook_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(plan::WEBHOOK_KEY)
    )
}

impl Stack {
    /// Starts nats-server, the fakes and every service, and waits until all are ready.
    /// `dir` receives the config, the rules file and the logs; `log_filter` is every
    /// service's `log.filter` (e.g. [`DEFAULT_LOG_FILTER`], or `trace` to hunt for leaks).
    pub async fn launch(bin_dir: &Path, dir: &Path, log_filter: &str) -> Result<Self, Error> {
        let mut services = Vec::new();
        for component in Component::all() {
            if component == Component::Nats {
                continue;
            }
            let bin = bin_dir.join(component.binary());
            if !bin.exists() {
                return Err(Error::MissingBinary(bin));
            }
            services.push(Service {
                component,
                bin,
                listen: free_port()?,
                child: None,
            });
        }
        let nats = NatsServer::start_deploy().await;
        // Only admin may create streams: provision them once, before any service starts.
        herald_core::streams::apply(&nats.jetstream().await, &StreamSettings::default())
            .await
            .map_err(|e| Error::nats("provisioning the streams as admin", e))?;
        let upstream: SocketAddr = nats
            .url()
            .trim_start_matches("nats://")
            .parse()
            .map_err(|_| Error::Port(std::io::Error::other("nats-server URL")))?;
        let mut proxies = std::collections::BTreeMap::new();
        for s in &services {
            proxies.insert(
                s.component,
                Proxy::start(upstream).await.map_err(Error::Port)?,
            );
        }
        let fakes = Fakes {
            telegram: FakeTelegram::start().await,
            slack: FakeSlack::start().await,
        };
        fakes
            .telegram
            .always(plan::DEAD_CHAT, Reply::Error("chat_not_found"));
        std::fs::create_dir_all(dir.join("logs")).map_err(|source| Error::Write {
            path: dir.join("logs"),
            source,
        })?;
        let rules = dir.join("rules.toml");
        write(
            &rules,
            &plan::rules_toml(&fakes.slack.webhook_url(plan::SLACK_HOOK)),
        )?;
        let config = dir.join("herald.toml");
        write(
            &config,
            &herald_toml(&nats.url(), &fakes.telegram.url(), &rules, log_filter),
        )?;
        let mut stack = Self {
            nats,
            proxies,
            services,
            fakes,
            dir: dir.to_owned(),
            config,
        };
        for component in Component::all() {
            stack.start(component).await?;
        }
        for component in Component::all() {
            stack.wait_ready(component).await?;
        }
        Ok(stack)
    }

    /// The NATS URL.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// How the checker reaches NATS: the URL and the admin identity.
    pub fn nats_config(&self) -> NatsConfig {
        match self.nats.identities() {
            Some(ids) => ids.nats_config("admin", &self.nats.url()),
            None => NatsConfig {
                url: self.nats.url(),
                ..NatsConfig::default()
            },
        }
    }

    /// The run directory (config, rules, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ingest's base URL.
    pub fn ingest_url(&self) -> String {
        format!("http://{}", self.service(Component::Ingest).listen)
    }

    /// The gateways' base URLs.
    pub fn gateway_urls(&self) -> Vec<String> {
        (0..GATEWAYS)
            .map(|n| format!("http://{}", self.service(Component::Gateway(n)).listen))
            .collect()
    }

    fn service(&self, component: Component) -> &Service {
        self.services
            .iter()
            .find(|s| s.component == component)
            .expect("every service component has a Service")
    }

    fn service_mut(&mut self, component: Component) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.component == component)
            .expect("every service component has a Service")
    }

    /// SIGKILLs `component` (a crash: no shutdown hook runs) and waits for it to exit.
    pub async fn kill(&mut self, component: Component) {
        if component == Component::Nats {
            self.nats.kill().await;
            return;
        }
        if let Some(mut child) = self.service_mut(component).child.take() {
            // `Child::kill` sends SIGKILL and reaps the process.
            if let Err(err) = child.kill().await {
                tracing::warn!(%component, %err, "kill failed");
            }
        }
    }

    /// Starts `component` (again), on its port. nats-server is awaited until it is ready;
    /// services start in the background.
    pub async fn start(&mut self, component: Component) -> Result<(), Error> {
        if component == Component::Nats {
            if !self.nats.is_running() {
                self.nats.restart().await;
            }
            return Ok(());
        }
        let log_path = self.dir.join("logs").join(format!("{component}.log"));
        let config = self.config.clone();
        let nats_env = self
            .nats
            .identities()
            .map(|ids| ids.service_env(component.nats_user()))
            .unwrap_or_default();
        let nats_url = self.proxies.get(&component).map(Proxy::url);
        let service = self.service_mut(component);
        if service.child.is_some() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Write {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::Write {
            path: log_path,
            source,
        })?;
        let mut cmd = Command::new(&service.bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--config")
            .arg(&config)
            .env("HERALD_LISTEN", service.listen.to_string())
            .envs(nats_env)
            .envs(nats_url.map(|u| ("HERALD_NATS__URL", u)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            what: component.to_string(),
            source,
        })?;
        service.child = Some(child);
        Ok(())
    }

    /// The proxy between a service and nats-server (`None` for nats-server itself).
    pub fn proxy(&self, component: Component) -> Option<&Proxy> {
        self.proxies.get(&component)
    }

    /// Puts every proxy back to [`Mode::Forward`].
    pub fn heal_proxies(&self) {
        self.proxies
            .values()
            .for_each(|p| p.set_mode(Mode::Forward));
    }

    /// Sends `sig` (`-STOP`, `-CONT`) to `component`'s process; false if it has none.
    pub fn signal(&self, component: Component, sig: &str) -> bool {
        let pid = if component == Component::Nats {
            self.nats.pid()
        } else {
            self.service(component).child.as_ref().and_then(Child::id)
        };
        pid.is_some_and(|pid| {
            std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Whether `component` has a live process (one that has not exited by itself).
    pub fn is_running(&mut self, component: Component) -> bool {
        if component == Component::Nats {
            return self.nats.is_running();
        }
        match self.service_mut(component).child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Waits until `component` answers `/readyz` with 200 (nats-server: is running).
    pub async fn wait_ready(&self, component: Component) -> Result<(), Error> {
        if component == Component::Nats {
            return Ok(());
        }
        let url = format!("http://{}/readyz", self.service(component).listen);
        let http = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(resp) = http.get(&url).send().await
                    && resp.status().is_success()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(READY_DEADLINE, ready)
            .await
            .map_err(|_| Error::NotReady {
                what: component.to_string(),
                waited: READY_DEADLINE,
            })
    }

    /// Every NATS identity's password (for checks that no log holds one).
    pub fn nats_passwords(&self) -> Vec<String> {
        let ids = self.nats.identities();
        let users = herald_test_support::nats::USERS;
        ids.map(|ids| users.iter().map(|u| ids.password(u).to_owned()).collect())
            .unwrap_or_default()
    }

    /// Stops every service with SIGTERM (waiting a little for each), then nats-server.
    /// Logs every permission violation nats-server reported.
    pub async fn shutdown(mut self) {
        for line in self
            .nats
            .log_tail()
            .lines()
            .filter(|l| l.contains("Violation"))
        {
            tracing::error!(%line, "nats-server refused a service: its identity lacks a right");
        }
        for service in &mut self.services {
            if let Some(mut child) = service.child.take() {
                if let Some(pid) = child.id() {
                    let _ = std::process::Command::new("kill")
                        .args(["-TERM", &pid.to_string()])
                        .status();
                }
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
        self.nats.stop().await;
    }
}

/// A loopback port nobody listens on right now (the service binds it a moment later).
fn free_port() -> Result<SocketAddr, Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::Port)?;
    listener.local_addr().map_err(Error::Port)
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_are_what_the_report_uses() {
        let names: Vec<String> = Component::all().iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "nats-server",
                "ingest",
                "gateway-0",
                "gateway-1",
                "notifier",
                "stats"
            ]
        );
    }
}
