//! What travels to clients, and how each transport writes it.
//!
//! An event is serialized **once** into an [`EventFrame`] when the tail receives it: the SSE
//! frame is built eagerly, the WebSocket frame lazily on first use; both are `Bytes` shared by
//! every subscriber. Control messages ([`Control`]) are rare and rendered per connection.
//! The body is parsed (for `where` filters, [`crate::filter`]) at most once, lazily, too.
//!
//! A private event's audience travels in the `Herald-To` header, never in the body
//! ([`AUDIENCE_HEADER`], proto/subjects.md): the tail and replays read it into
//! [`EventFrame::audience`] without looking at the body.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use herald_core::cursor::Cursor;
use herald_core::names::{Action, TenantId, Topic};
use herald_core::subject;
use serde_json::value::RawValue;

/// The NATS header naming a private event's audience (`herald_core::audience::HEADER`).
pub const AUDIENCE_HEADER: &str = herald_core::audience::HEADER;

/// The user ids (token `sub`s) a private event is for.
pub type Audience = Arc<[Arc<str>]>;

/// The audience in `headers` (see [`herald_core::audience::ids`]): `None` for a public event;
/// a present header that names nobody addresses nobody.
pub fn audience(headers: Option<&async_nats::HeaderMap>) -> Option<Audience> {
    herald_core::audience::ids(headers).map(|ids| ids.into_iter().map(Arc::from).collect())
}

/// One stored event, ready to send.
#[derive(Debug)]
pub struct EventFrame {
    /// Where the event is in `HERALD_EVENTS`.
    pub cursor: Cursor,
    /// Its tenant (from the subject).
    pub tenant: TenantId,
    /// Its topic (from the subject).
    pub topic: Topic,
    /// Its action (from the subject).
    pub action: Action,
    /// The CloudEvent JSON, compact (no raw newlines).
    pub json: Bytes,
    /// `id: <cursor>\ndata: <json>\n\n`.
    pub sse: Bytes,
    /// [`EventFrame::sse`] framed as one HTTP/1.1 chunk (`<len hex>\r\n…\r\n`), so a
    /// chunked stream writes every event with one contiguous write ([`crate::server`]).
    /// `sse` is a slice of the same allocation.
    pub sse_chunk: Bytes,
    /// Who may receive it (`Herald-To`); `None`: everyone the topic reaches.
    pub audience: Option<Audience>,
    ws: OnceLock<Bytes>,
    /// The parsed body, for `where` filters; `None` inside if it is not an object.
    fields: OnceLock<Option<serde_json::Value>>,
}

/// Why a stored message cannot be delivered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The subject is not `herald.events.<tenant>.<topic>.<action>`.
    #[error("not an event subject")]
    Subject,
    /// The payload is not JSON.
    #[error("payload is not JSON")]
    Payload,
}

impl EventFrame {
    /// Builds the frame of the message stored at `cursor` on `subject`.
    pub fn new(cursor: Cursor, subject: &str, payload: &[u8]) -> Result<Self, FrameError> {
        let parts = subject::parse_event(subject).ok_or(FrameError::Subject)?;
        let raw: &RawValue = serde_json::from_slice(payload).map_err(|_| FrameError::Payload)?;
        // SSE `data:` must be one line; JSON from Herald is compact, anything else is redone.
        let json = if raw.get().bytes().any(|b| b == b'\n' || b == b'\r') {
            let v: serde_json::Value =
                serde_json::from_str(raw.get()).map_err(|_| FrameError::Payload)?;
            Bytes::from(v.to_string())
        } else {
            Bytes::copy_from_slice(raw.get().as_bytes())
        };
        let id = cursor.to_string();
        let sse_len = json.len() + id.len() + 4 + 7 + 2;
        let chunk_head = format!("{sse_len:x}\r\n");
        let mut chunk = BytesMut::with_capacity(chunk_head.len() + sse_len + 2);
        chunk.put_slice(chunk_head.as_bytes());
        chunk.put_slice(b"id: ");
        chunk.put_slice(id.as_bytes());
        chunk.put_slice(b"\ndata: ");
        chunk.put_slice(&json);
        chunk.put_slice(b"\n\n");
        chunk.put_slice(b"\r\n");
        let sse_chunk = chunk.freeze();
        let sse = sse_chunk.slice(chunk_head.len()..sse_chunk.len() - 2);
        debug_assert_eq!(sse.len(), sse_len);
        Ok(Self {
            cursor,
            tenant: parts.tenant,
            topic: parts.topic,
            action: parts.action,
            json,
            sse,
            sse_chunk,
            audience: None,
            ws: OnceLock::new(),
            fields: OnceLock::new(),
        })
    }

