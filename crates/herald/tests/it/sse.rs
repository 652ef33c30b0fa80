//! A minimal SSE reader for the gateway's `/v1/stream`: what a browser's EventSource sees.

use futures::StreamExt;
use futures::stream::BoxStream;
use herald_core::sse::{EventStream, Item};

/// One SSE message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// `id:` (a cursor), if any.
    pub id: Option<String>,
    /// `event:` (a control message's name); `None` for an event.
    pub event: Option<String>,
    /// `data:`.
    pub data: String,
}

impl Message {
    /// `data` as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("SSE data is JSON")
    }

    /// The stream sequence of the cursor in `id`.
    pub fn seq(&self) -> u64 {
        let id = self.id.as_deref().expect("an id");
        let cursor: herald_core::cursor::Cursor = id.parse().expect("a cursor");
        cursor.seq
    }
}

/// Reads messages off one SSE response, through [`herald_core::sse`] (the one SSE parser).
pub struct Reader {
    body: EventStream<BoxStream<'static, reqwest::Result<Vec<u8>>>>,
}

impl Reader {
    /// Reads `resp`'s body.
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            body: EventStream::new(resp.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed()),
        }
    }

    /// The next message (comments and `retry:` skipped); `None` when the stream ends.
    /// Callers bound it with their own deadline.
    pub async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            match self.body.next_item().await.transpose()? {
                None => return Ok(None),
                Some(Item::Event(ev)) => {
                    return Ok(Some(Message {
                        event: (!ev.is_message()).then(|| ev.event.into_owned()),
                        id: ev.id,
                        data: ev.data,
                    }));
                }
                Some(Item::Comment | Item::Retry(_)) => {}
            }
        }
    }
}
