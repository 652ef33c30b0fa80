//! Token verification: HS256 with a secret, RS256/ES256 with a PEM key or a JWK Set (file or
//! URL), and where a token is looked for.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::Claims;
use crate::config::JwtConfig;
use crate::error::{AuthError, Error};

/// Verifies tokens with the configured keys.
pub struct Authenticator {
    hmac: Option<DecodingKey>,
    public: Option<(DecodingKey, Algorithm)>,
    jwks: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    uses_jwks: bool,
    leeway: u64,
    cookie: String,
}

impl Authenticator {
    /// Loads the keys named by `cfg`.
    pub fn new(cfg: &JwtConfig) -> Result<Self, Error> {
        let hmac = cfg
            .secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose().as_bytes()));
        let public = match &cfg.public_key_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| Error::Jwt(format!("cannot read {}: {e}", path.display())))?;
                if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                    Some((key, Algorithm::RS256))
                } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                    Some((key, Algorithm::ES256))
                } else {
                    return Err(Error::Jwt(format!(
                        "{} is neither an RSA nor an EC public key in PEM",
                        path.display()
                    )));
                }
            }
        };
        let auth = Self {
            hmac,
            public,
            jwks: RwLock::default(),
            uses_jwks: cfg.jwks_file.is_some() || cfg.jwks_url.is_some(),
            leeway: cfg.leeway.as_secs(),
            cookie: cfg.cookie.clone(),
        };
        if let Some(path) = &cfg.jwks_file {
            let text = std::fs::read(path)
                .map_err(|e| Error::Jwt(format!("cannot read {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_slice(&text)
                .map_err(|e| Error::Jwt(format!("{} is not a JWK Set: {e}", path.display())))?;
            if auth.set_jwks(&set) == 0 {
                return Err(Error::Jwt(format!(
                    "{} holds no usable RS256/ES256 key with a kid",
                    path.display()
                )));
            }
        }
        Ok(auth)
    }

    /// Replaces the JWK Set keys; returns how many are usable (RSA, or EC P-256, with a
    /// `kid`).
    pub fn set_jwks(&self, set: &JwkSet) -> usize {
        let keys: HashMap<String, (DecodingKey, Algorithm)> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                Some((kid, (DecodingKey::from_jwk(jwk).ok()?, alg)))
            })
            .collect();
        let n = keys.len();
        *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = keys;
        n
    }

    /// The key for an RS256/ES256 token: by `kid` from the JWK Set, else the PEM key.
    fn public_key(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        if let Some(kid) = kid {
            let jwks = self.jwks.read().unwrap_or_else(|p| p.into_inner());
            if let Some((key, key_alg)) = jwks.get(kid) {
                return if *key_alg == alg {
                    Ok(key.clone())
                } else {
                    Err(AuthError::BadSignature)
                };
            }
        }
        match &self.public {
            Some((key, key_alg)) if *key_alg == alg => Ok(key.clone()),
            Some(_) => Err(AuthError::BadSignature),
            // A JWK Set is configured but has no such kid: not a key we trust.
            None if self.uses_jwks => Err(AuthError::BadSignature),
            None => Err(AuthError::NotConfigured),
        }
    }

    /// Verifies `token`: signature, algorithm, `exp`, and the claims' shape.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hmac.clone().ok_or(AuthError::NotConfigured)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                self.public_key(header.alg, header.kid.as_deref())?
            }
            _ => return Err(AuthError::BadSignature),
        };
        // Exactly the header's algorithm, which was checked against the key's above.
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    AuthError::BadSignature
                }
                _ => AuthError::Malformed,
            })
    }

    /// Finds the token in `Authorization: Bearer`, the cookie, or `access_token`, in that
    /// order, and verifies it.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Claims, AuthError> {
        let token = bearer(headers)
            .or_else(|| cookie(headers, &self.cookie))
            .or(query_token)
            .ok_or(AuthError::Missing)?;
        self.verify(token)
    }
}

