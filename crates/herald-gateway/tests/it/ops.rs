//! Operations endpoints, CORS and the web directory.

use herald_core::streams::StreamSettings;

use crate::helpers::{TestApp, test_config};
use crate::scenario::status;

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(status(&app, "/healthz").await, 200);
    assert_eq!(status(&app, "/readyz").await, 200);
    let token = TestApp::token("acme", &["*"], 3600);
    let _sse = app.sse(&token, "", None).await;
    let text = app.metrics().await;
    assert!(
        text.contains("herald_gateway_connections{transport=\"sse\"} 1"),
        "{text}"
    );
    for name in [
        "herald_gateway_lag_events",
        "herald_gateway_events_delivered",
        "herald_gateway_resets_total",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
}

#[tokio::test]
async fn cors_and_web_dir_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("herald.js"), "export const herald = 1;").unwrap();
    let mut cfg = test_config();
    cfg.cors_origins = vec!["https://app.example".into()];
    cfg.web_dir = Some(dir.path().to_owned());
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    let js = app.http.get(app.url("/herald.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.text().await.unwrap(), "export const herald = 1;");
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/stream"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn without_web_dir_the_root_is_404() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http.get(app.url("/")).send().await.unwrap().status(),
        404
    );
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_reach_the_logs_even_at_trace_level() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(tracing_subscriber::fmt::layer().with_writer(move || writer.clone()));
    // The test runtime is single-threaded, so the gateway's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let ok = app
        .poll(&token, &format!("wait=0&access_token={token}"))
        .await;
    assert_eq!(ok.status(), 200);
    let refused = app.poll(&format!("{token}x"), "wait=0").await;
    assert_eq!(refused.status(), 401);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("/v1/poll"), "requests were logged");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!text.contains(signature), "a token leaked into the logs");
    assert!(
        !text.contains(crate::helpers::SECRET),
        "the secret leaked into the logs"
    );
}

/// A raw `GET` (no client-side path normalisation); the status code.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap();
    resp.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn web_dir_serves_only_what_a_browser_needs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("web");
    for file in [
        "index.html",
        "herald.js",
        "herald.d.ts",
        "lib/client.js",
        "dashboard/main.js",
        "dashboard/style.css",
        "package.json",
        "node_modules/playwright-core/index.js",
        "e2e/run.mjs",
        "e2e/artifacts/logs/gateway.log",
        "test/client.test.mjs",
        "lib/.secret",
        ".env",
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, file).unwrap();
    }
    std::fs::write(dir.path().join("outside.txt"), "outside").unwrap();
    let mut cfg = test_config();
    cfg.web_dir = Some(root);
    let app = TestApp::spawn_with(cfg, StreamSettings::default()).await;
    for (path, body) in [
        ("/", "index.html"),
        ("/herald.js", "herald.js"),
        ("/herald.d.ts", "herald.d.ts"),
        ("/lib/client.js", "lib/client.js"),
        ("/dashboard/main.js", "dashboard/main.js"),
        ("/dashboard/style.css", "dashboard/style.css"),
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), body);
    }
    for path in [
        "/package.json",
        "/node_modules/playwright-core/index.js",
        "/e2e/run.mjs",
        "/e2e/artifacts/logs/gateway.log",
        "/test/client.test.mjs",
        "/index.html/",
        "/lib/.secret",
        "/.env",
        "/lib/%2esecret",
        "/lib/../package.json",
        "/lib/%2e%2e/package.json",
        "/dashboard/..%2f..%2foutside.txt",
        "/lib/../../outside.txt",
    ] {
        assert_eq!(raw_get(app.gw.addr, path).await, 404, "{path}");
    }
}
