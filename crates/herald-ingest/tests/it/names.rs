//! Subject injection: `.`, `*`, `>`, spaces, non-ASCII, empty and over-long names are refused
//! with 400 from every field and header that can carry one, and nothing is published.

use herald_test_support::{fixtures, webhook};
use serde_json::json;

use crate::helpers::{API_KEY, SEQUIN_TOKEN, TestApp, assert_error};

/// The `hooks` source's bearer token and the `extra` headers.
fn hooks_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut headers = webhook::bearer_headers(SEQUIN_TOKEN);
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    headers
}

fn bad_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "a.b", "*", ">", "leads.>", "a b", " ", "é", "le\tads", "", "x*",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    v.push("x".repeat(65));
    v
}

#[tokio::test]
async fn sequin_table_and_action() {
    let app = TestApp::spawn().await;
    for bad in bad_names() {
        for field in ["/metadata/table_name", "/action"] {
            let mut msg = fixtures::json("sequin/insert.json");
            *msg.pointer_mut(field).unwrap() = json!(bad);
            assert_error(
                app.sequin(serde_json::to_vec(&msg).unwrap()).await,
                400,
                "invalid_name",
            )
            .await;
        }
    }
    // 64 characters is the limit, and allowed.
    let mut msg = fixtures::json("sequin/insert.json");
    msg["metadata"]["table_name"] = json!("t".repeat(64));
    assert_eq!(
        app.sequin(serde_json::to_vec(&msg).unwrap()).await.status(),
        200
    );
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn json_headers() {
    let app = TestApp::spawn().await;
    for bad in bad_names() {
        if bad.is_empty() || bad.trim() != bad || bad.contains('\t') || !bad.is_ascii() {
            continue; // not representable as a header value; covered through bodies
        }
        for (topic, action) in [(bad.as_str(), "created"), ("orders", bad.as_str())] {
            let headers = hooks_headers(&[("Herald-Topic", topic), ("Herald-Action", action)]);
            assert_error(
                app.webhook("hooks", "{}", &headers).await,
                400,
                "invalid_name",
            )
            .await;
        }
    }
    let headers = hooks_headers(&[
        ("Herald-Topic", "orders"),
        ("Herald-Event-Id", "has space"),
        ("Herald-Action", "created"),
    ]);
    assert_error(
        app.webhook("hooks", "{}", &headers).await,
        400,
        "invalid_name",
    )
    .await;
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn publish_api_fields() {
    let app = TestApp::spawn().await;
    for bad in bad_names() {
        let r = app
            .publish(API_KEY, json!({"topic": bad, "action": "a", "data": {}}))
            .await;
        assert_error(r, 400, "invalid_name").await;
        let r = app
            .publish(
                API_KEY,
                json!([{"topic": "t", "action": "a"}, {"topic": "t", "action": bad}]),
            )
            .await;
        assert_error(r, 400, "invalid_name").await;
        let r = app
            .publish(API_KEY, json!({"tenant": bad, "topic": "t", "action": "a"}))
            .await;
        assert_error(r, 400, "invalid_name").await;
    }
    // A tenant cannot be chosen by the body, only checked against the key.
    let r = app
        .publish(
            API_KEY,
            json!({"tenant": "globex", "topic": "t", "action": "a"}),
        )
        .await;
    assert_error(r, 403, "tenant_mismatch").await;
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn cloudevents_extensions() {
    let app = TestApp::spawn().await;
    for bad in bad_names() {
        for field in ["topic", "action"] {
            let mut ce = json!({"specversion": "1.0", "id": "i", "source": "/s", "type": "t", "topic": "ok", "action": "ok"});
            ce[field] = json!(bad);
            let body = serde_json::to_vec(&ce).unwrap();
            let headers = webhook::standard_headers(crate::helpers::STD_SECRET, "i", &body);
            assert_error(
                app.webhook("events", body, &headers).await,
                400,
                "invalid_name",
            )
            .await;
        }
    }
    assert_eq!(app.stored_count().await, 0);
}
