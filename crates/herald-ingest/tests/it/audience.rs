//! Private events: `to` on `POST /v1/events` and a source's audience path become the
//! `Herald-To` header (never the body); bad audiences are 400 and nothing is published.

use herald_core::streams::EVENTS_STREAM;
use herald_ingest::config::Format;
use herald_test_support::{fixtures, webhook};
use serde_json::{Value, json};

use crate::helpers::{API_KEY, SEQUIN_TOKEN, TestApp, assert_error, test_config};

/// Every stored message: its `Herald-To` header (if any) and its body.
async fn stored_raw(app: &TestApp) -> Vec<(Option<String>, Value)> {
    let stream = app.js.get_stream(EVENTS_STREAM).await.unwrap();
    let mut out = Vec::new();
    for seq in 1..=app.stored_count().await {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let to = msg.headers.get("Herald-To").map(|v| v.as_str().to_owned());
        out.push((to, serde_json::from_slice(&msg.payload).unwrap()));
    }
    out
}

#[tokio::test]
async fn to_becomes_the_header_and_never_the_body() {
    let app = TestApp::spawn().await;
    let one = json!({"topic": "inbox", "action": "new", "data": {"n": 1}, "to": ["u-42", "u-7"]});
    assert_eq!(app.publish(API_KEY, one).await.status(), 200);
    let batch = json!([
        {"topic": "inbox", "action": "new", "data": {"n": 2}, "to": ["a.b:c@d|e+f=g/h_i"]},
        {"topic": "inbox", "action": "new", "data": {"n": 3}},
        {"topic": "inbox", "action": "new", "data": {"n": 4}, "to": null},
    ]);
    assert_eq!(app.publish(API_KEY, batch).await.status(), 200);
    let stored = stored_raw(&app).await;
    let headers: Vec<Option<&str>> = stored.iter().map(|(to, _)| to.as_deref()).collect();
    assert_eq!(
        headers,
        [Some("u-42,u-7"), Some("a.b:c@d|e+f=g/h_i"), None, None]
    );
    for (_, body) in &stored {
        assert!(
            body.get("to").is_none(),
            "the audience is not in the body: {body}"
        );
        let text = body.to_string();
        assert!(
            !text.contains("u-42") && !text.contains("a.b:c@d"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn bad_audiences_are_refused_and_nothing_of_the_request_is_published() {
    let app = TestApp::spawn().await;
    let too_many: Vec<String> = (0..65).map(|i| format!("u{i}")).collect();
    let cases = [
        (json!([]), "names nobody"),
        (json!("u-1"), "must be an array of user id strings"),
        (json!([42]), "must be an array of user id strings"),
        (json!({"u": 1}), "must be an array of user id strings"),
        (json!(["a", "a"]), "appears twice"),
        (json!(["a,b"]), "invalid user id"),
        (json!([""]), "invalid user id"),
        (json!(["x".repeat(129)]), "invalid user id"),
        (json!(["ü"]), "invalid user id"),
        (json!(too_many), "names 65 users; at most 64"),
    ];
    for (to, message) in cases {
        let single = json!({"topic": "inbox", "action": "new", "to": to});
        let body = assert_error(app.publish(API_KEY, single).await, 400, "invalid_audience").await;
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.starts_with("body.to") && got.contains(message), "{got}");
        // One bad event in a batch: the good ones before it are not published either.
        let batch = json!([
            {"topic": "inbox", "action": "new", "to": ["u-1"]},
            {"topic": "inbox", "action": "new"},
            {"topic": "inbox", "action": "new", "to": to},
        ]);
        let body = assert_error(app.publish(API_KEY, batch).await, 400, "invalid_audience").await;
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.starts_with("[2].to"), "{got}");
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn a_retry_naming_other_users_is_the_duplicate_and_keeps_the_first_audience() {
    let app = TestApp::spawn().await;
    let send = |to: Value| json!({"topic": "inbox", "action": "new", "id": "n-1", "to": to});
    let first: Value = app
        .publish(API_KEY, send(json!(["u-1"])))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["events"][0]["duplicate"], false);
    for to in [json!(["u-2"]), json!(null), json!(["u-1", "u-2"])] {
        let again: Value = app.publish(API_KEY, send(to)).await.json().await.unwrap();
        assert_eq!(again["events"][0]["duplicate"], true, "{again}");
        assert_eq!(again["events"][0]["seq"], first["events"][0]["seq"]);
    }
    let stored = stored_raw(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.as_deref(), Some("u-1"));
}

#[tokio::test]
async fn a_source_audience_path_reads_each_raw_item() {
    let mut cfg = test_config();
    let crm = cfg.sources.get_mut("crm").unwrap();
    assert_eq!(crm.format, Format::Sequin);
    crm.to = Some(serde_json::from_value(json!("record.owner_id")).unwrap());
    let dbz = cfg.sources.get_mut("dbz").unwrap();
    dbz.to = Some(serde_json::from_value(json!(["after.owner", "before.owner"])).unwrap());
    let app = TestApp::spawn_with(cfg).await;

    let mut batch = fixtures::json("sequin/batch.json");
    let owners = [json!("u-1"), json!(42), json!(["u-2", "u-3"])];
    for (msg, owner) in batch["data"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(&owners)
    {
        msg["record"]["owner_id"] = owner.clone();
    }
    let resp = app.sequin(serde_json::to_vec(&batch).unwrap()).await;
    assert_eq!(resp.status(), 200);
    // A message whose row has no owner: the whole delivery is refused.
    let mut missing = batch.clone();
    missing["data"][1]["record"]["owner_id"] = Value::Null;
    for msg in missing["data"].as_array_mut().unwrap() {
        msg["metadata"]["idempotency_key"] = json!("other-key");
    }
    let body = assert_error(
        app.sequin(serde_json::to_vec(&missing).unwrap()).await,
        400,
        "invalid_audience",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("data[1]") && message.contains("record.owner_id"),
        "{message}"
    );

    // Debezium: `after` for inserts and updates, `before` for deletes (wrapped or not).
    let headers = webhook::bearer_headers(SEQUIN_TOKEN);
    let mut update = fixtures::json("debezium/update.json");
    update["after"]["owner"] = json!("u-9");
    let resp = app
        .webhook("dbz", serde_json::to_vec(&update).unwrap(), &headers)
        .await;
    assert_eq!(resp.status(), 200);
    let mut delete = fixtures::json("debezium/update.json");
    delete["op"] = json!("d");
    delete["after"] = Value::Null;
    delete["before"]["owner"] = json!("u-8");
    let wrapped = json!({"schema": {"type": "struct"}, "payload": delete});
    let resp = app
        .webhook("dbz", serde_json::to_vec(&wrapped).unwrap(), &headers)
        .await;
    assert_eq!(resp.status(), 200);

    let stored = stored_raw(&app).await;
    let headers: Vec<Option<&str>> = stored.iter().map(|(to, _)| to.as_deref()).collect();
    assert_eq!(
        headers,
        [
            Some("u-1"),
            Some("42"),
            Some("u-2,u-3"),
            Some("u-9"),
            Some("u-8")
        ]
    );
}
