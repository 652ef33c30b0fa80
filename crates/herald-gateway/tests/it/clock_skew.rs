//! A gateway whose clock disagrees with the identity provider's, tolerated by `jwt.leeway`:
//! an `exp` just past within the leeway is accepted and the connection lasts until `exp` +
//! leeway (not cut off at once, which would loop the client through reconnects), an `exp`
//! beyond it is `token_expired`, an `nbf` ahead within the leeway is accepted and beyond it is
//! `token_not_yet_valid`, and `iat` is never checked. Times are relative to now: no sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_core::streams::StreamSettings;
use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, test_config};

const LEEWAY: u64 = 60;

fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_secs()).expect("seconds")
}

/// A gateway with `jwt.leeway` = [`LEEWAY`] seconds.
async fn spawn() -> TestApp {
    let mut cfg = test_config();
    cfg.jwt.leeway = Duration::from_secs(LEEWAY);
    TestApp::spawn_with(cfg, StreamSettings::default()).await
}

/// An HS256 token with the test secret and `extra` claims on top of a valid `acme` grant.
fn token(extra: Value) -> String {
    let mut claims = json!({"sub": "user-1", "tenant": "acme", "topics": ["*"]});
    for (k, v) in extra.as_object().expect("an object") {
        claims[k] = v.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// The status and `error.code` of a long-poll with `token`.
async fn poll(app: &TestApp, token: &str) -> (u16, String) {
    let resp = app.poll(token, "wait=0").await;
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, String::new());
    }
    let body: Value = resp.json().await.expect("a JSON error body");
    let code = body["error"]["code"].as_str().unwrap_or_default();
    (status, code.to_owned())
}

#[tokio::test]
async fn clock_skew_exp_past_within_the_leeway_streams_until_exp_plus_leeway() {
    let app = spawn().await;
    // Expired 57 s ago by the gateway's clock: the stream ends 2–3 s from now.
    let late = token(json!({"exp": now() - 57}));
    let opened = Instant::now();
    let mut sse = app.sse(&late, "", None).await;
    let first = app.publish("acme", "leads", json!({})).await;
    assert_eq!(
        sse.event().await.unwrap().seq(),
        first,
        "an accepted token is not cut off at once"
    );
    let (reconnect, _) = sse.until("reconnect").await.unwrap();
    assert_eq!(reconnect.json()["reason"], "token_expired");
    let lasted = opened.elapsed();
    assert!(
        lasted >= Duration::from_secs(1),
        "the stream ended after {lasted:?}, before exp + leeway"
    );
    assert!(sse.next().await.unwrap().is_none(), "the stream closes");
}

#[tokio::test]
async fn clock_skew_exp_past_beyond_the_leeway_is_token_expired() {
    let app = spawn().await;
    let cases = [
        (now() - 30, 200, ""),
        (now() - LEEWAY as i64 - 5, 401, "token_expired"),
        (now() - 3600, 401, "token_expired"),
    ];
    for (exp, status, code) in cases {
        let got = poll(&app, &token(json!({"exp": exp}))).await;
        assert_eq!(
            got,
            (status, code.to_owned()),
            "exp {}s from now",
            exp - now()
        );
    }
    // Without a leeway (the default), a token one second past `exp` is refused.
    let strict = TestApp::spawn().await;
    let got = poll(&strict, &token(json!({"exp": now() - 2}))).await;
    assert_eq!(got, (401, "token_expired".to_owned()), "leeway 0");
}

/// A gateway whose clock is behind the identity provider's sees `nbf` (and `iat`) ahead.
#[tokio::test]
async fn clock_skew_nbf_ahead_within_the_leeway_is_accepted_beyond_it_not_yet_valid() {
    let app = spawn().await;
    let exp = now() + 3600;
    let within = token(json!({"exp": exp, "nbf": now() + 50, "iat": now() + 50}));
    assert_eq!(poll(&app, &within).await, (200, String::new()));
    let beyond = token(json!({"exp": exp, "nbf": now() + LEEWAY as i64 + 10}));
    assert_eq!(
        poll(&app, &beyond).await,
        (401, "token_not_yet_valid".to_owned())
    );
    let fractional = token(json!({"exp": exp, "nbf": (now() + LEEWAY as i64 + 10) as f64 + 0.5}));
    assert_eq!(
        poll(&app, &fractional).await,
        (401, "token_not_yet_valid".to_owned()),
        "a non-integer NumericDate too"
    );
    // `iat` is informational (RFC 7519): an IdP clock far ahead does not refuse the token.
    let iat_ahead = token(json!({"exp": exp, "iat": now() + 3 * 3600}));
    assert_eq!(poll(&app, &iat_ahead).await, (200, String::new()));
}
