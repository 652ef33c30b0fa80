//! Targets: where messages go, as written in the rules file and as compiled.

use herald_core::names::validate_token;
use herald_core::secret::Secret;
use serde::Deserialize;

use super::{QuietHours, RulesError, TargetId};
use crate::template::Markup;

/// A Telegram chat: a numeric id (groups and channels are negative) or `@channelusername`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Chat {
    /// A numeric chat id.
    Id(i64),
    /// A public channel's `@username`.
    Username(String),
}

impl Chat {
    /// Whether the chat is a group or channel (20 messages/min), not a private chat.
    pub fn is_group(&self) -> bool {
        match self {
            Self::Id(id) => *id < 0,
            Self::Username(_) => true,
        }
    }
}

impl std::fmt::Display for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Username(u) => f.write_str(u),
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// `sendMessage` to a Telegram chat.
    Telegram {
        /// The chat.
        chat: Chat,
        /// How the text is marked up. Default MarkdownV2.
        markup: Markup,
        /// Send without a notification sound.
        silent: bool,
    },
    /// A Slack incoming webhook.
    SlackWebhook {
        /// The webhook URL (a secret: whoever has it can post).
        url: Secret,
        /// Also send the text as a Block Kit section.
        blocks: bool,
    },
    /// Slack `chat.postMessage` with a bot token.
    SlackChat {
        /// The channel id (`C…`) or name.
        channel: String,
        /// Also send the text as a Block Kit section.
        blocks: bool,
    },
}

impl Destination {
    /// `telegram` or `slack`: the `kind` label of the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Telegram { .. } => "telegram",
            Self::SlackWebhook { .. } | Self::SlackChat { .. } => "slack",
        }
    }

    /// The markup the text is written in.
    pub fn markup(&self) -> Markup {
        match self {
            Self::Telegram { markup, .. } => *markup,
            Self::SlackWebhook { .. } | Self::SlackChat { .. } => Markup::Mrkdwn,
        }
    }
}

/// A configured target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its name in the rules file.
    pub id: TargetId,
    /// Where messages go.
    pub destination: Destination,
    /// When it gets nothing.
    pub quiet_hours: Option<QuietHours>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Kind {
    Telegram,
    SlackWebhook,
    SlackChat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetSpec {
    kind: Kind,
    chat_id: Option<Chat>,
    url: Option<Secret>,
    channel: Option<String>,
    markup: Option<Markup>,
    #[serde(default)]
    silent: bool,
    #[serde(default)]
    blocks: bool,
    quiet_hours: Option<QuietHours>,
}

pub(super) fn compile_target(name: &str, spec: TargetSpec) -> Result<Target, RulesError> {
    validate_token("target", name).map_err(|_| RulesError::Name {
        what: "target",
        name: name.to_owned(),
    })?;
    let problem = |p: &str| RulesError::Target {
        target: name.to_owned(),
        problem: p.to_owned(),
    };
    let destination = match spec.kind {
        Kind::Telegram => {
            let chat = spec
                .chat_id
                .ok_or_else(|| problem("a telegram target needs chat_id"))?;
            if spec.url.is_some() || spec.channel.is_some() || spec.blocks {
                return Err(problem("a telegram target takes chat_id, markup, silent"));
            }
            let markup = spec.markup.unwrap_or(Markup::MarkdownV2);
            if markup == Markup::Mrkdwn {
                return Err(problem("telegram markup is markdown_v2, html or plain"));
            }
            Destination::Telegram {
                chat,
                markup,
                silent: spec.silent,
            }
        }
        Kind::SlackWebhook => {
            let url = spec
                .url
                .ok_or_else(|| problem("a slack_webhook target needs url"))?;
            if reqwest::Url::parse(url.expose()).is_err() {
                return Err(problem("url is not a valid URL"));
            }
            if spec.chat_id.is_some() || spec.channel.is_some() || spec.markup.is_some() {
                return Err(problem("a slack_webhook target takes url, blocks"));
            }
            Destination::SlackWebhook {
                url,
                blocks: spec.blocks,
            }
        }
        Kind::SlackChat => {
            let channel = spec
                .channel
                .ok_or_else(|| problem("a slack_chat target needs channel"))?;
            if spec.chat_id.is_some() || spec.url.is_some() || spec.markup.is_some() {
                return Err(problem("a slack_chat target takes channel, blocks"));
            }
            Destination::SlackChat {
                channel,
                blocks: spec.blocks,
            }
        }
    };
    Ok(Target {
        id: name.into(),
        destination,
        quiet_hours: spec.quiet_hours,
    })
}
