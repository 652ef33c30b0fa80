//! Herald's fuzz targets as plain functions of the input bytes.
//!
//! Each is run by libFuzzer through `fuzz_targets/<name>.rs` (`just fuzz`) and replayed
//! over `corpus/<name>/` by `tests/corpus.rs` on stable Rust, so every input that ever
//! crashed a target stays a regression test. Beyond "never panics", each asserts the
//! property that matters for security:
//!
//! | target | input | property |
//! |---|---|---|
//! | [`signature`] | headers + body | no webhook verifies unless it carries the real signature |
//! | [`formats`] | a webhook body | Sequin/Debezium/CloudEvents/JSON parsing never panics; every event parsed belongs to the source's tenant and has a valid subject |
//! | [`cursor`] | a cursor string | parsing never panics; what parses prints back the same cursor |
//! | [`ws_frame`] | a WebSocket client frame | decoding never panics; topics and cursors only pass through their validating parsers |
//! | [`jwt`] | a bearer token | verification never panics and never accepts a token not signed with the key |

use std::time::Duration;

use herald_core::cursor::Cursor;
use herald_core::names::Topic;
use herald_core::secret::Secret;
use herald_core::signature;
use herald_gateway::auth::Authenticator;
use herald_gateway::config::JwtConfig;
use herald_gateway::filter::{self, Filter};
use herald_gateway::routes::ws::ClientFrame;
use herald_ingest::config::{Format, SourceConfig, Verify};
use herald_ingest::formats::{self, Context};
use herald_ingest::verify::Verifier;
use http::{HeaderMap, HeaderName, HeaderValue};

/// The Standard Webhooks secret of the fuzzed source.
const STD_SECRET: &str = "whsec_ZnV6ei1zZWNyZXQtZnV6ei1zZWNyZXQ=";
/// The HMAC and bearer secret of the fuzzed sources.
const SECRET: &str = "fuzz-secret";
/// A fixed "now" for timestamp checks.
const NOW: i64 = 1_800_000_000;

/// Splits `data` into `n` newline-separated fields and the rest (the body).
fn fields(data: &[u8], n: usize) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    (out, rest)
}

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            map.append(HeaderName::from_static(name), v);
        }
    }
    map
}

fn verifier(verify: Verify, secret: &str) -> Verifier {
    Verifier::new("fuzz", &verify, &[Secret::new(secret)]).expect("a valid fuzz source")
}

/// Signature verification: the three schemes over fuzzed headers and body.
pub fn signature(data: &[u8]) {
    let (f, body) = fields(data, 4);
    let (id, ts, sig, other) = (f[0], f[1], f[2], f[3]);

    let standard = verifier(
        Verify::StandardWebhooks {
            tolerance: Duration::from_secs(300),
        },
        STD_SECRET,
    );
    let h = headers(&[
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]);
    if standard.verify(&h, body, NOW).is_ok() {
        let key = signature::standard::decode_secret(STD_SECRET).expect("the fuzz key");
        let id = std::str::from_utf8(id).expect("a verified id is UTF-8");
        let ts: i64 = std::str::from_utf8(ts)
            .expect("UTF-8")
            .trim()
            .parse()
            .expect("a verified timestamp is a number");
        let genuine = signature::standard::sign(&key, id, ts, body);
        let genuine = genuine.trim_start_matches("v1,");
        assert!(
            String::from_utf8_lossy(sig).contains(genuine),
            "a forged Standard Webhooks signature verified"
        );
    }

    let hmac = verifier(
        Verify::HmacSha256 {
            header: "x-hub-signature-256".into(),
            prefix: "sha256=".into(),
            timestamp_header: None,
            tolerance: std::time::Duration::from_secs(300),
        },
        SECRET,
    );
    if hmac
        .verify(&headers(&[("x-hub-signature-256", sig)]), body, NOW)
        .is_ok()
    {
        let genuine = signature::hmac_hex::sign(SECRET.as_bytes(), "sha256=", body);
        assert!(
            String::from_utf8_lossy(sig).eq_ignore_ascii_case(&genuine),
            "a forged HMAC signature verified"
        );
    }

    let bearer = verifier(
        Verify::Bearer {
            header: "authorization".into(),
            prefix: "Bearer ".into(),
        },
        SECRET,
    );
    if bearer
        .verify(&headers(&[("authorization", other)]), body, NOW)
        .is_ok()
    {
        assert!(
            String::from_utf8_lossy(other).contains(SECRET),
            "a wrong bearer token verified"
        );
    }
}

