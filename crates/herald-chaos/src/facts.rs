//! Reading what JetStream holds at the end of a run: every event, every dead letter, the
//! stats documents and the consumers' progress.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt as _;
use herald_core::cursor::Epoch;
use herald_core::streams::{DLQ_STREAM, EVENTS_STREAM, STATS_BUCKET};
use serde_json::Value;

use crate::error::Error;

/// How long one message of a full read may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One event in `HERALD_EVENTS`.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its stream sequence.
    pub seq: u64,
    /// The envelope's `id`.
    pub id: String,
    /// The subject's tenant.
    pub tenant: String,
    /// The subject's topic.
    pub topic: String,
    /// The subject's action.
    pub action: String,
}

/// One dead letter in `HERALD_DLQ`.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The original event's `id`.
    pub id: String,
    /// `Herald-Target`.
    pub target: String,
}

/// The identity and contents of `HERALD_EVENTS`.
pub struct Events {
    /// The stream's epoch.
    pub epoch: Epoch,
    /// Every event, by sequence.
    pub events: Vec<Stored>,
}

/// Reads the epoch of `HERALD_EVENTS`.
pub async fn epoch(js: &jetstream::Context) -> Result<Epoch, Error> {
    let mut stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| Error::nats("the events stream", e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| Error::nats("the events stream's info", e))?;
    Ok(Epoch::from_created(info.created))
}

/// Reads every message of `stream`, in order, as (sequence, subject, headers, payload).
async fn read_all(
    js: &jetstream::Context,
    stream: &'static str,
) -> Result<Vec<(u64, String, Option<async_nats::HeaderMap>, bytes::Bytes)>, Error> {
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| Error::nats("a stream", e))?;
    let state = s
        .info()
        .await
        .map_err(|e| Error::nats("a stream's info", e))?
        .state
        .clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    let consumer = s
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::nats("an ordered consumer", e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Error::nats("an ordered consumer's messages", e))?;
    loop {
        let msg = tokio::time::timeout(READ_TIMEOUT, messages.next())
            .await
            .map_err(|e| Error::nats("the next message (timed out)", e))?;
        let Some(msg) = msg else { break };
        let msg = msg.map_err(|e| Error::nats("the next message", e))?;
        let seq = msg
            .info()
            .map_err(|e| Error::nats("a message's info", e))?
            .stream_sequence;
        out.push((
            seq,
            msg.subject.to_string(),
            msg.headers.clone(),
            msg.payload.clone(),
        ));
        if seq >= state.last_sequence {
            break;
        }
    }
    Ok(out)
}

fn envelope_id(payload: &[u8]) -> String {
    serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every event of `HERALD_EVENTS`, with the stream's epoch.
pub async fn events(js: &jetstream::Context) -> Result<Events, Error> {
    let epoch = epoch(js).await?;
    let events = read_all(js, EVENTS_STREAM)
        .await?
        .into_iter()
        .map(|(seq, subject, _, payload)| {
            let parsed = herald_core::subject::parse_event(&subject);
            let part = |f: fn(&herald_core::subject::EventSubject) -> String| {
                parsed.as_ref().map(f).unwrap_or_default()
            };
            Stored {
                seq,
                id: envelope_id(&payload),
                tenant: part(|s| s.tenant.to_string()),
                topic: part(|s| s.topic.to_string()),
                action: part(|s| s.action.to_string()),
            }
        })
        .collect();
    Ok(Events { epoch, events })
}

/// Every dead letter of `HERALD_DLQ`.
pub async fn dead_letters(js: &jetstream::Context) -> Result<Vec<DeadLetter>, Error> {
    Ok(read_all(js, DLQ_STREAM)
        .await?
        .into_iter()
        .map(|(_, _, headers, payload)| DeadLetter {
            id: envelope_id(&payload),
            target: headers
                .as_ref()
                .and_then(|h| h.get("Herald-Target"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
        })
        .collect())
}

/// The `total` and `by_action` of one stats document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Events counted.
    pub total: u64,
    /// Events counted per action.
    pub by_action: BTreeMap<String, u64>,
}

/// The stats document `<tenant>.<topic>`, if there is one.
pub async fn stats_doc(
    js: &jetstream::Context,
    tenant: &str,
    topic: &str,
) -> Result<Option<Counts>, Error> {
    let kv = js
        .get_key_value(STATS_BUCKET)
        .await
        .map_err(|e| Error::nats("the stats bucket", e))?;
    let Some(bytes) = kv
        .get(format!("{tenant}.{topic}"))
        .await
        .map_err(|e| Error::nats("a stats document", e))?
    else {
        return Ok(None);
    };
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let by_action = doc["by_action"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Counts {
        total: doc["total"].as_u64().unwrap_or_default(),
        by_action,
    }))
}

/// Events a durable consumer has not yet finished: (not yet delivered, delivered and not
/// acknowledged).
pub async fn consumer_backlog(js: &jetstream::Context, name: &str) -> Result<(u64, u64), Error> {
    let stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| Error::nats("the events stream", e))?;
    let info = stream
        .consumer_info(name)
        .await
        .map_err(|e| Error::nats("a consumer's info", e))?;
    Ok((info.num_pending, info.num_ack_pending as u64))
}
