//! De-duplication that no producer can hijack, and `json` sources that trust only what is
//! signed or explicitly allowed (issue 13, "Dedup that cannot be hijacked").

use std::time::Duration;

use herald_core::streams::EVENTS_STREAM;
use herald_ingest::config::{Format, Verify};
use herald_test_support::{fixtures, webhook};
use serde_json::{Value, json};

use crate::helpers::{
    API_KEY, SEQUIN_TOKEN, STD_SECRET, TestApp, invalid_shape_message, test_config,
};

async fn first(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["events"][0].clone()
}

/// The finding: the key was `<tenant>/<id>`, so one producer of a tenant could pre-claim
/// another source's ids (Sequin's are predictable) and the real event was answered
/// `duplicate:true` and never stored. Now a source's ids only collide with its own.
#[tokio::test]
async fn dedup_key_cannot_be_hijacked_by_another_source_of_the_tenant() {
    let app = TestApp::spawn().await;
    let real = fixtures::bytes("sequin/insert.json");
    let id = fixtures::json("sequin/insert.json")["metadata"]["idempotency_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // The attacker holds the tenant's API key and a Debezium-style source; it publishes the
    // id the CRM's next change will carry, through the publish API.
    let claim = app
        .publish(
            API_KEY,
            json!({"id": id, "topic": "leads", "action": "insert", "source": "/webhooks/crm"}),
        )
        .await;
    assert_eq!(first(claim).await["duplicate"], false);
    // ... and through another webhook source of the same tenant.
    let signed = webhook::standard_headers(STD_SECRET, "msg_claim", &real);
    let claim = app.webhook("crm-signed", real.clone(), &signed).await;
    assert_eq!(first(claim).await["duplicate"], false);

    // The CRM's real change is stored, not answered as a duplicate.
    let stored = first(app.sequin(real.clone()).await).await;
    assert_eq!(stored["duplicate"], false, "{stored}");
    assert_eq!(stored["id"], id.as_str());
    assert_eq!(app.stored_count().await, 3);
    // Its own retry is still recognised.
    let retry = first(app.sequin(real).await).await;
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["seq"], stored["seq"]);

    // The stored key names tenant and door; the envelope carries the door.
    let stream = app.js.get_stream(EVENTS_STREAM).await.unwrap();
    let msg = stream
        .get_raw_message(stored["seq"].as_u64().unwrap())
        .await
        .unwrap();
    let key = msg.headers.get("Nats-Msg-Id").unwrap().as_str().to_owned();
    assert!(key.starts_with("acme/webhook:crm/"), "{key}");
    assert!(key.ends_with(&format!("/{id}")), "{key}");
    let events = app.stored().await;
    let vias: Vec<_> = events.iter().map(|(_, e)| e.via.clone().unwrap()).collect();
    assert_eq!(vias, ["api", "webhook:crm-signed", "webhook:crm"]);
}

/// CloudEvents' uniqueness is `source` + `id`: two producers behind one source that reuse an
/// id are both stored; a retry of either is a duplicate.
#[tokio::test]
async fn cloudevents_dedup_on_source_and_id() {
    let app = TestApp::spawn().await;
    let ce = |source: &str| {
        serde_json::to_vec(&json!({
            "specversion": "1.0", "id": "evt-1", "source": source, "type": "order.created",
            "topic": "orders", "action": "created", "data": {}
        }))
        .unwrap()
    };
    let mut answers = Vec::new();
    for (i, source) in [
        "https://a.example/shop",
        "https://b.example/shop",
        "https://a.example/shop",
    ]
    .into_iter()
    .enumerate()
    {
        let body = ce(source);
        let headers = webhook::standard_headers(STD_SECRET, &format!("msg_{i}"), &body);
        answers.push(first(app.webhook("events", body, &headers).await).await);
    }
    let duplicates: Vec<_> = answers.iter().map(|a| a["duplicate"].clone()).collect();
    assert_eq!(duplicates, [false, false, true]);
    assert_eq!(answers[2]["seq"], answers[0]["seq"]);
}

/// A `json` source signed with Standard Webhooks and an `id_header`.
fn signed_json_app_config() -> herald_ingest::Config {
    let mut cfg = test_config();
    let mut src = cfg.sources["hooks"].clone();
    src.tenant = "acme".parse().unwrap();
    src.format = Format::Json;
    src.verify = Verify::StandardWebhooks {
        tolerance: Duration::from_secs(300),
    };
    src.secrets = vec![herald_core::secret::Secret::new(STD_SECRET)];
    src.topic = Some("orders".parse().unwrap());
    src.action = Some("created".parse().unwrap());
    src.id_header = Some("X-Delivery".into());
    cfg.sources.insert("signed-json".into(), src);
    cfg
}

/// The finding: under standard-webhooks the configured `id_header` won over the signed
/// `webhook-id`, so a replay with a fresh unsigned header defeated de-duplication.
#[tokio::test]
async fn signed_webhook_id_wins_over_the_id_header() {
    let app = TestApp::spawn_with(signed_json_app_config()).await;
    let body = br#"{"order":1}"#.to_vec();
    let mut headers = webhook::standard_headers(STD_SECRET, "msg_signed", &body);
    headers.push(("X-Delivery".into(), "delivery-1".into()));
    let original = first(app.webhook("signed-json", body.clone(), &headers).await).await;
    assert_eq!(original["id"], "msg_signed");
    // The captured request replayed (inside the tolerance) with another delivery header.
    headers.pop();
    headers.push(("X-Delivery".into(), "delivery-2".into()));
    let replay = first(app.webhook("signed-json", body, &headers).await).await;
    assert_eq!(replay["duplicate"], true, "{replay}");
    assert_eq!(app.stored_count().await, 1);
}

/// The finding: `json` sources took topic and action from unsigned headers. Now a header
/// decides them only when the source names it (`topic_header` / `action_header`).
#[tokio::test]
async fn json_topic_and_action_come_from_headers_only_when_allowed() {
    let mut cfg = test_config();
    let mut open = cfg.sources["hooks"].clone();
    open.topic_header = None;
    open.action_header = None;
    cfg.sources.insert("closed".into(), open);
    let app = TestApp::spawn_with(cfg).await;
    let mut headers = webhook::bearer_headers(SEQUIN_TOKEN);
    headers.push(("Herald-Topic".into(), "orders".into()));
    headers.push(("Herald-Action".into(), "refunded".into()));
    let message = invalid_shape_message(app.webhook("closed", "{}", &headers).await).await;
    assert!(message.contains("topic_header"), "{message}");
    assert_eq!(app.stored_count().await, 0);
    // The source that opted in still takes them.
    let stored = first(app.webhook("hooks", "{}", &headers).await).await;
    assert_eq!(stored["subject"], "herald.events.globex.orders.refunded");
}
