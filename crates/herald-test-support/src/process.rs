//! Helpers for tests that run Herald's real binaries as child processes: the one spawner,
//! [`herald_launch::service`], wrapped so a test fails with a clear message, plus free ports
//! and signals.

use std::time::Duration;

pub use herald_launch::Signal;
pub use herald_launch::service::{ServiceProcess, ServiceSpec};

/// How long a spawned service may take to answer `/readyz`.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (bound, then released: for a child process to listen on).
pub fn free_port() -> u16 {
    herald_launch::process::free_port().expect("a free loopback port")
}

/// The directory of the running test binary's profile (`target/<profile>`), after building
/// the four service binaries into it. Cargo gives a test only its own package's binaries
/// (`CARGO_BIN_EXE_*`), so the services' are built here (a no-op when they are fresh) for
/// tests that run a [`herald_launch::Stack`].
pub fn service_binaries() -> std::path::PathBuf {
    let profile_dir = herald_launch::service::bin_dir();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(crate::workspace_root())
        .args(["build", "--bins", "--quiet"])
        .args(["-p", "herald-ingest", "-p", "herald-gateway"])
        .args(["-p", "herald-notifier", "-p", "herald-stats"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building the service binaries failed");
    profile_dir
}

/// A free loopback address (bound, then released: for a child process to listen on).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A `herald.toml` in a fresh temp dir (deleted with it): `[nats] url = "<nats_url>"`, then
/// `rest` (a service's section).
pub fn config_file(nats_url: &str, rest: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, format!("[nats]\nurl = \"{nats_url}\"\n{rest}"))
        .expect("write herald.toml");
    (dir, config)
}

/// Spawns `spec` (the test fails if it cannot start).
pub fn spawn(spec: ServiceSpec) -> ServiceProcess {
    let name = spec.name.clone();
    ServiceProcess::spawn(spec).unwrap_or_else(|e| panic!("spawn {name}: {e}"))
}

/// Spawns `spec` and waits until it answers `/readyz` with 200 (its log on failure).
pub async fn spawn_ready(spec: ServiceSpec) -> ServiceProcess {
    let service = spawn(spec);
    wait_ready(&service).await;
    service
}

/// Waits until `service` answers `/readyz` with 200; fails the test with its log.
pub async fn wait_ready(service: &ServiceProcess) {
    if let Err(err) = service.wait_ready(READY_DEADLINE).await {
        panic!("{err}; its log:\n{}", service.log());
    }
}

/// A child process a test can signal.
pub trait Pid {
    /// Its process id while it runs.
    fn running_pid(&self) -> Option<u32>;
}

impl Pid for tokio::process::Child {
    fn running_pid(&self) -> Option<u32> {
        self.id()
    }
}

impl Pid for ServiceProcess {
    fn running_pid(&self) -> Option<u32> {
        self.pid()
    }
}

/// Sends SIGTERM to a running child (a graceful shutdown request).
pub fn sigterm(child: &impl Pid) {
    signal(child, Signal::Term);
}

/// Sends SIGHUP to a running child (a reload request).
pub fn sighup(child: &impl Pid) {
    signal(child, Signal::Hup);
}

/// Sends `sig` to a running child; fails the test if it cannot.
pub fn signal(child: &impl Pid, sig: Signal) {
    let pid = child.running_pid().expect("the child is running");
    if let Err(err) = herald_launch::process::signal(pid, sig) {
        panic!("{err}");
    }
}
