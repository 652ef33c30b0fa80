//! Gateway configuration: listener, auth, delivery tuning and limits.
//!
//! Loaded by `herald_core::config::load(file, Some("gateway"))`: defaults, then the
//! `[gateway]` table of the TOML file, then `HERALD_<FIELD>` (standalone binary) or
//! `HERALD_GATEWAY__<FIELD>` (under `herald up`). Nested fields use `__`, e.g.
//! `HERALD_GATEWAY__JWT__SECRET`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::secret::Secret;
use herald_core::service::ServiceConfig;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The most clock skew `jwt.leeway` may tolerate.
pub const MAX_LEEWAY: Duration = Duration::from_secs(3600);

/// Gateway settings. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where to listen (`HERALD_LISTEN` / `HERALD_GATEWAY__LISTEN`). Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// How clients authenticate (`HERALD_GATEWAY__JWT__*`).
    pub jwt: JwtConfig,
    /// Interval of the SSE `: hb` comment and the WebSocket ping (`HEARTBEAT`). Not zero.
    /// Default 15 s.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// The base of the SSE `retry:` hint (`RETRY_BASE`). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// Random extra added to `retry_base` per connection, so reconnects spread out
    /// (`RETRY_JITTER`). Default 2 s.
    #[serde(with = "humantime_serde")]
    pub retry_jitter: Duration,
    /// On shutdown, connections are told to `reconnect` at random moments within this window
    /// (`DRAIN_WINDOW`). Default 5 s.
    #[serde(with = "humantime_serde")]
    pub drain_window: Duration,
    /// Events a client may have queued before it is disconnected with `overflow`
    /// (`CLIENT_QUEUE`). Default 1024.
    pub client_queue: usize,
    /// An SSE or WebSocket connection whose write makes no progress for this long (a client
    /// that stopped reading) is closed (`WRITE_TIMEOUT`). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// A connection must send each request head within this time (the first from accept,
    /// later ones on a keep-alive connection from the previous response), or it is closed
    /// (`HEAD_TIMEOUT`). The gateway's `[http].header_timeout`. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub head_timeout: Duration,
    /// The most events the in-memory ring buffer keeps for resumes (`RING_EVENTS`).
    /// Default 10000.
    pub ring_events: usize,
    /// The most bytes (of SSE frames) the ring buffer keeps (`RING_BYTES`). Default 64 MiB.
    pub ring_bytes: usize,
    /// Replay chunks reading from JetStream at once, each with its own short-lived consumer;
    /// more wait their turn (`MAX_REPLAYS`). Default 32.
    pub max_replays: usize,
    /// WebSocket `subscribe`, `unsubscribe` and `refresh` frames one connection may send per
    /// second, on average (`WS_SUBSCRIBE_RATE`); more are refused with an `error` frame
    /// (`rate_limited`). At least 1. Default 2.
    pub ws_subscribe_rate: u32,
    /// Burst above `ws_subscribe_rate` (`WS_SUBSCRIBE_BURST`); a connection that sends this
    /// many refused frames in a row is closed (1008, `subscribe rate exceeded`). At least 1.
    /// Default 10.
    pub ws_subscribe_burst: u32,
    /// How often the tail checks the NATS connection (`CONNECTION_CHECK`). Not zero. Default
    /// 250 ms.
    #[serde(with = "humantime_serde")]
    pub connection_check: Duration,
    /// How often the tail re-reads stream info: lag metric, recreated-stream detection, and a
    /// consumer that delivered nothing for a whole interval while the stream moved on (e.g.
    /// after a stream-leader failover), which is then restarted (`STREAM_CHECK`). Not zero.
    /// Default 2 s.
    #[serde(with = "humantime_serde")]
    pub stream_check: Duration,
    /// Longest `wait` a long-poll may ask for (`POLL_MAX_WAIT`). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub poll_max_wait: Duration,
    /// Most events one long-poll response carries (`POLL_MAX_EVENTS`). Default 500.
    pub poll_max_events: usize,
    /// How long a snapshot is kept for its next page after its last one was served
    /// (`SNAPSHOT_TTL`, `GET /v1/snapshot`). Default 60 s.
    #[serde(with = "humantime_serde")]
    pub snapshot_ttl: Duration,
    /// The most snapshots kept for their next pages at once; the least recently paged goes
    /// first (`SNAPSHOT_RETAINED`). A kept snapshot costs the rows changed since it was cut.
    /// Default 64.
    pub snapshot_retained: usize,
    /// Connection limits (`HERALD_GATEWAY__LIMITS__*`).
    pub limits: Limits,
    /// Origins allowed by CORS (`CORS_ORIGINS`): empty (default) sends no CORS headers,
    /// `["*"]` allows any origin without credentials, a list allows those origins with
    /// credentials (cookies).
    pub cors_origins: Vec<String>,
    /// The `web/` directory of the repository (`WEB_DIR`): serves `/` (its `index.html`),
    /// `/herald.js`, `/herald.d.ts`, `/lib/**` and `/dashboard/**`, nothing else. Default
    /// none (404).
    pub web_dir: Option<PathBuf>,
    /// Topics anyone may read without a token, per tenant (`[gateway.public.<tenant>]
    /// topics = […]`; `HERALD_GATEWAY__PUBLIC__<TENANT>__TOPICS='["prices"]'`), served under
    /// `/v1/public/<tenant>/…`. Default none.
    pub public: BTreeMap<String, TenantTopics>,
    /// Topics whose connected users are tracked, per tenant (`[gateway.presence.<tenant>]
    /// topics = […]`; `HERALD_GATEWAY__PRESENCE__<TENANT>__TOPICS='["lobby"]'`). Default none.
    pub presence: BTreeMap<String, TenantTopics>,
    /// Presence changes are announced at most this often, joins and leaves in between
    /// gathered into one `presence` event per topic (`PRESENCE_DEBOUNCE`). Default 250 ms.
    #[serde(with = "humantime_serde")]
    pub presence_debounce: Duration,
}

