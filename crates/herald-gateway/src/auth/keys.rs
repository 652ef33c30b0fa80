//! Token verification: HS256 with a secret, RS256/ES256 with a PEM key or a JWK Set (file or
//! URL), the registered claims (`exp`, `nbf`, `iss`, `aud`), and where a token is looked for.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;

use super::Claims;
use super::jwks::Remote;
use crate::config::JwtConfig;
use crate::error::{AuthError, Error};

pub use crate::config::MAX_LEEWAY;

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer`.
    Bearer,
    /// The configured cookie: a browser sends it by itself, whoever's page opened the request.
    Cookie,
    /// The `access_token` query parameter.
    Query,
}

/// Verifies tokens with the configured keys.
pub struct Authenticator {
    hmac: Option<DecodingKey>,
    public: Option<(DecodingKey, Algorithm)>,
    jwks: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    uses_jwks: bool,
    pub(super) remote: Option<Remote>,
    leeway: u64,
    issuer: Option<String>,
    audience: Option<String>,
    cookie: String,
}

/// Why no key was found for a token.
enum Lookup {
    /// A `kid` the JWK Set does not hold (yet): worth fetching the set again.
    UnknownKid,
    /// Refused.
    Refused(AuthError),
}

/// What a token carries besides [`Claims`] and is checked here.
#[derive(Deserialize)]
struct Verified {
    #[serde(flatten)]
    claims: Claims,
    /// A NumericDate: integer or not (jsonwebtoken checks only integers).
    #[serde(default)]
    nbf: Option<serde_json::Number>,
}

impl Authenticator {
    /// Loads the keys named by `cfg` and checks the settings: `jwks_url` must be `https`
    /// (plain `http` only to a loopback host) and needs `issuer` and `audience`; `leeway` is
    /// at most [`MAX_LEEWAY`].
    pub fn new(cfg: &JwtConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let remote = match &cfg.jwks_url {
            None => None,
            Some(url) => Some(Remote::new(url, cfg.jwks_min_refresh)?),
        };
        let auth = Self {
            hmac: cfg
                .secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            public: cfg.public_key_file.as_deref().map(pem_key).transpose()?,
            jwks: RwLock::default(),
            uses_jwks: cfg.jwks_file.is_some() || cfg.jwks_url.is_some(),
            remote,
            leeway: cfg.leeway.as_secs(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
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

    /// Replaces the JWK Set keys with the usable ones of `set` (RSA, or EC P-256, with a
    /// `kid`) and returns how many there are. A set with none changes nothing: an empty or
    /// broken fetch never throws away keys that work.
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
        if n > 0 {
            *self.jwks.write().unwrap_or_else(|p| p.into_inner()) = keys;
        }
        n
    }

    /// The key for a token with this header.
    fn key(&self, header: &Header) -> Result<DecodingKey, Lookup> {
        let alg = header.alg;
        match alg {
            Algorithm::HS256 => {
                return self
                    .hmac
                    .clone()
                    .ok_or(Lookup::Refused(AuthError::NotConfigured));
            }
            Algorithm::RS256 | Algorithm::ES256 => {}
            _ => return Err(Lookup::Refused(AuthError::BadSignature)),
        }
        if let Some(kid) = header.kid.as_deref() {
            let jwks = self.jwks.read().unwrap_or_else(|p| p.into_inner());
            if let Some((key, key_alg)) = jwks.get(kid) {
                return if *key_alg == alg {
                    Ok(key.clone())
                } else {
                    Err(Lookup::Refused(AuthError::BadSignature))
                };
            }
        }
        match &self.public {
            Some((key, key_alg)) if *key_alg == alg => Ok(key.clone()),
            _ if header.kid.is_some() && self.remote.is_some() => Err(Lookup::UnknownKid),
            // A JWK Set is configured but has no such kid: not a key we trust.
            Some(_) => Err(Lookup::Refused(AuthError::BadSignature)),
            None if self.uses_jwks => Err(Lookup::Refused(AuthError::BadSignature)),
            None => Err(Lookup::Refused(AuthError::NotConfigured)),
        }
    }

    /// Verifies `token`: signature, algorithm, `exp` and `nbf` (with the leeway), `iss` and
    /// `aud` when configured, and the claims' shape. A `kid` the JWK Set does not hold fetches
    /// `jwks_url` again first, at most once per `jwks_min_refresh`.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match self.key(&header) {
            Ok(key) => key,
            Err(Lookup::Refused(err)) => return Err(err),
            Err(Lookup::UnknownKid) => {
                if let Some(remote) = &self.remote {
                    remote.refetch_for_unknown_kid(self).await;
                }
                match self.key(&header) {
                    Ok(key) => key,
                    Err(Lookup::Refused(err)) => return Err(err),
                    Err(Lookup::UnknownKid) => return Err(AuthError::BadSignature),
                }
            }
        };
        self.decode(token, header.alg, &key)
    }

    fn decode(&self, token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Claims, AuthError> {
        // Exactly the header's algorithm, which was checked against the key's.
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let verified = jsonwebtoken::decode::<Verified>(token, key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    AuthError::BadSignature
                }
                _ => AuthError::Malformed,
            })?
            .claims;
        if let Some(nbf) = verified.nbf.as_ref().and_then(serde_json::Number::as_f64) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            if nbf > now + self.leeway as f64 {
                return Err(AuthError::NotYetValid);
            }
        }
        // A token accepted within the leeway lives until `exp` + leeway: ending its connection
        // at `exp` would cut it off at once, and the client would reconnect with it in a loop.
        let mut claims = verified.claims;
        claims.exp = claims.exp.saturating_add(self.leeway);
        Ok(claims)
    }

    /// Where the token of a request is: `Authorization: Bearer`, the cookie, or
    /// `access_token`, in that order.
    pub fn token_source(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Option<TokenSource> {
        if bearer(headers).is_some() {
            Some(TokenSource::Bearer)
        } else if cookie(headers, &self.cookie).is_some() {
            Some(TokenSource::Cookie)
        } else {
            query_token.map(|_| TokenSource::Query)
        }
    }

    /// Finds the token in `Authorization: Bearer`, the cookie, or `access_token`, in that
    /// order, and verifies it.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Claims, AuthError> {
        let token = bearer(headers)
            .or_else(|| cookie(headers, &self.cookie))
            .or(query_token)
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }
}

/// A PEM public key: RSA → RS256, EC → ES256.
fn pem_key(path: &std::path::Path) -> Result<(DecodingKey, Algorithm), Error> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::Jwt(format!("cannot read {}: {e}", path.display())))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        Ok((key, Algorithm::RS256))
    } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        Ok((key, Algorithm::ES256))
    } else {
        Err(Error::Jwt(format!(
            "{} is neither an RSA nor an EC public key in PEM",
            path.display()
        )))
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
    use crate::auth::tests::{claims, future};
    use herald_core::secret::Secret;
    use jsonwebtoken::{EncodingKey, Header};

    impl Authenticator {
        fn verify_now(&self, token: &str) -> Result<Claims, AuthError> {
            futures::executor::block_on(self.verify(token))
        }
    }

    fn auth() -> Authenticator {
        Authenticator::new(&JwtConfig {
            secret: Some(Secret::new("s3cret")),
            ..JwtConfig::default()
        })
        .unwrap()
    }

    fn sign(c: &Claims, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            c,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn verifies_and_refuses_each_failure_distinctly() {
        let a = auth();
        let c = claims(&["leads"], future());
        assert_eq!(a.verify_now(&sign(&c, "s3cret")).unwrap(), c);
        assert_eq!(
            a.verify_now(&sign(&c, "other")),
            Err(AuthError::BadSignature)
        );
        assert_eq!(a.verify_now("not.a.jwt"), Err(AuthError::Malformed));
        let old = claims(&["leads"], 1_000_000);
        assert_eq!(a.verify_now(&sign(&old, "s3cret")), Err(AuthError::Expired));
    }

    #[test]
    fn none_algorithm_and_unconfigured_keys_are_refused() {
        let no_key = Authenticator::new(&JwtConfig::default()).unwrap();
        let c = claims(&["*"], future());
        assert_eq!(
            no_key.verify_now(&sign(&c, "x")),
            Err(AuthError::NotConfigured)
        );
        // An unsigned token: header {"alg":"none"}.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1In0.";
        assert!(auth().verify_now(unsigned).is_err());
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
        assert_eq!(a.verify_now(&token).unwrap(), c);
        // No HS256 secret is configured, so an HS256 token cannot get in.
        assert_eq!(
            a.verify_now(&sign(&c, "guess")),
            Err(AuthError::NotConfigured)
        );
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
        assert_eq!(a.verify_now(&with_kid(Some("test-es256"))).unwrap(), c);
        assert_eq!(
            a.verify_now(&with_kid(Some("unknown"))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(a.verify_now(&with_kid(None)), Err(AuthError::BadSignature));
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
