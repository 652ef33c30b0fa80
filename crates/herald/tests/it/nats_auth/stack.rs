//! The real services, each as its own NATS identity: they wait for an admin to provision the
//! streams (never crash-looping on a refused create), then deliver a webhook to SSE.

use std::net::SocketAddr;
use std::time::Duration;

use herald_core::service::CommonConfig;
use herald_core::streams::{self, StreamSettings};
use herald_test_support::nats::Identities;
use herald_test_support::{NatsServer, wait};
use serde_json::json;

use super::DEADLINE;
use crate::services::{self, InProcess};
use crate::sse;

const TENANT: &str = "acme";
const API_KEY: &str = "auth-test-api-key";
const JWT_SECRET: &str = "auth-test-jwt-secret-0123456789abcdef";

/// Ingest, gateway, stats and notifier in-process, each as its own NATS identity.
pub(super) struct Stack {
    /// Ingest's address.
    pub ingest: SocketAddr,
    /// The gateway's address.
    pub gateway: SocketAddr,
    services: InProcess,
}

impl Stack {
    /// Starts the services on `url` (one server or a cluster's URLs) with `settings`.
    pub async fn start(url: &str, ids: &Identities, settings: &StreamSettings) -> Self {
        let mut common = CommonConfig {
            stream: settings.clone(),
            ..Default::default()
        };
        // `leads` is a collection: the stats identity runs the state writer on it.
        common.state.collections.insert(
            TENANT.into(),
            [(
                "leads".into(),
                herald_core::state::CollectionConfig { key: "id".into() },
            )]
            .into(),
        );
        common.nats.url = url.to_owned();
        common.nats.request_timeout = Duration::from_secs(2);
        let mut services = InProcess::new(common).with_identities(ids.clone());
        let ingest = services
            .start::<herald_ingest::App>(services::ingest_config(TENANT, API_KEY), None)
            .await;
        let gateway = services
            .start::<herald_gateway::App>(services::gateway_config(JWT_SECRET), None)
            .await;
        services
            .start::<herald_stats::App>(
                herald_stats::Config {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    ..Default::default()
                },
                None,
            )
            .await;
        services
            .start::<herald_notifier::App>(
                herald_notifier::Config {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    ..Default::default()
                },
                None,
            )
            .await;
        Self {
            ingest,
            gateway,
            services,
        }
    }

    /// Waits until ingest and the gateway answer `/readyz` 200.
    pub async fn wait_ready(&self) {
        InProcess::wait_ready(&[self.ingest, self.gateway]).await;
    }

    /// Posts one event and asserts an SSE client of its tenant receives it.
    pub async fn delivers_a_webhook_to_sse(&self) {
        let token = services::token(JWT_SECRET, "auth-test", TENANT, &["orders"]);
        let http = reqwest::Client::new();
        let resp = http
            .get(format!("http://{}/v1/stream?topics=orders", self.gateway))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "the SSE stream opens");
        let mut reader = sse::Reader::new(resp);
        let posted = http
            .post(format!("http://{}/v1/events", self.ingest))
            .bearer_auth(API_KEY)
            .json(&json!({"topic": "orders", "action": "created", "id": "o-1", "data": {"n": 1}}))
            .send()
            .await
            .unwrap();
        assert!(
            posted.status().is_success(),
            "ingest stores: {}",
            posted.status()
        );
        let event = tokio::time::timeout(DEADLINE, async {
            loop {
                let msg = reader.next().await.unwrap().expect("the stream stays open");
                if msg.event.is_none() {
                    return msg;
                }
            }
        })
        .await
        .expect("the event reaches the SSE client");
        assert_eq!(event.json()["id"], "o-1");
    }

    /// Posts one row of the `leads` collection and waits until the state writer (running as
    /// the stats identity) has stored it in `herald_state` (read through `admin`).
    pub async fn stores_a_collection_row(&self, admin: &async_nats::jetstream::Context) {
        let http = reqwest::Client::new();
        let posted = http
            .post(format!("http://{}/v1/events", self.ingest))
            .bearer_auth(API_KEY)
            .json(&json!({"topic": "leads", "action": "insert", "id": "l-7", "data": {"id": 7}}))
            .send()
            .await
            .unwrap();
        assert!(
            posted.status().is_success(),
            "ingest stores: {}",
            posted.status()
        );
        let kv = admin
            .get_key_value(herald_core::state::STATE_BUCKET)
            .await
            .unwrap();
        let key =
            herald_core::state::row_key(&TENANT.parse().unwrap(), &"leads".parse().unwrap(), "7");
        wait::until("the state writer stores the row", DEADLINE * 3, || async {
            kv.entry(key.as_str()).await.ok().flatten().is_some()
        })
        .await;
    }

    /// Stops every service and asserts each stopped cleanly.
    pub async fn stop(self) {
        self.services.stop().await;
    }
}

#[tokio::test]
async fn services_wait_for_admin_provisioning_and_then_deliver_with_auth_on() {
    let nats = NatsServer::start_deploy().await;
    let ids = nats.identities().unwrap().clone();
    let settings = StreamSettings::default();
    // The services start first: their identities may not create the streams, so they stay
    // not-ready (and say why) instead of crash-looping...
    let stack = Stack::start(&nats.url(), &ids, &settings).await;
    let http = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", stack.ingest);
    wait::until("ingest names the missing stream", DEADLINE, || async {
        let Ok(resp) = http.get(&readyz).send().await else {
            return false;
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 200, "not ready before provisioning: {body}");
        body.contains("HERALD_EVENTS")
    })
    .await;
    // ... until admin provisions, once.
    streams::apply(&nats.jetstream().await, &settings)
        .await
        .unwrap();
    stack.wait_ready().await;
    stack.delivers_a_webhook_to_sse().await;
    stack.stores_a_collection_row(&nats.jetstream().await).await;
    stack.stop().await;
    // Before provisioning the services tried to create the streams (refused); nothing else
    // any service did was refused (a stream that already matches is not updated).
    let log = nats.log_tail();
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
    assert!(
        refused
            .iter()
            .any(|l| l.contains("$JS.API.STREAM.CREATE.HERALD_EVENTS")),
        "the services' stream creation was refused:\n{log}"
    );
    let unexpected: Vec<&&str> = refused
        .iter()
        .filter(|l| !l.contains("\"$JS.API.STREAM.CREATE.HERALD_EVENTS\""))
        .collect();
    assert!(
        unexpected.is_empty(),
        "no service needed more rights: {unexpected:#?}"
    );
}
