//! Operations endpoints, CORS and the web directory.

use herald_core::streams::StreamSettings;

use crate::helpers::{TestApp, test_config};

#[tokio::test]
async fn health_ready_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.http
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
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
