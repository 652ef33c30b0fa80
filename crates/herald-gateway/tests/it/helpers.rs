//! `TestApp`: a real nats-server, the gateway in-process on a free port, and one method per
//! endpoint (the parsing clients it returns are in `clients`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use herald_core::cursor::Epoch;
use herald_core::event::{Event, EventId};
use herald_core::names::{Action, TenantId, Topic};
use herald_core::nats::NatsConfig;
use herald_core::secret::Secret;
use herald_core::service::CommonConfig;
use herald_core::state::StateConfig;
use herald_core::streams::{EVENTS_STREAM, StreamSettings};
use herald_gateway::auth::Claims;
use herald_gateway::{App, Config};
use herald_test_support::service::TestService;
use herald_test_support::{NatsServer, wait};

pub use crate::clients::{SseClient, SseEvent, WsClient};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The HS256 secret every test gateway uses.
pub const SECRET: &str = "test-secret-0123456789";
/// How long any single awaited condition may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One gateway (in-process): its address, the token that stops it, its task.
pub type Gateway = TestService<App>;

/// A test environment: NATS, a gateway, a publisher.
pub struct TestApp {
    pub nats: NatsServer,
    pub gw: Gateway,
    pub cfg: Config,
    pub settings: StreamSettings,
    /// The `[state]` section (collections) every gateway of the app starts with.
    pub state: StateConfig,
    pub http: reqwest::Client,
}

/// The test configuration: fast checks, no drain delay, small retry hint.
pub fn test_config() -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..Config::default()
    };
    cfg.jwt.secret = Some(Secret::new(SECRET));
    cfg.drain_window = Duration::ZERO;
    cfg.connection_check = Duration::from_millis(50);
    cfg.stream_check = Duration::from_millis(200);
    cfg.retry_base = Duration::from_millis(100);
    cfg.retry_jitter = Duration::from_millis(50);
    cfg
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(test_config(), StreamSettings::default()).await
    }

    pub async fn spawn_with(cfg: Config, settings: StreamSettings) -> Self {
        Self::spawn_with_state(cfg, settings, StateConfig::default()).await
    }

    /// [`TestApp::spawn_with`] with collections.
    pub async fn spawn_with_state(
        cfg: Config,
        settings: StreamSettings,
        state: StateConfig,
    ) -> Self {
        herald_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await;
        let gw = start_gateway_at(nats.url(), &cfg, &settings, &state).await;
        let app = Self {
            nats,
            gw,
            cfg,
            settings,
            state,
            http: reqwest::Client::new(),
        };
        app.wait_ready().await;
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw.addr)
    }

    /// Stops the gateway (clients are told to reconnect) and starts a new one on a new port.
    pub async fn restart_gateway(&mut self) {
        self.stop_gateway().await;
        self.gw = start_gateway_at(self.nats.url(), &self.cfg, &self.settings, &self.state).await;
        self.wait_ready().await;
    }

    /// Stops the gateway and waits for it to finish.
    pub async fn stop_gateway(&mut self) {
        self.gw.stop(DEADLINE).await;
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait::until("the gateway to become ready", DEADLINE, || async {
            let ready = self.http.get(self.url("/readyz")).send().await;
            ready.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// The current epoch of `HERALD_EVENTS`.
    pub async fn epoch(&self) -> Epoch {
        let js = self.nats.jetstream().await;
        let mut stream = js.get_stream(EVENTS_STREAM).await.expect("stream");
        Epoch::from_created(stream.info().await.expect("info").created)
    }

    /// A token for `tenant` granting `topics`, valid for `ttl` seconds (negative: expired).
    pub fn token(tenant: &str, topics: &[&str], ttl: i64) -> String {
        token_for("user-1", tenant, topics, ttl, SECRET)
    }

    /// Opens `/v1/stream` with `query` (already encoded) and optional `Last-Event-ID`.
    pub async fn stream(
        &self,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url(&format!("/v1/stream?{query}")))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send().await.expect("GET /v1/stream")
    }

    /// An SSE client on `/v1/stream`, asserting a 200.
    pub async fn sse(&self, token: &str, query: &str, last_event_id: Option<&str>) -> SseClient {
        let resp = self.stream(token, query, last_event_id).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let mut client = SseClient::new(resp);
        client.open().await.expect("the stream opens with `status`");
        assert!(
            client
                .hello
                .as_ref()
                .is_some_and(|h| h.json()["heartbeat_ms"].is_u64()),
            "with the heartbeat interval"
        );
        client
    }

    /// `GET /v1/poll`.
    pub async fn poll(&self, token: &str, query: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/v1/poll?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /v1/poll")
    }

    /// A WebSocket on `/v1/ws` with subprotocol `herald.v1`.
    pub async fn ws(&self, token: &str) -> anyhow::Result<WsClient> {
        let mut req = format!("ws://{}/v1/ws", self.gw.addr).into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse()?);
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "herald.v1".parse()?);
        let (socket, resp) = tokio_tungstenite::connect_async(req).await?;
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"herald.v1"[..])
        );
        Ok(WsClient::new(socket))
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// A metric's value (first sample whose line starts with `prefix`).
    pub async fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Publishes an event and returns its sequence once the gateway has delivered it (so its
    /// head is at least there).
    pub async fn publish_seen(&self, tenant: &str, topic: &str, data: Value) -> u64 {
        let mut watcher = self.sse(&Self::token(tenant, &["*"], 60), "", None).await;
        let seq = self.publish(tenant, topic, data).await;
        assert_eq!(watcher.event().await.unwrap().seq(), seq);
        seq
    }

    /// Publishes an event and returns its stream sequence (after the PubAck).
    pub async fn publish(&self, tenant: &str, topic: &str, data: Value) -> u64 {
        publish(&self.nats.jetstream().await, tenant, topic, data).await
    }
}