/// The topics of one tenant that a feature applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantTopics {
    /// Topic names (no `*`).
    pub topics: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt: JwtConfig::default(),
            heartbeat: Duration::from_secs(15),
            retry_base: Duration::from_secs(1),
            retry_jitter: Duration::from_secs(2),
            drain_window: Duration::from_secs(5),
            client_queue: 1024,
            write_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(10),
            ring_events: 10_000,
            ring_bytes: 64 << 20,
            max_replays: 32,
            ws_subscribe_rate: 2,
            ws_subscribe_burst: 10,
            connection_check: Duration::from_millis(250),
            stream_check: Duration::from_secs(2),
            poll_max_wait: Duration::from_secs(30),
            poll_max_events: 500,
            snapshot_ttl: Duration::from_secs(60),
            snapshot_retained: 64,
            limits: Limits::default(),
            cors_origins: Vec::new(),
            web_dir: None,
            public: BTreeMap::new(),
            presence: BTreeMap::new(),
            presence_debounce: Duration::from_millis(250),
        }
    }
}

impl ServiceConfig for Config {
    type Error = Error;

    fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Checks what serde cannot: the JWT settings ([`JwtConfig::validate`]) and the
    /// intervals a timer ticks on, which must not be zero.
    fn validate(&self) -> Result<(), Error> {
        self.jwt.validate()?;
        for (name, interval) in [
            ("heartbeat", self.heartbeat),
            ("connection_check", self.connection_check),
            ("stream_check", self.stream_check),
            ("presence_debounce", self.presence_debounce),
        ] {
            if interval.is_zero() {
                return Err(Error::NotPositive(name));
            }
        }
        crate::presence::TopicMap::parse("public", &self.public)?;
        crate::presence::TopicMap::parse("presence", &self.presence)?;
        Ok(())
    }
}

/// JWT verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    /// The HS256 secret (`SECRET`). Default none: every connection is refused with 401 until
    /// one is set.
    pub secret: Option<Secret>,
    /// Optional PEM public key file for RS256/ES256 tokens (`PUBLIC_KEY_FILE`). Default none.
    pub public_key_file: Option<PathBuf>,
    /// Optional JWK Set file for RS256/ES256 tokens, keys chosen by `kid` (`JWKS_FILE`).
    /// Default none.
    pub jwks_file: Option<PathBuf>,
    /// Optional JWK Set URL, fetched at start-up and every `jwks_refresh` (`JWKS_URL`).
    /// Default none.
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched again (`JWKS_REFRESH`). Default 10 min.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// The cookie a token may be read from (`COOKIE`). Default `herald_token`.
    pub cookie: String,
    /// Clock skew tolerated when checking `exp` and `nbf` (`LEEWAY`). At most 1 h. Default 0 s.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The `iss` every token must carry (`ISSUER`). Required with `jwks_url`. Default none
    /// (not checked).
    pub issuer: Option<String>,
    /// The `aud` every token must carry (one of its values) (`AUDIENCE`). Required with
    /// `jwks_url`. Default none (not checked).
    pub audience: Option<String>,
    /// A token whose `kid` is not in the JWK Set fetches `jwks_url` again, at most once per
    /// this interval (`JWKS_MIN_REFRESH`). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: None,
            public_key_file: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(600),
            cookie: "herald_token".into(),
            leeway: Duration::ZERO,
            issuer: None,
            audience: None,
            jwks_min_refresh: Duration::from_secs(30),
        }
    }
}

