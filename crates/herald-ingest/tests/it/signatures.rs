//! Verification over HTTP: every scheme, rotation, the timestamp window, replays.

use herald_test_support::{fixtures, webhook};
use serde_json::Value;

use crate::helpers::{GITHUB_SECRET, STD_OLD_SECRET, STD_SECRET, TestApp, assert_error};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn standard_webhooks_accept_valid_and_refuse_the_rest() {
    let app = TestApp::spawn().await;
    let body = fixtures::bytes("sequin/insert.json");

    let ok = webhook::standard_headers(STD_SECRET, "msg_1", &body);
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &ok).await.status(),
        200
    );
    // Svix header names.
    let svix: Vec<(String, String)> = webhook::standard_headers(STD_SECRET, "msg_2", &body)
        .into_iter()
        .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
        .collect();
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &svix)
            .await
            .status(),
        200
    );
    // The older of two configured secrets still works (rotation).
    let old = webhook::standard_headers(STD_OLD_SECRET, "msg_3", &body);
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &old).await.status(),
        200
    );
    assert_eq!(
        app.stored_count().await,
        1,
        "three deliveries of one change"
    );

    let stored_before = app.stored_count().await;
    let mut tampered = body.clone();
    tampered[5] ^= 1;
    assert_error(
        app.webhook("crm-signed", tampered, &ok).await,
        401,
        "invalid_signature",
    )
    .await;
    let wrong = webhook::standard_headers("whsec_dGhpcyBpcyBub3QgdGhlIGtleQ==", "msg_4", &body);
    assert_error(
        app.webhook("crm-signed", body.clone(), &wrong).await,
        401,
        "invalid_signature",
    )
    .await;
    let stale = webhook::standard_headers_at(STD_SECRET, "msg_5", now() - 301, &body);
    assert_error(
        app.webhook("crm-signed", body.clone(), &stale).await,
        401,
        "stale_timestamp",
    )
    .await;
    let future = webhook::standard_headers_at(STD_SECRET, "msg_6", now() + 301, &body);
    assert_error(
        app.webhook("crm-signed", body.clone(), &future).await,
        401,
        "future_timestamp",
    )
    .await;
    let edge = webhook::standard_headers_at(STD_SECRET, "msg_7", now() - 290, &body);
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &edge)
            .await
            .status(),
        200,
        "inside the window"
    );
    assert_error(
        app.webhook("crm-signed", body.clone(), &[]).await,
        401,
        "missing_signature",
    )
    .await;
    assert_eq!(app.stored_count().await, stored_before);
}

#[tokio::test]
async fn several_signatures_in_one_header() {
    let app = TestApp::spawn().await;
    let body = fixtures::bytes("sequin/insert.json");
    let mut headers = webhook::standard_headers(STD_SECRET, "msg_1", &body);
    let good = headers[2].1.clone();
    headers[2].1 = format!("v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU= {good}");
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &headers)
            .await
            .status(),
        200
    );
    headers[2].1 = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU= v1,AAAA".into();
    assert_error(
        app.webhook("crm-signed", body, &headers).await,
        401,
        "invalid_signature",
    )
    .await;
}

#[tokio::test]
async fn a_replayed_signed_webhook_is_stored_once() {
    let app = TestApp::spawn().await;
    let body = fixtures::bytes("sequin/update.json");
    let headers = webhook::standard_headers(STD_SECRET, "msg_replay", &body);
    assert_eq!(
        app.webhook("crm-signed", body.clone(), &headers)
            .await
            .status(),
        200
    );
    let replay: Value = app
        .webhook("crm-signed", body, &headers)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replay["events"][0]["duplicate"], true);
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn github_style_hmac_with_rotation() {
    let app = TestApp::spawn().await;
    let body = br#"{"ref":"refs/heads/main","after":"abc"}"#.to_vec();
    let mut headers = webhook::github_headers(GITHUB_SECRET, &body);
    headers.push(("X-GitHub-Event".into(), "push".into()));
    headers.push((
        "X-GitHub-Delivery".into(),
        "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
    ));
    assert_eq!(
        app.webhook("github", body.clone(), &headers).await.status(),
        200
    );
    let (subject, event) = app.stored().await.remove(0);
    assert_eq!(subject, "herald.events.acme.github.push");
    assert_eq!(event.id.as_str(), "72d3162e-cc78-11e3-81ab-4c9367dc0958");

    headers[0].1 = headers[0].1.replace("sha256=", "sha256=0");
    assert_error(
        app.webhook("github", body.clone(), &headers).await,
        401,
        "malformed_signature",
    )
    .await;
    let wrong = webhook::github_headers("not the secret", &body);
    assert_error(
        app.webhook("github", body, &wrong).await,
        401,
        "invalid_signature",
    )
    .await;
    assert_eq!(app.stored_count().await, 1);
}

#[tokio::test]
async fn bearer_tokens_as_sequin_sends_them() {
    let app = TestApp::spawn().await;
    let body = fixtures::bytes("sequin/insert.json");
    assert_error(
        app.webhook("crm", body.clone(), &[]).await,
        401,
        "missing_token",
    )
    .await;
    let wrong = webhook::bearer_headers("guess");
    assert_error(
        app.webhook("crm", body.clone(), &wrong).await,
        401,
        "invalid_token",
    )
    .await;
    assert_eq!(app.stored_count().await, 0);
    assert_eq!(app.sequin(body).await.status(), 200);
}
