//! Dead letters: what the notifier gave up on, with the reason, in `HERALD_DLQ`.
//!
//! A dead letter is the original event's bytes on `herald.dlq.notifier.<tenant>`, with
//! headers naming the reason, the target and rule, the original subject and stream
//! sequence, and the delivery count. [`list`] reads them; [`replay`] re-drives one: it is
//! republished on `herald.dlq.notifier-redrive.<tenant>` (a subject the notifier consumes
//! with its own durable consumer, so other services never see the event twice), for the
//! same target only, and removed from the list. The delivery records still apply, so a
//! re-driven event is never sent twice to a target that already has it.
//!
//! [`list`] and [`replay`] take a JetStream context and plain arguments and return data, for
//! the `herald dlq` CLI.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use herald_core::names::TenantId;
use herald_core::publish::publish_with_id;
use herald_core::streams::DLQ_STREAM;
use herald_core::subject::{self, DLQ_PREFIX};
use time::OffsetDateTime;

/// The service name in dead-letter subjects.
pub const SERVICE: &str = "notifier";
/// The service name of re-drive subjects.
pub const REDRIVE_SERVICE: &str = "notifier-redrive";

/// Header names on dead letters.
pub mod header {
    /// Why the notifier gave up.
    pub const REASON: &str = "Herald-Reason";
    /// The target (rules-file name); absent when the event itself was unusable.
    pub const TARGET: &str = "Herald-Target";
    /// The rule that routed the event to the target.
    pub const RULE: &str = "Herald-Rule";
    /// The stream the event was read from.
    pub const STREAM: &str = "Herald-Original-Stream";
    /// The subject the event was read from.
    pub const SUBJECT: &str = "Herald-Original-Subject";
    /// The event's sequence in that stream.
    pub const SEQUENCE: &str = "Herald-Original-Sequence";
    /// How many times JetStream had delivered it.
    pub const DELIVERIES: &str = "Herald-Deliveries";
}

/// The longest reason kept in a header.
const MAX_REASON: usize = 1000;
/// How long [`list`] waits for the next dead letter before returning what it has.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// A JetStream request failed (`what` says which).
    #[error("could not {what}")]
    Nats {
        /// The operation.
        what: &'static str,
        /// The cause.
        #[source]
        source: async_nats::Error,
    },
    /// No message with that sequence is in `HERALD_DLQ`.
    #[error("no dead letter with sequence {0}")]
    NotFound(u64),
    /// The message at that sequence is not a notifier dead letter.
    #[error("message {0} is not a notifier dead letter")]
    NotNotifier(u64),
}

fn nats(what: &'static str) -> impl FnOnce(async_nats::Error) -> DlqError {
    move |source| DlqError::Nats { what, source }
}

/// A dead letter to publish.
#[derive(Debug, Clone)]
pub struct NewDeadLetter<'a> {
    /// The event's tenant (the DLQ subject's last token).
    pub tenant: &'a TenantId,
    /// Why.
    pub reason: &'a str,
    /// The target, if the failure was a target's.
    pub target: Option<&'a str>,
    /// The rule, if any.
    pub rule: Option<&'a str>,
    /// The stream the event came from.
    pub stream: &'a str,
    /// Its subject there.
    pub subject: &'a str,
    /// Its sequence there.
    pub stream_sequence: u64,
    /// Deliveries so far.
    pub deliveries: i64,
    /// The event's bytes.
    pub payload: Bytes,
    /// The stream and sequence of the message being given up on (for a re-drive, the
    /// re-drive message itself): what makes the dead letter unique.
    pub consumed: (&'a str, u64),
}

/// Publishes a dead letter and waits for the PubAck. Publishing the same dead letter again
/// (after a crash before the ack) is stored once.
pub async fn publish(js: &jetstream::Context, dl: NewDeadLetter<'_>) -> Result<(), DlqError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::REASON, header_safe(dl.reason).as_str());
    if let Some(t) = dl.target {
        headers.insert(header::TARGET, t);
    }
    if let Some(r) = dl.rule {
        headers.insert(header::RULE, r);
    }
    headers.insert(header::STREAM, dl.stream);
    headers.insert(header::SUBJECT, dl.subject);
    headers.insert(header::SEQUENCE, dl.stream_sequence.to_string().as_str());
    headers.insert(header::DELIVERIES, dl.deliveries.to_string().as_str());
    let msg_id = format!(
        "{SERVICE}/{}/{}/{}",
        dl.consumed.0,
        dl.consumed.1,
        dl.target.unwrap_or("-")
    );
    let subject = subject::dlq(SERVICE, dl.tenant);
    publish_with_id(js, subject, headers, &msg_id, dl.payload)
        .await
        .map_err(|e| nats("publish a dead letter")(e.into()))?;
    Ok(())
}

fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect()
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its sequence in `HERALD_DLQ` (what [`replay`] takes).
    pub seq: u64,
    /// When it was dead-lettered.
    pub time: OffsetDateTime,
    /// The tenant.
    pub tenant: String,
    /// Why.
    pub reason: String,
    /// The target, if any.
    pub target: Option<String>,
    /// The rule, if any.
    pub rule: Option<String>,
    /// The subject the event was read from.
    pub original_subject: String,
    /// Its sequence in its stream.
    pub original_sequence: u64,
    /// Deliveries before giving up.
    pub deliveries: i64,
    /// The event's bytes (a Herald event as JSON, unless it was malformed).
    pub payload: Bytes,
}

impl DeadLetter {
    /// The event, if the payload is one (a malformed event's dead letter is not).
    pub fn event(&self) -> Option<herald_core::event::Event> {
        serde_json::from_slice(&self.payload).ok()
    }

    fn from_parts(
        seq: u64,
        time: OffsetDateTime,
        subject: &str,
        h: Option<&HeaderMap>,
        payload: Bytes,
    ) -> Self {
        let get = |name: &str| h.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        Self {
            seq,
            time,
            tenant: subject.rsplit('.').next().unwrap_or_default().to_owned(),
            reason: get(header::REASON).unwrap_or_default(),
            target: get(header::TARGET),
            rule: get(header::RULE),
            original_subject: get(header::SUBJECT).unwrap_or_default(),
            original_sequence: get(header::SEQUENCE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            deliveries: get(header::DELIVERIES)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            payload,
        }
    }
}

/// The notifier's dead letters, oldest first, of one tenant or all, at most `limit`.
pub async fn list(
    js: &jetstream::Context,
    tenant: Option<&TenantId>,
    limit: usize,
) -> Result<Vec<DeadLetter>, DlqError> {
    let filter = match tenant {
        Some(t) => subject::dlq(SERVICE, t),
        None => format!("{DLQ_PREFIX}.{SERVICE}.*"),
    };
    let stream = js
        .get_stream_no_info(DLQ_STREAM)
        .await
        .map_err(|e| nats("find HERALD_DLQ")(e.into()))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| nats("read HERALD_DLQ")(e.into()))?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 || limit == 0 {
        return Ok(out);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| nats("read HERALD_DLQ")(e.into()))?;
    while out.len() < limit {
        let Ok(Some(msg)) = tokio::time::timeout(READ_TIMEOUT, messages.next()).await else {
            break;
        };
        let msg = msg.map_err(|e| nats("read a dead letter")(e.into()))?;
        let info = msg.info().map_err(nats("read a dead letter's metadata"))?;
        let (seq, pending, time) = (info.stream_sequence, info.pending, info.published);
        out.push(DeadLetter::from_parts(
            seq,
            time,
            &msg.subject,
            msg.headers.as_ref(),
            msg.payload.clone(),
        ));
        if pending == 0 {
            break;
        }
    }
    Ok(out)
}

/// Re-drives dead letter `seq`: republishes it for the notifier (same target only) and
/// removes it from the dead letters. Returns the re-drive message's sequence.
pub async fn replay(js: &jetstream::Context, seq: u64) -> Result<u64, DlqError> {
    let stream = js
        .get_stream_no_info(DLQ_STREAM)
        .await
        .map_err(|e| nats("find HERALD_DLQ")(e.into()))?;
    let msg = match stream.get_raw_message(seq).await {
        Ok(m) => m,
        Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {
            return Err(DlqError::NotFound(seq));
        }
        Err(e) => return Err(nats("read a dead letter")(e.into())),
    };
    let tenant = msg
        .subject
        .strip_prefix(&format!("{DLQ_PREFIX}.{SERVICE}."))
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or(DlqError::NotNotifier(seq))?;
    let mut headers = HeaderMap::new();
    for name in [
        header::TARGET,
        header::RULE,
        header::STREAM,
        header::SUBJECT,
        header::SEQUENCE,
        header::REASON,
    ] {
        if let Some(v) = msg.headers.get(name) {
            headers.insert(name, v.as_str());
        }
    }
    let subject = subject::dlq(REDRIVE_SERVICE, &tenant);
    let msg_id = format!("{REDRIVE_SERVICE}/{seq}");
    let ack = publish_with_id(js, subject, headers, &msg_id, msg.payload)
        .await
        .map_err(|e| nats("publish a re-drive")(e.into()))?;
    stream
        .delete_message(seq)
        .await
        .map_err(|e| nats("remove the re-driven dead letter")(e.into()))?;
    Ok(ack.sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_made_header_safe() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
        assert_eq!(header_safe(&"x".repeat(5000)).len(), MAX_REASON);
    }
}
