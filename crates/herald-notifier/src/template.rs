//! Message templates (minijinja) with escaping per output format, and clean truncation.
//!
//! Every value a template prints is escaped for the target's format, so a lead called
//! `Ada_*[Lovelace]*` cannot break Telegram MarkdownV2 parsing or inject a Slack `<!channel>`.
//! Literal template text is not escaped: it is the rule author's markup. `{{ x | safe }}`
//! prints a value unescaped.

use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// Telegram's limit on a message's text, in characters.
pub const TELEGRAM_MAX_CHARS: usize = 4096;
/// Slack's limit on a message's `text`, in characters (longer text is cut by Slack itself).
pub const SLACK_MAX_CHARS: usize = 40_000;
/// Slack's limit on a section block's text, in characters.
pub const SLACK_SECTION_MAX_CHARS: usize = 3000;
/// What ends a truncated message.
const ELLIPSIS: &str = "…";

/// How a message's text is marked up, which decides how values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Markup {
    /// Telegram MarkdownV2: `_*[]()~\`>#+-=|{}.!` and `\` are backslash-escaped.
    MarkdownV2,
    /// Telegram HTML: `& < > "` become entities.
    Html,
    /// Slack mrkdwn: `& < >` become entities (all Slack asks for).
    Mrkdwn,
    /// No markup; nothing is escaped.
    Plain,
}

impl Markup {
    fn tag(self) -> &'static str {
        match self {
            Self::MarkdownV2 => "mdv2",
            Self::Html => "html",
            Self::Mrkdwn => "mrkdwn",
            Self::Plain => "plain",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        [Self::MarkdownV2, Self::Html, Self::Mrkdwn, Self::Plain]
            .into_iter()
            .find(|m| m.tag() == tag)
    }

    /// Escapes `text` so the platform shows it literally.
    pub fn escape(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() + text.len() / 8);
        for c in text.chars() {
            match (self, c) {
                (Self::MarkdownV2, '_' | '*' | '[' | ']' | '(' | ')' | '~' | '`' | '>' | '#')
                | (Self::MarkdownV2, '+' | '-' | '=' | '|' | '{' | '}' | '.' | '!' | '\\') => {
                    out.push('\\');
                    out.push(c);
                }
                (Self::Html | Self::Mrkdwn, '&') => out.push_str("&amp;"),
                (Self::Html | Self::Mrkdwn, '<') => out.push_str("&lt;"),
                (Self::Html | Self::Mrkdwn, '>') => out.push_str("&gt;"),
                (Self::Html, '"') => out.push_str("&quot;"),
                _ => out.push(c),
            }
        }
        out
    }

    /// Cuts `text` to at most `max` characters without leaving a broken escape, entity or
    /// tag behind, closing what was left open, and ending it with `…`.
    pub fn truncate(self, text: &str, max: usize) -> String {
        if text.chars().count() <= max {
            return text.to_owned();
        }
        // Room for the ellipsis and for closing what the cut leaves open.
        let reserve = 1 + 24;
        let keep: String = text.chars().take(max.saturating_sub(reserve)).collect();
        let mut out = match self {
            Self::MarkdownV2 => close_markdown_v2(&keep),
            Self::Html => close_html(&keep),
            Self::Mrkdwn => drop_partial_entity(&keep).to_owned(),
            Self::Plain => keep,
        };
        out.push_str(ELLIPSIS);
        out
    }
}

/// Drops a trailing `&…` entity or `<…` tag that the cut left unfinished.
fn drop_partial_entity(text: &str) -> &str {
    let amp = text.rfind('&').filter(|&i| !text[i..].contains(';'));
    let lt = text.rfind('<').filter(|&i| !text[i..].contains('>'));
    match amp.into_iter().chain(lt).min() {
        Some(i) => &text[..i],
        None => text,
    }
}

fn close_html(text: &str) -> String {
    let mut out = drop_partial_entity(text).to_owned();
    let mut open: Vec<String> = Vec::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find('<') {
        let Some(j) = rest[i..].find('>') else { break };
        let tag = &rest[i + 1..i + j];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if tag.starts_with('/') {
            if let Some(pos) = open.iter().rposition(|t| *t == name) {
                open.truncate(pos);
            }
        } else if !tag.ends_with('/') && !name.is_empty() {
            open.push(name);
        }
        rest = &rest[i + j + 1..];
    }
    for tag in open.iter().rev() {
        out.push_str(&format!("</{tag}>"));
    }
    out
}

fn close_markdown_v2(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut open: Vec<&'static str> = Vec::new();
    let mut link_start: Option<(usize, usize)> = None; // (byte offset in out, open.len())
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => break, // an escape cut in half: drop the lone backslash
            }
            continue;
        }
        let marker: Option<&'static str> = match c {
            '*' => Some("*"),
            '~' => Some("~"),
            '`' => Some("`"),
            '_' if chars.peek() == Some(&'_') => {
                chars.next();
                Some("__")
            }
            '_' => Some("_"),
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                Some("||")
            }
            _ => None,
        };
        match marker {
            Some(m) => {
                out.push_str(m);
                if open.last() == Some(&m) {
                    open.pop();
                } else {
                    open.push(m);
                }
            }
            None => {
                match c {
                    '[' => link_start = Some((out.len(), open.len())),
                    ')' => link_start = None,
                    _ => {}
                }
                out.push(c);
            }
        }
    }
    if let Some((at, depth)) = link_start {
        // A link cut before its `)`: drop it, and the markers opened inside it.
        out.truncate(at);
        open.truncate(depth);
    }
    for m in open.iter().rev() {
        out.push_str(m);
    }
    out
}

