//! A producer whose clock is off: 4 minutes either way is inside the 5-minute tolerance
//! (accepted, a retry stored once), 6 minutes is not (401 `stale_timestamp` /
//! `future_timestamp`, nothing stored). Timestamps are computed relative to now, so nothing
//! waits. Both timestamped schemes: Standard Webhooks and `hmac-sha256` with a
//! `timestamp_header`.

use std::time::Duration;

use herald_core::signature::hmac_hex;
use herald_ingest::config::{Format, Verify};
use herald_test_support::{fixtures, webhook};
use serde_json::json;

use crate::helpers::{GITHUB_SECRET, STD_SECRET, TestApp, assert_error, test_config};

const MINUTE: i64 = 60;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Ingest with the test sources plus `signed-ts`: JSON, `hmac-sha256` over
/// `<X-Timestamp>.<body>`, tolerance 5 min, the delivery id from `X-Delivery`.
async fn spawn() -> TestApp {
    let mut cfg = test_config();
    let mut source = cfg.sources["github"].clone();
    source.format = Format::Json;
    source.verify = Verify::HmacSha256 {
        header: "X-Signature".into(),
        prefix: "sha256=".into(),
        timestamp_header: Some("X-Timestamp".into()),
        tolerance: Duration::from_secs(300),
    };
    source.action_header = None;
    source.action = Some("pushed".parse().unwrap());
    source.id_header = Some("X-Delivery".into());
    cfg.sources.insert("signed-ts".into(), source);
    TestApp::spawn_with(cfg).await
}

/// A `signed-ts` delivery `id` signed at unix time `at`.
fn hmac_headers(id: &str, at: i64, body: &[u8]) -> Vec<(String, String)> {
    let ts = at.to_string();
    vec![
        ("X-Delivery".into(), id.into()),
        ("X-Timestamp".into(), ts.clone()),
        (
            "X-Signature".into(),
            hmac_hex::sign_timestamped(GITHUB_SECRET.as_bytes(), "sha256=", &ts, body),
        ),
    ]
}

/// Sends `headers` twice (the producer's retry) and expects 200 both times.
async fn accepted_twice(app: &TestApp, source: &str, body: &[u8], headers: &[(String, String)]) {
    for attempt in ["first", "retry"] {
        let resp = app.webhook(source, body.to_vec(), headers).await;
        assert_eq!(
            resp.status(),
            200,
            "{source} {attempt}: inside the tolerance"
        );
    }
}

#[tokio::test]
async fn clock_skew_of_4_minutes_either_way_is_accepted_and_stored_once() {
    let app = spawn().await;
    let cases = [
        (-4 * MINUTE, "sequin/insert.json"),
        (4 * MINUTE, "sequin/update.json"),
    ];
    for (n, (skew, fixture)) in cases.into_iter().enumerate() {
        let body = fixtures::bytes(fixture);
        let before = app.stored_count().await;
        let std =
            webhook::standard_headers_at(STD_SECRET, &format!("msg_{n}"), now() + skew, &body);
        accepted_twice(&app, "crm-signed", &body, &std).await;
        assert_eq!(
            app.stored_count().await,
            before + 1,
            "skew {skew}s: stored once"
        );

        let payload = serde_json::to_vec(&json!({ "skew": skew })).unwrap();
        let hmac = hmac_headers(&format!("delivery-{n}"), now() + skew, &payload);
        accepted_twice(&app, "signed-ts", &payload, &hmac).await;
        assert_eq!(
            app.stored_count().await,
            before + 2,
            "skew {skew}s: stored once"
        );
    }
}

#[tokio::test]
async fn clock_skew_of_6_minutes_is_refused_with_its_direction_and_nothing_stored() {
    let app = spawn().await;
    let body = fixtures::bytes("sequin/insert.json");
    let payload = br#"{"skew":"6m"}"#;
    let cases = [
        (-6 * MINUTE, "stale_timestamp"),
        (6 * MINUTE, "future_timestamp"),
    ];
    for (n, (skew, code)) in cases.into_iter().enumerate() {
        let std =
            webhook::standard_headers_at(STD_SECRET, &format!("msg_{n}"), now() + skew, &body);
        assert_error(
            app.webhook("crm-signed", body.clone(), &std).await,
            401,
            code,
        )
        .await;
        let hmac = hmac_headers(&format!("delivery-{n}"), now() + skew, payload);
        assert_error(
            app.webhook("signed-ts", payload.to_vec(), &hmac).await,
            401,
            code,
        )
        .await;
    }
    assert_eq!(
        app.stored_count().await,
        0,
        "nothing outside the tolerance is stored"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for source in ["crm-signed", "signed-ts"] {
        let line = format!("herald_ingest_requests_total{{source=\"{source}\",status=\"401\"}} 2");
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
}

/// The bound itself: 2 s inside the tolerance is accepted, 2 s outside refused (2 s, not 1, so
/// the test's own clock ticking between signing and checking cannot move a case across).
#[tokio::test]
async fn clock_skew_seconds_either_side_of_the_tolerance_decides() {
    let app = spawn().await;
    let payload = br#"{"skew":"5m"}"#;
    for (n, skew) in [-5 * MINUTE + 2, 5 * MINUTE - 2].into_iter().enumerate() {
        let hmac = hmac_headers(&format!("in-{n}"), now() + skew, payload);
        let resp = app.webhook("signed-ts", payload.to_vec(), &hmac).await;
        assert_eq!(resp.status(), 200, "skew {skew}s");
    }
    let out = [
        (-5 * MINUTE - 2, "stale_timestamp"),
        (5 * MINUTE + 2, "future_timestamp"),
    ];
    for (n, (skew, code)) in out.into_iter().enumerate() {
        let hmac = hmac_headers(&format!("out-{n}"), now() + skew, payload);
        assert_error(
            app.webhook("signed-ts", payload.to_vec(), &hmac).await,
            401,
            code,
        )
        .await;
    }
    assert_eq!(app.stored_count().await, 2);
}
