//! Helpers for tests that run Herald's real binaries as child processes.

use tokio::process::Child;

/// A free TCP port on 127.0.0.1 (bound, then released: for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Sends SIGTERM to a running child (a graceful shutdown request).
pub fn sigterm(child: &Child) {
    signal(child, "-TERM");
}

/// Sends SIGHUP to a running child (a reload request).
pub fn sighup(child: &Child) {
    signal(child, "-HUP");
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("the child is running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}
