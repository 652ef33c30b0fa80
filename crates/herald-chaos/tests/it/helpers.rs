//! Building the service binaries the tests drive, and a `TestApp` over a running stack.

use std::path::PathBuf;
use std::time::Duration;

use herald_chaos::client;
use herald_chaos::plan::{ClientSpec, Transport};
use herald_chaos::stack::{self, Stack};

/// The service binaries' directory, after building them (see
/// [`herald_test_support::process::service_binaries`]).
pub fn service_binaries() -> PathBuf {
    herald_test_support::process::service_binaries()
}

/// A running stack and one method per endpoint the tests call.
pub struct TestApp {
    /// The stack.
    pub stack: Stack,
    /// Its run directory.
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl TestApp {
    /// Builds the binaries and launches a stack whose services log at `log_filter`.
    pub async fn launch(log_filter: &str) -> Self {
        let bins = service_binaries();
        let dir = tempfile::tempdir().expect("a run directory");
        let stack = Stack::launch(&bins, dir.path(), log_filter)
            .await
            .expect("the stack starts");
        Self {
            stack,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
        }
    }

    /// `POST /v1/webhooks/{tenant}` on ingest with `headers`; the status.
    pub async fn webhook(&self, tenant: &str, body: &str, headers: &[(String, String)]) -> u16 {
        let req = self
            .http
            .post(format!("{}/v1/webhooks/{tenant}", self.stack.ingest_url()))
            .header("content-type", "application/json")
            .body(body.to_owned());
        herald_test_support::webhook::apply(req, headers)
            .send()
            .await
            .expect("ingest answers")
            .status()
            .as_u16()
    }

    /// `GET /v1/stream?topics=…&access_token=…` on gateway 0 from the start of the stream,
    /// read until `want` appears in the body (at most 10 s); the status and what was read.
    pub async fn stream_until(&self, topics: &str, token: &str, want: &str) -> (u16, String) {
        use futures::StreamExt as _;
        let nats = herald_core::nats::connect_once(&self.stack.nats_config(), "chaos-test")
            .await
            .expect("NATS (as admin)");
        let epoch = herald_chaos::facts::epoch(&async_nats::jetstream::new(nats))
            .await
            .expect("the stream's epoch");
        let since = herald_core::cursor::Cursor::new(0, epoch).to_string();
        let resp = self
            .http
            .get(format!("{}/v1/stream", self.stack.gateway_urls()[0]))
            .query(&[
                ("topics", topics),
                ("access_token", token),
                ("since", since.as_str()),
            ])
            .send()
            .await
            .expect("the gateway answers");
        let status = resp.status().as_u16();
        let mut body = resp.bytes_stream();
        let mut read = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(chunk)) = body.next().await {
                read.push_str(&String::from_utf8_lossy(&chunk));
                if read.contains(want) {
                    break;
                }
            }
        })
        .await;
        (status, read)
    }

    /// `GET /v1/stream` with `Authorization: Bearer <token>` on gateway 1; the status.
    pub async fn stream_status(&self, token: &str) -> u16 {
        self.http
            .get(format!("{}/v1/stream", self.stack.gateway_urls()[1]))
            .bearer_auth(token)
            .send()
            .await
            .expect("the gateway answers")
            .status()
            .as_u16()
    }

    /// `GET /v1/ws` (subprotocol `herald.v1`, `Authorization: Bearer`) on gateway 0.
    pub async fn ws(
        &self,
        token: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!(
            "{}/v1/ws",
            self.stack.gateway_urls()[0].replacen("http", "ws", 1)
        );
        let mut req = url.into_client_request().expect("a ws request");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "herald.v1".parse().expect("a header"),
        );
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("a header"),
        );
        tokio_tungstenite::connect_async(req)
            .await
            .expect("the upgrade succeeds")
            .0
    }

    /// Every service's log, concatenated.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path().join("logs")).expect("the logs directory") {
            let path = entry.expect("a log file").path();
            all.push_str(&std::fs::read_to_string(&path).expect("a readable log"));
        }
        all
    }
}

/// A client token for `tenant`, granting `topics`.
pub fn token(tenant: &'static str, topics: Vec<&'static str>) -> String {
    client::token(&ClientSpec {
        name: "test-user".into(),
        transport: Transport::Sse,
        tenant,
        topics,
    })
    .expect("a token")
}

/// The webhook secret the stack's sources verify with.
pub fn webhook_secret() -> String {
    stack::webhook_secret()
}
