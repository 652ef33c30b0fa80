//! Sending one message to a target, and what the platform's answer means.
//!
//! Every failure is classified once, here, by its kind (never by matching log text):
//! rate-limited (wait what the platform says), transient (back off and retry) or permanent
//! (dead-letter now with the reason).
//!
//! A reason is logged, stored in the `Herald-Reason` header of dead letters and shown by
//! `herald dlq list`, so it never carries a credential: reqwest errors lose their URL (a
//! Slack webhook URL is a credential; Telegram's carries the bot token), and every reason is
//! scrubbed of the target's secrets (whatever a proxy's error page echoes back).

mod slack;
mod telegram;

use std::time::Duration;

use herald_core::names::TenantId;

use crate::config::Config;
use crate::rules::{Destination, Target};

pub use slack::Slack;
pub use telegram::Telegram;

/// Why a send failed, by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 429: try again after `retry_after`.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// What the platform asked for (`parameters.retry_after` / `Retry-After`).
        retry_after: Duration,
    },
    /// 5xx, a network error or a timeout: back off and retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The platform will never accept this (chat not found, archived channel, bad token,
    /// unparsable text): dead-letter it with this reason.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    /// The same error with every occurrence of each of `secrets` replaced by `[redacted]`.
    #[must_use]
    pub fn redact(self, secrets: &[&str]) -> Self {
        let scrub = |mut text: String| {
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                text = text.replace(secret, "[redacted]");
            }
            text
        };
        match self {
            Self::Transient(reason) => Self::Transient(scrub(reason)),
            Self::Permanent(reason) => Self::Permanent(scrub(reason)),
            rate_limited @ Self::RateLimited { .. } => rate_limited,
        }
    }
}

/// A reqwest failure (connect, timeout, body) as a transient error, without the request's
/// URL: reqwest's `Display` includes it, and URLs carry credentials.
pub(crate) fn network(err: reqwest::Error) -> SendError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connect failed"
    } else {
        "network"
    };
    let err = err.without_url();
    SendError::Transient(format!("{what}: {}", herald_core::error_chain(&err)))
}

/// The platform clients.
#[derive(Debug, Clone)]
pub struct Senders {
    telegram: Telegram,
    slack: Slack,
}

impl Senders {
    /// Clients for the configured platforms.
    pub fn new(cfg: &Config) -> Result<Self, reqwest::Error> {
        Ok(Self {
            telegram: Telegram::new(&cfg.telegram)?,
            slack: Slack::new(&cfg.slack)?,
        })
    }

    /// The key of the overall (per-bot) rate limit `target` counts against, if any.
    pub fn bot_key(&self, target: &Target, tenant: &TenantId) -> Option<String> {
        match target.destination {
            Destination::Telegram { .. } => Some(self.telegram.bot_key(tenant)),
            _ => None,
        }
    }

    /// Sends `text` (already escaped and truncated) to `target` for `tenant`.
    pub async fn send(
        &self,
        target: &Target,
        tenant: &TenantId,
        text: &str,
    ) -> Result<(), SendError> {
        match &target.destination {
            Destination::Telegram {
                chat,
                markup,
                silent,
            } => {
                self.telegram
                    .send(tenant, chat, *markup, *silent, text)
                    .await
            }
            Destination::SlackWebhook { url, blocks } => {
                self.slack.webhook(url, *blocks, text).await
            }
            Destination::SlackChat { channel, blocks } => {
                self.slack
                    .post_message(tenant, channel, *blocks, text)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_scrubs_every_secret_from_reasons_and_keeps_the_rest() {
        let err = SendError::Permanent("Cannot POST /bot123:abc/sendMessage at /x".into());
        assert_eq!(
            err.redact(&["123:abc", ""]),
            SendError::Permanent("Cannot POST /bot[redacted]/sendMessage at /x".into())
        );
        let limited = SendError::RateLimited {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(limited.clone().redact(&["x"]), limited);
    }
}
