//! Runs `herald up` as a user would, sends the README's curl examples, then stops it.

use std::process::Stdio;
use std::time::Duration;

use herald_test_support::process::free_port;
use herald_test_support::process::sigterm;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Up {
    pub child: Child,
    pub ingest: String,
    pub gateway: String,
    _data: tempfile::TempDir,
}

/// Starts `herald up` on free ports and waits for its banner.
async fn start() -> Up {
    start_with(&[]).await
}

/// Like [`start`], with extra environment variables.
pub async fn start_with(env: &[(&str, &str)]) -> Up {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["up", "--data-dir"])
        .arg(data.path())
        .args(["--nats-port", &free_port().to_string()])
        .env("HERALD_NATS_SERVER", herald_test_support::nats::binary())
        .env("HERALD_INGEST__LISTEN", "127.0.0.1:0")
        .env("HERALD_GATEWAY__LISTEN", "127.0.0.1:0")
        .env("HERALD_NOTIFIER__LISTEN", "127.0.0.1:0")
        .env("HERALD_STATS__LISTEN", "127.0.0.1:0")
        .env("HERALD_LOG__FORMAT", "json")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (ingest, gateway) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut seen = Vec::new();
        let mut ingest = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = banner_url(&line, "ingest") {
                ingest = Some(addr);
            } else if let Some(addr) = banner_url(&line, "gateway")
                && let Some(ingest) = ingest.take()
            {
                return (ingest, addr);
            }
            seen.push(line);
        }
        panic!("herald up exited before its banner:\n{}", seen.join("\n"));
    })
    .await
    .expect("banner within 60 s");
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Up {
        child,
        ingest,
        gateway,
        _data: data,
    }
}

/// The address in a banner line such as `  ingest    http://127.0.0.1:8081   (…)`.
fn banner_url(line: &str, service: &str) -> Option<String> {
    let rest = line.trim().strip_prefix(service)?.trim_start();
    let addr = rest.strip_prefix("http://")?.split_whitespace().next()?;
    Some(addr.to_owned())
}

/// The README's shell blocks that mention `needle`, with the ingest address replaced.
fn readme_block(needle: &str, ingest: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("README has a sh block with {needle}"));
    block.replace("127.0.0.1:8081", ingest)
}

async fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_readme_examples_work_against_herald_up_and_it_stops_cleanly() {
    let mut up = start().await;

    let first = sh(&readme_block("demo-sequin", &up.ingest)).await;
    assert!(
        first.contains(r#""subject":"herald.events.demo.leads.insert","seq":1,"duplicate":false"#),
        "{first}"
    );
    let again = sh(&readme_block("demo-sequin", &up.ingest)).await;
    assert!(
        again.contains(r#""seq":1,"duplicate":true"#),
        "the README's promise: {again}"
    );
    let signed = sh(&readme_block("demo-signed", &up.ingest)).await;
    assert!(signed.contains(r#""seq":2,"duplicate":false"#), "{signed}");

    sigterm(&up.child);
    let status = tokio::time::timeout(Duration::from_secs(20), up.child.wait())
        .await
        .expect("herald up exits within 20 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_missing_nats_server_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["up", "--data-dir"])
        .arg(data.path())
        .env("HERALD_NATS_SERVER", data.path().join("no-such-binary"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not start") || err.contains("nats-server not found"),
        "{err}"
    );
}
