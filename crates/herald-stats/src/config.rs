//! Stats-aggregator configuration.
//!
//! Loaded by `herald_core::config::load(file, Some("stats"))`: defaults, then the `[stats]`
//! table of the TOML file (or the whole file for the standalone binary), then `HERALD_*`
//! (standalone) or `HERALD_STATS__*` (under `herald up`) environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use herald_core::names::{NameError, Topic, validate_token};
use herald_core::service::ServiceConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Stats-aggregator settings. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the ops endpoints (`/healthz`, `/readyz`, `/metrics`) listen (`HERALD_LISTEN`,
    /// or `HERALD_STATS__LISTEN` under `herald up`). Default `127.0.0.1:8083`.
    pub listen: SocketAddr,
    /// The durable consumer on `HERALD_EVENTS` (`HERALD_STATS__CONSUMER`). Every instance
    /// with the same name shares the work. Default `stats`.
    pub consumer: String,
    /// Group-by fields as `<topic>.<field>` (`HERALD_STATS__GROUP_BY='["leads.status"]'`):
    /// each document of that topic counts live rows by the value of `data.<field>`.
    /// Default none.
    pub group_by: Vec<GroupBy>,
    /// The most events folded into one batch (`HERALD_STATS__BATCH_SIZE`). Default 1000.
    pub batch_size: usize,
    /// How long a batch waits for more events after its first one before it is written
    /// (`HERALD_STATS__FLUSH_INTERVAL`). Default 50 ms.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long JetStream waits for an ack before redelivering (`HERALD_STATS__ACK_WAIT`).
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// The most unacknowledged events the consumer hands out across all instances
    /// (`HERALD_STATS__MAX_ACK_PENDING`). Default 20000.
    pub max_ack_pending: i64,
    /// How long a batch whose write failed waits before JetStream redelivers it
    /// (`HERALD_STATS__RETRY_DELAY`). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
    /// How many documents are written at once (`HERALD_STATS__WRITE_CONCURRENCY`). Default 16.
    pub write_concurrency: usize,
    /// The most distinct values counted per action map and per group-by field; further
    /// values are counted under `_other` (`HERALD_STATS__MAX_VALUES`). Default 1000.
    pub max_values: usize,
    /// The state writer (collections; runs only when `[state.collections]` declares some).
    pub state_writer: StateWriterConfig,
}

/// How the state writer batches (`[stats.state_writer]`, `HERALD_STATS__STATE_WRITER__*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateWriterConfig {
    /// The most events in one batch (`…__BATCH_SIZE`). Default 1000.
    pub batch_size: usize,
    /// How long a batch waits for more events after its first one (`…__FLUSH_INTERVAL`).
    /// Default 20 ms.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How often the markers' `applied` is raised to what the rows hold
    /// (`…__MARKER_INTERVAL`); a truncate raises its marker at once. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub marker_interval: Duration,
    /// How many rows are written at once (`…__WRITE_CONCURRENCY`). Default 64.
    pub write_concurrency: usize,
}

impl Default for StateWriterConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            flush_interval: Duration::from_millis(20),
            marker_interval: Duration::from_secs(1),
            write_concurrency: 64,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            consumer: "stats".into(),
            group_by: Vec::new(),
            batch_size: 1000,
            flush_interval: Duration::from_millis(50),
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            retry_delay: Duration::from_secs(1),
            write_concurrency: 16,
            max_values: 1000,
            state_writer: StateWriterConfig::default(),
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The consumer name is not a valid token.
    #[error("consumer: {0}")]
    Consumer(#[source] NameError),
    /// A numeric setting is zero (or negative) where it must be positive.
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
    /// The `[state]` section (which topics are collections) is unusable.
    #[error(transparent)]
    State(#[from] herald_core::state::StateConfigError),
}

impl ServiceConfig for Config {
    type Error = ConfigError;

    fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Checks the settings once at start-up.
    fn validate(&self) -> Result<(), ConfigError> {
        validate_token("consumer", &self.consumer).map_err(ConfigError::Consumer)?;
        for (name, value) in [
            ("batch_size", self.batch_size),
            ("write_concurrency", self.write_concurrency),
            ("max_values", self.max_values),
            ("state_writer.batch_size", self.state_writer.batch_size),
            (
                "state_writer.write_concurrency",
                self.state_writer.write_concurrency,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive(name));
            }
        }
        if self.max_ack_pending <= 0 {
            return Err(ConfigError::NotPositive("max_ack_pending"));
        }
        if self.ack_wait.is_zero() {
            return Err(ConfigError::NotPositive("ack_wait"));
        }
        if self.state_writer.marker_interval.is_zero() {
            return Err(ConfigError::NotPositive("state_writer.marker_interval"));
        }
        Ok(())
    }
}