/// Fetches `url` now and every `every` into `auth`'s JWK Set, until `shutdown`. A failed fetch
/// keeps the previous keys and is retried sooner (30 s at most).
pub async fn refresh_jwks(
    auth: Arc<Authenticator>,
    url: String,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let fetched = async {
            http.get(&url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        };
        let wait = match fetched.await {
            Ok(set) => {
                let n = auth.set_jwks(&set);
                tracing::info!(%url, keys = n, "JWK Set loaded");
                every
            }
            Err(err) => {
                tracing::warn!(%url, error = %herald_core::error_chain(&err), "fetching the JWK Set failed");
                every.min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::names::TenantId;
    use herald_core::secret::Secret;
    use jsonwebtoken::{EncodingKey, Header};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn auth() -> Authenticator {
        Authenticator::new(&JwtConfig {
            secret: Some(Secret::new("s3cret")),
            ..JwtConfig::default()
        })
        .unwrap()
    }

    fn claims(topics: &[&str], exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            exp,
        }
    }

    fn sign(c: &Claims, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            c,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn future() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    #[test]
    fn verifies_and_refuses_each_failure_distinctly() {
        let a = auth();
        let c = claims(&["leads"], future());
        assert_eq!(a.verify(&sign(&c, "s3cret")).unwrap(), c);
        assert_eq!(a.verify(&sign(&c, "other")), Err(AuthError::BadSignature));
        assert_eq!(a.verify("not.a.jwt"), Err(AuthError::Malformed));
        let old = claims(&["leads"], 1_000_000);
        assert_eq!(a.verify(&sign(&old, "s3cret")), Err(AuthError::Expired));
    }

    #[test]
    fn none_algorithm_and_unconfigured_keys_are_refused() {
        let no_key = Authenticator::new(&JwtConfig::default()).unwrap();
        let c = claims(&["*"], future());
        assert_eq!(no_key.verify(&sign(&c, "x")), Err(AuthError::NotConfigured));
        // An unsigned token: header {"alg":"none"}.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1In0.";
        assert!(auth().verify(unsigned).is_err());
    }

    #[test]
    fn es256_tokens_verify_with_a_public_key_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let a = Authenticator::new(&JwtConfig {
            public_key_file: Some(dir.join("es256-public.pem")),
            ..JwtConfig::default()
        })
        .unwrap();
        let private = std::fs::read(dir.join("es256-private.pem")).unwrap();
        let c = claims(&["*"], future());
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &c,
            &EncodingKey::from_ec_pem(&private).unwrap(),
        )
        .unwrap();
        assert_eq!(a.verify(&token).unwrap(), c);
        // No HS256 secret is configured, so an HS256 token cannot get in.
        assert_eq!(a.verify(&sign(&c, "guess")), Err(AuthError::NotConfigured));
        let bad = Authenticator::new(&JwtConfig {
            jwks_file: Some(dir.join("README.md")),
            ..JwtConfig::default()
        });
        assert!(matches!(bad, Err(Error::Jwt(_))));
        let bad = Authenticator::new(&JwtConfig {
            public_key_file: Some(dir.join("README.md")),
            ..JwtConfig::default()
        });
        assert!(matches!(bad, Err(Error::Jwt(_))));
    }

    #[test]
    fn es256_tokens_verify_with_a_jwks_file_by_kid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let a = Authenticator::new(&JwtConfig {
            jwks_file: Some(dir.join("jwks.json")),
            ..JwtConfig::default()
        })
        .unwrap();
        let private = std::fs::read(dir.join("es256-private.pem")).unwrap();
        let key = EncodingKey::from_ec_pem(&private).unwrap();
        let c = claims(&["*"], future());
        let with_kid = |kid: Option<&str>| {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(&h, &c, &key).unwrap()
        };
        assert_eq!(a.verify(&with_kid(Some("test-es256"))).unwrap(), c);
        assert_eq!(
            a.verify(&with_kid(Some("unknown"))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(a.verify(&with_kid(None)), Err(AuthError::BadSignature));
    }

    #[test]
    fn token_sources_in_order() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; herald_token=fromcookie".parse().unwrap(),
        );
        assert_eq!(cookie(&h, "herald_token"), Some("fromcookie"));
        h.insert(header::AUTHORIZATION, "Bearer fromheader".parse().unwrap());
        assert_eq!(bearer(&h), Some("fromheader"));
    }
}
