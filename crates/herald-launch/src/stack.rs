//! The one `Stack`: a nats-server and any of ingest, gateway(s), notifier and stats as real
//! binaries, each on its own loopback port, each killable and restartable on that port.
//!
//! [`Stack::start_nats`] starts NATS (on a deploy/ config, the streams are provisioned once
//! as `admin`, since no service identity may create them); [`Stack::add`] registers a
//! service with its extra environment; [`Stack::start_all`] starts every service and waits
//! until each answers `/readyz`. Every service gets `HERALD_LISTEN`, `HERALD_NATS__URL`
//! (overridable, e.g. to a proxy), its own NATS identity on a deploy/ config,
//! `HERALD_LOG__FILTER` and, if given, `--config`. Output goes to `<log_dir>/<component>.log`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::nats::{NatsError, NatsOptions, NatsServer};
use crate::process::{STOP_GRACE, Signal, SignalError};
use crate::service::{READY_DEADLINE, ServiceProcess, ServiceSpec, SpawnError};

/// One part of a stack.
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
    /// The NATS identity the component connects as (deploy/nats/auth.conf).
    pub fn nats_user(self) -> &'static str {
        match self {
            Self::Nats => "admin",
            Self::Ingest => "ingest",
            Self::Gateway(_) => "gateway",
            Self::Notifier => "notifier",
            Self::Stats => "stats",
        }
    }

    /// The binary's file name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Nats => "nats-server",
            Self::Ingest => "herald-ingest",
            Self::Gateway(_) => "herald-gateway",
            Self::Notifier => "herald-notifier",
            Self::Stats => "herald-stats",
        }
    }

    /// Parses `nats`, `ingest`, `gateway` (instance 0), `gateway-<n>`, `notifier`, `stats`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nats" | "nats-server" => Self::Nats,
            "ingest" => Self::Ingest,
            "gateway" => Self::Gateway(0),
            "notifier" => Self::Notifier,
            "stats" => Self::Stats,
            other => Self::Gateway(other.strip_prefix("gateway-")?.parse().ok()?),
        })
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

/// Why a stack could not be started or changed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// nats-server failed.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A service failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A file or port could not be prepared.
    #[error("could not prepare {0}")]
    Io(String, #[source] std::io::Error),
    /// The streams could not be provisioned as admin.
    #[error("provisioning the streams as admin: {0}")]
    Provision(String),
    /// A signal could not be sent.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The component is not part of this stack.
    #[error("{0} is not part of this stack")]
    Unknown(Component),
}

/// How to build a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where logs go (`<log_dir>/<component>.log`).
    pub log_dir: PathBuf,
    /// Where the service binaries are (see [`crate::service::bin_dir`]).
    pub bin_dir: PathBuf,
    /// Every service's `HERALD_LOG__FILTER`.
    pub log_filter: String,
    /// How nats-server runs.
    pub nats: NatsOptions,
    /// A config file every service reads (`--config`).
    pub config: Option<PathBuf>,
}

/// A running stack.
pub struct Stack {
    nats: NatsServer,
    services: BTreeMap<Component, ServiceProcess>,
    opts: StackOptions,
}

impl Stack {
    /// Starts nats-server (its log in `<log_dir>/nats-server.log`); on a deploy/ config,
    /// provisions the streams as admin.
    pub async fn start_nats(mut opts: StackOptions) -> Result<Self, StackError> {
        let logs = opts.log_dir.clone();
        std::fs::create_dir_all(&logs)
            .map_err(|e| StackError::Io(logs.display().to_string(), e))?;
        if opts.nats.log_file.is_none() {
            opts.nats.log_file = Some(logs.join("nats-server.log"));
        }
        let nats = NatsServer::start(opts.nats.clone()).await?;
        if nats.identities().is_some() {
            let client = nats
                .client()
                .await
                .map_err(|e| StackError::Provision(e.to_string()))?;
            let js = async_nats::jetstream::new(client);
            herald_core::streams::apply(&js, &herald_core::streams::StreamSettings::default())
                .await
                .map_err(|e| StackError::Provision(e.to_string()))?;
        }
        Ok(Self {
            nats,
            services: BTreeMap::new(),
            opts,
        })
    }

    /// Registers `component` on a free loopback port with `env` (applied last: it may set
    /// `HERALD_NATS__URL` to a proxy); returns its address. It starts with [`Stack::start`].
    pub fn add(
        &mut self,
        component: Component,
        env: Vec<(String, String)>,
    ) -> Result<SocketAddr, StackError> {
        let port = crate::process::free_port()
            .map_err(|e| StackError::Io(format!("a port for {component}"), e))?;
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let mut spec = ServiceSpec::new(
            component.to_string(),
            self.opts.bin_dir.join(component.binary()),
        )
        .listen(listen)
        .log_filter(&self.opts.log_filter)
        .log_file(self.opts.log_dir.join(format!("{component}.log")))
        .env("HERALD_NATS__URL", self.nats.url());
        if let Some(ids) = self.nats.identities() {
            spec = spec.envs(ids.service_env(component.nats_user()));
        }
        if let Some(config) = &self.opts.config {
            spec = spec.config(config);
        }
        self.services
            .insert(component, ServiceProcess::stopped(spec.envs(env)));
        Ok(listen)
    }