impl Config {
    /// The group-by fields configured for `topic`, sorted and without duplicates.
    pub fn fields_for(&self, topic: &Topic) -> Vec<String> {
        let mut fields: Vec<String> = self
            .group_by
            .iter()
            .filter(|g| &g.topic == topic)
            .map(|g| g.field.clone())
            .collect();
        fields.sort();
        fields.dedup();
        fields
    }
}

/// One group-by field: `<topic>.<field>`, e.g. `leads.status`. Both parts follow the token
/// grammar `[A-Za-z0-9_-]{1,64}`; the field is a top-level key of the event's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBy {
    /// The topic whose documents get the field.
    pub topic: Topic,
    /// The key of `data` whose value is counted.
    pub field: String,
}

/// Why a group-by entry is not `<topic>.<field>`.
#[derive(Debug, thiserror::Error)]
pub enum GroupByError {
    /// There was no `.` separating topic and field.
    #[error("a group-by field looks like <topic>.<field>, e.g. leads.status")]
    Malformed,
    /// The topic or field is not a valid token.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl FromStr for GroupBy {
    type Err = GroupByError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (topic, field) = s.split_once('.').ok_or(GroupByError::Malformed)?;
        validate_token("field", field)?;
        Ok(Self {
            topic: Topic::parse(topic)?,
            field: field.to_owned(),
        })
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.topic, self.field)
    }
}

impl Serialize for GroupBy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_by_and_rejects_junk() {
        let g: GroupBy = "leads.status".parse().unwrap();
        assert_eq!((g.topic.as_str(), g.field.as_str()), ("leads", "status"));
        assert_eq!(g.to_string(), "leads.status");
        assert!(matches!(
            "leads".parse::<GroupBy>(),
            Err(GroupByError::Malformed)
        ));
        assert!(matches!(
            "leads.".parse::<GroupBy>(),
            Err(GroupByError::Name(_))
        ));
        assert!(matches!(
            "leads.a.b".parse::<GroupBy>(),
            Err(GroupByError::Name(_))
        ));
        assert!(matches!(
            "le ads.status".parse::<GroupBy>(),
            Err(GroupByError::Name(_))
        ));
    }

    #[test]
    fn fields_for_a_topic_are_sorted_and_unique() {
        let cfg = Config {
            group_by: ["leads.status", "deals.stage", "leads.owner", "leads.status"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            ..Config::default()
        };
        assert_eq!(
            cfg.fields_for(&"leads".parse().unwrap()),
            ["owner", "status"]
        );
        assert!(cfg.fields_for(&"games".parse().unwrap()).is_empty());
    }

    #[test]
    fn validation_catches_zero_and_bad_names() {
        assert!(Config::default().validate().is_ok());
        let bad = Config {
            batch_size: 0,
            ..Config::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::NotPositive("batch_size"))
        ));
        let bad = Config {
            consumer: "a.b".into(),
            ..Config::default()
        };
        assert!(matches!(bad.validate(), Err(ConfigError::Consumer(_))));
    }

    #[test]
    fn loads_from_the_stats_section_of_the_environment() {
        let cfg: Config = serde_json::from_value(serde_json::json!({
            "group_by": ["leads.status"], "flush_interval": "10ms"
        }))
        .unwrap();
        assert_eq!(cfg.group_by[0].field, "status");
        assert_eq!(cfg.flush_interval, Duration::from_millis(10));
        assert_eq!(cfg.listen.port(), 8083);
    }
}
