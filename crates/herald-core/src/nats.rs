//! Connecting to NATS, with retry, credentials and TLS.
//!
//! [`connect`] returns at once and keeps (re)connecting in the background, so a service can
//! start, answer `/healthz`, and report "not ready" while NATS is away. [`provision_until_ready`]
//! then retries provisioning with backoff until it succeeds or shutdown is requested.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, connection::State, jetstream};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::retry::{Policy, with_backoff};
use crate::secret::Secret;
use crate::streams::{self, Provisioned, StreamSettings};

/// How to reach NATS. Every field has a documented default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated (`HERALD_NATS__URL`). Default `nats://127.0.0.1:4222`.
    pub url: String,
    /// A `.creds` file (JWT + NKey) for decentralized auth. Default none.
    pub creds_file: Option<PathBuf>,
    /// A static token. Default none.
    pub token: Option<Secret>,
    /// User name for user/password auth. Default none.
    pub user: Option<String>,
    /// Password for user/password auth. Default none.
    pub password: Option<Secret>,
    /// Require TLS even if the server does not ask for it. Default false.
    pub tls_required: bool,
    /// A PEM file of CA certificates to trust. Default none (the system roots).
    pub tls_ca_file: Option<PathBuf>,
    /// A PEM client certificate for mutual TLS (with `tls_key_file`). Default none.
    pub tls_cert_file: Option<PathBuf>,
    /// The PEM private key of `tls_cert_file`. Default none.
    pub tls_key_file: Option<PathBuf>,
    /// How long one connection attempt may take. Default 5 s.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a JetStream request (including a publish waiting for its PubAck) may take.
    /// Default 5 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// The subject prefix of this client's reply inboxes (`HERALD_NATS__INBOX_PREFIX`). With
    /// the deploy/ NATS config each identity may only subscribe to `_INBOX_<user>.>`, so no
    /// service can read or forge another's JetStream replies. Default `_INBOX`.
    pub inbox_prefix: String,
    /// The liveness probe (`[nats.probe]`): how often the server is asked and how long it
    /// has to answer. Default every 500 ms with a 1 s deadline.
    pub probe: crate::liveness::ProbeConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            creds_file: None,
            token: None,
            user: None,
            password: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            inbox_prefix: DEFAULT_INBOX_PREFIX.into(),
            probe: crate::liveness::ProbeConfig::default(),
        }
    }
}

/// The NATS clients' conventional reply inbox prefix.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX";

/// Why the NATS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The credentials file could not be read.
    #[error("could not read NATS credentials file {path}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The client could not be created (bad URL or options).
    #[error("could not set up the NATS client for {url}")]
    Client {
        /// The configured URL.
        url: String,
        /// The cause.
        #[source]
        source: async_nats::ConnectError,
    },
    /// `tls_cert_file` was given without `tls_key_file` or the other way round.
    #[error("tls_cert_file and tls_key_file must be given together")]
    HalfClientCert,
}

/// Connects to NATS as `name`. Returns as soon as the client exists; the first connection
/// and every reconnection happen in the background, forever, with logged state changes.
pub async fn connect(cfg: &NatsConfig, name: &str) -> Result<Client, ConnectError> {
    let service = name.to_owned();
    let opts = options(cfg, name)
        .await?
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let service = service.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(%service, "NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%service, "NATS disconnected; reconnecting")
                    }
                    other => tracing::info!(%service, event = %other, "NATS event"),
                }
            }
        });
    opts.connect(server_urls(&cfg.url))
        .await
        .map_err(|source| ConnectError::Client {
            url: cfg.url.clone(),
            source,
        })
}

/// Connects to NATS as `name` once, failing at once if the server is away or refuses the
/// credentials: for the CLI (`herald tail`, `herald dlq`, `herald provision`).
pub async fn connect_once(cfg: &NatsConfig, name: &str) -> Result<Client, ConnectError> {
    options(cfg, name)
        .await?
        .connect(server_urls(&cfg.url))
        .await
        .map_err(|source| ConnectError::Client {
            url: cfg.url.clone(),
            source,
        })
}

/// Credentials, TLS, inbox prefix and timeouts from `cfg`.
async fn options(cfg: &NatsConfig, name: &str) -> Result<ConnectOptions, ConnectError> {
    let mut opts = match &cfg.creds_file {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| ConnectError::Credentials {
                path: path.clone(),
                source,
            })?,
        None => ConnectOptions::new(),
    };
    if let Some(token) = &cfg.token {
        opts = opts.token(token.expose().to_owned());
    }
    if let (Some(user), Some(pass)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(user.clone(), pass.expose().to_owned());
    }
    if cfg.tls_required {
        opts = opts.require_tls(true);
    }
    if let Some(ca) = &cfg.tls_ca_file {
        opts = opts.add_root_certificates(ca.clone());
    }
    match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => opts = opts.add_client_certificate(cert.clone(), key.clone()),
        (None, None) => {}
        _ => return Err(ConnectError::HalfClientCert),
    }
    Ok(opts
        .name(name)
        .custom_inbox_prefix(&cfg.inbox_prefix)
        .connection_timeout(cfg.connect_timeout)
        .request_timeout(Some(cfg.request_timeout)))
}

/// The server URLs in a comma-separated list (the client parses one URL per entry, and a
/// cluster's URLs are given all at once so the client can fail over between them).
pub fn server_urls(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// Backoff between reconnection attempts: 50 ms doubling to a 2 s cap. Short, because
/// every moment disconnected is a moment ingest answers 503.
fn reconnect_delay(attempts: usize) -> Duration {
    Policy::doubling(Duration::from_millis(50), Duration::from_secs(2))
        .delay(u32::try_from(attempts).unwrap_or(u32::MAX))
}

/// A JetStream context whose publishes and requests time out after `request_timeout`.
pub fn jetstream(client: Client, cfg: &NatsConfig) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(cfg.request_timeout);
    js
}

/// Whether the client is connected right now.
pub fn is_connected(client: &Client) -> bool {
    client.connection_state() == State::Connected
}

/// Provisions streams, retrying with backoff (100 ms doubling to 5 s) until it succeeds.
/// Returns `None` as soon as `shutdown` fires, even in the middle of an attempt.
pub async fn provision_until_ready(
    js: &jetstream::Context,
    settings: &StreamSettings,
    shutdown: &CancellationToken,
) -> Option<Provisioned> {
    let policy = Policy::doubling(Duration::from_millis(100), Duration::from_secs(5));
    with_backoff(policy, shutdown, "provisioning streams failed", || {
        streams::provision(js, settings)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_url_is_every_server() {
        assert_eq!(
            server_urls("nats://a:4222, nats://b:4222,,nats://c:4222"),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
        assert_eq!(server_urls("nats://a:4222"), ["nats://a:4222"]);
    }

    #[test]
    fn reconnect_delay_is_bounded() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(50));
        assert_eq!(reconnect_delay(1), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100), Duration::from_secs(2));
    }
}
