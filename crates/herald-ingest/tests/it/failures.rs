//! Outages and bad requests: precise errors, nothing published.

use std::time::Duration;

use herald_test_support::{fixtures, webhook};
use serde_json::Value;

use crate::helpers::{SEQUIN_TOKEN, TestApp, assert_error, invalid_shape_message};

#[tokio::test]
async fn nats_down_answers_503_and_the_retry_succeeds_once_it_is_back() {
    let mut app = TestApp::spawn().await;
    app.nats.stop().await;
    let resp = app.sequin(fixtures::bytes("sequin/insert.json")).await;
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_error(resp, 503, "unavailable").await;
    assert_eq!(
        app.get("/readyz").await.status(),
        503,
        "not ready while NATS is down"
    );

    app.nats.restart().await;
    app.wait_ready().await;
    let resp = app.sequin(fixtures::bytes("sequin/insert.json")).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"][0]["duplicate"], false);
    assert_eq!(
        app.stored_count().await,
        1,
        "nothing acknowledged was lost, nothing doubled"
    );
}

#[tokio::test]
async fn nats_killed_mid_traffic_never_loses_an_acknowledged_event() {
    let mut app = TestApp::spawn().await;
    let mut acked = std::collections::BTreeSet::new();
    for i in 0..40u32 {
        if i == 20 {
            app.nats.kill().await;
        }
        if i == 30 {
            app.nats.restart().await;
            app.wait_ready().await;
        }
        let body =
            serde_json::json!({"topic": "t", "action": "a", "id": format!("e{i}"), "data": i});
        let resp = app.publish(crate::helpers::API_KEY, body).await;
        match resp.status().as_u16() {
            200 => {
                acked.insert(format!("e{i}"));
            }
            503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(acked.len() >= 30, "{} acknowledged", acked.len());
    let stored: std::collections::BTreeSet<String> = app
        .stored()
        .await
        .into_iter()
        .map(|(_, e)| e.id.to_string())
        .collect();
    assert!(
        acked.is_subset(&stored),
        "every 2xx is durable across a SIGKILL of nats-server"
    );
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let resp = app.sequin(big.clone()).await;
    assert_error(resp, 413, "payload_too_large").await;
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let resp = app
        .http
        .post(format!("{}/v1/webhooks/crm", app.base))
        .header("content-type", "application/json")
        .bearer_auth(SEQUIN_TOKEN)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "payload_too_large").await;
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let headers = webhook::bearer_headers(SEQUIN_TOKEN);
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "",
    ] {
        let resp = app
            .webhook_typed("crm", fixtures::bytes("sequin/insert.json"), &headers, ct)
            .await;
        assert_error(resp, 415, "unsupported_media_type").await;
    }
    let ok = app
        .webhook_typed(
            "crm",
            fixtures::bytes("sequin/insert.json"),
            &headers,
            "application/json; charset=utf-8",
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn malformed_and_misshapen_bodies() {
    let app = TestApp::spawn().await;
    assert_error(
        app.sequin(vec![0xff, 0x00, 0x13, 0x37]).await,
        400,
        "malformed_json",
    )
    .await;
    assert_error(app.sequin("{\"record\":").await, 400, "malformed_json").await;
    assert_error(app.sequin("[1,2,3]").await, 422, "invalid_shape").await;
    assert_error(app.sequin("{\"data\": 5}").await, 422, "invalid_shape").await;
    let mut msg = fixtures::json("sequin/insert.json");
    msg["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("idempotency_key");
    let message = invalid_shape_message(app.sequin(serde_json::to_vec(&msg).unwrap()).await).await;
    assert!(message.contains("metadata.idempotency_key"), "{message}");
    // One bad message spoils the whole batch: nothing of it is published.
    let mut batch = fixtures::json("sequin/batch.json");
    batch["data"][2]["record"] = Value::Null;
    let message =
        invalid_shape_message(app.sequin(serde_json::to_vec(&batch).unwrap()).await).await;
    assert!(message.contains("data[2].record"), "{message}");
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn unknown_source_is_404() {
    let app = TestApp::spawn().await;
    let headers = webhook::bearer_headers(SEQUIN_TOKEN);
    for name in ["nope", "crm.x", "%2A", "crm%20"] {
        let resp = app
            .webhook(name, fixtures::bytes("sequin/insert.json"), &headers)
            .await;
        assert_error(resp, 404, "unknown_source").await;
    }
    assert_eq!(app.stored_count().await, 0);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.sequin(fixtures::bytes("sequin/insert.json")).await;
    app.sequin(fixtures::bytes("sequin/insert.json")).await;
    app.sequin("{").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"herald_ingest_requests_total{source="crm",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_ingest_requests_total{source="crm",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"herald_ingest_duplicates_total{source="crm"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("herald_ingest_publish_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(SEQUIN_TOKEN));
}

#[tokio::test]
async fn ingest_starts_before_nats_and_becomes_ready_when_it_arrives() {
    herald_core::telemetry::init_for_tests();
    let mut nats = herald_test_support::NatsServer::start().await;
    nats.stop().await;
    let (ctx, shutdown) = herald_test_support::service::context(&nats, "t").await;
    let app = herald_ingest::App::build(
        crate::helpers::test_config(),
        herald_test_support::net::listener().await,
        ctx,
    )
    .await
    .unwrap();
    let base = herald_test_support::net::http_url(app.local_addr());
    let task = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let req = http.get(format!("{base}{path}")).send();
        async move { req.await.unwrap().status() }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    nats.restart().await;
    herald_test_support::wait::until("ready once NATS is up", Duration::from_secs(15), || async {
        let ready = http.get(format!("{base}/readyz")).send().await;
        ready.is_ok_and(|r| r.status() == 200)
    })
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn readiness_asks_the_server_whether_the_streams_exist() {
    use herald_core::http::{NatsReadiness, Readiness};
    let nats = herald_test_support::NatsServer::start().await;
    let client = nats.client().await;
    let js = async_nats::jetstream::new(client.clone());
    let mut liveness = herald_core::liveness::Liveness::spawn(
        js.clone(),
        Default::default(),
        tokio_util::sync::CancellationToken::new(),
    );
    liveness.alive().await;
    let readiness = NatsReadiness {
        client,
        js: js.clone(),
        liveness,
    };
    let err = readiness
        .check()
        .await
        .expect_err("connected, but no stream yet");
    assert!(err.contains("HERALD_EVENTS"), "{err}");
    herald_core::streams::provision(&js, &Default::default())
        .await
        .unwrap();
    readiness.check().await.expect("the streams exist now");
}