impl JwtConfig {
    /// Checks the settings that need no file or network: `leeway` is at most [`MAX_LEEWAY`],
    /// and `jwks_url` comes with `issuer` and `audience`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.leeway > MAX_LEEWAY {
            return Err(Error::Jwt(format!(
                "jwt.leeway is {:?}; at most {MAX_LEEWAY:?} is allowed",
                self.leeway
            )));
        }
        if self.jwks_url.is_some() && (self.issuer.is_none() || self.audience.is_none()) {
            return Err(Error::Jwt(
                "jwt.jwks_url needs jwt.issuer and jwt.audience: an identity provider's \
                 keys sign tokens for other applications too"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Connection limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Open connections per user (`sub`); more → 429 (`PER_USER`). Default 16.
    pub per_user: usize,
    /// Open connections per tenant; more → 429 (`PER_TENANT`). Default 10000.
    pub per_tenant: usize,
    /// New connections per second, process-wide; more → 503 + `Retry-After`
    /// (`CONNECT_RATE`). Default 1000.
    pub connect_rate: u32,
    /// Burst above `connect_rate` (`CONNECT_BURST`). Default 2000.
    pub connect_burst: u32,
    /// Topics one connection may subscribe to; more → 400 (`TOPICS_PER_CONNECTION`).
    /// Default 64.
    pub topics_per_connection: usize,
    /// Open connections (of any kind, before authentication) per client IP address; more are
    /// answered 429 + `Retry-After` at accept and closed (`PER_IP`). 0 means no cap.
    /// Loopback is not exempt; behind a load balancer or proxy, raise it or set 0. Default 256.
    pub per_ip: usize,
    /// Open public connections (`/v1/public/…`, no token) per client IP address; more → 429 +
    /// `Retry-After` (`PUBLIC_PER_IP`). 0 means no cap. Default 8.
    pub public_per_ip: usize,
    /// New public connections per second per client IP address, on average; more → 503 +
    /// `Retry-After` (`PUBLIC_CONNECT_RATE`). At least 1. Default 2.
    pub public_connect_rate: u32,
    /// Burst above `public_connect_rate` (`PUBLIC_CONNECT_BURST`). At least 1. Default 10.
    pub public_connect_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            per_user: 16,
            per_tenant: 10_000,
            connect_rate: 1000,
            connect_burst: 2000,
            topics_per_connection: 64,
            per_ip: 256,
            public_per_ip: 8,
            public_connect_rate: 2,
            public_connect_burst: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_gateway_section_of_a_file_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            "[gateway]\nlisten = \"0.0.0.0:9000\"\nheartbeat = \"5s\"\ncors_origins = [\"*\"]\n\
             [gateway.jwt]\nsecret = \"s3cret\"\n[gateway.limits]\nper_user = 3\n",
        )
        .unwrap();
        let cfg: Config = herald_core::config::load(Some(&path), Some("gateway")).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(cfg.heartbeat, Duration::from_secs(5));
        assert_eq!(cfg.limits.per_user, 3);
        assert_eq!(cfg.limits.per_tenant, Limits::default().per_tenant);
        assert_eq!(cfg.cors_origins, vec!["*".to_owned()]);
        let secret = cfg.jwt.secret.as_ref().unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert!(
            !format!("{cfg:?}").contains("s3cret"),
            "the secret is never printed"
        );
    }

    #[test]
    fn validate_refuses_zero_intervals_and_unsafe_jwt_settings() {
        assert!(Config::default().validate().is_ok());
        let zero_heartbeat = Config {
            heartbeat: Duration::ZERO,
            ..Config::default()
        };
        let err = zero_heartbeat.validate().unwrap_err().to_string();
        assert_eq!(err, "heartbeat must be greater than zero");
        let mut big_leeway = Config::default();
        big_leeway.jwt.leeway = MAX_LEEWAY + Duration::from_secs(1);
        assert!(matches!(big_leeway.validate(), Err(Error::Jwt(m)) if m.contains("leeway")));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = Config::default();
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(cfg.heartbeat, Duration::from_secs(15));
        assert!(cfg.web_dir.is_none() && cfg.cors_origins.is_empty() && cfg.jwt.secret.is_none());
    }
}
