//! Webhook signature primitives: signing and constant-time verification.
//!
//! These are pure functions over raw bytes, shared by ingest (verifying), the CLI
//! (`herald send`, signing) and tests. Ingest wraps them with header extraction and per-source
//! configuration.
//!
//! - **Standard Webhooks** (also Svix): key = base64(secret without `whsec_`); signed content
//!   `{id}.{timestamp}.{body}`; header `v1,<base64>` values separated by spaces.
//! - **HMAC-SHA256 hex** (GitHub style): `<prefix><lowercase hex HMAC(secret, body)>`; with a
//!   timestamp header, the signed content is `{timestamp}.{body}` (the header's value as sent).
//! - **Static tokens** (what Sequin sends): compared in constant time.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The timestamp tolerance of Standard Webhooks: ±5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Why a signature did not verify. One variant per failure, so callers and logs can tell
/// a forged request from a clock problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header was absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header was present but not in the expected format.
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    /// The timestamp is older than the tolerance.
    #[error("timestamp is too old")]
    StaleTimestamp,
    /// The timestamp is further in the future than the tolerance.
    #[error("timestamp is in the future")]
    FutureTimestamp,
    /// No signature matched any configured secret.
    #[error("no signature matches")]
    Mismatch,
    /// A configured secret is unusable (e.g. not base64 for Standard Webhooks).
    #[error("a configured secret is invalid")]
    InvalidSecret,
}

/// Checks a unix-seconds `timestamp` (the value of the `header` header) against `now` and
/// `tolerance`, either way.
pub fn check_timestamp(
    timestamp: &str,
    now: i64,
    tolerance: Duration,
    header: &'static str,
) -> Result<i64, SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedHeader(header))?;
    let tol = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(ts) > tol {
        return Err(SignatureError::StaleTimestamp);
    }
    if ts.saturating_sub(now) > tol {
        return Err(SignatureError::FutureTimestamp);
    }
    Ok(ts)
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Standard Webhooks (and Svix) signatures.
pub mod standard {
    use super::*;

