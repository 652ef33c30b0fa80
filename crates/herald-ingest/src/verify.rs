//! Request verification: a request becomes [`Verified`] only by passing its source's scheme.
//!
//! All comparisons are constant-time and run over the raw body bytes, before the body is
//! parsed. Several secrets per source are tried in turn (rotation).

use axum::http::HeaderMap;
use herald_core::secret::Secret;
use herald_core::signature::{self, SignatureError};

use crate::config::{ConfigError, Verify};
use crate::error::AuthError;

/// Proof that a request passed verification, with what the scheme vouched for.
#[derive(Debug, Clone)]
pub struct Verified {
    webhook_id: Option<String>,
}

impl Verified {
    /// The signed message id (Standard Webhooks' `webhook-id`), when the scheme has one.
    pub fn webhook_id(&self) -> Option<&str> {
        self.webhook_id.as_deref()
    }

    /// A request verified by a scheme without a message id (for parser tests).
    #[cfg(test)]
    pub(crate) fn without_id() -> Self {
        Self { webhook_id: None }
    }
}

/// A source's verifier, with its secrets decoded (and HMAC keys prepared) once at start-up.
#[derive(Debug)]
pub struct Verifier {
    scheme: Scheme,
}

#[derive(Debug)]
enum Scheme {
    Standard {
        keys: Vec<signature::standard::Key>,
        tolerance: std::time::Duration,
    },
    Hmac {
        header: String,
        prefix: String,
        /// With a timestamp header: its name and the tolerance.
        timestamp: Option<(String, std::time::Duration)>,
        secrets: Vec<Secret>,
    },
    Bearer {
        header: String,
        prefix: String,
        secrets: Vec<Secret>,
    },
}

/// Header names of Standard Webhooks, then Svix's equivalents.
const STD_ID: [&str; 2] = ["webhook-id", "svix-id"];
const STD_TS: [&str; 2] = ["webhook-timestamp", "svix-timestamp"];
const STD_SIG: [&str; 2] = ["webhook-signature", "svix-signature"];

impl Verifier {
    /// Builds the verifier of a source named `name`.
    pub fn new(name: &str, verify: &Verify, secrets: &[Secret]) -> Result<Self, ConfigError> {
        let scheme = match verify {
            Verify::StandardWebhooks { tolerance } => Scheme::Standard {
                keys: secrets
                    .iter()
                    .map(|s| {
                        signature::standard::decode_secret(s.expose())
                            .map(|key| signature::standard::Key::new(&key))
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|_| ConfigError::BadStandardSecret(name.to_owned()))?,
                tolerance: *tolerance,
            },
            Verify::HmacSha256 {
                header,
                prefix,
                timestamp_header,
                tolerance,
            } => Scheme::Hmac {
                header: header.clone(),
                prefix: prefix.clone(),
                timestamp: timestamp_header.clone().map(|h| (h, *tolerance)),
                secrets: secrets.to_vec(),
            },
            Verify::Bearer { header, prefix } => Scheme::Bearer {
                header: header.clone(),
                prefix: prefix.clone(),
                secrets: secrets.to_vec(),
            },
        };
        Ok(Self { scheme })
    }

    /// Verifies a request at unix time `now` (seconds).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, AuthError> {
        match &self.scheme {
            Scheme::Standard { keys, tolerance } => {
                let id = first_header(headers, STD_ID)?;
                let ts = first_header(headers, STD_TS)?;
                let sig = first_header(headers, STD_SIG)?;
                let ts = signature::standard::check_timestamp(ts, now, *tolerance)?;
                signature::standard::verify_with(keys, id, ts, sig, body)?;
                Ok(Verified {
                    webhook_id: Some(id.to_owned()),
                })
            }
            Scheme::Hmac {
                header,
                prefix,
                timestamp,
                secrets,
            } => {
                let value = header_str(headers, header, "signature")?;
                let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.expose().as_bytes()).collect();
                match timestamp {
                    None => {
                        signature::hmac_hex::verify(&secrets, prefix, "signature", value, body)?
                    }
                    Some((ts_header, tolerance)) => {
                        let ts = header_str(headers, ts_header, "timestamp")?;
                        signature::check_timestamp(ts, now, *tolerance, "timestamp")?;
                        signature::hmac_hex::verify_timestamped(
                            &secrets,
                            prefix,
                            "signature",
                            value,
                            ts,
                            body,
                        )?;
                    }
                }
                Ok(Verified { webhook_id: None })
            }
            Scheme::Bearer {
                header,
                prefix,
                secrets,
            } => {
                let value = headers
                    .get(header.as_str())
                    .ok_or_else(|| AuthError::MissingToken(header.clone()))?
                    .to_str()
                    .map_err(|_| AuthError::InvalidToken)?;
                let token =
                    strip_prefix_ignore_case(value, prefix).ok_or(AuthError::InvalidToken)?;
                // Check every secret, so timing does not reveal which one matched.
                let matched = secrets.iter().fold(false, |acc, s| {
                    signature::token_matches(token, s.expose()) | acc
                });
                if matched {
                    Ok(Verified { webhook_id: None })
                } else {
                    Err(AuthError::InvalidToken)
                }
            }
        }
    }
}

