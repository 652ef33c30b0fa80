//! Notifier configuration: the ops listener, the rules file, consumer settings, platform
//! credentials and rate limits.
//!
//! Loaded by `herald_core::config::load(file, Some("notifier"))`: defaults, then the
//! `[notifier]` table of the TOML file, then `HERALD_*` / `HERALD_NOTIFIER__*` environment
//! variables. What to send where lives in a separate rules file ([`crate::rules`]) so it can be
//! reloaded on SIGHUP without restarting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::service::ServiceConfig;
use serde::{Deserialize, Serialize};

/// The Telegram Bot API's public endpoint.
pub const TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// Slack's Web API base (for `chat.postMessage`).
pub const SLACK_API_URL: &str = "https://slack.com/api";

/// Notifier settings. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the ops endpoints (`/healthz`, `/readyz`, `/metrics`) listen
    /// (`HERALD_LISTEN`, or `HERALD_NOTIFIER__LISTEN` under `herald up`).
    /// Default `127.0.0.1:8082`.
    pub listen: SocketAddr,
    /// The rules file (TOML; see `docs/notifier.md`) (`HERALD_RULES_FILE`). Default none:
    /// the notifier idles and says so.
    pub rules_file: Option<PathBuf>,
    /// The durable consumer's name (`HERALD_CONSUMER`). Default `notifier`.
    pub consumer: String,
    /// How long a delivery may stay unacknowledged before JetStream redelivers it. Held
    /// messages are kept alive with progress acks. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Deliveries of one event before it is dead-lettered (`HERALD_MAX_DELIVER`). Default 10.
    pub max_deliver: i64,
    /// Delays before redelivery after a 5xx or a network error, by attempt; the last one
    /// repeats. Default 1 s, 5 s, 30 s, 2 min, 10 min.
    #[serde(with = "duration_list")]
    pub backoff: Vec<Duration>,
    /// Most events held at once (the consumer's `max_ack_pending`). Default 1000.
    pub max_in_flight: usize,
    /// The longest a target's events are held in memory waiting for its rate limit or a
    /// 429 block; a longer wait puts them back in JetStream (nak with that delay) so one
    /// blocked target cannot use up `max_in_flight`. Default 1 min.
    #[serde(with = "humantime_serde")]
    pub max_hold: Duration,
    /// Moved to `[stream] dedup_ttl` (`HERALD_STREAM__DEDUP_TTL`), where `herald provision`
    /// reads it too. Still accepted by the parser so that an old config is refused by
    /// [`ServiceConfig::validate`] with a message, instead of its value being silently ignored.
    #[serde(rename = "dedup_ttl", skip_serializing)]
    pub moved_dedup_ttl: Option<serde::de::IgnoredAny>,
    /// Telegram settings (`HERALD_NOTIFIER__TELEGRAM__*`).
    pub telegram: TelegramConfig,
    /// Slack settings (`HERALD_NOTIFIER__SLACK__*`).
    pub slack: SlackConfig,
    /// Rate limits (`HERALD_NOTIFIER__RATE__*`).
    pub rate: RateConfig,
    /// Digests: several held events to one target go out as one message (`HERALD_NOTIFIER__DIGEST__*`).
    pub digest: DigestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            rules_file: None,
            consumer: "notifier".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            backoff: [1, 5, 30, 120, 600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            max_in_flight: 1000,
            max_hold: Duration::from_secs(60),
            moved_dedup_ttl: None,
            telegram: TelegramConfig::default(),
            slack: SlackConfig::default(),
            rate: RateConfig::default(),
            digest: DigestConfig::default(),
        }
    }
}

/// Telegram Bot API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelegramConfig {
    /// The Bot API base URL (`HERALD_NOTIFIER__TELEGRAM__API_URL`). Default
    /// `https://api.telegram.org`; a local Bot API server or a test fake otherwise.
    pub api_url: String,
    /// The bot token used for tenants without one of their own
    /// (`HERALD_NOTIFIER__TELEGRAM__BOT_TOKEN`). Default none.
    pub bot_token: Option<Secret>,
    /// Bot tokens by tenant (`HERALD_NOTIFIER__TELEGRAM__TENANT_TOKENS='{acme="…"}'`).
    /// Default none.
    pub tenant_tokens: BTreeMap<TenantId, Secret>,
    /// How long one Bot API request may take. Default 17 s (teloxide's default).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            api_url: TELEGRAM_API_URL.into(),
            bot_token: None,
            tenant_tokens: BTreeMap::new(),
            timeout: Duration::from_secs(17),
        }
    }
}

/// Slack settings (incoming webhooks need none of these; `chat.postMessage` needs a token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SlackConfig {
    /// The Web API base URL (`HERALD_NOTIFIER__SLACK__API_URL`). Default
    /// `https://slack.com/api`.
    pub api_url: String,
    /// The bot token (`xoxb-…`) for `chat.postMessage` targets of tenants without one of
    /// their own (`HERALD_NOTIFIER__SLACK__BOT_TOKEN`). Default none.
    pub bot_token: Option<Secret>,
    /// Bot tokens by tenant. Default none.
    pub tenant_tokens: BTreeMap<TenantId, Secret>,
    /// How long one request may take. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            api_url: SLACK_API_URL.into(),
            bot_token: None,
            tenant_tokens: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Rate limits, enforced before each send. Platform limits are per bot and per workspace, so