    /// The frame, private to `audience` (`None`: public).
    #[must_use]
    pub fn with_audience(mut self, audience: Option<Audience>) -> Self {
        self.audience = audience;
        self
    }

    /// Whether a connection authenticated as `viewer` may receive the event: a public event
    /// reaches everyone, a private one only the users it names (no viewer: nobody).
    pub fn visible_to(&self, viewer: Option<&str>) -> bool {
        match &self.audience {
            None => true,
            Some(ids) => viewer.is_some_and(|v| ids.iter().any(|id| &**id == v)),
        }
    }

    /// The stream sequence.
    pub fn seq(&self) -> u64 {
        self.cursor.seq
    }

    /// `{"type":"event","cursor":…,"topic":…,"event":<CloudEvent>}`, built once.
    pub fn ws_text(&self) -> Bytes {
        self.ws
            .get_or_init(|| {
                let mut out = BytesMut::with_capacity(self.json.len() + 96);
                out.put_slice(b"{\"type\":\"event\",\"cursor\":\"");
                out.put_slice(self.cursor.to_string().as_bytes());
                out.put_slice(b"\",\"topic\":\"");
                out.put_slice(self.topic.as_str().as_bytes());
                out.put_slice(b"\",\"event\":");
                out.put_slice(&self.json);
                out.put_slice(b"}");
                out.freeze()
            })
            .clone()
    }

    /// The CloudEvent as a JSON object, parsed on first use and shared by every `where`
    /// filter that reads it: one parse per event, not per subscriber. Like the WebSocket
    /// text, it is memory the ring's byte bound does not count (the ring counts a frame at
    /// the size it had when it came in).
    pub fn fields(&self) -> Option<&serde_json::Value> {
        self.fields
            .get_or_init(|| {
                serde_json::from_slice::<serde_json::Value>(&self.json)
                    .ok()
                    .filter(serde_json::Value::is_object)
            })
            .as_ref()
    }

    /// Whether [`EventFrame::fields`] has parsed the body.
    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.fields.get().is_some()
    }

    /// The memory the frame holds, for the ring buffer's byte bound.
    pub fn size(&self) -> usize {
        let audience = self
            .audience
            .as_ref()
            .map_or(0, |ids| ids.iter().map(|id| id.len() + 16).sum());
        self.json.len()
            + self.sse_chunk.len()
            + self.ws.get().map_or(0, Bytes::len)
            + audience
            + 128
    }
}

/// A stats document (`$stats`), ready to send: `{"topic":…,"cursor":…,"doc":{…}}`, the same
/// shape as one answer of `GET /v1/stats`. Built once per document version.
#[derive(Debug)]
pub struct StatsFrame {
    /// The document's tenant.
    pub tenant: TenantId,
    /// The document's topic.
    pub topic: Topic,
    /// The stream sequence the document has counted up to.
    pub seq: u64,
    /// `{"topic":…,"cursor":…,"doc":{…}}`.
    pub json: Bytes,
    /// `event: stats\ndata: <json>\n\n`.
    pub sse: Bytes,
    /// `{"type":"stats","topic":…,"cursor":…,"doc":{…}}`.
    pub ws: Bytes,
}

impl StatsFrame {
    /// Renders `doc` for every transport.
    pub fn new(doc: &herald_stats::StatsDoc) -> Self {
        let body = serde_json::json!({"topic": doc.topic, "cursor": doc.cursor, "doc": doc});
        let json = Bytes::from(body.to_string());
        let mut sse = BytesMut::with_capacity(json.len() + 22);
        sse.put_slice(b"event: stats\ndata: ");
        sse.put_slice(&json);
        sse.put_slice(b"\n\n");
        let mut ws = BytesMut::with_capacity(json.len() + 16);
        ws.put_slice(b"{\"type\":\"stats\",");
        // `json` is an object: drop its `{`.
        ws.put_slice(&json[1..]);
        Self {
            tenant: doc.tenant.clone(),
            topic: doc.topic.clone(),
            seq: doc.last_seq,
            json,
            sse: sse.freeze(),
            ws: ws.freeze(),
        }
    }
}

