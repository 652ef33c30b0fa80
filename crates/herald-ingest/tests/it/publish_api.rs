//! `POST /v1/events`: API keys, one event or many, idempotency.

use serde_json::{Value, json};

use crate::helpers::{API_KEY, OTHER_API_KEY, TestApp, assert_error, schema_validator};

#[tokio::test]
async fn one_event_and_a_batch() {
    let app = TestApp::spawn().await;
    let resp = app
        .publish(
            API_KEY,
            json!({"topic": "leads", "action": "created", "data": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["events"][0]["subject"],
        "herald.events.acme.leads.created"
    );
    let batch = json!([
        {"topic": "leads", "action": "won", "id": "w-1", "data": {}, "changes": {"status": "open"}},
        {"topic": "deals", "action": "closed", "id": "d-1", "type": "com.acme.deal.closed", "time": "2026-11-20T10:00:00Z"}
    ]);
    let resp: Value = app.publish(API_KEY, batch).await.json().await.unwrap();
    assert_eq!(resp["events"].as_array().unwrap().len(), 2);
    let stored = app.stored().await;
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0].1.id.as_str().len(), 36, "a generated UUIDv7");
    assert_eq!(stored[1].1.changes, Some(json!({"status": "open"})));
    assert_eq!(stored[2].1.ty, "com.acme.deal.closed");
    assert_eq!(stored[2].1.source, "/apps/acme");
    let validator = schema_validator();
    for (_, e) in &stored {
        assert!(validator.is_valid(&serde_json::to_value(e).unwrap()));
    }
}

#[tokio::test]
async fn keys_decide_the_tenant_and_idempotency_key_dedups() {
    let app = TestApp::spawn().await;
    let place_order = || {
        app.http
            .post(format!("{}/v1/events", app.base))
            .bearer_auth(OTHER_API_KEY)
            .header("Idempotency-Key", "order-42")
            .json(&json!({"topic": "orders", "action": "placed"}))
            .send()
    };
    let resp = place_order().await.unwrap();
    assert_eq!(resp.status(), 200);
    let again = place_order().await.unwrap();
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["events"][0]["duplicate"], true);
    let stored = app.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "herald.events.globex.orders.placed");
}

#[tokio::test]
async fn refusals() {
    let app = TestApp::spawn().await;
    let no_key = app
        .http
        .post(format!("{}/v1/events", app.base))
        .json(&json!({"topic": "t", "action": "a"}))
        .send()
        .await
        .unwrap();
    assert_error(no_key, 401, "missing_token").await;
    let any = json!({"topic": "t", "action": "a"});
    assert_error(app.publish("wrong", any).await, 401, "invalid_token").await;
    let bad_shapes = [
        json!([]),
        json!({"topic": "t"}),
        json!({"topic": "t", "action": "a", "colour": 1}),
        json!({"topic": "t", "action": "a", "time": "yesterday"}),
        json!({"topic": "t", "action": "a", "changes": 3}),
    ];
    for body in bad_shapes {
        assert_error(app.publish(API_KEY, body).await, 422, "invalid_shape").await;
    }
    let bad_id = json!({"topic": "t", "action": "a", "id": "a\nb"});
    assert_error(app.publish(API_KEY, bad_id).await, 400, "invalid_name").await;
    assert_eq!(app.stored_count().await, 0);
}
