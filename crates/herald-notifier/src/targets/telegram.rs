//! Telegram through teloxide (`sendMessage`), with one bot per tenant token.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::names::TenantId;
use teloxide::payloads::SendMessageSetters;
use teloxide::requests::Requester;
use teloxide::types::{ChatId, ParseMode, Recipient};
use teloxide::{ApiError, Bot, RequestError};

use super::SendError;
use crate::config::TelegramConfig;
use crate::rules::Chat;
use crate::template::Markup;

/// The key under which the global bot's rate limit is kept.
const GLOBAL_BOT: &str = "telegram:*";

/// Telegram bots: the global one and one per tenant with a token of its own.
#[derive(Clone)]
pub struct Telegram {
    global: Option<Bot>,
    tenants: BTreeMap<TenantId, Bot>,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("global", &self.global.is_some())
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Telegram {
    /// Bots for every configured token, talking to `cfg.api_url`.
    pub fn new(cfg: &TelegramConfig) -> Result<Self, reqwest::Error> {
        let client = teloxide::net::default_reqwest_settings()
            .timeout(cfg.timeout)
            .build()?;
        // Validated by `Config::validate`; an unparsable URL leaves the default in place.
        let url = reqwest::Url::parse(&cfg.api_url).ok();
        let bot = |token: &str| {
            let bot = Bot::with_client(token, client.clone());
            match &url {
                Some(u) => bot.set_api_url(u.clone()),
                None => bot,
            }
        };
        Ok(Self {
            global: cfg.bot_token.as_ref().map(|t| bot(t.expose())),
            tenants: cfg
                .tenant_tokens
                .iter()
                .map(|(tenant, t)| (tenant.clone(), bot(t.expose())))
                .collect(),
        })
    }

    /// The rate-limit key of the bot that serves `tenant`.
    pub fn bot_key(&self, tenant: &TenantId) -> String {
        if self.tenants.contains_key(tenant) {
            format!("telegram:{tenant}")
        } else {
            GLOBAL_BOT.to_owned()
        }
    }

    /// `sendMessage` with `text` to `chat`.
    pub async fn send(
        &self,
        tenant: &TenantId,
        chat: &Chat,
        markup: Markup,
        silent: bool,
        text: &str,
    ) -> Result<(), SendError> {
        let bot = self
            .tenants
            .get(tenant)
            .or(self.global.as_ref())
            .ok_or_else(|| {
                SendError::Permanent(format!(
                    "no Telegram bot token configured for tenant {tenant}"
                ))
            })?;
        let recipient = match chat {
            Chat::Id(id) => Recipient::Id(ChatId(*id)),
            Chat::Username(name) => Recipient::ChannelUsername(name.clone()),
        };
        let mut req = bot.send_message(recipient, text);
        req = match markup {
            Markup::MarkdownV2 => req.parse_mode(ParseMode::MarkdownV2),
            Markup::Html => req.parse_mode(ParseMode::Html),
            Markup::Mrkdwn | Markup::Plain => req,
        };
        if silent {
            req = req.disable_notification(true);
        }
        // teloxide hides tokens it recognises in its own errors; scrub every reason anyway
        // (a proxy's error page may echo the `/bot<token>/` path back).
        req.await
            .map(drop)
            .map_err(|e| classify(e).redact(&[bot.token()]))
    }
}

/// What a Bot API error means for delivery.
pub fn classify(err: RequestError) -> SendError {
    match err {
        RequestError::RetryAfter(secs) => SendError::RateLimited {
            retry_after: Duration::from_secs(u64::from(secs.seconds())),
        },
        RequestError::MigrateToChatId(to) => SendError::Permanent(format!(
            "the group was migrated to supergroup {to}; set chat_id = {to}"
        )),
        // Telegram answers 5xx with descriptions teloxide does not know: retry those.
        RequestError::Api(ApiError::Unknown(description)) => SendError::Transient(description),
        // Every known API error is a lasting condition of the chat, bot or text.
        RequestError::Api(api) => SendError::Permanent(api.to_string()),
        RequestError::Network(e) => {
            let mut reason = herald_core::error_chain(&*e);
            if let Some(url) = e.url() {
                reason = reason.replace(url.as_str(), "[redacted]");
            }
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "network"
            };
            SendError::Transient(format!("{what}: {reason}"))
        }
        // Non-JSON answers are proxies' and load balancers' error pages.
        RequestError::InvalidJson { raw, .. } => SendError::Transient(format!(
            "unexpected answer: {}",
            raw.chars().take(120).collect::<String>()
        )),
        RequestError::Io(e) => SendError::Transient(format!("io: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::Seconds;

    #[test]
    fn errors_are_classified_by_kind() {
        assert_eq!(
            classify(RequestError::RetryAfter(Seconds::from_seconds(3))),
            SendError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
        for permanent in [
            ApiError::ChatNotFound,
            ApiError::InvalidToken,
            ApiError::BotBlocked,
        ] {
            assert!(matches!(
                classify(RequestError::Api(permanent)),
                SendError::Permanent(_)
            ));
        }
        assert!(matches!(
            classify(RequestError::Api(ApiError::Unknown(
                "Internal Server Error".into()
            ))),
            SendError::Transient(_)
        ));
    }
}