/// Publishes through `js`; returns the stream sequence.
pub async fn publish(js: &jetstream::Context, tenant: &str, topic: &str, data: Value) -> u64 {
    let event = Event::new(
        EventId::generate(),
        TenantId::parse(tenant).expect("tenant"),
        Topic::parse(topic).expect("topic"),
        Action::parse("insert").expect("action"),
        "/test",
        data,
    );
    herald_core::publish::publish_event(js, &event)
        .await
        .expect("publish, then the PubAck")
        .sequence
}

pub fn token_for(sub: &str, tenant: &str, topics: &[&str], ttl: i64, secret: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = Claims {
        sub: sub.into(),
        tenant: TenantId::parse(tenant).expect("tenant"),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        exp: (now + ttl) as u64,
        presence: false,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

pub async fn start_gateway(nats: &NatsServer, cfg: &Config, settings: &StreamSettings) -> Gateway {
    start_gateway_at(nats.url(), cfg, settings, &StateConfig::default()).await
}

/// A gateway on the NATS server at `url`, with the collections of `state`.
pub async fn start_gateway_at(
    url: String,
    cfg: &Config,
    settings: &StreamSettings,
    state: &StateConfig,
) -> Gateway {
    let common = CommonConfig {
        nats: NatsConfig {
            url,
            ..NatsConfig::default()
        },
        stream: settings.clone(),
        state: state.clone(),
        ..CommonConfig::default()
    };
    TestService::start_with(cfg.clone(), &common).await
}

/// Counts of each value, to find duplicates.
pub fn duplicates(seqs: &[u64]) -> Vec<u64> {
    let mut seen = HashMap::new();
    for s in seqs {
        *seen.entry(*s).or_insert(0) += 1;
    }
    let mut d: Vec<u64> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(s, _)| s)
        .collect();
    d.sort_unstable();
    d
}

/// A gateway on a runtime of its own, so that killing it drops every task and socket at once,
/// like a crashed process: clients get no `reconnect`, their connection just ends.
pub struct KillableGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KillableGateway {
    pub async fn start(nats: &NatsServer, cfg: &Config, settings: &StreamSettings) -> Self {
        let (url, cfg, settings) = (nats.url(), cfg.clone(), settings.clone());
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            let gw = rt.block_on(async move {
                let gw = start_gateway_at(url, &cfg, &settings, &StateConfig::default()).await;
                let _ = addr_tx.send(gw.addr);
                let _ = kill_rx.await;
                gw
            });
            // Drops every task of the gateway (server, connections, tail) without running
            // any of its shutdown paths (its token is cancelled only once they are gone).
            rt.shutdown_background();
            drop(gw);
        });
        let addr = tokio::time::timeout(DEADLINE, addr_rx)
            .await
            .expect("the gateway starts")
            .expect("the gateway thread reports its address");
        Self {
            addr,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    /// Kills the gateway and waits until its runtime is gone.
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join")
                .expect("the gateway thread exits");
        }
    }
}
