//! Ingest configuration: the listener, limits, webhook sources and publish-API keys.
//!
//! Loaded by `herald_core::config::load(file, Some("ingest"))`: defaults, then the `[ingest]`
//! table of the TOML file, then `HERALD_*` / `HERALD_INGEST__*` environment variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald_core::names::{Action, TenantId, Topic, validate_token};
use herald_core::secret::Secret;
use herald_core::service::ServiceConfig;
use serde::{Deserialize, Serialize};

/// Ingest settings. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where to listen (`HERALD_LISTEN`, or `HERALD_INGEST__LISTEN` under `herald up`).
    /// Default `127.0.0.1:8081`.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes; larger → 413. Default 1 MiB.
    pub body_limit: usize,
    /// How long a request may wait for every PubAck before it is answered 503. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub publish_timeout: Duration,
    /// The `Retry-After` (seconds) sent with a 503. Default 2.
    pub retry_after_secs: u32,
    /// Webhook sources by name: `POST /v1/webhooks/{name}`. Default none.
    pub sources: BTreeMap<String, SourceConfig>,
    /// Publish-API keys by tenant: `POST /v1/events` with `Authorization: Bearer <key>`.
    /// Several keys per tenant allow rotation. Default none.
    pub api_keys: BTreeMap<TenantId, Vec<Secret>>,
    /// Until this time (RFC 3339), events stored by an older Herald under the old dedup key
    /// `<tenant>/<id>` are honoured as originals too (see [`crate::legacy`]). Set it to the
    /// upgrade time plus one duplicate window. Default none.
    #[serde(with = "time::serde::rfc3339::option")]
    pub legacy_dedup_until: Option<time::OffsetDateTime>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            body_limit: 1 << 20,
            publish_timeout: Duration::from_secs(5),
            retry_after_secs: 2,
            sources: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            legacy_dedup_until: None,
        }
    }
}

/// One webhook source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceConfig {
    /// The tenant every event of this source belongs to. The payload never decides it.
    pub tenant: TenantId,
    /// How the body is read.
    pub format: Format,
    /// How requests are authenticated.
    pub verify: Verify,
    /// One or more secrets; any of them is accepted (rotation).
    pub secrets: Vec<Secret>,
    /// Topic for `json` and `cloudevents` bodies that do not carry one.
    #[serde(default)]
    pub topic: Option<Topic>,
    /// Action for `json` and `cloudevents` bodies that do not carry one.
    #[serde(default)]
    pub action: Option<Action>,
    /// `json` format: a header holding the event id (e.g. `X-GitHub-Delivery`). A signed
    /// `webhook-id` (standard-webhooks) always wins over it.
    #[serde(default)]
    pub id_header: Option<String>,
    /// `json` format: a header allowed to carry the action (e.g. `X-GitHub-Event`), when
    /// `action` is not set. Opt-in: without it, no header decides the action.
    #[serde(default)]
    pub action_header: Option<String>,
    /// `json` format: a header allowed to carry the topic (e.g. `Herald-Topic`), when `topic`
    /// is not set. Opt-in: without it, no header decides the topic.
    #[serde(default)]
    pub topic_header: Option<String>,
    /// Private events: a dotted path into each raw item (a Sequin message, a Debezium change
    /// event, a CloudEvent, a `json` body) holding the user id(s) the event is for, e.g.
    /// `"record.owner_id"`; or several paths, the first that holds something wins. An item
    /// where none does is refused (400 `invalid_audience`). Default none: public events.
    #[serde(default)]
    pub to: Option<crate::audience::AudiencePaths>,
}

/// Body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Sequin webhook sink: one message or a `{"data":[…]}` batch.
    Sequin,
    /// Debezium change events (with or without the `schema`/`payload` wrapper).
    Debezium,
    /// CloudEvents in structured JSON mode (one event, or a JSON array as a batch).
    Cloudevents,
    /// Any JSON; topic, action and id from the source config or headers.
    Json,
}