/// Why a client must refetch its snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The cursor's epoch is not the stream's: the stream was recreated.
    EpochMismatch,
    /// The cursor is older than the stream's first retained event.
    OutOfRetention,
    /// The cursor is past the stream's last event (same epoch): it never came from this
    /// stream, and resuming from it would silently skip events.
    CursorAhead,
}

impl ResetReason {
    /// The reason as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EpochMismatch => "epoch_mismatch",
            Self::OutOfRetention => "out_of_retention",
            Self::CursorAhead => "cursor_ahead",
        }
    }
}

/// Why the server asks a client to reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectReason {
    /// The gateway is shutting down.
    Draining,
    /// The token expires now; reconnect with a fresh one.
    TokenExpired,
    /// Replaying from JetStream failed; try again.
    ReplayFailed,
    /// The gateway cannot serve this resume right now (NATS unreachable); try again.
    Unavailable,
}

impl ReconnectReason {
    /// The reason as sent to clients.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::TokenExpired => "token_expired",
            Self::ReplayFailed => "replay_failed",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A control message.
#[derive(Debug, Clone)]
pub enum Control {
    /// The first message of every stream (`event: status`): the feed's state, the heartbeat
    /// interval, and, for a connection opened without a cursor, where it starts (SSE: as the
    /// `id:`, so `EventSource.lastEventId` is set before the first event).
    Hello {
        /// Whether events are flowing.
        live: bool,
        /// The heartbeat interval, in milliseconds.
        heartbeat_ms: u64,
        /// The starting cursor, when the client gave none.
        cursor: Option<Cursor>,
    },
    /// The feed is live (`true`) or degraded (`false`: NATS unreachable).
    Status {
        /// Whether events are flowing.
        live: bool,
    },
    /// Refetch your snapshot; continue from `cursor`.
    Reset {
        /// Why.
        reason: ResetReason,
        /// The position live delivery continues from.
        cursor: Cursor,
    },
    /// The client was too slow and is being disconnected.
    Overflow,
    /// Reconnect (with your last cursor).
    Reconnect {
        /// Why.
        reason: ReconnectReason,
    },
}

impl Control {
    fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } | Self::Status { .. } => "status",
            Self::Reset { .. } => "reset",
            Self::Overflow => "overflow",
            Self::Reconnect { .. } => "reconnect",
        }
    }

    /// The JSON data of the message (without the WS `type`).
    fn data(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Hello {
                live,
                heartbeat_ms,
                cursor,
            } => {
                let mut data = json!({"state": state(*live), "heartbeat_ms": heartbeat_ms});
                if let Some(cursor) = cursor {
                    data["cursor"] = cursor.to_string().into();
                }
                data
            }
            Self::Status { live } => json!({"state": state(*live)}),
            Self::Reset { reason, cursor } => {
                json!({"reason": reason.as_str(), "cursor": cursor.to_string()})
            }
            Self::Overflow => json!({"reason": "client_too_slow"}),
            Self::Reconnect { reason } => json!({"reason": reason.as_str()}),
        }
    }

    /// The SSE message. A reset carries `id:` so `Last-Event-ID` moves past the gap, and so
    /// does the opening status of a connection without a cursor.
    pub fn sse(&self) -> Bytes {
        let mut out = String::new();
        if let Self::Reset { cursor, .. }
        | Self::Hello {
            cursor: Some(cursor),
            ..
        } = self
        {
            out.push_str(&format!("id: {cursor}\n"));
        }
        out.push_str(&format!(
            "event: {}\ndata: {}\n\n",
            self.name(),
            self.data()
        ));
        Bytes::from(out)
    }

    /// The WebSocket text frame: the data object with `"type":<name>` added.
    pub fn ws_text(&self) -> String {
        let mut frame = match self.data() {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        frame.insert("type".into(), self.name().into());
        serde_json::Value::Object(frame).to_string()
    }
}

fn state(live: bool) -> &'static str {
    if live { "live" } else { "degraded" }
}

