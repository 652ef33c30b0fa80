//! The event envelope: a CloudEvents 1.0 JSON object with Herald's extension attributes.
//!
//! The contract is `proto/event.schema.json`; tests validate what Herald emits against it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::Digest as _;
use time::OffsetDateTime;

use crate::names::{Action, TenantId, Topic};
use crate::subject;

/// The CloudEvents spec version Herald speaks.
pub const SPEC_VERSION: &str = "1.0";
/// The longest event id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// [`Event::via`] of events published through the publish API (`POST /v1/events`).
pub const VIA_API: &str = "api";
/// The longest `Nats-Msg-Id` [`Event::msg_id`] builds for an event ingest published:
/// tenant (64) + `/` + via (`webhook:` + 64) + `/` + source digest (32) + `/` + id (256).
pub const MAX_MSG_ID_LEN: usize = 64 + 1 + 72 + 1 + 32 + 1 + MAX_ID_LEN;

/// [`Event::via`] of events received on `POST /v1/webhooks/{name}`.
pub fn via_webhook(name: &str) -> String {
    format!("webhook:{name}")
}

/// Why an event id is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventIdError {
    /// The id was empty.
    #[error("event id must not be empty")]
    Empty,
    /// The id was longer than [`MAX_ID_LEN`].
    #[error("event id is {0} bytes long; the limit is {MAX_ID_LEN}")]
    TooLong(usize),
    /// The id held whitespace, a control character or non-ASCII.
    #[error("event id may only contain printable ASCII without spaces")]
    InvalidChar,
}

/// The producer's identity for an event: webhook id, Sequin idempotency key, or a generated
/// UUIDv7. Printable ASCII without whitespace, 1–256 bytes, so it is safe in a NATS header.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Validates an id supplied by a producer.
    pub fn parse(value: impl Into<String>) -> Result<Self, EventIdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(EventIdError::Empty);
        }
        if value.len() > MAX_ID_LEN {
            return Err(EventIdError::TooLong(value.len()));
        }
        if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(EventIdError::InvalidChar);
        }
        Ok(Self(value))
    }

    /// A fresh, time-ordered UUIDv7 id (for producers that supply none).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// One Herald event, as stored in `HERALD_EVENTS` and delivered to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always `"1.0"`.
    pub specversion: String,
    /// The producer's identity for the event; also the basis of `Nats-Msg-Id`.
    pub id: EventId,
    /// Where the event came from (a URI reference), e.g. `/webhooks/crm`.
    pub source: String,
    /// The CloudEvents type, e.g. `herald.leads.insert`.
    #[serde(rename = "type")]
    pub ty: String,
    /// When the event happened (commit time for CDC), RFC 3339.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Always `application/json`: `data` is JSON.
    pub datacontenttype: String,
    /// Extension: the tenant the event belongs to.
    pub tenant: TenantId,
    /// Extension: the topic (for CDC, the table name).
    pub topic: Topic,
    /// Extension: the action (`insert | update | delete | read`, or a verb).
    pub action: Action,
    /// Extension: for CDC updates, the previous values of the changed columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Value>,
    /// Extension: the authenticated door the event came in through, set by ingest and never
    /// by a payload: `webhook:<source name>` or `api` (see [`via_webhook`], [`VIA_API`]).
    /// Part of the de-duplication key ([`Event::msg_id`]). `None` on events stored before
    /// Herald recorded it, and on events published to NATS by other means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The payload (for CDC, the row).
    pub data: Value,
}

impl Event {
    /// A new event with the fixed CloudEvents attributes filled in.
    pub fn new(
        id: EventId,
        tenant: TenantId,
        topic: Topic,
        action: Action,
        source: impl Into<String>,
        data: Value,
    ) -> Self {
        let ty = format!("herald.{topic}.{action}");
        Self {
            specversion: SPEC_VERSION.to_owned(),
            id,
            source: source.into(),
            ty,
            time: OffsetDateTime::now_utc(),
            datacontenttype: "application/json".to_owned(),
            tenant,
            topic,
            action,
            changes: None,
            via: None,
            data,
        }
    }

    /// The subject this event is published on.
    pub fn subject(&self) -> String {
        subject::event(&self.tenant, &self.topic, &self.action)
    }

