//! Registered claims (`nbf`, `iss`, `aud`), the JWT settings that are refused, and times at
//! the edges of their range.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::secret::Secret;
use jsonwebtoken::{EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Authenticator, MAX_LIFETIME};
use crate::config::JwtConfig;
use crate::error::{AuthError, Error};

const SECRET: &str = "s3cret-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn config() -> JwtConfig {
    JwtConfig {
        secret: Some(Secret::new(SECRET)),
        ..JwtConfig::default()
    }
}

fn auth(cfg: JwtConfig) -> Authenticator {
    Authenticator::new(&cfg).unwrap()
}

/// Signs `extra` merged over valid claims.
fn token(extra: Value) -> String {
    let mut claims = json!({"sub": "u1", "tenant": "acme", "topics": ["*"], "exp": now() + 3600});
    if let (Some(base), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn verify(a: &Authenticator, token: &str) -> Result<super::Claims, AuthError> {
    futures::executor::block_on(a.verify(token))
}

#[test]
fn jwt_nbf_in_the_future_is_refused_beyond_the_leeway() {
    let strict = auth(config());
    assert_eq!(
        verify(&strict, &token(json!({"nbf": now() + 120}))),
        Err(AuthError::NotYetValid)
    );
    // A NumericDate need not be an integer.
    assert_eq!(
        verify(&strict, &token(json!({"nbf": now() as f64 + 120.5}))),
        Err(AuthError::NotYetValid)
    );
    assert_eq!(
        verify(&strict, &token(json!({"nbf": "tomorrow"}))),
        Err(AuthError::Malformed)
    );
    assert!(verify(&strict, &token(json!({"nbf": now() - 5}))).is_ok());
    let lenient = auth(JwtConfig {
        leeway: Duration::from_secs(300),
        ..config()
    });
    assert!(verify(&lenient, &token(json!({"nbf": now() + 120}))).is_ok());
    assert!(verify(&lenient, &token(json!({"nbf": now() as f64 + 120.5}))).is_ok());
    assert_eq!(
        verify(&lenient, &token(json!({"nbf": now() + 600}))),
        Err(AuthError::NotYetValid)
    );
    // The leeway covers `exp` too.
    assert!(verify(&lenient, &token(json!({"exp": now() - 60}))).is_ok());
}

#[test]
fn jwt_issuer_and_audience_are_checked_when_configured() {
    let a = auth(JwtConfig {
        issuer: Some("https://idp.example.com/".into()),
        audience: Some("herald".into()),
        ..config()
    });
    let good = json!({"iss": "https://idp.example.com/", "aud": "herald"});
    assert!(verify(&a, &token(good)).is_ok());
    let many = json!({"iss": "https://idp.example.com/", "aud": ["other-app", "herald"]});
    assert!(verify(&a, &token(many)).is_ok());
    let cases = [
        (json!({"aud": "herald"}), AuthError::WrongIssuer),
        (
            json!({"iss": "https://evil.example.com/", "aud": "herald"}),
            AuthError::WrongIssuer,
        ),
        (
            json!({"iss": "https://idp.example.com/"}),
            AuthError::WrongAudience,
        ),
        (
            json!({"iss": "https://idp.example.com/", "aud": "other-app"}),
            AuthError::WrongAudience,
        ),
    ];
    for (claims, err) in cases {
        assert_eq!(verify(&a, &token(claims.clone())), Err(err), "{claims}");
    }
    // Unconfigured, neither is checked (a token for another audience is the issuer's
    // business then).
    let open = auth(config());
    assert!(verify(&open, &token(json!({"iss": "x", "aud": "y"}))).is_ok());
}

#[test]
fn jwt_jwks_url_must_be_https_and_name_issuer_and_audience() {
    let with_url = |url: &str| JwtConfig {
        jwks_url: Some(url.into()),
        issuer: Some("https://idp.example.com/".into()),
        audience: Some("herald".into()),
        ..JwtConfig::default()
    };
    for bad in [
        "http://idp.example.com/.well-known/jwks.json",
        "http://127.0.0.1.nip.io/jwks",
        "ftp://127.0.0.1/jwks",
        "not a url",
    ] {
        assert!(
            matches!(Authenticator::new(&with_url(bad)), Err(Error::Jwt(_))),
            "{bad} is refused"
        );
    }
    for good in [
        "https://idp.example.com/.well-known/jwks.json",
        "http://127.0.0.1:9000/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
    ] {
        assert!(Authenticator::new(&with_url(good)).is_ok(), "{good}");
    }
    let no_issuer = JwtConfig {
        issuer: None,
        ..with_url("https://idp.example.com/jwks")
    };
    assert!(matches!(Authenticator::new(&no_issuer), Err(Error::Jwt(m)) if m.contains("issuer")));
    let no_audience = JwtConfig {
        audience: None,
        ..with_url("https://idp.example.com/jwks")
    };
    assert!(matches!(
        Authenticator::new(&no_audience),
        Err(Error::Jwt(_))
    ));
    let huge_leeway = JwtConfig {
        leeway: Duration::from_secs(u64::MAX / 2),
        ..config()
    };
    assert!(matches!(
        Authenticator::new(&huge_leeway),
        Err(Error::Jwt(_))
    ));
}

/// Claim times anywhere in (and past) their range: integers, negatives, floats, huge.
fn time_value() -> impl Strategy<Value = Value> {
    let now = now();
    prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(0)),
        Just(json!(1e300)),
        Just(json!(-1e300)),
        Just(json!(null)),
        any::<u64>().prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        (-1e20f64..1e20).prop_map(|v| json!(v)),
        (-100_000i64..100_000).prop_map(move |d| json!(now + d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A validly signed token with any `exp`, `iat` and `nbf` is answered, never a panic,
    /// and what it is accepted with can be used for the clock arithmetic of a session.
    #[test]
    fn jwt_extreme_exp_iat_nbf_never_panic(
        exp in time_value(),
        iat in time_value(),
        nbf in prop::option::of(time_value()),
        leeway in 0u64..=3600,
    ) {
        let a = auth(JwtConfig { leeway: Duration::from_secs(leeway), ..config() });
        let mut claims = json!({"exp": exp, "iat": iat});
        if let Some(nbf) = nbf {
            claims["nbf"] = nbf;
        }
        if let Ok(c) = verify(&a, &token(claims)) {
            let remaining = c.remaining();
            prop_assert!(remaining <= MAX_LIFETIME);
            let _ = c.expires_at();
            let _ = tokio::time::Instant::now() + remaining;
            let _ = std::time::Instant::now() + remaining;
        }
    }
}

#[test]
fn jwt_exp_u64_max_is_accepted_without_panicking() {
    let a = auth(config());
    let c = verify(&a, &token(json!({"exp": u64::MAX}))).unwrap();
    assert_eq!(c.exp, u64::MAX);
    assert!(c.remaining() <= MAX_LIFETIME && c.remaining() > Duration::from_secs(3600));
    let _ = tokio::time::Instant::now() + c.remaining();
}