/// What the fan-out queues for a client.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A stored event.
    Event(Arc<EventFrame>),
    /// A stats document.
    Stats(Arc<StatsFrame>),
    /// A control message.
    Control(Control),
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::cursor::Epoch;

    #[test]
    fn event_frames_are_one_line_sse_and_valid_ws_json() {
        let c = Cursor::new(7, Epoch(0xab));
        let f = EventFrame::new(
            c,
            "herald.events.acme.leads.insert",
            b"{\n\"a\": \"x\\ny\"\n}",
        )
        .unwrap();
        assert_eq!(&f.sse[..], b"id: 7-000000ab\ndata: {\"a\":\"x\\ny\"}\n\n");
        let framed = [&b"23\r\n"[..], &f.sse[..], b"\r\n"].concat();
        assert_eq!(f.sse.len(), 0x23);
        assert_eq!(&f.sse_chunk[..], &framed[..]);
        let ws: serde_json::Value = serde_json::from_slice(&f.ws_text()).unwrap();
        assert_eq!(ws["cursor"], "7-000000ab");
        assert_eq!(ws["event"]["a"], "x\ny");
        assert!(EventFrame::new(c, "herald.events.acme.leads", b"{}").is_err());
        assert!(EventFrame::new(c, "herald.events.acme.leads.x", b"nope").is_err());
    }

    #[test]
    fn the_audience_header_makes_an_event_private() {
        let c = Cursor::new(7, Epoch(0xab));
        let frame = |headers: Option<&async_nats::HeaderMap>| {
            EventFrame::new(c, "herald.events.acme.leads.insert", b"{}")
                .unwrap()
                .with_audience(audience(headers))
        };
        let public = frame(None);
        assert!(public.visible_to(None) && public.visible_to(Some("u-1")));
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Other", "x");
        assert!(
            frame(Some(&headers)).audience.is_none(),
            "no Herald-To: public"
        );
        headers.insert(AUDIENCE_HEADER, "u-42, u-7,,");
        let private = frame(Some(&headers));
        assert!(private.visible_to(Some("u-42")) && private.visible_to(Some("u-7")));
        assert!(!private.visible_to(Some("u-4")) && !private.visible_to(Some("u-42,u-7")));
        assert!(!private.visible_to(None));
        let mut lower = async_nats::HeaderMap::new();
        lower.insert("herald-to", "u-7");
        let private = frame(Some(&lower));
        assert!(private.visible_to(Some("u-7")) && !private.visible_to(Some("u-42")));
        let mut empty = async_nats::HeaderMap::new();
        empty.insert(AUDIENCE_HEADER, "");
        let nobody = frame(Some(&empty));
        assert!(!nobody.visible_to(Some("")) && !nobody.visible_to(Some("u-1")));
    }

    #[test]
    fn control_frames_render_for_both_transports() {
        let reset = Control::Reset {
            reason: ResetReason::OutOfRetention,
            cursor: Cursor::new(9, Epoch(1)),
        };
        assert_eq!(
            &reset.sse()[..],
            b"id: 9-00000001\nevent: reset\ndata: {\"cursor\":\"9-00000001\",\"reason\":\"out_of_retention\"}\n\n"
        );
        let ws: serde_json::Value = serde_json::from_str(&reset.ws_text()).unwrap();
        assert_eq!(ws["type"], "reset");
        assert_eq!(ws["reason"], "out_of_retention");
        let st: serde_json::Value =
            serde_json::from_str(&Control::Status { live: false }.ws_text()).unwrap();
        assert_eq!(st["state"], "degraded");
        let doc = herald_stats::StatsDoc::new(
            TenantId::parse("acme").unwrap(),
            Topic::parse("leads").unwrap(),
            Epoch(1),
            &[],
        );
        let stats = StatsFrame::new(&doc);
        let ws: serde_json::Value = serde_json::from_slice(&stats.ws).unwrap();
        assert_eq!(ws["type"], "stats");
        assert_eq!(ws["topic"], "leads");
        assert_eq!(ws["cursor"], "0-00000001");
        assert_eq!(ws["doc"]["total"], 0);
        assert!(stats.sse.starts_with(b"event: stats\ndata: {\"cursor\":"));
        let hello = Control::Hello {
            live: true,
            heartbeat_ms: 15_000,
            cursor: Some(Cursor::new(3, Epoch(1))),
        };
        assert_eq!(
            &hello.sse()[..],
            b"id: 3-00000001\nevent: status\ndata: {\"cursor\":\"3-00000001\",\"heartbeat_ms\":15000,\"state\":\"live\"}\n\n"
        );
        let ws: serde_json::Value = serde_json::from_str(&hello.ws_text()).unwrap();
        assert_eq!(ws["type"], "status");
        assert_eq!(ws["heartbeat_ms"], 15_000);
    }
}
