//! `TestApp`: ingest on 127.0.0.1:0 against a real nats-server, one method per endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use herald_core::event::Event;
use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::streams::EVENTS_STREAM;
use herald_ingest::config::{Format, SourceConfig, Verify};
use herald_ingest::{App, Config};
use herald_test_support::service::{self, TestService};
use herald_test_support::{NatsServer, wait, webhook};

pub const SEQUIN_TOKEN: &str = "sequin-bearer-token";
pub const STD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const STD_OLD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const API_KEY: &str = "acme-api-key";
pub const OTHER_API_KEY: &str = "globex-api-key";

pub struct TestApp {
    pub base: String,
    pub nats: NatsServer,
    pub http: reqwest::Client,
    pub js: jetstream::Context,
    service: TestService<App>,
}

fn source(tenant: &str, format: Format, verify: Verify, secrets: &[&str]) -> SourceConfig {
    SourceConfig {
        tenant: TenantId::parse(tenant).unwrap(),
        format,
        verify,
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        topic: None,
        action: None,
        id_header: None,
        action_header: None,
        topic_header: None,
        to: None,
    }
}

/// Sources for every format and scheme.
pub fn test_config() -> Config {
    let mut sources = BTreeMap::new();
    let bearer = Verify::Bearer {
        header: "Authorization".into(),
        prefix: "Bearer ".into(),
    };
    let standard = Verify::StandardWebhooks {
        tolerance: Duration::from_secs(300),
    };
    sources.insert(
        "crm".into(),
        source("acme", Format::Sequin, bearer.clone(), &[SEQUIN_TOKEN]),
    );
    sources.insert(
        "crm-signed".into(),
        source(
            "acme",
            Format::Sequin,
            standard.clone(),
            &[STD_OLD_SECRET, STD_SECRET],
        ),
    );
    let mut github = source(
        "acme",
        Format::Json,
        Verify::HmacSha256 {
            header: "X-Hub-Signature-256".into(),
            prefix: "sha256=".into(),
            timestamp_header: None,
            tolerance: Duration::from_secs(300),
        },
        &["rotated-out-secret", GITHUB_SECRET],
    );
    github.topic = Some("github".parse().unwrap());
    github.action_header = Some("X-GitHub-Event".into());
    github.id_header = Some("X-GitHub-Delivery".into());
    sources.insert("github".into(), github);
    sources.insert(
        "events".into(),
        source("acme", Format::Cloudevents, standard, &[STD_SECRET]),
    );
    sources.insert(
        "dbz".into(),
        source("acme", Format::Debezium, bearer.clone(), &[SEQUIN_TOKEN]),
    );
    let mut hooks = source("globex", Format::Json, bearer, &[SEQUIN_TOKEN]);
    hooks.topic_header = Some("Herald-Topic".into());
    hooks.action_header = Some("Herald-Action".into());
    sources.insert("hooks".into(), hooks);
    let mut api_keys = BTreeMap::new();
    api_keys.insert("acme".parse().unwrap(), vec![Secret::new(API_KEY)]);
    api_keys.insert("globex".parse().unwrap(), vec![Secret::new(OTHER_API_KEY)]);
    Config {
        sources,
        api_keys,
        body_limit: 64 * 1024,
        publish_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config()).await
    }

    pub async fn spawn_with(cfg: Config) -> Self {
        herald_core::telemetry::init_for_tests();
        Self::spawn_on(NatsServer::start().await, cfg).await
    }

    /// Ingest on a nats-server the test already started (and perhaps filled).
    pub async fn spawn_on(nats: NatsServer, cfg: Config) -> Self {
        let common = service::common_config(&nats);
        Self::spawn_on_with(nats, cfg, common).await
    }

    /// Ingest on `nats` with its own shared settings (e.g. stream limits).
    pub async fn spawn_on_with(
        nats: NatsServer,
        cfg: Config,
        common: herald_core::service::CommonConfig,
    ) -> Self {
        herald_core::telemetry::init_for_tests();
        let service = TestService::<App>::start_with(cfg, &common).await;
        let base = service.url("");
        let js = nats.jetstream().await;
        let app = Self {
            base,
            nats,
            http: reqwest::Client::new(),
            js,
            service,
        };
        app.wait_ready().await;
        app
    }

    /// Waits (under a deadline) until `/readyz` says ready: NATS connected, streams present.
    pub async fn wait_ready(&self) {
        wait::until(
            "ingest to become ready",
            Duration::from_secs(15),
            || async {
                let ready = self.http.get(format!("{}/readyz", self.base)).send().await;
                ready.is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    }

    pub async fn webhook(
        &self,
        source: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(String, String)],
    ) -> reqwest::Response {
        self.webhook_typed(source, body, headers, "application/json")
            .await
    }

    pub async fn webhook_typed(
        &self,
        source: &str,
        body: impl Into<Vec<u8>>,
        headers: &[(String, String)],
        content_type: &str,
    ) -> reqwest::Response {
        let req = self
            .http
            .post(format!("{}/v1/webhooks/{source}", self.base))
            .header("content-type", content_type)
            .body(body.into());
        webhook::apply(req, headers).send().await.unwrap()
    }

    /// A Sequin delivery: bearer token, JSON.
    pub async fn sequin(&self, body: impl Into<Vec<u8>>) -> reqwest::Response {
        self.webhook("crm", body, &webhook::bearer_headers(SEQUIN_TOKEN))
            .await
    }

    pub async fn publish(&self, key: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// How many messages `HERALD_EVENTS` holds.
    pub async fn stored_count(&self) -> u64 {
        let mut stream = self.js.get_stream(EVENTS_STREAM).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Every stored event with its subject, in stream order.
    pub async fn stored(&self) -> Vec<(String, Event)> {
        let stream = self.js.get_stream(EVENTS_STREAM).await.unwrap();
        let n = self.stored_count().await;
        let mut out = Vec::new();
        for seq in 1..=n {
            let msg = stream.get_raw_message(seq).await.unwrap();
            let event: Event = serde_json::from_slice(&msg.payload).unwrap();
            out.push((msg.subject.to_string(), event));
        }
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.service.abort();
    }
}

/// Asserts a JSON error response with `status` and `code`.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// Asserts a 422 `invalid_shape` refusal and returns its message (which names the field).
pub async fn invalid_shape_message(resp: reqwest::Response) -> String {
    let body = assert_error(resp, 422, "invalid_shape").await;
    body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

/// The event schema from proto/.
pub fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proto/event.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}
