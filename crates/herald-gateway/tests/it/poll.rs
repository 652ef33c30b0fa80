//! Long-poll.

use std::time::{Duration, Instant};

use herald_core::cursor::Cursor;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::scenario::{each_event, get_with, poll_json};

#[tokio::test]
async fn poll_returns_events_after_the_cursor_and_a_cursor_to_continue() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let a = app.publish("acme", "leads", json!({"n": "a"})).await;
    let b = app.publish("acme", "leads", json!({"n": "b"})).await;
    let resp: Value = poll_json(
        &app,
        &token,
        &format!("since={}&wait=5", Cursor::new(a - 1, epoch)),
    )
    .await;
    let ns: Vec<&Value> = each_event(&resp, &["data", "n"]);
    assert_eq!(ns, vec![&json!("a"), &json!("b")]);
    assert_eq!(resp["cursor"], Cursor::new(b, epoch).to_string());
    assert_eq!(resp["state"], "live");

    // Waiting: the next poll answers when an event arrives.
    let cursor = resp["cursor"].as_str().unwrap().to_owned();
    let waiting = {
        let app_url = app.url(&format!("/v1/poll?since={cursor}&wait=20"));
        let http = app.http.clone();
        let token = token.clone();
        tokio::spawn(async move {
            http.get(app_url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let c = app.publish("acme", "leads", json!({"n": "c"})).await;
    let resp = waiting.await.unwrap();
    assert_eq!(resp["events"][0]["data"]["n"], "c");
    assert_eq!(resp["cursor"], Cursor::new(c, epoch).to_string());
}

#[tokio::test]
async fn an_empty_poll_waits_then_answers_with_the_same_position() {
    let app = TestApp::spawn().await;
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let a = app.publish("acme", "leads", json!({})).await;
    let started = Instant::now();
    let resp: Value = poll_json(
        &app,
        &token,
        &format!("since={}&wait=1", Cursor::new(a, epoch)),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");
    assert_eq!(resp["events"], json!([]));
    assert_eq!(resp["cursor"], Cursor::new(a, epoch).to_string());
    let foreign = app
        .poll(&token, "since=1-00000001&wait=0")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(foreign["reset"]["reason"], "epoch_mismatch");
}

/// Found by schemathesis: a query string that does not parse got axum's plain-text 400.
#[tokio::test]
async fn a_malformed_query_string_is_a_json_400() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let resp = app.poll(&token, "wait=-1").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}

#[tokio::test]
async fn malformed_queries_are_json_400s_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    // A repeated parameter cannot be parsed into the query struct.
    for path in ["/v1/ws?since=1-0&since=2-0", "/v1/stats?topic=a&topic=b"] {
        let resp = get_with(&app, path, &token).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "bad_request", "{path}: {body}");
    }
}
