//! Slack: incoming webhooks and `chat.postMessage`, over reqwest.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::names::TenantId;
use herald_core::secret::Secret;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use super::{SendError, network};
use crate::config::SlackConfig;
use crate::template::{Markup, SLACK_SECTION_MAX_CHARS};

/// What Slack asks for when it sends no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `chat.postMessage` errors worth retrying; every other error is permanent.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

/// A Slack client.
#[derive(Debug, Clone)]
pub struct Slack {
    http: reqwest::Client,
    api_url: String,
    bot_token: Option<Secret>,
    tenant_tokens: BTreeMap<TenantId, Secret>,
}

impl Slack {
    /// A client with `cfg`'s timeout and tokens.
    pub fn new(cfg: &SlackConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(cfg.timeout).build()?,
            api_url: cfg.api_url.trim_end_matches('/').to_owned(),
            bot_token: cfg.bot_token.clone(),
            tenant_tokens: cfg.tenant_tokens.clone(),
        })
    }

    /// Posts to an incoming webhook. Slack answers `ok`, or a status with a plain-text error.
    /// The URL is a credential: no error carries it, nor its path.
    pub async fn webhook(&self, url: &Secret, blocks: bool, text: &str) -> Result<(), SendError> {
        let path = reqwest::Url::parse(url.expose())
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let path = path.trim_matches('/');
        self.post_webhook(url, blocks, text)
            .await
            .map_err(|e| e.redact(&[url.expose(), path]))
    }

    async fn post_webhook(&self, url: &Secret, blocks: bool, text: &str) -> Result<(), SendError> {
        let resp = self
            .http
            .post(url.expose())
            .json(&body(None, blocks, text))
            .send()
            .await
            .map_err(network)?;
        let status = resp.status();
        let retry_after = retry_after(&resp);
        let reason = resp.text().await.unwrap_or_default();
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::TOO_MANY_REQUESTS => Err(SendError::RateLimited { retry_after }),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Err(
                SendError::Transient(format!("slack webhook answered {s}: {reason}")),
            ),
            s => Err(SendError::Permanent(format!(
                "slack webhook answered {}: {}",
                s.as_u16(),
                reason.trim()
            ))),
        }
    }

    /// `chat.postMessage` with the tenant's (or the global) bot token; no error carries it.
    pub async fn post_message(
        &self,
        tenant: &TenantId,
        channel: &str,
        blocks: bool,
        text: &str,
    ) -> Result<(), SendError> {
        let token = self
            .tenant_tokens
            .get(tenant)
            .or(self.bot_token.as_ref())
            .ok_or_else(|| {
                SendError::Permanent(format!("no Slack bot token configured for tenant {tenant}"))
            })?;
        self.post_with(token, channel, blocks, text)
            .await
            .map_err(|e| e.redact(&[token.expose()]))
    }

    async fn post_with(
        &self,
        token: &Secret,
        channel: &str,
        blocks: bool,
        text: &str,
    ) -> Result<(), SendError> {
        let resp = self
            .http
            .post(format!("{}/chat.postMessage", self.api_url))
            .bearer_auth(token.expose())
            .json(&body(Some(channel), blocks, text))
            .send()
            .await
            .map_err(network)?;
        let status = resp.status();
        let retry_after = retry_after(&resp);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SendError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(SendError::Transient(format!("slack answered {status}")));
        }
        let answer: Value = resp.json().await.map_err(|e| {
            SendError::Transient(format!("unreadable slack answer: {}", e.without_url()))
        })?;
        if answer["ok"] == Value::Bool(true) {
            return Ok(());
        }
        let error = answer["error"]
            .as_str()
            .unwrap_or("unknown_error")
            .to_owned();
        match error.as_str() {
            "ratelimited" => Err(SendError::RateLimited { retry_after }),
            e if TRANSIENT_ERRORS.contains(&e) => Err(SendError::Transient(error)),
            _ => Err(SendError::Permanent(error)),
        }
    }
}

fn body(channel: Option<&str>, blocks: bool, text: &str) -> Value {
    let mut body = json!({ "text": text });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if blocks {
        let section = Markup::Mrkdwn.truncate(text, SLACK_SECTION_MAX_CHARS);
        body["blocks"] = json!([{
            "type": "section",
            "text": { "type": "mrkdwn", "text": section }
        }]);
    }
    body
}

fn retry_after(resp: &reqwest::Response) -> Duration {
    resp.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_the_text_as_a_mrkdwn_section() {
        let b = body(Some("C1"), true, "*hi* &amp; bye");
        assert_eq!(b["channel"], "C1");
        assert_eq!(b["text"], "*hi* &amp; bye");
        assert_eq!(b["blocks"][0]["text"]["type"], "mrkdwn");
        assert_eq!(b["blocks"][0]["text"]["text"], "*hi* &amp; bye");
        assert!(body(None, false, "x").get("blocks").is_none());
    }
}
