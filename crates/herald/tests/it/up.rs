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
    /// Everything `herald up` wrote to stderr up to the end of its banner.
    pub banner: String,
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
    let (ingest, gateway, banner) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut seen = Vec::new();
        let (mut ingest, mut gateway) = (None, None);
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = banner_url(&line, "ingest") {
                ingest = Some(addr);
            } else if let Some(addr) = banner_url(&line, "gateway") {
                gateway = Some(addr);
            }
            let end = line.contains("Ctrl-C stops everything");
            seen.push(line);
            if end && let (Some(ingest), Some(gateway)) = (ingest.take(), gateway.take()) {
                return (ingest, gateway, seen.join("\n"));
            }
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
        banner,
        _data: data,
    }
}

impl Up {
    /// Stops `herald up` with SIGTERM and asserts it exits 0 within 20 s. Not SIGKILL: that
    /// would orphan the nats-server it spawned (three leaked per test run before).
    async fn stop(mut self) {
        sigterm(&self.child);
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("herald up exits within 20 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "exit status {status}");
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
    let up = start().await;

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

    up.stop().await;
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

/// A token for every topic of the demo tenant, signed with the public dev JWT secret: what
/// anyone can mint with `herald token --secret dev-jwt-secret-change-me`.
fn dev_token() -> String {
    herald::token::mint(
        herald::dev::JWT_SECRET,
        "attacker",
        &herald_core::names::TenantId::parse(herald::dev::TENANT).unwrap(),
        &["*".to_owned()],
        Duration::from_secs(600),
    )
    .unwrap()
}

/// Waits for the gateway's `/readyz`, then opens `/v1/stream` with `token`: the status.
async fn stream_status(gateway: &str, token: &str) -> reqwest::StatusCode {
    let http = reqwest::Client::new();
    herald_test_support::wait::until("the gateway to become ready", DEADLINE, || async {
        let r = http.get(format!("http://{gateway}/readyz")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    http.get(format!("http://{gateway}/v1/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

const DEADLINE: Duration = Duration::from_secs(20);

fn gateway_fixture(name: &str) -> String {
    format!(
        "{}/../herald-gateway/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[tokio::test]
async fn herald_up_adds_no_dev_jwt_secret_when_a_jwks_file_is_configured() {
    let jwks = gateway_fixture("jwks.json");
    let up = start_with(&[("HERALD_GATEWAY__JWT__JWKS_FILE", &jwks)]).await;
    assert_eq!(
        stream_status(&up.gateway, &dev_token()).await,
        401,
        "a token signed with the public dev secret must not read any tenant"
    );
    assert!(!up.banner.contains("#token=ey"), "{}", up.banner);
    assert!(!up.banner.contains("dev credentials"), "{}", up.banner);
    up.stop().await;
}

#[tokio::test]
async fn herald_up_never_prints_a_token_signed_with_a_configured_secret() {
    let secret = "a-real-secret-from-the-vault-0123456789";
    let up = start_with(&[("HERALD_GATEWAY__JWT__SECRET", secret)]).await;
    assert!(!up.banner.contains("#token=ey"), "{}", up.banner);
    assert!(up.banner.contains("herald token"), "{}", up.banner);
    // Neither is the dev secret accepted next to the real one.
    assert_eq!(stream_status(&up.gateway, &dev_token()).await, 401);
    up.stop().await;
}

#[tokio::test]
async fn herald_up_prints_the_dev_dashboard_token_only_with_dev_credentials() {
    let up = start().await;
    let token = up
        .banner
        .split("#token=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a dashboard token in {}", up.banner))
        .to_owned();
    assert_eq!(stream_status(&up.gateway, &token).await, 200);
    up.stop().await;
}

#[tokio::test]
async fn herald_up_with_dev_credentials_refuses_a_non_loopback_listener() {
    let data = tempfile::tempdir().unwrap();
    let listen = format!("0.0.0.0:{}", free_port());
    let run = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["up", "--data-dir"])
        .arg(data.path())
        .args(["--nats-port", &free_port().to_string()])
        .env("HERALD_NATS_SERVER", herald_test_support::nats::binary())
        .env("HERALD_INGEST__LISTEN", "127.0.0.1:0")
        .env("HERALD_GATEWAY__LISTEN", &listen)
        .env("HERALD_NOTIFIER__LISTEN", "127.0.0.1:0")
        .env("HERALD_STATS__LISTEN", "127.0.0.1:0")
        .env_remove("HERALD_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("herald up refuses to start instead of serving the dev credentials")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "HERALD_GATEWAY__LISTEN={listen} is not loopback, and herald up is using the public dev credentials"
        )),
        "{err}"
    );
}
