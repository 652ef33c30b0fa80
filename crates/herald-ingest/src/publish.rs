//! Publishing events to JetStream and waiting for every PubAck.
//!
//! The contract: a request is answered 2xx only after JetStream has acknowledged every one of
//! its events. `Nats-Msg-Id` is the event's tenant-scoped id, so a producer's retry is stored
//! once (within the stream's duplicate window) and reported as a duplicate.
//!
//! A private event's audience rides in the `Herald-To` header ([`crate::audience`]). It is
//! not part of `Nats-Msg-Id`: the first message stored under an id keeps its audience, and a
//! retry naming other users is reported as that duplicate and changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::future::try_join_all;
use herald_core::event::Event;
use herald_core::publish::event_message;
use serde::Serialize;

use crate::audience::{self, Audience};
use crate::full::StoreFull;
use crate::legacy::LegacyIndex;
use crate::metrics::{Metrics, SourceMetrics};

/// Where one event was stored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Stored {
    /// The event id.
    pub id: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its sequence in `HERALD_EVENTS` (for a duplicate: the sequence of the original).
    pub seq: u64,
    /// Whether JetStream already had it (a retry).
    pub duplicate: bool,
}

/// An event to publish, and who it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The event (its body: the audience is never in it).
    pub event: Event,
    /// Its audience (`Herald-To`); `None`: public.
    pub to: Option<Audience>,
}

impl From<Event> for Outgoing {
    fn from(event: Event) -> Self {
        Self { event, to: None }
    }
}

/// Why events could not be stored. Every variant becomes a 503: the producer retries and
/// de-duplication keeps anything that did land from being stored twice.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The client is not connected to NATS right now.
    #[error("NATS is not connected")]
    NotConnected,
    /// JetStream refused or failed a publish.
    #[error("JetStream publish failed")]
    Publish(#[from] jetstream::context::PublishError),
    /// Not every PubAck arrived within the publish timeout.
    #[error("no PubAck within {0:?}")]
    Timeout(Duration),
}

impl PublishError {
    /// The JetStream refusal, when the server refused because its store is out of space:
    /// `insufficient resources` (10023: the server's `max_file_store` or the disk is
    /// exhausted), `resource limits exceeded for account` (10002), `insufficient storage
    /// resources` (10047), or `maximum bytes/messages exceeded` (10077, a stream with
    /// `discard: new` at its limit). Nothing of the refused publish was stored.
    pub fn store_full(&self) -> Option<&jetstream::Error> {
        use jetstream::ErrorCode;
        let Self::Publish(err) = self else {
            return None;
        };
        let refusal = std::error::Error::source(err)?.downcast_ref::<jetstream::Error>()?;
        let full = match refusal.error_code() {
            ErrorCode::INSUFFICIENT_RESOURCES
            | ErrorCode::ACCOUNT_RESOURCES_EXCEEDED
            | ErrorCode::STORAGE_RESOURCES_EXCEEDED => true,
            // 10077 wraps any store failure; only the limit ones mean "full".
            ErrorCode::STREAM_STORE_FAILED => {
                let text = refusal.to_string();
                text.contains("maximum bytes") || text.contains("maximum messages")
            }
            _ => false,
        };
        full.then_some(refusal)
    }
}

/// Publishes events and collects their acknowledgements.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    timeout: Duration,
    metrics: Metrics,
    legacy: Option<Arc<LegacyIndex>>,
    full: StoreFull,
}

impl Publisher {
    /// A publisher on `js` whose requests give up after `timeout`.
    pub fn new(
        client: async_nats::Client,
        js: jetstream::Context,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            js,
            timeout,
            metrics,
            legacy: None,
            full: StoreFull::new(Duration::from_secs(2)),
        }
    }

    /// Also honours events stored under the old dedup key, while `legacy` is active.
    pub fn with_legacy(mut self, legacy: Arc<LegacyIndex>) -> Self {
        self.legacy = Some(legacy);
        self
    }

    /// Records "store full" refusals in `full` (which `/readyz` reads).
    pub fn with_store_full(mut self, full: StoreFull) -> Self {
        self.full = full;
        self
    }

    /// Publishes every event (pipelined: all are sent, then all acks awaited) and returns
    /// where each was stored, in order. Fails unless every event was acknowledged.
    /// `counters` are the source's, for the events acknowledged.
    pub async fn publish(
        &self,
        counters: &SourceMetrics,
        events: &[Outgoing],
    ) -> Result<Vec<Stored>, PublishError> {
        if !herald_core::nats::is_connected(&self.client) {
            return Err(PublishError::NotConnected);
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.publish_all(events))
            .await
            .map_err(|_| PublishError::Timeout(self.timeout))?;
        self.metrics.observe_publish(started.elapsed());
        let stored = result.inspect_err(|err| {
            if let Some(refusal) = err.store_full() {
                self.full.refused(refusal.to_string());
            }
        })?;
        if !stored.is_empty() {
            self.full.stored();
        }
        for s in &stored {
            counters.event(s.duplicate);
        }
        Ok(stored)
    }

    async fn publish_all(&self, events: &[Outgoing]) -> Result<Vec<Stored>, PublishError> {
        let legacy = match &self.legacy {
            Some(index) if index.active(time::OffsetDateTime::now_utc()) => {
                index.ready().await;
                Some(index)
            }
            _ => None,
        };
        let mut pending = Vec::with_capacity(events.len());
        for Outgoing { event, to } in events {
            if let Some(seq) = legacy.and_then(|index| index.original(event)) {
                pending.push(futures::future::Either::Left(std::future::ready(Ok(
                    Stored {
                        id: event.id.as_str().to_owned(),
                        subject: event.subject(),
                        seq,
                        duplicate: true,
                    },
                ))));
                continue;
            }
            let subject = event.subject();
            let mut msg = event_message(event);
            if let Some(to) = to {
                msg = msg.header(audience::HEADER, to.header_value().as_str());
            }
            let ack = self.js.send_publish(subject.clone(), msg).await?;
            pending.push(futures::future::Either::Right(async move {
                let ack = ack.await?;
                Ok::<_, PublishError>(Stored {
                    id: event.id.as_str().to_owned(),
                    subject,
                    seq: ack.sequence,
                    duplicate: ack.duplicate,
                })
            }));
        }
        try_join_all(pending).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jetstream::context::PublishErrorKind;

    fn refused(err_code: u64, description: &str) -> PublishError {
        let refusal: jetstream::Error = serde_json::from_value(serde_json::json!({
            "code": 503, "err_code": err_code, "description": description,
        }))
        .expect("a JetStream API error");
        PublishError::Publish(jetstream::context::PublishError::with_source(
            PublishErrorKind::Other,
            refusal,
        ))
    }

    #[test]
    fn only_out_of_space_refusals_are_store_full() {
        for (code, text) in [
            (10023, "insufficient resources"),
            (10002, "resource limits exceeded for account"),
            (10047, "insufficient storage resources available"),
            (10077, "maximum bytes exceeded"),
            (10077, "maximum messages exceeded"),
        ] {
            assert!(refused(code, text).store_full().is_some(), "{code} {text}");
        }
        for (code, text) in [
            (10077, "some other store failure"),
            (10060, "expected stream does not match"),
        ] {
            assert!(refused(code, text).store_full().is_none(), "{code} {text}");
        }
        assert!(PublishError::NotConnected.store_full().is_none());
        assert!(
            PublishError::Timeout(Duration::from_secs(1))
                .store_full()
                .is_none()
        );
    }
}