/// Body parsing in every format, with fuzzed id and action headers.
pub fn formats(data: &[u8]) {
    let (f, body) = fields(data, 2);
    let h = headers(&[
        ("authorization", b"Bearer fuzz-secret"),
        ("x-id", f[0]),
        ("x-action", f[1]),
    ]);
    let bearer = verifier(
        Verify::Bearer {
            header: "authorization".into(),
            prefix: "Bearer ".into(),
        },
        SECRET,
    );
    let verified = bearer
        .verify(&h, body, NOW)
        .expect("the bearer header is right");
    for format in [
        Format::Sequin,
        Format::Debezium,
        Format::Cloudevents,
        Format::Json,
    ] {
        let source: SourceConfig = serde_json::from_value(serde_json::json!({
            "tenant": "acme",
            "format": format,
            "verify": {"scheme": "bearer"},
            "secrets": [SECRET],
            "topic": "fallback",
            "action": "push",
            "id_header": "x-id",
            "action_header": "x-action",
        }))
        .expect("a valid source config");
        let ctx = Context {
            name: "fuzz",
            source: &source,
            headers: &h,
            verified: &verified,
        };
        if let Ok(events) = formats::parse(&ctx, body) {
            for e in events {
                assert_eq!(e.tenant.as_str(), "acme", "the payload chose the tenant");
                let subject = herald_core::subject::event(&e.tenant, &e.topic, &e.action);
                assert!(
                    herald_core::subject::parse_event(&subject).is_some(),
                    "an unparsable subject: {subject}"
                );
                serde_json::to_vec(&e).expect("an event serializes");
            }
        }
    }
}

/// Cursor parsing.
pub fn cursor(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = s.parse::<Cursor>() {
        let printed = c.to_string();
        assert_eq!(
            printed.parse::<Cursor>(),
            Ok(c),
            "{s:?} does not round-trip"
        );
    }
}

/// WebSocket client frames, then the validation their fields go through.
pub fn ws_frame(data: &[u8]) {
    let Ok(frame) = serde_json::from_slice::<ClientFrame>(data) else {
        return;
    };
    let topics = match frame {
        ClientFrame::Subscribe {
            topics,
            since,
            actions,
            conditions,
            ..
        } => {
            if let Some(since) = since {
                let _ = since.parse::<Cursor>();
            }
            if Filter::parse(actions.as_deref(), &conditions).is_ok() {
                assert!(
                    conditions.len() <= filter::MAX_CONDITIONS,
                    "a filter with {} conditions passed",
                    conditions.len()
                );
            }
            topics
        }
        ClientFrame::Unsubscribe { topics } => topics,
        ClientFrame::Refresh { token } => {
            jwt(token.as_bytes());
            Vec::new()
        }
        ClientFrame::Ping => Vec::new(),
    };
    for t in topics {
        if let Ok(topic) = Topic::parse(&t) {
            let s = topic.as_str();
            assert!(
                !s.is_empty() && !s.contains(['.', '*', '>', ' ']),
                "an unsafe topic passed: {s:?}"
            );
        }
    }
}

/// JWT verification with an HS256 key: nothing the fuzzer makes is signed with it.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = JwtConfig {
        secret: Some(Secret::new("fuzz-jwt-secret-fuzz-jwt-secret")),
        ..JwtConfig::default()
    };
    let auth = Authenticator::new(&cfg).expect("an HS256 authenticator");
    assert!(
        ready(auth.verify(token)).is_err(),
        "a token not signed with the key was accepted: {token:?}"
    );
}

/// Polls `fut` once: with a static key and no `jwks_url`, verification never waits on I/O,
/// so it is ready at the first poll (a pending future here is a bug worth a crash).
fn ready<F: std::future::Future>(fut: F) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("verification waited without a remote JWK Set"),
    }
}
