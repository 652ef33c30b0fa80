//! The system under test: [`herald_launch::Stack`] (a real `nats-server` and the real service
//! binaries as child processes, each on its own loopback port, all reading one `herald.toml`),
//! plus what only chaos needs: a fault-injecting proxy between each service and NATS, and the
//! fake chat platforms.
//!
//! NATS runs as deployed: from `deploy/nats/single.conf` with its identities and permissions
//! (fresh random passwords), the streams provisioned once as `admin`, and each service
//! connecting as its own identity (`HERALD_NATS__USER`/`PASSWORD`/`INBOX_PREFIX`), so a soak
//! also proves that no service needs a right its identity lacks.
//!
//! Every component can be SIGKILLed and started again on the same port ([`Stack::kill`],
//! [`Stack::start`]); nats-server keeps its store across restarts. Each process's output
//! goes to `<run dir>/logs/<component>.log`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use herald_core::nats::NatsConfig;
pub use herald_launch::Component;
use herald_launch::{NatsOptions, Signal, StackError, StackOptions};
use herald_test_support::fake::{FakeSlack, FakeTelegram, Reply};
use herald_test_support::proxy::{Mode, Proxy};

use crate::config::herald_toml;

use crate::error::Error;
use crate::plan::{self, GATEWAYS};

/// The services' log filter in a chaos run.
pub const DEFAULT_LOG_FILTER: &str = "info,async_nats=warn";
/// The bot token the notifier is configured with (the fake Telegram accepts any).
pub const TELEGRAM_BOT_TOKEN: &str = "123456:chaos-bot-token";

/// How long a service may take to exit after SIGTERM at the end of a run.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The components of a chaos stack.
pub trait Components {
    /// nats-server, ingest, [`GATEWAYS`] gateways, notifier and stats.
    fn all() -> Vec<Component>;
}

impl Components for Component {
    fn all() -> Vec<Component> {
        let mut all = vec![Component::Nats, Component::Ingest];
        all.extend((0..GATEWAYS).map(Component::Gateway));
        all.extend([Component::Notifier, Component::Stats]);
        all
    }
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
    inner: herald_launch::Stack,
    /// The run directory.
    dir: std::path::PathBuf,
    /// One proxy per service between it and nats-server (see [`Stack::proxy`]).
    proxies: BTreeMap<Component, Proxy>,
    /// The fake chat platforms.
    pub fakes: Fakes,
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
        for c in Component::all()
            .into_iter()
            .filter(|c| *c != Component::Nats)
        {
            let bin = bin_dir.join(c.binary());
            if !bin.exists() {
                return Err(Error::MissingBinary(bin));
            }
        }
        let config = dir.join("herald.toml");
        let mut inner = herald_launch::Stack::start_nats(StackOptions {
            log_dir: dir.join("logs"),
            bin_dir: bin_dir.to_owned(),
            log_filter: log_filter.to_owned(),
            nats: NatsOptions::deploy(),
            config: Some(config.clone()),
        })
        .await?;
        let upstream: SocketAddr = ([127, 0, 0, 1], inner.nats().port()).into();
        let mut proxies = BTreeMap::new();
        for c in Component::all()
            .into_iter()
            .filter(|c| *c != Component::Nats)
        {
            let proxy = Proxy::start(upstream).await.map_err(Error::Port)?;
            inner.add(c, vec![("HERALD_NATS__URL".to_owned(), proxy.url())])?;
            proxies.insert(c, proxy);
        }
        let fakes = Fakes {
            telegram: FakeTelegram::start().await,
            slack: FakeSlack::start().await,
        };
        fakes
            .telegram
            .always(plan::DEAD_CHAT, Reply::Error("chat_not_found"));
        let rules = dir.join("rules.toml");
        write(
            &rules,
            &plan::rules_toml(&fakes.slack.webhook_url(plan::SLACK_HOOK)),
        )?;
        let nats_url = inner.nats().url();
        write(
            &config,
            &herald_toml(&nats_url, &fakes.telegram.url(), &rules, log_filter),
        )?;
        inner.start_all().await?;
        Ok(Self {
            inner,
            dir: dir.to_owned(),
            proxies,
            fakes,
        })
    }

    /// The NATS URL.
    pub fn nats_url(&self) -> String {
        self.inner.nats().url()
    }

    /// How the checker reaches NATS: the URL and the admin identity.
    pub fn nats_config(&self) -> NatsConfig {
        let nats = self.inner.nats();
        match nats.identities() {
            Some(ids) => ids.nats_config("admin", &nats.url()),
            None => NatsConfig {
                url: nats.url(),
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
        self.inner.url(Component::Ingest).unwrap_or_default()
    }

    /// The gateways' base URLs.
    pub fn gateway_urls(&self) -> Vec<String> {
        (0..GATEWAYS)
            .filter_map(|n| self.inner.url(Component::Gateway(n)))
            .collect()
    }

    /// SIGKILLs `component` (a crash: no shutdown hook runs) and waits for it to exit.
    pub async fn kill(&mut self, component: Component) {
        if let Err(err) = self.inner.kill(component).await {
            tracing::warn!(%component, %err, "kill failed");
        }
    }

    /// Starts `component` (again), on its port. nats-server is awaited until it is ready;
    /// services start in the background.
    pub async fn start(&mut self, component: Component) -> Result<(), Error> {
        Ok(self.inner.start(component).await?)
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
        Signal::parse(sig).is_some_and(|sig| self.inner.signal(component, sig).is_ok())
    }

    /// Whether `component` has a live process (one that has not exited by itself).
    pub fn is_running(&mut self, component: Component) -> bool {
        self.inner.is_running(component)
    }

    /// Waits until `component` answers `/readyz` with 200 (nats-server: is running).
    pub async fn wait_ready(&self, component: Component) -> Result<(), Error> {
        Ok(self.inner.wait_ready(component).await?)
    }

    /// Every NATS identity's password (for checks that no log holds one).
    pub fn nats_passwords(&self) -> Vec<String> {
        self.inner
            .nats()
            .identities()
            .map(|ids| ids.passwords())
            .unwrap_or_default()
    }

    /// Stops every service with SIGTERM (waiting a little for each), then nats-server.
    /// Logs every permission violation nats-server reported.
    pub async fn shutdown(self) {
        for line in self
            .inner
            .nats()
            .log_tail()
            .lines()
            .filter(|l| l.contains("Violation"))
        {
            tracing::error!(%line, "nats-server refused a service: its identity lacks a right");
        }
        self.inner.shutdown(STOP_GRACE).await;
    }
}

impl From<StackError> for Error {
    fn from(err: StackError) -> Self {
        Self::Stack(Box::new(err))
    }
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
            names.join(" "),
            "nats-server ingest gateway-0 gateway-1 notifier stats"
        );
    }
}
