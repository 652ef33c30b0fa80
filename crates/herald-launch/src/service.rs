//! The one real-binary spawner: a Herald service binary as a child process, with its
//! environment (`HERALD_LOG__FILTER`, never `RUST_LOG`), its output appended to a log file,
//! signals, and readiness observed on `GET /readyz`.
//!
//! Inherited `HERALD_*` variables are removed, so the parent's environment (a developer's
//! `HERALD_CONFIG`, say) never leaks into a child: what a child reads is what its spec says.

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::process::{self, Signal, SignalError};
use crate::wait::{self, TimedOut};

/// How long a service may take to answer `/readyz` with 200.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The default log filter of a spawned service.
pub const DEFAULT_LOG_FILTER: &str = "warn";

/// Why a service could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The binary is missing.
    #[error("{0} is missing: build it (cargo build -p herald-<service>)")]
    Missing(PathBuf),
    /// The log file could not be opened.
    #[error("could not open the log file {0}")]
    Log(PathBuf, #[source] std::io::Error),
    /// The process could not be spawned.
    #[error("could not start {what}")]
    Spawn {
        /// The service.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It did not answer `/readyz` with 200 in time.
    #[error("{what} was not ready: {source}")]
    NotReady {
        /// The service.
        what: String,
        /// The wait that ran out.
        #[source]
        source: TimedOut,
    },
}

/// What to run: a binary, its arguments and environment.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// A name for messages (`ingest`, `gateway-0`).
    pub name: String,
    /// The binary.
    pub binary: PathBuf,
    /// Command-line arguments (e.g. `--config <file>`).
    pub args: Vec<OsString>,
    /// Environment variables, applied after `HERALD_LISTEN` and `HERALD_LOG__FILTER` (so
    /// they may override them).
    pub env: Vec<(String, String)>,
    /// `HERALD_LOG__FILTER`.
    pub log_filter: String,
    /// Where stdout and stderr are appended; discarded if `None`.
    pub log_file: Option<PathBuf>,
    /// The address it listens on (`HERALD_LISTEN`), for `/readyz`; `None` leaves the
    /// listener to the config.
    pub listen: Option<SocketAddr>,
}

impl ServiceSpec {
    /// `binary` named `name`, with the default log filter, no log file and no listener.
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            binary: binary.into(),
            args: Vec::new(),
            env: Vec::new(),
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
            log_file: None,
            listen: None,
        }
    }

    /// Adds `--config <file>`.
    pub fn config(mut self, file: impl Into<PathBuf>) -> Self {
        self.args.push("--config".into());
        self.args.push(file.into().into_os_string());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds environment variables.
    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    /// Sets `HERALD_LOG__FILTER`.
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = filter.into();
        self
    }

    /// Appends the output to `file`.
    pub fn log_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.log_file = Some(file.into());
        self
    }

    /// Listens on `addr` (`HERALD_LISTEN`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    fn command(&self) -> Result<Command, SpawnError> {
        if !self.binary.exists() {
            return Err(SpawnError::Missing(self.binary.clone()));
        }
        let mut cmd = Command::new(&self.binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HERALD_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&self.args)
            .env("HERALD_LOG__FILTER", &self.log_filter)
            .envs(self.listen.map(|a| ("HERALD_LISTEN", a.to_string())))
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match &self.log_file {
            Some(path) => {
                let open = || File::options().create(true).append(true).open(path);
                let err = |e| SpawnError::Log(path.clone(), e);
                cmd.stdout(open().map_err(err)?)
                    .stderr(open().map_err(err)?);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        Ok(cmd)
    }
}

/// A service binary: its spec, and its process while it runs.
pub struct ServiceProcess {
    spec: ServiceSpec,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Spawns `spec` (without waiting for readiness).
    pub fn spawn(spec: ServiceSpec) -> Result<Self, SpawnError> {
        let mut service = Self::stopped(spec);
        service.start()?;
        Ok(service)
    }

    /// A service that is not started yet.
    pub fn stopped(spec: ServiceSpec) -> Self {
        Self { spec, child: None }
    }

    /// Starts the process again if it is not running (on the same address), also after it
    /// exited by itself.
    pub fn start(&mut self) -> Result<(), SpawnError> {
        if self.is_running() {
            return Ok(());
        }
        let child = self
            .spec
            .command()?
            .spawn()
            .map_err(|source| SpawnError::Spawn {
                what: self.spec.name.clone(),
                source,
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// Its spec.
    pub fn spec(&self) -> &ServiceSpec {
        &self.spec
    }

    /// `http://<listen>`, if it was given a listener.
    pub fn base_url(&self) -> Option<String> {
        self.spec.listen.map(|a| format!("http://{a}"))
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether it has a live process (one that has not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) -> Result<(), SignalError> {
        let pid = self.pid().ok_or(SignalError {
            flag: sig.flag(),
            pid: 0,
            source: None,
        })?;
        process::signal(pid, sig)
    }

    /// SIGKILL (a crash: no shutdown hook runs), and waits for the process to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; the exit status if it exited by itself.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::terminate(&mut child, grace).await
    }

    /// Waits up to `bound` for the process to exit by itself; its status, or `None` if it
    /// still runs (or was not running).
    pub async fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = tokio::time::timeout(bound, child.wait()).await.ok()?.ok()?;
        self.child = None;
        Some(status)
    }

    /// Waits until `GET /readyz` answers 200.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<(), SpawnError> {
        let Some(base) = self.base_url() else {
            return Ok(());
        };
        let http = reqwest::Client::new();
        wait::http_ok(&http, &format!("{base}/readyz"), deadline)
            .await
            .map_err(|source| SpawnError::NotReady {
                what: self.spec.name.clone(),
                source,
            })
    }

    /// The log file's contents so far (empty without one).
    pub fn log(&self) -> String {
        self.spec
            .log_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// The directory Herald's binaries are in: `$HERALD_BIN_DIR`, else the directory of the
/// running executable (`target/<profile>/`, also from a test binary in `deps/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HERALD_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(PathBuf::from).unwrap_or(dir)
    } else {
        dir
    }
}