    /// Decodes a `whsec_<base64>` secret (the prefix is optional) into the HMAC key.
    pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SignatureError> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        B64.decode(b64).map_err(|_| SignatureError::InvalidSecret)
    }

    /// Signs `body` as message `id` at `timestamp`: returns `v1,<base64>`.
    pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut m = mac(key);
        m.update(format!("{id}.{timestamp}.").as_bytes());
        m.update(body);
        format!("v1,{}", B64.encode(m.finalize().into_bytes()))
    }

    /// Checks a `webhook-timestamp` value against `now` (unix seconds) and `tolerance`.
    pub fn check_timestamp(
        timestamp: &str,
        now: i64,
        tolerance: Duration,
    ) -> Result<i64, SignatureError> {
        super::check_timestamp(timestamp, now, tolerance, "webhook-timestamp")
    }

    /// Verifies a `webhook-signature` header (several space-separated `v1,<b64>` values
    /// allowed) against every key. Succeeds if any signature matches any key.
    /// The timestamp must already have been checked with [`check_timestamp`].
    pub fn verify(
        keys: &[Vec<u8>],
        id: &str,
        timestamp: i64,
        signature_header: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let keys: Vec<Key> = keys.iter().map(|k| Key::new(k)).collect();
        verify_with(&keys, id, timestamp, signature_header, body)
    }

    /// A decoded key with its HMAC key schedule already done: a verifier that holds these
    /// does not redo it for every request.
    #[derive(Clone)]
    pub struct Key(HmacSha256);

    impl Key {
        /// Prepares a decoded key (see [`decode_secret`]).
        pub fn new(key: &[u8]) -> Self {
            Self(mac(key))
        }
    }

    impl std::fmt::Debug for Key {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Key([redacted])")
        }
    }

    /// [`verify`] with prepared keys: the HMAC of the signed content is computed once per key
    /// and compared, in constant time, with every `v1` signature of the header.
    pub fn verify_with(
        keys: &[Key],
        id: &str,
        timestamp: i64,
        signature_header: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let mut saw_v1 = false;
        let mut signatures = Vec::new();
        for part in signature_header.split_ascii_whitespace() {
            let Some(b64) = part.strip_prefix("v1,") else {
                continue; // other versions (e.g. v1a asymmetric) are not ours to check
            };
            saw_v1 = true;
            if let Ok(sig) = B64.decode(b64) {
                signatures.push(sig);
            }
        }
        if !saw_v1 {
            return Err(SignatureError::MalformedHeader("webhook-signature"));
        }
        let signed_prefix = format!("{id}.{timestamp}.");
        for key in keys {
            let mut m = key.0.clone();
            m.update(signed_prefix.as_bytes());
            m.update(body);
            let tag = m.finalize().into_bytes();
            // `ct_eq` on slices of different lengths is false.
            if signatures
                .iter()
                .any(|sig| bool::from(tag.as_slice().ct_eq(sig)))
            {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 hex signatures (GitHub's `X-Hub-Signature-256: sha256=…`).
pub mod hmac_hex {
    use super::*;

    /// `<prefix><lowercase hex HMAC-SHA256(secret, body)>`.
    pub fn sign(secret: &[u8], prefix: &str, body: &[u8]) -> String {
        let mut m = mac(secret);
        m.update(body);
        format!("{prefix}{}", hex::encode(m.finalize().into_bytes()))
    }

    /// `<prefix><lowercase hex HMAC-SHA256(secret, "{timestamp}.{body}")>`: the signature of
    /// a source with a `timestamp_header` (`timestamp` exactly as sent in that header).
    pub fn sign_timestamped(secret: &[u8], prefix: &str, timestamp: &str, body: &[u8]) -> String {
        let mut m = mac(secret);
        m.update(timestamp.as_bytes());
        m.update(b".");
        m.update(body);
        format!("{prefix}{}", hex::encode(m.finalize().into_bytes()))
    }

    /// Verifies `header_value` (with `prefix`) against every secret, in constant time.
    pub fn verify(
        secrets: &[&[u8]],
        prefix: &str,
        header: &'static str,
        header_value: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify_content(secrets, prefix, header, header_value, None, body)
    }

    /// [`verify`] of a signature over `"{timestamp}.{body}"` (see [`sign_timestamped`]).
    /// The timestamp must already have been checked with [`super::check_timestamp`].
    pub fn verify_timestamped(
        secrets: &[&[u8]],
        prefix: &str,
        header: &'static str,
        header_value: &str,
        timestamp: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify_content(secrets, prefix, header, header_value, Some(timestamp), body)
    }

    fn verify_content(
        secrets: &[&[u8]],
        prefix: &str,
        header: &'static str,
        header_value: &str,
        timestamp: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let hex_sig = header_value
            .trim()
            .strip_prefix(prefix)
            .ok_or(SignatureError::MalformedHeader(header))?;
        let sig = hex::decode(hex_sig).map_err(|_| SignatureError::MalformedHeader(header))?;
        for secret in secrets {
            let mut m = mac(secret);
            if let Some(ts) = timestamp {
                m.update(ts.as_bytes());
                m.update(b".");
            }
            m.update(body);
            if m.verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// Compares a presented token with an expected one in constant time, whatever their lengths
/// (both are hashed first, so the comparison never short-circuits on length).
pub fn token_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prepared keys: any key against any `v1` signature of the header; the key schedule is
    /// reused across requests without carrying state from one to the next.
    #[test]
    fn prepared_keys_any_key_any_signature() {
        use SignatureError::{MalformedHeader, Mismatch};
        let key = standard::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let other = standard::decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let ts = 1_700_000_000;
        let good = standard::sign(&key, "msg_1", ts, b"{}");
        let stranger = standard::sign(&other, "msg_1", ts, b"{}");
        let both = [standard::Key::new(&other), standard::Key::new(&key)];
        let only_key = &both[1..];
        let only_other = &both[..1];
        let malformed = Err(MalformedHeader("webhook-signature"));
        let cases: [(&[standard::Key], String, Result<(), SignatureError>); 8] = [
            (only_key, good.clone(), Ok(())),
            (both.as_slice(), good.clone(), Ok(())),
            (only_key, format!("v1,bm90IGl0 {good}"), Ok(())),
            (only_key, format!("v1a,xyz {stranger} {good}"), Ok(())),
            (only_key, stranger.clone(), Err(Mismatch)),
            (only_other, stranger.clone(), Ok(())),
            (only_key, "v1,not*base64".to_owned(), Err(Mismatch)),
            (only_key, "v2,abc".to_owned(), malformed.clone()),
        ];
        for (keys, header, expected) in cases {
            // Twice: a prepared key is cloned per use, never consumed or updated in place.
            for _ in 0..2 {
                let got = standard::verify_with(keys, "msg_1", ts, &header, b"{}");
                assert_eq!(got, expected, "{header}");
            }
        }
        let tampered = standard::verify_with(&both, "msg_1", ts, &good, b"{ }");
        assert_eq!(tampered, Err(Mismatch));
        assert_eq!(
            standard::verify_with(&both, "msg_1", ts, "", b"{}"),
            malformed
        );
        assert_eq!(format!("{:?}", both[0]), "Key([redacted])");
    }

    #[test]
    fn standard_round_trip_and_tamper() {
        let key = standard::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard::sign(&key, "msg_1", 1_700_000_000, b"{}");
        assert!(
            standard::verify(
                std::slice::from_ref(&key),
                "msg_1",
                1_700_000_000,
                &sig,
                b"{}"
            )
            .is_ok()
        );
        assert_eq!(
            standard::verify(
                std::slice::from_ref(&key),
                "msg_1",
                1_700_000_000,
                &sig,
                b"{ }"
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            standard::verify(
                std::slice::from_ref(&key),
                "msg_2",
                1_700_000_000,
                &sig,
                b"{}"
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            standard::verify(&[key], "msg_1", 1_700_000_000, "v2,abc", b"{}"),
            Err(SignatureError::MalformedHeader("webhook-signature"))
        );
    }

    #[test]
    fn timestamp_window_edges() {
        let tol = DEFAULT_TOLERANCE;
        let now = 1_700_000_000;
        assert!(standard::check_timestamp(&(now - 300).to_string(), now, tol).is_ok());
        assert!(standard::check_timestamp(&(now + 300).to_string(), now, tol).is_ok());
        assert_eq!(
            standard::check_timestamp(&(now - 301).to_string(), now, tol),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            standard::check_timestamp(&(now + 301).to_string(), now, tol),
            Err(SignatureError::FutureTimestamp)
        );
        assert_eq!(
            standard::check_timestamp("soon", now, tol),
            Err(SignatureError::MalformedHeader("webhook-timestamp"))
        );
    }

    #[test]
    fn hmac_hex_round_trip() {
        let sig = hmac_hex::sign(b"s3cret", "sha256=", b"body");
        assert!(sig.starts_with("sha256="));
        assert!(hmac_hex::verify(&[b"other", b"s3cret"], "sha256=", "x", &sig, b"body").is_ok());
        assert_eq!(
            hmac_hex::verify(&[b"other"], "sha256=", "x", &sig, b"body"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            hmac_hex::verify(&[b"s3cret"], "sha256=", "x", "sha1=00", b"body"),
            Err(SignatureError::MalformedHeader("x"))
        );
    }

    #[test]
    fn hmac_hex_timestamped_covers_the_timestamp() {
        let sig = hmac_hex::sign_timestamped(b"s3cret", "sha256=", "1700000000", b"body");
        let ok = |ts: &str, body: &[u8]| {
            hmac_hex::verify_timestamped(&[b"s3cret"], "sha256=", "x", &sig, ts, body)
        };
        assert_eq!(ok("1700000000", b"body"), Ok(()));
        assert_eq!(ok("1700000001", b"body"), Err(SignatureError::Mismatch));
        assert_eq!(ok("1700000000", b"bodY"), Err(SignatureError::Mismatch));
        // The body-only signature does not pass for the timestamped scheme, and vice versa.
        let plain = hmac_hex::sign(b"s3cret", "sha256=", b"body");
        assert_ne!(plain, sig);
        assert_eq!(
            hmac_hex::verify(&[b"s3cret"], "sha256=", "x", &sig, b"body"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tokens() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("", "abc"));
    }
}
