//! Rules files for the tests, written one call per target and rule instead of the same TOML
//! tables typed again in every test. `{slack}` in a URL is the fake Slack's webhook base
//! ([`crate::helpers::rules_for`]).
//!
//! ```text
//! RulesText::new()
//!     .telegram("tg", 7)
//!     .slack_webhook("hook", "{slack}ops")
//!     .rule("all", &["tg", "hook"], "event {{ data.n }}")
//! ```

use std::fmt::Write;

/// A rules file under construction. Each call opens a table; [`RulesText::with`] adds a key
/// to the table opened last.
#[derive(Debug, Default, Clone)]
pub struct RulesText(String);

/// `value` as a TOML string (quoted and escaped).
fn quoted(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

impl RulesText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens `[targets.<name>]` of `kind`.
    fn target(self, name: &str, kind: &str) -> Self {
        self.with(format!("\n[targets.{name}]"))
            .with(format!("kind = {}", quoted(kind)))
    }

    /// A Telegram chat that gets plain text: nothing to escape.
    pub fn telegram(self, name: &str, chat_id: i64) -> Self {
        self.telegram_markdown(name, chat_id)
            .with(r#"markup = "plain""#)
    }

    /// A Telegram chat with the default markup, MarkdownV2.
    pub fn telegram_markdown(self, name: &str, chat_id: i64) -> Self {
        self.target(name, "telegram")
            .with(format!("chat_id = {chat_id}"))
    }

    /// A Telegram chat that gets HTML.
    pub fn telegram_html(self, name: &str, chat_id: i64) -> Self {
        self.telegram_markdown(name, chat_id)
            .with(r#"markup = "html""#)
    }

    /// A Slack incoming webhook at `url`.
    pub fn slack_webhook(self, name: &str, url: &str) -> Self {
        self.target(name, "slack_webhook")
            .with(format!("url = {}", quoted(url)))
    }

    /// A Slack channel, through `chat.postMessage`.
    pub fn slack_chat(self, name: &str, channel: &str) -> Self {
        self.target(name, "slack_chat")
            .with(format!("channel = {}", quoted(channel)))
    }

    /// A `[[rules]]` entry sending every event to `targets` with `template`; narrow it with
    /// [`RulesText::with`] (`topic = …`, `when = …`).
    pub fn rule(self, name: &str, targets: &[&str], template: &str) -> Self {
        let targets: Vec<String> = targets.iter().map(|t| quoted(t)).collect();
        self.with("\n[[rules]]")
            .with(format!("name = {}", quoted(name)))
            .with(format!("targets = [{}]", targets.join(", ")))
            .with(format!("template = {}", quoted(template)))
    }

    /// A rule on one topic.
    pub fn rule_on(self, topic: &str, name: &str, targets: &[&str], template: &str) -> Self {
        self.rule(name, targets, template)
            .with(format!("topic = {}", quoted(topic)))
    }

    /// Adds a line, `key = value` (TOML), to the table opened last.
    pub fn with(mut self, key_value: impl AsRef<str>) -> Self {
        writeln!(self.0, "{}", key_value.as_ref()).expect("writing to a String");
        self
    }
}

/// The rules file's text: what `TestApp::spawn` takes.
impl std::ops::Deref for RulesText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}