    /// The `Nats-Msg-Id` used for JetStream de-duplication (and the notifier's delivery
    /// records): `<tenant>/<via>/<source digest>/<id>`.
    ///
    /// Scoped by tenant, by the door the event came in through and by its CloudEvents
    /// `source` (CloudEvents' own uniqueness is `source` + `id`), so no producer can suppress
    /// another's event by publishing its id first: a webhook source only collides with
    /// itself, the publish API only with itself. The source is hashed (the first 16 bytes of
    /// its SHA-256, hex) because it is an unbounded URI; the whole key is at most
    /// [`MAX_MSG_ID_LEN`] bytes of printable ASCII.
    ///
    /// An event without [`via`](Self::via) (stored by an older Herald, or published to NATS
    /// directly) keeps the old key, [`legacy_msg_id`](Self::legacy_msg_id).
    pub fn msg_id(&self) -> String {
        let Some(via) = &self.via else {
            return self.legacy_msg_id();
        };
        let digest = sha2::Sha256::digest(self.source.as_bytes());
        format!(
            "{}/{via}/{}/{}",
            self.tenant,
            hex::encode(&digest[..16]),
            self.id
        )
    }

    /// The key older Herald versions used: `<tenant>/<id>`, scoped by tenant only.
    pub fn legacy_msg_id(&self) -> String {
        format!("{}/{}", self.tenant, self.id)
    }

    /// The event serialized as JSON bytes (done once per event).
    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serializing a struct of strings and `Value`s cannot fail.
        serde_json::to_vec(self)
            .map(bytes::Bytes::from)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_header_safe() {
        assert!(EventId::parse("MjUxNjU4MjQ6MA==").is_ok());
        assert!(EventId::parse("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk").is_ok());
        assert_eq!(EventId::parse(""), Err(EventIdError::Empty));
        assert_eq!(EventId::parse("a b"), Err(EventIdError::InvalidChar));
        assert_eq!(EventId::parse("a\r\nX: y"), Err(EventIdError::InvalidChar));
        assert_eq!(EventId::parse("é"), Err(EventIdError::InvalidChar));
        assert_eq!(
            EventId::parse("x".repeat(257)),
            Err(EventIdError::TooLong(257))
        );
        assert!(EventId::generate().as_str().len() == 36);
    }

    #[test]
    fn serializes_as_a_cloudevent_and_back() {
        let mut e = Event::new(
            EventId::parse("id-1").unwrap(),
            TenantId::parse("acme").unwrap(),
            Topic::parse("leads").unwrap(),
            Action::parse("update").unwrap(),
            "/webhooks/crm",
            serde_json::json!({"id": 1}),
        );
        e.changes = Some(serde_json::json!({"status": "new"}));
        let v: Value = serde_json::from_slice(&e.to_bytes()).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "herald.leads.update");
        assert_eq!(v["changes"]["status"], "new");
        assert_eq!(e.subject(), "herald.events.acme.leads.update");
        assert_eq!(e.msg_id(), "acme/id-1", "no via: the legacy key");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        e.via = Some(via_webhook("crm"));
        let back: Event = serde_json::from_slice(&e.to_bytes()).unwrap();
        assert_eq!(back.via.as_deref(), Some("webhook:crm"));
        assert_eq!(back.msg_id(), e.msg_id());
    }

    /// The dedup-key finding: `<tenant>/<id>` let any producer of a tenant pre-claim another
    /// source's ids. The key now differs by door and by CloudEvents source, and stays bounded.
    #[test]
    fn dedup_key_is_scoped_by_tenant_via_and_source() {
        let event = |via: &str, source: &str| {
            let mut e = Event::new(
                EventId::parse("MjUxNjU4MjQ6MA==").unwrap(),
                TenantId::parse("acme").unwrap(),
                Topic::parse("leads").unwrap(),
                Action::parse("insert").unwrap(),
                source,
                Value::Null,
            );
            e.via = Some(via.to_owned());
            e
        };
        let crm = event(&via_webhook("crm"), "/webhooks/crm");
        let keys = [
            crm.msg_id(),
            event(&via_webhook("other"), "/webhooks/crm").msg_id(),
            event(VIA_API, "/webhooks/crm").msg_id(),
            event(&via_webhook("crm"), "https://elsewhere.example").msg_id(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(keys[0].starts_with("acme/webhook:crm/"), "{}", keys[0]);
        assert!(keys[0].ends_with("/MjUxNjU4MjQ6MA=="), "{}", keys[0]);
        assert_eq!(crm.legacy_msg_id(), "acme/MjUxNjU4MjQ6MA==");
        let mut longest = event(&via_webhook(&"s".repeat(64)), &"x".repeat(10_000));
        longest.tenant = TenantId::parse("t".repeat(64)).unwrap();
        longest.id = EventId::parse("i".repeat(MAX_ID_LEN)).unwrap();
        assert_eq!(longest.msg_id().len(), MAX_MSG_ID_LEN);
        assert!(
            EventId::parse(longest.msg_id()).is_err(),
            "longer than an id"
        );
        assert!(longest.msg_id().bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}
