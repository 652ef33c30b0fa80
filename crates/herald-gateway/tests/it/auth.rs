//! Tokens: sources, refusals, expiry.

use herald_test_support::wait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, token_for};
use crate::scenario::get_with;

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a JSON error body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn missing_bad_expired_and_wrongly_signed_tokens_get_401() {
    let app = TestApp::spawn().await;
    let none = app.http.get(app.url("/v1/stream")).send().await.unwrap();
    assert_eq!(error_code(none).await, (401, "missing_token".into()));
    let cases = [
        ("garbage".to_owned(), "malformed_token"),
        (TestApp::token("acme", &["*"], -3600), "token_expired"),
        (
            token_for("u", "acme", &["*"], 3600, "wrong-secret"),
            "invalid_token",
        ),
    ];
    for (token, code) in cases {
        for path in ["/v1/stream", "/v1/poll?wait=0", "/v1/ws"] {
            let resp = get_with(&app, path, &token).await;
            assert_eq!(error_code(resp).await, (401, code.to_owned()), "{path}");
        }
    }
}

#[tokio::test]
async fn tokens_are_accepted_from_cookie_and_query() {
    let app = TestApp::spawn().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let by_query = app
        .http
        .get(app.url(&format!("/v1/poll?wait=0&access_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let by_cookie = app
        .http
        .get(app.url("/v1/poll?wait=0"))
        .header("Cookie", format!("other=1; herald_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);
}

#[tokio::test]
async fn token_expiry_sends_reconnect_and_a_fresh_token_resumes_losslessly() {
    let app = TestApp::spawn().await;
    let short = TestApp::token("acme", &["*"], 2);
    let mut sse = app.sse(&short, "", None).await;
    let first = app.publish("acme", "leads", json!({})).await;
    assert_eq!(sse.event().await.unwrap().seq(), first);
    let (reconnect, _) = sse.until("reconnect").await.unwrap();
    assert_eq!(reconnect.json()["reason"], "token_expired");
    assert!(sse.next().await.unwrap().is_none(), "the stream closes");
    let missed = app.publish("acme", "leads", json!({})).await;
    let fresh = TestApp::token("acme", &["*"], 3600);
    let mut again = app.sse(&fresh, "", sse.last_id.as_deref()).await;
    assert_eq!(again.event().await.unwrap().seq(), missed);
}

#[tokio::test]
async fn es256_tokens_verify_against_a_jwks_url() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let jwks = std::fs::read_to_string(fixtures.join("jwks.json")).unwrap();
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = jwks.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let (jwks_addr, _server) = herald_test_support::net::serve_router(router).await;
    let mut cfg = crate::helpers::test_config();
    cfg.jwt.jwks_url = Some(format!("http://{jwks_addr}/.well-known/jwks.json"));
    cfg.jwt.issuer = Some("https://idp.example.com/".into());
    cfg.jwt.audience = Some("herald".into());
    let app = TestApp::spawn_with(cfg, Default::default()).await;

    let private = std::fs::read(fixtures.join("es256-private.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("test-es256".into());
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let sign = |aud: &str| {
        let claims = json!({"sub": "u", "tenant": "acme", "topics": ["*"], "exp": exp,
                            "iss": "https://idp.example.com/", "aud": aud});
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(&private).unwrap(),
        )
        .unwrap()
    };
    let token = sign("herald");
    // The set is fetched in the background at start-up: poll until it is in.
    wait::until(
        "the ES256 token to be accepted once the JWK Set is loaded",
        crate::helpers::DEADLINE,
        || async { app.poll(&token, "wait=0").await.status() == 200 },
    )
    .await;
    // An HS256 token signed with the wrong secret is still refused.
    let forged = token_for("u", "acme", &["*"], 3600, "not-the-secret");
    assert_eq!(error_code(app.poll(&forged, "wait=0").await).await.0, 401);
    // The identity provider's token for another application is refused.
    let elsewhere = sign("another-app");
    assert_eq!(
        error_code(app.poll(&elsewhere, "wait=0").await).await,
        (401, "invalid_audience".into())
    );
}