    /// The services added, in order.
    pub fn services(&self) -> Vec<Component> {
        self.services.keys().copied().collect()
    }

    /// The nats-server.
    pub fn nats(&self) -> &NatsServer {
        &self.nats
    }

    /// The nats-server, to stop, kill or restart it directly.
    pub fn nats_mut(&mut self) -> &mut NatsServer {
        &mut self.nats
    }

    /// The process of a service.
    pub fn service(&self, component: Component) -> Option<&ServiceProcess> {
        self.services.get(&component)
    }

    fn service_mut(&mut self, component: Component) -> Result<&mut ServiceProcess, StackError> {
        self.services
            .get_mut(&component)
            .ok_or(StackError::Unknown(component))
    }

    /// Where the logs are.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.opts.log_dir
    }

    /// A component's address (`None` for nats-server or one not added).
    pub fn addr(&self, component: Component) -> Option<SocketAddr> {
        self.services.get(&component)?.spec().listen
    }

    /// A component's URL: `nats://…` for nats-server, `http://…` for a service.
    pub fn url(&self, component: Component) -> Option<String> {
        match component {
            Component::Nats => Some(self.nats.url()),
            c => self.services.get(&c)?.base_url(),
        }
    }

    /// Starts `component` if it is not running (nats-server on its port and store, awaited
    /// until ready; a service in the background, see [`Stack::wait_ready`]).
    pub async fn start(&mut self, component: Component) -> Result<(), StackError> {
        if component == Component::Nats {
            if !self.nats.is_running() {
                self.nats.restart().await?;
            }
            return Ok(());
        }
        Ok(self.service_mut(component)?.start()?)
    }

    /// Waits until `component` answers `/readyz` with 200 (nats-server: is ready already).
    pub async fn wait_ready(&self, component: Component) -> Result<(), StackError> {
        match self.services.get(&component) {
            Some(s) => Ok(s.wait_ready(READY_DEADLINE).await?),
            None if component == Component::Nats => Ok(()),
            None => Err(StackError::Unknown(component)),
        }
    }

    /// Starts `component` and waits until it is ready.
    pub async fn start_ready(&mut self, component: Component) -> Result<(), StackError> {
        self.start(component).await?;
        self.wait_ready(component).await
    }

    /// Starts every service, then waits until each is ready.
    pub async fn start_all(&mut self) -> Result<(), StackError> {
        for c in self.services() {
            self.start(c).await?;
        }
        for c in self.services() {
            self.wait_ready(c).await?;
        }
        Ok(())
    }

    /// SIGKILLs `component` (a crash: no shutdown hook runs) and waits for it to exit.
    pub async fn kill(&mut self, component: Component) -> Result<(), StackError> {
        match component {
            Component::Nats => self.nats.kill().await,
            c => self.service_mut(c)?.kill().await,
        }
        Ok(())
    }

    /// Stops `component` with SIGTERM, killing it after a grace.
    pub async fn stop(&mut self, component: Component) -> Result<(), StackError> {
        match component {
            Component::Nats => self.nats.stop().await,
            c => {
                self.service_mut(c)?.terminate(STOP_GRACE).await;
            }
        }
        Ok(())
    }

    /// Stops `component` (SIGTERM) and starts it again on its port, waiting until it is ready.
    pub async fn restart(&mut self, component: Component) -> Result<(), StackError> {
        self.stop(component).await?;
        self.start_ready(component).await
    }

    /// Sends `sig` to `component`'s process.
    pub fn signal(&self, component: Component, sig: Signal) -> Result<(), StackError> {
        Ok(match component {
            Component::Nats => self.nats.signal(sig),
            c => self
                .services
                .get(&c)
                .ok_or(StackError::Unknown(c))?
                .signal(sig),
        }?)
    }

    /// Whether `component` has a live process.
    pub fn is_running(&mut self, component: Component) -> bool {
        match component {
            Component::Nats => self.nats.is_running(),
            c => self
                .services
                .get_mut(&c)
                .is_some_and(ServiceProcess::is_running),
        }
    }

    /// Stops every service with SIGTERM (each given `grace`), then nats-server.
    pub async fn shutdown(mut self, grace: Duration) {
        for service in self.services.values_mut() {
            service.terminate(grace).await;
        }
        self.nats.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names_round_trip() {
        let all = [
            Component::Nats,
            Component::Ingest,
            Component::Gateway(0),
            Component::Gateway(1),
            Component::Notifier,
            Component::Stats,
        ];
        let names: Vec<String> = all.iter().map(ToString::to_string).collect();
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
        for c in all {
            assert_eq!(Component::parse(&c.to_string()), Some(c));
        }
        assert_eq!(Component::parse("gateway"), Some(Component::Gateway(0)));
        assert_eq!(Component::parse("web"), None);
    }
}
