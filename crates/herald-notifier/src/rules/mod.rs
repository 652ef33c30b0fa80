//! The rules file: targets, and rules that route events to them through a template.
//!
//! ```toml
//! [targets.sales-telegram]
//! kind = "telegram"
//! chat_id = -1001234567890
//! markup = "markdown_v2"            # or "html", "plain"
//! quiet_hours = { start = "22:00", end = "07:00", utc_offset = "+01:00" }
//!
//! [targets.sales-slack]
//! kind = "slack_webhook"
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//!
//! [[rules]]
//! name = "lead-won"
//! tenant = "acme"
//! topic = "leads"
//! actions = ["update"]
//! when = [{ field = "data.status", eq = "won", changed = true }]
//! targets = ["sales-telegram", "sales-slack"]
//! template = "Won: *{{ data.name }}*"
//! # the same rule in another markup, where literal text needs other escaping:
//! templates.html = "Won: <b>{{ data.name }}</b>"
//! ```
//!
//! An event goes to a target at most once: when several rules send it to the same target,
//! the first matching rule (in file order) writes the message.

mod condition;
mod filter;
mod quiet;
mod target;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use herald_core::event::Event;
use herald_core::names::{Action, TenantId, Topic, validate_token};
use minijinja::value::Value as TemplateValue;
use serde::Deserialize;

pub use condition::{Condition, ConditionError};
pub use quiet::QuietHours;
pub use target::{Chat, Destination, Target};

use target::{TargetSpec, compile_target};

use crate::template::{Markup, TemplateError, Templates};

/// A target's name in the rules file; part of the "already delivered" record's key.
pub type TargetId = Arc<str>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    targets: BTreeMap<String, TargetSpec>,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    tenant: Option<TenantId>,
    topic: Option<Topic>,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    when: Vec<Condition>,
    targets: Vec<String>,
    template: Option<String>,
    #[serde(default)]
    templates: BTreeMap<Markup, String>,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name (unique in the file).
    pub name: Arc<str>,
    tenant: Option<TenantId>,
    topic: Option<Topic>,
    actions: Vec<Action>,
    when: Vec<Condition>,
    targets: Vec<TargetId>,
}

impl Rule {
    fn matches(&self, event: &Event, json: &serde_json::Value) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == event.tenant)
            && self.topic.as_ref().is_none_or(|t| *t == event.topic)
            && (self.actions.is_empty() || self.actions.contains(&event.action))
            && self.when.iter().all(|c| c.holds(json))
    }
}

/// Why a rules file cannot be used. The file keeps its previous meaning on reload.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rules file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the right shape (the source names line and column).
    #[error("rules file {origin} is malformed")]
    Syntax {
        /// The file (or `<inline>`).
        origin: String,
        /// The parser's error, with line, column and what was expected.
        #[source]
        source: toml::de::Error,
    },
    /// A target or rule name is not `[A-Za-z0-9_-]{1,64}`.
    #[error("{what} name {name:?} must match [A-Za-z0-9_-]{{1,64}}")]
    Name {
        /// `target` or `rule`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Two rules share a name.
    #[error("rule {0:?} is defined twice")]
    DuplicateRule(String),
    /// A target lacks a field its kind needs, or has one it cannot use.
    #[error("target {target:?}: {problem}")]
    Target {
        /// The target.
        target: String,
        /// What is wrong.
        problem: String,
    },
    /// A rule names a target that is not defined.
    #[error("rule {rule:?} sends to undefined target {target:?}")]
    UnknownTarget {
        /// The rule.
        rule: String,
        /// The target.
        target: String,
    },
    /// A rule has no targets.
    #[error("rule {0:?} has no targets")]
    NoTargets(String),
    /// A target of a rule needs a markup the rule has no template for.
    #[error("rule {rule:?} has no template for {markup:?} (set template, or templates.<markup>)")]
    NoTemplate {
        /// The rule.
        rule: String,
        /// The markup without a template.
        markup: Markup,
    },
    /// A condition is unusable.
    #[error("rule {rule:?}: {source}")]
    Condition {
        /// The rule.
        rule: String,
        /// The problem.
        #[source]
        source: ConditionError,
    },
    /// A template does not compile.
    #[error(transparent)]
    Template(#[from] TemplateError),
}

/// One message to write: the event, for this target, by this rule.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The rule that matched.
    pub rule: Arc<str>,
    /// The target.
    pub target: Arc<Target>,
}

/// A validated, compiled rules file.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    targets: BTreeMap<TargetId, Arc<Target>>,
    templates: Option<Templates>,
}