/// The value of the first present header among `names` (standard, then Svix).
fn first_header<'h>(
    headers: &'h HeaderMap,
    names: [&'static str; 2],
) -> Result<&'h str, AuthError> {
    let value = names
        .iter()
        .find_map(|n| headers.get(*n))
        .ok_or(SignatureError::MissingHeader(names[0]))?;
    Ok(value
        .to_str()
        .map_err(|_| SignatureError::MalformedHeader(names[0]))?)
}

/// The value of the configured header `name`; errors call it `label`.
fn header_str<'h>(
    headers: &'h HeaderMap,
    name: &str,
    label: &'static str,
) -> Result<&'h str, SignatureError> {
    headers
        .get(name)
        .ok_or(SignatureError::MissingHeader(label))?
        .to_str()
        .map_err(|_| SignatureError::MalformedHeader(label))
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value[prefix.len()..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use herald_test_support::fixtures;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn standard(secrets: &[&str]) -> Verifier {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Verifier::new(
            "t",
            &Verify::StandardWebhooks {
                tolerance: signature::DEFAULT_TOLERANCE,
            },
            &secrets,
        )
        .unwrap()
    }

    /// Every published vector, valid and invalid, with a fixed "now" at the vector's time.
    #[test]
    fn every_signature_vector() {
        let vectors = fixtures::signature_vectors();
        assert!(vectors.len() >= 6);
        for v in vectors {
            let result = match v.scheme.as_str() {
                "standard-webhooks" => {
                    let ts = v.timestamp.unwrap();
                    let (id, ts_s) = (v.id.clone().unwrap(), ts.to_string());
                    // Standard names and Svix names must both work.
                    let svix = standard(&[&v.secret]).verify(
                        &headers(&[
                            ("svix-id", &id),
                            ("svix-timestamp", &ts_s),
                            ("svix-signature", &v.signature),
                        ]),
                        v.payload.as_bytes(),
                        ts,
                    );
                    let std = standard(&[&v.secret]).verify(
                        &headers(&[
                            ("webhook-id", &id),
                            ("webhook-timestamp", &ts_s),
                            ("webhook-signature", &v.signature),
                        ]),
                        v.payload.as_bytes(),
                        ts,
                    );
                    assert_eq!(svix.is_ok(), std.is_ok(), "{}", v.origin);
                    std.map(|_| ())
                }
                "hmac-sha256-hex" => {
                    let header = v.header.clone().unwrap();
                    let verifier = Verifier::new(
                        "t",
                        &Verify::HmacSha256 {
                            header: header.clone(),
                            prefix: v.prefix.clone().unwrap(),
                            timestamp_header: None,
                            tolerance: signature::DEFAULT_TOLERANCE,
                        },
                        &[Secret::new(v.secret.clone())],
                    )
                    .unwrap();
                    verifier
                        .verify(
                            &headers(&[(&header, &v.signature)]),
                            v.payload.as_bytes(),
                            0,
                        )
                        .map(|_| ())
                }
                other => panic!("unknown scheme {other}"),
            };
            assert_eq!(result.is_ok(), v.valid, "{}: {result:?}", v.origin);
        }
    }

    #[test]
    fn standard_window_edges_and_rotation() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let now = 1_800_000_000;
        let sign = |ts: i64| {
            let key = signature::standard::decode_secret(secret).unwrap();
            headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", &ts.to_string()),
                (
                    "webhook-signature",
                    &signature::standard::sign(&key, "msg_1", ts, b"{}"),
                ),
            ])
        };
        let v = standard(&[old, secret]);
        assert!(
            v.verify(&sign(now), b"{}", now).is_ok(),
            "second secret accepted"
        );
        assert!(
            v.verify(&sign(now - 300), b"{}", now).is_ok(),
            "-5 min edge"
        );
        assert!(
            v.verify(&sign(now + 300), b"{}", now).is_ok(),
            "+5 min edge"
        );
        let stale = v.verify(&sign(now - 301), b"{}", now).unwrap_err();
        assert!(matches!(
            stale,
            AuthError::Signature(SignatureError::StaleTimestamp)
        ));
        let future = v.verify(&sign(now + 301), b"{}", now).unwrap_err();
        assert!(matches!(
            future,
            AuthError::Signature(SignatureError::FutureTimestamp)
        ));
        let only_old = standard(&[old]);
        assert!(matches!(
            only_old.verify(&sign(now), b"{}", now),
            Err(AuthError::Signature(SignatureError::Mismatch))
        ));
        assert!(matches!(
            v.verify(&headers(&[("webhook-id", "x")]), b"{}", now),
            Err(AuthError::Signature(SignatureError::MissingHeader(
                "webhook-timestamp"
            )))
        ));
    }

    /// The replay finding: with `hmac-sha256` and no timestamp, a captured request verified
    /// forever. With `timestamp_header`, the timestamp is required, inside the tolerance and
    /// covered by the signature (moving it breaks the signature).
    #[test]
    fn hmac_timestamp_header_is_required_checked_and_signed() {
        let secret = "It's a Secret to Everybody";
        let v = Verifier::new(
            "t",
            &Verify::HmacSha256 {
                header: "X-Signature".into(),
                prefix: "sha256=".into(),
                timestamp_header: Some("X-Timestamp".into()),
                tolerance: signature::DEFAULT_TOLERANCE,
            },
            &[Secret::new(secret)],
        )
        .unwrap();
        let now = 1_800_000_000;
        let signed = |ts: i64, sent_ts: i64| {
            let sig = signature::hmac_hex::sign_timestamped(
                secret.as_bytes(),
                "sha256=",
                &ts.to_string(),
                b"{}",
            );
            headers(&[("x-signature", &sig), ("x-timestamp", &sent_ts.to_string())])
        };
        assert!(v.verify(&signed(now, now), b"{}", now).is_ok());
        assert!(v.verify(&signed(now - 300, now - 300), b"{}", now).is_ok());
        assert!(matches!(
            v.verify(&signed(now - 301, now - 301), b"{}", now),
            Err(AuthError::Signature(SignatureError::StaleTimestamp))
        ));
        // A replay with a fresh timestamp header: the signature no longer matches.
        assert!(matches!(
            v.verify(&signed(now - 3600, now), b"{}", now),
            Err(AuthError::Signature(SignatureError::Mismatch))
        ));
        // GitHub-style (body-only) signatures are not accepted by a timestamped source.
        let body_only = signature::hmac_hex::sign(secret.as_bytes(), "sha256=", b"{}");
        let h = headers(&[
            ("x-signature", &body_only),
            ("x-timestamp", &now.to_string()),
        ]);
        assert!(v.verify(&h, b"{}", now).is_err());
        let h = headers(&[("x-signature", &body_only)]);
        assert!(matches!(
            v.verify(&h, b"{}", now),
            Err(AuthError::Signature(SignatureError::MissingHeader(
                "timestamp"
            )))
        ));
    }

    #[test]
    fn bearer_tokens() {
        let v = Verifier::new(
            "t",
            &Verify::Bearer {
                header: "Authorization".into(),
                prefix: "Bearer ".into(),
            },
            &[Secret::new("old"), Secret::new("new")],
        )
        .unwrap();
        assert!(
            v.verify(&headers(&[("authorization", "Bearer new")]), b"", 0)
                .is_ok()
        );
        assert!(
            v.verify(&headers(&[("authorization", "bearer old")]), b"", 0)
                .is_ok()
        );
        assert!(matches!(
            v.verify(&headers(&[("authorization", "Bearer nope")]), b"", 0),
            Err(AuthError::InvalidToken)
        ));
        assert!(matches!(
            v.verify(&headers(&[("authorization", "Basic new")]), b"", 0),
            Err(AuthError::InvalidToken)
        ));
        assert!(matches!(
            v.verify(&HeaderMap::new(), b"", 0),
            Err(AuthError::MissingToken(_))
        ));
    }
}
