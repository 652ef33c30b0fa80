//! The consumer's filter subjects, derived from the rules.
//!
//! JetStream refuses a consumer whose filter subjects overlap, so patterns covered by a
//! broader one are dropped, and if two still overlap the filter falls back to
//! `herald.events.>` (the rules themselves decide what is sent either way).

use herald_core::subject::{EVENTS_ALL, EVENTS_PREFIX};

/// One `herald.events.<tenant>.<topic>.<action>` pattern; `None` is `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pattern(pub [Option<String>; 3]);

impl Pattern {
    fn covers(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .all(|(a, b)| a.is_none() || a == b)
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .all(|(a, b)| a.is_none() || b.is_none() || a == b)
    }

    fn subject(&self) -> String {
        let [t, p, a] = &self.0;
        let tok = |x: &Option<String>| x.clone().unwrap_or_else(|| "*".into());
        format!("{EVENTS_PREFIX}.{}.{}.{}", tok(t), tok(p), tok(a))
    }
}

/// The filter subjects that cover `patterns` without overlapping. Empty in, empty out.
pub fn filter_subjects(mut patterns: Vec<Pattern>) -> Vec<String> {
    patterns.sort();
    patterns.dedup();
    let kept: Vec<Pattern> = patterns
        .iter()
        .filter(|p| !patterns.iter().any(|q| q != *p && q.covers(p)))
        .cloned()
        .collect();
    if kept.len() == 1 && kept[0].0.iter().all(Option::is_none) {
        return vec![EVENTS_ALL.to_owned()];
    }
    let overlapping = kept
        .iter()
        .enumerate()
        .any(|(i, p)| kept[i + 1..].iter().any(|q| p.overlaps(q)));
    if overlapping {
        return vec![EVENTS_ALL.to_owned()];
    }
    kept.iter().map(Pattern::subject).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, topic: &str, a: &str) -> Pattern {
        let tok = |s: &str| (s != "*").then(|| s.to_owned());
        Pattern([tok(t), tok(topic), tok(a)])
    }

    #[test]
    fn covered_patterns_are_dropped() {
        let subjects = filter_subjects(vec![
            p("acme", "leads", "insert"),
            p("acme", "leads", "*"),
            p("beta", "deals", "update"),
        ]);
        assert_eq!(
            subjects,
            [
                "herald.events.acme.leads.*",
                "herald.events.beta.deals.update"
            ]
        );
    }

    #[test]
    fn partial_overlaps_fall_back_to_everything() {
        let subjects = filter_subjects(vec![p("acme", "*", "insert"), p("*", "leads", "*")]);
        assert_eq!(subjects, [EVENTS_ALL]);
        assert_eq!(filter_subjects(vec![p("*", "*", "*")]), [EVENTS_ALL]);
        assert!(filter_subjects(vec![]).is_empty());
    }
}