/// Verification schemes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum Verify {
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`; Svix's
    /// `svix-*` names too). Secrets are `whsec_<base64>`.
    StandardWebhooks {
        /// Accepted clock skew either way. Default 5 min.
        #[serde(default = "default_tolerance", with = "humantime_serde")]
        tolerance: Duration,
    },
    /// HMAC-SHA256 of the raw body, lowercase hex, in `header` after `prefix`
    /// (GitHub: `X-Hub-Signature-256: sha256=…`). With `timestamp_header`, the signed content
    /// is `<timestamp>.<body>` and the timestamp must be within `tolerance`.
    HmacSha256 {
        /// The header. Default `X-Hub-Signature-256`.
        #[serde(default = "default_hmac_header")]
        header: String,
        /// The prefix before the hex digest. Default `sha256=`.
        #[serde(default = "default_hmac_prefix")]
        prefix: String,
        /// A header carrying the unix time (seconds) of signing, required on every request
        /// and covered by the signature. Default none: the body alone is signed (GitHub),
        /// and a captured request verifies forever.
        #[serde(default)]
        timestamp_header: Option<String>,
        /// With `timestamp_header`: accepted clock skew either way. Default 5 min.
        #[serde(default = "default_tolerance", with = "humantime_serde")]
        tolerance: Duration,
    },
    /// A static token, as real Sequin sends (`Authorization: Bearer <secret>`).
    Bearer {
        /// The header. Default `Authorization`.
        #[serde(default = "default_bearer_header")]
        header: String,
        /// The prefix before the token. Default `Bearer `.
        #[serde(default = "default_bearer_prefix")]
        prefix: String,
    },
}

fn default_tolerance() -> Duration {
    herald_core::signature::DEFAULT_TOLERANCE
}
fn default_hmac_header() -> String {
    "X-Hub-Signature-256".into()
}
fn default_hmac_prefix() -> String {
    "sha256=".into()
}
fn default_bearer_header() -> String {
    "Authorization".into()
}
fn default_bearer_prefix() -> String {
    "Bearer ".into()
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source name is not usable in a URL path segment.
    #[error("source name {0:?} must match [A-Za-z0-9_-]{{1,64}}")]
    SourceName(String),
    /// A source has no secrets.
    #[error("source {0:?} has no secrets: every request must be verified")]
    NoSecrets(String),
    /// A Standard Webhooks secret is not `whsec_<base64>`.
    #[error("source {0:?}: a standard-webhooks secret is not valid base64 (whsec_…)")]
    BadStandardSecret(String),
    /// A header name is not a valid HTTP header name.
    #[error("source {source_name:?}: {header:?} is not a valid header name")]
    HeaderName {
        /// The source.
        source_name: String,
        /// The offending header name.
        header: String,
    },
    /// A tenant has an empty key list.
    #[error("api_keys.{0} is empty")]
    NoApiKeys(String),
    /// A secret is empty, or a standard-webhooks secret is `whsec_` with no key after it:
    /// an HMAC key or token anyone can compute.
    #[error("source {0:?}: a secret is empty (for standard-webhooks: whsec_ with no key)")]
    EmptySecret(String),
    /// An HMAC key is shorter than [`MIN_HMAC_KEY_LEN`] bytes.
    #[error("source {0:?}: an HMAC secret is shorter than {MIN_HMAC_KEY_LEN} bytes")]
    WeakSecret(String),
    /// A publish-API key is empty.
    #[error("api_keys.{0} holds an empty key")]
    EmptyApiKey(String),
    /// Twice a signature tolerance is not shorter than the stream's duplicate window: a
    /// replay still inside the tolerance could arrive after dedup forgot the original.
    #[error(
        "source {source_name:?}: tolerance {tolerance:?} must be under half of stream.duplicate_window ({window:?}), or a replay inside the tolerance outlives de-duplication"
    )]
    ToleranceTooLong {
        /// The source.
        source_name: String,
        /// Its tolerance.
        tolerance: Duration,
        /// `stream.duplicate_window` (`HERALD_STREAM__DUPLICATE_WINDOW`).
        window: Duration,
    },
}

/// The shortest HMAC key accepted, in bytes (after base64-decoding for standard-webhooks).
pub const MIN_HMAC_KEY_LEN: usize = 16;

impl ServiceConfig for Config {
    type Error = ConfigError;

    fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Checks what serde cannot: names, secrets (none empty or weak), header names.
    fn validate(&self) -> Result<(), ConfigError> {
        for (name, src) in &self.sources {
            validate_token("source", name).map_err(|_| ConfigError::SourceName(name.clone()))?;
            validate_secrets(name, src)?;
            let headers = match &src.verify {
                Verify::StandardWebhooks { .. } => vec![],
                Verify::HmacSha256 {
                    header,
                    timestamp_header,
                    ..
                } => std::iter::once(header).chain(timestamp_header).collect(),
                Verify::Bearer { header, .. } => vec![header],
            };
            let extra = [&src.id_header, &src.action_header, &src.topic_header];
            for h in headers.into_iter().chain(extra.into_iter().flatten()) {
                axum::http::HeaderName::try_from(h.as_str()).map_err(|_| {
                    ConfigError::HeaderName {
                        source_name: name.clone(),
                        header: h.clone(),
                    }
                })?;
            }
        }
        for (tenant, keys) in &self.api_keys {
            if keys.is_empty() {
                return Err(ConfigError::NoApiKeys(tenant.to_string()));
            }
            if keys.iter().any(|k| k.expose().is_empty()) {
                return Err(ConfigError::EmptyApiKey(tenant.to_string()));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Checks every signature tolerance against the stream's duplicate window
    /// (`stream.duplicate_window`): twice the tolerance must be shorter, because a signed
    /// timestamp verifies from `tolerance` before it to `tolerance` after it, and a replay
    /// inside that span must still find the original in the dedup table.
    pub fn validate_windows(&self, duplicate_window: Duration) -> Result<(), ConfigError> {
        for (name, src) in &self.sources {
            let tolerance = match &src.verify {
                Verify::StandardWebhooks { tolerance }
                | Verify::HmacSha256 {
                    timestamp_header: Some(_),
                    tolerance,
                    ..
                } => *tolerance,
                Verify::HmacSha256 { .. } | Verify::Bearer { .. } => continue,
            };
            if tolerance.saturating_mul(2) >= duplicate_window {
                return Err(ConfigError::ToleranceTooLong {
                    source_name: name.clone(),
                    tolerance,
                    window: duplicate_window,
                });
            }
        }
        Ok(())
    }
}

/// Refuses a source without secrets, with an empty one, or with an HMAC key anyone could
/// guess. Errors name the source, never the secret.
fn validate_secrets(name: &str, src: &SourceConfig) -> Result<(), ConfigError> {
    if src.secrets.is_empty() {
        return Err(ConfigError::NoSecrets(name.to_owned()));
    }
    for secret in &src.secrets {
        let key_len = match &src.verify {
            Verify::StandardWebhooks { .. } => {
                herald_core::signature::standard::decode_secret(secret.expose())
                    .map_err(|_| ConfigError::BadStandardSecret(name.to_owned()))?
                    .len()
            }
            Verify::HmacSha256 { .. } | Verify::Bearer { .. } => secret.expose().len(),
        };
        if key_len == 0 {
            return Err(ConfigError::EmptySecret(name.to_owned()));
        }
        let hmac = !matches!(src.verify, Verify::Bearer { .. });
        if hmac && key_len < MIN_HMAC_KEY_LEN {
            return Err(ConfigError::WeakSecret(name.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_src: &str) -> Config {
        let v: toml::Value = toml::from_str(toml_src).unwrap();
        v.try_into().unwrap()
    }

    #[test]
    fn a_full_config_parses_and_validates() {
        let cfg = parse(
            r#"
            [sources.crm]
            tenant = "acme"
            format = "sequin"
            verify = { scheme = "bearer" }
            secrets = ["s3cret"]

            [sources.github]
            tenant = "acme"
            format = "json"
            topic = "github"
            action_header = "X-GitHub-Event"
            id_header = "X-GitHub-Delivery"
            verify = { scheme = "hmac-sha256" }
            secrets = ["It's a Secret to Everybody"]

            [sources.svix]
            tenant = "acme"
            format = "cloudevents"
            verify = { scheme = "standard-webhooks", tolerance = "2m" }
            secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

            [api_keys]
            acme = ["key-1", "key-2"]
            "#,
        );
        cfg.validate().unwrap();
        assert_eq!(
            cfg.sources["github"].verify,
            Verify::HmacSha256 {
                header: "X-Hub-Signature-256".into(),
                prefix: "sha256=".into(),
                timestamp_header: None,
                tolerance: Duration::from_secs(300),
            }
        );
        cfg.validate_windows(Duration::from_secs(15 * 60)).unwrap();
        assert_eq!(
            cfg.sources["svix"].verify,
            Verify::StandardWebhooks {
                tolerance: Duration::from_secs(120)
            }
        );
    }

    #[test]
    fn unusable_configs_are_rejected() {
        let mut cfg = parse(
            r#"
            [sources.crm]
            tenant = "acme"
            format = "sequin"
            verify = { scheme = "standard-webhooks" }
            secrets = ["whsec_!!!"]
            "#,
        );
        assert!(matches!(
            cfg.validate(),
            Err(ConfigError::BadStandardSecret(_))
        ));
        let src = cfg.sources.remove("crm").unwrap();
        cfg.sources.insert("bad name".into(), src);
        assert!(matches!(cfg.validate(), Err(ConfigError::SourceName(_))));
        let bad_tenant: Result<Config, _> = toml::from_str::<toml::Value>(
            "[sources.x]\ntenant = \"a.b\"\nformat = \"json\"\nverify = { scheme = \"bearer\" }\nsecrets = [\"x\"]",
        )
        .unwrap()
        .try_into();
        assert!(bad_tenant.is_err(), "tenants are validated at load");
    }

    fn one_source(verify: &str, secret: &str) -> Config {
        parse(&format!(
            "[sources.crm]\ntenant = \"acme\"\nformat = \"json\"\nverify = {verify}\nsecrets = [{secret:?}]"
        ))
    }

    /// The weak-secrets finding: `""` and `whsec_` were accepted, an HMAC key anyone can
    /// compute. Every refusal names the source and never the secret.
    #[test]
    fn config_refuses_weak_secrets() {
        let hmac = r#"{ scheme = "hmac-sha256" }"#;
        let std = r#"{ scheme = "standard-webhooks" }"#;
        let bearer = r#"{ scheme = "bearer" }"#;
        let refused = [
            (hmac, "", "empty"),
            (hmac, "short-secret-15", "shorter than 16"),
            (std, "whsec_", "empty"),
            (std, "", "empty"),
            (std, "whsec_c2hvcnQ=", "shorter than 16"),
            (bearer, "", "empty"),
        ];
        for (verify, secret, why) in refused {
            let err = one_source(verify, secret)
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("\"crm\"") && err.contains(why),
                "{verify} {secret:?}: {err}"
            );
            if secret.len() > "whsec_".len() {
                assert!(!err.contains(secret), "the error shows the secret: {err}");
            }
        }
        one_source(hmac, "exactly-16-bytes").validate().unwrap();
        one_source(std, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .validate()
            .unwrap();
        one_source(bearer, "t").validate().unwrap();
        let mut empty_key = one_source(bearer, "t");
        empty_key
            .api_keys
            .insert("acme".parse().unwrap(), vec![Secret::new("")]);
        assert!(matches!(
            empty_key.validate(),
            Err(ConfigError::EmptyApiKey(t)) if t == "acme"
        ));
    }

    /// The tolerance finding: a signed request verifies for twice the tolerance, and a replay
    /// inside that span must still meet the original in the stream's dedup table.
    #[test]
    fn signature_tolerance_must_be_shorter_than_the_duplicate_window() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let std = one_source(
            r#"{ scheme = "standard-webhooks", tolerance = "5m" }"#,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        std.validate_windows(minutes(15)).unwrap();
        let err = std.validate_windows(minutes(10)).unwrap_err();
        assert!(matches!(err, ConfigError::ToleranceTooLong { .. }), "{err}");
        assert!(err.to_string().contains("\"crm\""), "{err}");
        let timed = one_source(
            r#"{ scheme = "hmac-sha256", timestamp_header = "X-Timestamp", tolerance = "10m" }"#,
            "exactly-16-bytes",
        );
        assert!(timed.validate_windows(minutes(15)).is_err());
        timed.validate_windows(minutes(21)).unwrap();
        let untimed = one_source(r#"{ scheme = "hmac-sha256" }"#, "exactly-16-bytes");
        untimed.validate_windows(minutes(1)).unwrap();
    }
}