/// with several notifier replicas divide them by the replica count.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateConfig {
    /// Messages per second to one Telegram chat. Default 1.
    pub telegram_chat_per_sec: u32,
    /// Messages per minute to one Telegram group (a negative chat id). Default 20.
    pub telegram_group_per_min: u32,
    /// Messages per second through one Telegram bot, over all chats. Default 30.
    pub telegram_global_per_sec: u32,
    /// Messages per second to one Slack target. Default 1.
    pub slack_target_per_sec: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            telegram_chat_per_sec: 1,
            telegram_group_per_min: 20,
            telegram_global_per_sec: 30,
            slack_target_per_sec: 1,
        }
    }
}

/// When held events become one digest message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DigestConfig {
    /// Whether a rate-limited target's backlog is sent as digests. Default true.
    pub enabled: bool,
    /// The most events in one digest. Default 20.
    pub max_events: usize,
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_events: 20,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `max_deliver` must allow at least one delivery.
    #[error("max_deliver must be at least 1 (got {0})")]
    MaxDeliver(i64),
    /// `backoff` is empty.
    #[error("backoff must list at least one delay")]
    Backoff,
    /// A rate is zero.
    #[error("rate.{0} must be at least 1")]
    ZeroRate(&'static str),
    /// `ack_wait` is too short to send progress acks in.
    #[error("ack_wait must be at least 1s")]
    AckWait,
    /// An API URL does not parse.
    #[error("{0} is not a valid URL")]
    Url(String),
    /// The consumer name is not a valid token.
    #[error("consumer name {0:?} must match [A-Za-z0-9_-]{{1,64}}")]
    Consumer(String),
    /// A key that has moved to another section.
    #[error("{0} has moved to {1}: set it there (the old key would be ignored)")]
    Moved(&'static str, &'static str),
}

impl ServiceConfig for Config {
    type Error = ConfigError;

    fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Checks what serde cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.moved_dedup_ttl.is_some() {
            return Err(ConfigError::Moved(
                "notifier.dedup_ttl",
                "stream.dedup_ttl (HERALD_STREAM__DEDUP_TTL)",
            ));
        }
        if self.max_deliver < 1 {
            return Err(ConfigError::MaxDeliver(self.max_deliver));
        }
        if self.backoff.is_empty() {
            return Err(ConfigError::Backoff);
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::AckWait);
        }
        herald_core::names::validate_token("consumer", &self.consumer)
            .map_err(|_| ConfigError::Consumer(self.consumer.clone()))?;
        let r = &self.rate;
        for (name, v) in [
            ("telegram_chat_per_sec", r.telegram_chat_per_sec),
            ("telegram_group_per_min", r.telegram_group_per_min),
            ("telegram_global_per_sec", r.telegram_global_per_sec),
            ("slack_target_per_sec", r.slack_target_per_sec),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroRate(name));
            }
        }
        for url in [&self.telegram.api_url, &self.slack.api_url] {
            reqwest::Url::parse(url).map_err(|_| ConfigError::Url(url.clone()))?;
        }
        Ok(())
    }
}

impl Config {
    /// Every platform token configured (global and per tenant, Telegram and Slack).
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        let (tg, slack) = (&self.telegram, &self.slack);
        tg.bot_token
            .iter()
            .chain(tg.tenant_tokens.values())
            .chain(slack.bot_token.iter())
            .chain(slack.tenant_tokens.values())
    }

    /// The backoff before redelivery attempt `delivered + 1` (1-based `delivered`).
    pub fn backoff_for(&self, delivered: i64) -> Duration {
        let i = usize::try_from(delivered.saturating_sub(1)).unwrap_or(0);
        self.backoff
            .get(i)
            .or(self.backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

/// `Vec<Duration>` as a list of humantime strings (`["1s", "5s"]`).
mod duration_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for d in v {
            seq.serialize_element(
                &humantime_serde::re::humantime::format_duration(*d).to_string(),
            )?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| {
                humantime_serde::re::humantime::parse_duration(s).map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let cfg = Config::default();
        cfg.validate().unwrap();
        assert_eq!(cfg.listen.port(), 8082);
        assert_eq!(cfg.backoff_for(1), Duration::from_secs(1));
        assert_eq!(cfg.backoff_for(2), Duration::from_secs(5));
        assert_eq!(cfg.backoff_for(99), Duration::from_secs(600));
    }

    #[test]
    fn the_moved_dedup_ttl_key_is_refused_with_where_it_went() {
        let cfg: Config = toml::from_str(r#"dedup_ttl = "24h""#).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("stream.dedup_ttl"), "{err}");
    }

    #[test]
    fn parses_from_toml_and_rejects_nonsense() {
        let cfg: Config = toml::from_str(
            r#"
            max_deliver = 3
            backoff = ["100ms", "2s"]
            [telegram]
            api_url = "http://127.0.0.1:9/"
            bot_token = "123:abc"
            [rate]
            telegram_chat_per_sec = 5
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.backoff,
            vec![Duration::from_millis(100), Duration::from_secs(2)]
        );
        assert_eq!(format!("{:?}", cfg.telegram.bot_token), "Some([redacted])");
        let zero: Config = toml::from_str("[rate]\nslack_target_per_sec = 0").unwrap();
        assert!(matches!(
            zero.validate(),
            Err(ConfigError::ZeroRate("slack_target_per_sec"))
        ));
        let bad: Config = toml::from_str("max_deliver = 0").unwrap();
        assert!(matches!(bad.validate(), Err(ConfigError::MaxDeliver(0))));
    }
}