impl Rules {
    /// Reads and compiles a rules file.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let src = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::compile(&src, &path.display().to_string())
    }

    /// Compiles a rules file's text.
    pub fn parse(src: &str) -> Result<Self, RulesError> {
        Self::compile(src, "<inline>")
    }

    fn compile(src: &str, origin: &str) -> Result<Self, RulesError> {
        let file: File = toml::from_str(src).map_err(|source| RulesError::Syntax {
            origin: origin.to_owned(),
            source,
        })?;
        let mut targets = BTreeMap::new();
        for (name, spec) in file.targets {
            let target = compile_target(&name, spec)?;
            targets.insert(target.id.clone(), Arc::new(target));
        }
        let mut names = HashSet::new();
        let mut rules = Vec::new();
        let mut sources = Vec::new();
        for spec in &file.rules {
            validate_token("rule", &spec.name).map_err(|_| RulesError::Name {
                what: "rule",
                name: spec.name.clone(),
            })?;
            if !names.insert(spec.name.as_str()) {
                return Err(RulesError::DuplicateRule(spec.name.clone()));
            }
            if spec.targets.is_empty() {
                return Err(RulesError::NoTargets(spec.name.clone()));
            }
            for c in &spec.when {
                c.validate().map_err(|source| RulesError::Condition {
                    rule: spec.name.clone(),
                    source,
                })?;
            }
            let mut ids = Vec::new();
            let mut markups = HashSet::new();
            for t in &spec.targets {
                let (id, target) =
                    targets
                        .get_key_value(t.as_str())
                        .ok_or_else(|| RulesError::UnknownTarget {
                            rule: spec.name.clone(),
                            target: t.clone(),
                        })?;
                markups.insert(target.destination.markup());
                ids.push(id.clone());
            }
            for m in markups {
                let source = spec
                    .templates
                    .get(&m)
                    .or(spec.template.as_ref())
                    .ok_or_else(|| RulesError::NoTemplate {
                        rule: spec.name.clone(),
                        markup: m,
                    })?;
                sources.push((spec.name.as_str(), m, source.as_str()));
            }
            rules.push(Rule {
                name: spec.name.as_str().into(),
                tenant: spec.tenant.clone(),
                topic: spec.topic.clone(),
                actions: spec.actions.clone(),
                when: spec.when.clone(),
                targets: ids,
            });
        }
        let templates = Templates::compile(sources)?;
        Ok(Self {
            rules,
            targets,
            templates: Some(templates),
        })
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Every configured target.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<Target>> {
        self.targets.values()
    }

    /// A target by name.
    pub fn target(&self, id: &str) -> Option<&Arc<Target>> {
        self.targets.get(id)
    }

    /// The targets `event` goes to, each once, with the first matching rule.
    pub fn route(&self, event: &Event) -> Vec<Delivery> {
        let json = serde_json::to_value(event).unwrap_or_default();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.matches(event, &json)) {
            for id in &rule.targets {
                if seen.insert(id.clone())
                    && let Some(target) = self.targets.get(id)
                {
                    out.push(Delivery {
                        rule: rule.name.clone(),
                        target: target.clone(),
                    });
                }
            }
        }
        out
    }

    /// Whether rule `rule` exists and sends to `target` (for re-driven dead letters).
    pub fn delivery(&self, rule: &str, target: &str) -> Option<Delivery> {
        let r = self.rules.iter().find(|r| &*r.name == rule)?;
        let id = r.targets.iter().find(|t| &***t == target)?;
        Some(Delivery {
            rule: r.name.clone(),
            target: self.targets.get(id)?.clone(),
        })
    }

    /// Renders `delivery`'s text for `event`.
    pub fn render(&self, delivery: &Delivery, event: &Event) -> Result<String, TemplateError> {
        let ctx = TemplateValue::from_serialize(event);
        let markup = delivery.target.destination.markup();
        match &self.templates {
            Some(t) => t.render(&delivery.rule, markup, &ctx),
            None => Ok(String::new()),
        }
    }

    /// The consumer's filter subjects (empty when there are no rules).
    pub fn filter_subjects(&self) -> Vec<String> {
        let mut patterns = Vec::new();
        for r in &self.rules {
            let t = r.tenant.as_ref().map(|t| t.to_string());
            let p = r.topic.as_ref().map(|t| t.to_string());
            if r.actions.is_empty() {
                patterns.push(filter::Pattern([t.clone(), p.clone(), None]));
            }
            for a in &r.actions {
                patterns.push(filter::Pattern([t.clone(), p.clone(), Some(a.to_string())]));
            }
        }
        filter::filter_subjects(patterns)
    }
}

#[cfg(test)]
mod tests;
