//! A JWK Set served over HTTP: refetched for an unknown `kid` at most once per
//! `jwks_min_refresh`, never replaced by a set without a usable key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use herald_gateway::auth::Authenticator;
use herald_gateway::config::JwtConfig;
use herald_gateway::error::AuthError;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "herald";

/// A JWK Set server on a free port: what it serves can be changed; fetches are counted.
struct JwksServer {
    url: String,
    body: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Served {
    body: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(body: Value) -> Self {
        let served = Served {
            body: Arc::new(Mutex::new(body)),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route(
                "/jwks",
                get(|State(s): State<Served>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(s.body.lock().unwrap().clone())
                }),
            )
            .with_state(served.clone());
        let (addr, _server) = herald_test_support::net::serve_router(app).await;
        Self {
            url: format!("http://{addr}/jwks"),
            body: served.body,
            fetches: served.fetches,
        }
    }

    fn serve(&self, body: Value) {
        *self.body.lock().unwrap() = body;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture's ES256 public key under `kid`.
fn key_set(kid: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("jwks.json")).unwrap();
    let mut set: Value = serde_json::from_str(&text).unwrap();
    set["keys"][0]["kid"] = json!(kid);
    set
}

/// An ES256 token signed with the fixture's private key, naming `kid`.
fn token(kid: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"sub": "u1", "tenant": "acme", "topics": ["*"], "exp": exp,
                        "iss": ISSUER, "aud": AUDIENCE});
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    let private = std::fs::read(fixtures().join("es256-private.pem")).unwrap();
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(&private).unwrap(),
    )
    .unwrap()
}

fn authenticator(url: &str, min_refresh: Duration) -> Authenticator {
    Authenticator::new(&JwtConfig {
        jwks_url: Some(url.into()),
        jwks_min_refresh: min_refresh,
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..JwtConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn jwt_unknown_kid_refetches_the_jwks_at_most_once_per_min_refresh() {
    let idp = JwksServer::start(key_set("old")).await;
    let auth = authenticator(&idp.url, Duration::from_secs(3600));
    assert_eq!(auth.refresh_jwks().await.unwrap(), 1);
    assert_eq!(idp.fetches(), 1);
    assert!(auth.verify(&token("old")).await.is_ok());
    assert_eq!(idp.fetches(), 1, "a known kid fetches nothing");

    // The identity provider rotates its key: the first token with the new kid fetches the
    // set again and is accepted.
    idp.serve(key_set("new"));
    assert!(auth.verify(&token("new")).await.is_ok());
    assert_eq!(idp.fetches(), 2);

    // Unknown kids do not fetch again within jwks_min_refresh, however many arrive.
    for i in 0..50 {
        assert_eq!(
            auth.verify(&token(&format!("bogus-{i}"))).await,
            Err(AuthError::BadSignature)
        );
    }
    assert_eq!(idp.fetches(), 2);
    assert!(auth.verify(&token("new")).await.is_ok());

    // With no minimum, each unknown kid fetches (the limit above is the setting's doing).
    let eager = authenticator(&idp.url, Duration::ZERO);
    for i in 0..3 {
        let _ = eager.verify(&token(&format!("bogus-{i}"))).await;
    }
    assert_eq!(idp.fetches(), 5);
}

#[tokio::test]
async fn jwt_empty_or_unusable_jwks_never_replaces_working_keys() {
    let idp = JwksServer::start(key_set("k1")).await;
    let auth = authenticator(&idp.url, Duration::ZERO);
    assert_eq!(auth.refresh_jwks().await.unwrap(), 1);
    assert!(auth.verify(&token("k1")).await.is_ok());

    let mut no_kid = key_set("k1");
    no_kid["keys"][0]
        .as_object_mut()
        .unwrap()
        .remove("kid")
        .unwrap();
    let symmetric = json!({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]});
    for unusable in [json!({"keys": []}), no_kid, symmetric, json!({"nope": 1})] {
        idp.serve(unusable.clone());
        assert!(auth.refresh_jwks().await.is_err(), "{unusable}");
        // An unknown kid fetches the broken set too: still nothing replaced.
        let _ = auth.verify(&token("k2")).await;
        assert!(
            auth.verify(&token("k1")).await.is_ok(),
            "the working key survives {unusable}"
        );
    }
    // A usable set does replace the keys: k1 is gone with it.
    idp.serve(key_set("k2"));
    assert_eq!(auth.refresh_jwks().await.unwrap(), 1);
    assert!(auth.verify(&token("k2")).await.is_ok());
    assert_eq!(
        auth.verify(&token("k1")).await,
        Err(AuthError::BadSignature)
    );
}
