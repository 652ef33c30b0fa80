//! The one `herald.toml` every binary of a chaos run reads.

use std::path::Path;

use crate::plan;
use crate::stack::{TELEGRAM_BOT_TOKEN, webhook_secret};

/// One config file for every binary: the shared sections at the top, each service's in its
/// table (a standalone binary reads its own table; `HERALD_LISTEN` sets each port).
/// Timeouts are short so that a crash is noticed and redelivered within a CI-sized run.
pub(crate) fn herald_toml(
    nats_url: &str,
    telegram_url: &str,
    rules: &Path,
    log_filter: &str,
) -> String {
    let tenant_sources: String = plan::TENANTS
        .iter()
        .map(|t| {
            format!(
                "[ingest.sources.{t}]\ntenant = \"{t}\"\nformat = \"cloudevents\"\nsecrets = [\"{}\"]\nverify = {{ scheme = \"standard-webhooks\" }}\n\n",
                webhook_secret()
            )
        })
        .collect();
    format!(
        r#"[nats]
url = "{nats_url}"
request_timeout = "2s"
connect_timeout = "1s"

[log]
format = "json"
filter = "{log_filter}"

[ingest]
publish_timeout = "2s"
retry_after_secs = 1

{tenant_sources}[gateway]
heartbeat = "2s"
drain_window = "1s"
connection_check = "100ms"
stream_check = "1s"

[gateway.jwt]
secret = "{jwt}"

[gateway.limits]
per_user = 64

[notifier]
rules_file = "{rules}"
ack_wait = "5s"
max_deliver = 50
backoff = ["200ms", "500ms", "1s"]
max_hold = "5s"

[notifier.telegram]
api_url = "{telegram_url}"
bot_token = "{TELEGRAM_BOT_TOKEN}"
timeout = "5s"

[notifier.slack]
timeout = "5s"

[notifier.rate]
telegram_chat_per_sec = 200
telegram_global_per_sec = 1000
slack_target_per_sec = 200

[stats]
ack_wait = "5s"
retry_delay = "200ms"
flush_interval = "20ms"
"#,
        jwt = plan::JWT_SECRET,
        rules = rules.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::DEFAULT_LOG_FILTER;

    #[test]
    fn config_has_a_source_per_tenant() {
        let cfg = herald_toml(
            "nats://127.0.0.1:1",
            "http://127.0.0.1:2",
            Path::new("/r.toml"),
            DEFAULT_LOG_FILTER,
        );
        for t in plan::TENANTS {
            assert!(cfg.contains(&format!("[ingest.sources.{t}]")), "{cfg}");
        }
        assert!(cfg.contains(&webhook_secret()));
    }
}
