//! Ingest configuration: the listener, limits, webhook sources and publish-API keys.
//!
//! Loaded by `herald_core::config::load(file, Some("ingest"))`: defaults, then the `[ingest]`
//! table of the TOML file (or the whole file for the standalone binary), then `HERALD_*` /
//! `HERALD_INGEST__*` environment variables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald_core::names::{Action, TenantId, Topic, validate_token};
use herald_core::secret::Secret;
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
    /// `json` format: a header holding the event id (e.g. `X-GitHub-Delivery`).
    #[serde(default)]
    pub id_header: Option<String>,
    /// `json` format: a header holding the action (e.g. `X-GitHub-Event`).
    #[serde(default)]
    pub action_header: Option<String>,
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
    /// (GitHub: `X-Hub-Signature-256: sha256=…`).
    HmacSha256 {
        /// The header. Default `X-Hub-Signature-256`.
        #[serde(default = "default_hmac_header")]
        header: String,
        /// The prefix before the hex digest. Default `sha256=`.
        #[serde(default = "default_hmac_prefix")]
        prefix: String,
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
}

impl Config {
    /// Checks what serde cannot: names, secrets, header names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, src) in &self.sources {
            validate_token("source", name).map_err(|_| ConfigError::SourceName(name.clone()))?;
            if src.secrets.is_empty() {
                return Err(ConfigError::NoSecrets(name.clone()));
            }
            let headers = match &src.verify {
                Verify::StandardWebhooks { .. } => {
                    for s in &src.secrets {
                        herald_core::signature::standard::decode_secret(s.expose())
                            .map_err(|_| ConfigError::BadStandardSecret(name.clone()))?;
                    }
                    vec![]
                }
                Verify::HmacSha256 { header, .. } | Verify::Bearer { header, .. } => {
                    vec![header.clone()]
                }
            };
            let extra = [&src.id_header, &src.action_header];
            for h in headers.iter().chain(extra.into_iter().flatten()) {
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
        }
        Ok(())
    }
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
                prefix: "sha256=".into()
            }
        );
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
}
