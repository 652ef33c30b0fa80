//! NATS subject builders and parsers.
//!
//! Events live on `herald.events.<tenant>.<topic>.<action>`; dead letters on
//! `herald.dlq.<service>.<tenant>`. Builders only take validated names, so the
//! subjects they return cannot carry wildcards or extra tokens.

use crate::names::{Action, TenantId, Topic};

/// The prefix of every event subject.
pub const EVENTS_PREFIX: &str = "herald.events";
/// The wildcard that covers every event subject (the `HERALD_EVENTS` stream's subject).
pub const EVENTS_ALL: &str = "herald.events.>";
/// The prefix of every dead-letter subject.
pub const DLQ_PREFIX: &str = "herald.dlq";
/// The wildcard that covers every dead-letter subject (the `HERALD_DLQ` stream's subject).
pub const DLQ_ALL: &str = "herald.dlq.>";

/// The subject one event is published on.
pub fn event(tenant: &TenantId, topic: &Topic, action: &Action) -> String {
    format!("{EVENTS_PREFIX}.{tenant}.{topic}.{action}")
}

/// A filter matching every event of one tenant.
pub fn tenant_filter(tenant: &TenantId) -> String {
    format!("{EVENTS_PREFIX}.{tenant}.>")
}

/// A filter matching every action on one topic of one tenant.
pub fn topic_filter(tenant: &TenantId, topic: &Topic) -> String {
    format!("{EVENTS_PREFIX}.{tenant}.{topic}.*")
}

/// The dead-letter subject for `service` and `tenant`.
pub fn dlq(service: &str, tenant: &TenantId) -> String {
    format!("{DLQ_PREFIX}.{service}.{tenant}")
}

/// The parts of an event subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSubject {
    /// The tenant token.
    pub tenant: TenantId,
    /// The topic token.
    pub topic: Topic,
    /// The action token.
    pub action: Action,
}

/// Parses `herald.events.<tenant>.<topic>.<action>`; `None` for anything else.
pub fn parse_event(subject: &str) -> Option<EventSubject> {
    let rest = subject.strip_prefix(EVENTS_PREFIX)?.strip_prefix('.')?;
    let mut parts = rest.split('.');
    let (tenant, topic, action) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(EventSubject {
        tenant: TenantId::parse(tenant).ok()?,
        topic: Topic::parse(topic).ok()?,
        action: Action::parse(action).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (TenantId, Topic, Action) {
        (
            TenantId::parse("acme").unwrap(),
            Topic::parse("leads").unwrap(),
            Action::parse("insert").unwrap(),
        )
    }

    #[test]
    fn builds_and_parses_round_trip() {
        let (t, p, a) = names();
        let s = event(&t, &p, &a);
        assert_eq!(s, "herald.events.acme.leads.insert");
        let parsed = parse_event(&s).unwrap();
        assert_eq!((parsed.tenant, parsed.topic, parsed.action), (t, p, a));
    }

    #[test]
    fn filters_and_dlq() {
        let (t, p, _) = names();
        assert_eq!(tenant_filter(&t), "herald.events.acme.>");
        assert_eq!(topic_filter(&t, &p), "herald.events.acme.leads.*");
        assert_eq!(dlq("notifier", &t), "herald.dlq.notifier.acme");
    }

    #[test]
    fn rejects_foreign_subjects() {
        for s in [
            "herald.events.acme.leads",
            "herald.events.acme.leads.insert.extra",
            "herald.eventsX.acme.leads.insert",
            "other.acme.leads.insert",
            "herald.events.acme.*.insert",
        ] {
            assert!(parse_event(s).is_none(), "{s}");
        }
    }
}