/// A template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct TemplateError {
    /// The template (`<rule>.<markup>`).
    pub name: String,
    /// The engine's error (names the line).
    #[source]
    pub source: minijinja::Error,
}

/// Every rule's template, compiled once per markup it is rendered in.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

fn key(rule: &str, markup: Markup) -> String {
    format!("{rule}.{}", markup.tag())
}

impl Templates {
    /// Compiles `(rule name, markup, source)` triples; the first bad template is an error.
    pub fn compile<'a>(
        sources: impl IntoIterator<Item = (&'a str, Markup, &'a str)>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|name| match name.rsplit('.').next() {
            Some("mdv2") => AutoEscape::Custom("mdv2"),
            Some("html") => AutoEscape::Custom("html"),
            Some("mrkdwn") => AutoEscape::Custom("mrkdwn"),
            _ => AutoEscape::None,
        });
        env.set_formatter(|out, state, value| {
            let markup = match state.auto_escape() {
                AutoEscape::Custom(tag) => Markup::from_tag(tag),
                _ => None,
            };
            match markup {
                Some(m) if !value.is_safe() => {
                    let text = display(value);
                    out.write_str(&m.escape(&text))?;
                }
                _ => out.write_str(&display(value))?,
            }
            Ok(())
        });
        for (rule, markup, source) in sources {
            let name = key(rule, markup);
            env.add_template_owned(name.clone(), source.to_owned())
                .map_err(|source| TemplateError { name, source })?;
        }
        Ok(Self { env: Arc::new(env) })
    }

    /// Renders `rule`'s template for `markup` with `ctx`.
    pub fn render(&self, rule: &str, markup: Markup, ctx: &Value) -> Result<String, TemplateError> {
        let name = key(rule, markup);
        self.env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|source| TemplateError { name, source })
    }
}

/// How a value prints: strings as themselves, `none`/undefined as nothing, the rest as
/// minijinja shows them.
fn display(value: &Value) -> String {
    if value.is_undefined() || value.is_none() {
        String::new()
    } else if let Some(s) = value.as_str() {
        s.to_owned()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "A_b*c[d](e)~f`g>h#i+j-k=l|m{n}o.p!q\\r<s&t\"u";

    #[test]
    fn escapes_every_special_character_per_markup() {
        assert_eq!(
            Markup::MarkdownV2.escape(NASTY),
            "A\\_b\\*c\\[d\\]\\(e\\)\\~f\\`g\\>h\\#i\\+j\\-k\\=l\\|m\\{n\\}o\\.p\\!q\\\\r<s&t\"u"
        );
        assert_eq!(
            Markup::Html.escape(NASTY),
            "A_b*c[d](e)~f`g&gt;h#i+j-k=l|m{n}o.p!q\\r&lt;s&amp;t&quot;u"
        );
        assert_eq!(
            Markup::Mrkdwn.escape("<!channel> & <@U1>"),
            "&lt;!channel&gt; &amp; &lt;@U1&gt;"
        );
        assert_eq!(Markup::Plain.escape(NASTY), NASTY);
    }

    #[test]
    fn values_are_escaped_and_markup_is_not() {
        let t = Templates::compile([
            (
                "r",
                Markup::MarkdownV2,
                "*{{ data.name }}* {{ data.missing.deeper }}!",
            ),
            (
                "r",
                Markup::Html,
                "<b>{{ data.name }}</b> {{ data.raw | safe }}",
            ),
            (
                "r",
                Markup::Mrkdwn,
                "*{{ data.name }}* scored {{ data.score }}",
            ),
        ])
        .unwrap();
        let ctx = Value::from_serialize(
            serde_json::json!({"data": {"name": "Ada_<Lovelace>.", "score": 82, "raw": "<i>x</i>"}}),
        );
        assert_eq!(
            t.render("r", Markup::MarkdownV2, &ctx).unwrap(),
            "*Ada\\_<Lovelace\\>\\.* !"
        );
        assert_eq!(
            t.render("r", Markup::Html, &ctx).unwrap(),
            "<b>Ada_&lt;Lovelace&gt;.</b> <i>x</i>"
        );
        assert_eq!(
            t.render("r", Markup::Mrkdwn, &ctx).unwrap(),
            "*Ada_&lt;Lovelace&gt;.* scored 82"
        );
    }

    #[test]
    fn a_broken_template_is_an_error_naming_it() {
        let err = Templates::compile([("bad", Markup::Plain, "{{ oops ")]).unwrap_err();
        assert_eq!(err.name, "bad.plain");
    }

    #[test]
    fn truncation_never_leaves_broken_markup() {
        let long = format!("*{}*", Markup::MarkdownV2.escape(&"a.b_".repeat(2000)));
        let cut = Markup::MarkdownV2.truncate(&long, TELEGRAM_MAX_CHARS);
        assert!(cut.chars().count() <= TELEGRAM_MAX_CHARS);
        assert!(
            cut.ends_with("*…"),
            "the bold is closed: {}",
            &cut[cut.len() - 10..]
        );
        assert!(
            !cut.trim_end_matches("*…").ends_with('\\')
                || cut.trim_end_matches("*…").ends_with("\\\\")
        );

        let html = format!("<b>{}</b>", "x &amp; y ".repeat(1000));
        let cut = Markup::Html.truncate(&html, 100);
        assert!(cut.chars().count() <= 100);
        assert!(cut.ends_with("</b>…"), "{cut}");
        assert!(!cut.contains("&am…") && !cut.contains("& "), "{cut}");

        let link = format!("see [{}](https://x.example)", "y".repeat(200));
        let cut = Markup::MarkdownV2.truncate(&link, 50);
        assert_eq!(cut, "see …");

        assert_eq!(Markup::Plain.truncate("short", 10), "short");
    }
}
