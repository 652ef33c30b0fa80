//! A minimal SSE reader for the gateway's `/v1/stream`: what a browser's EventSource sees.

use futures::StreamExt;
use futures::stream::BoxStream;

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

/// Reads messages off one SSE response.
pub struct Reader {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

impl Reader {
    /// Reads `resp`'s body.
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            body: resp.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        }
    }

    /// The next message (comments and `retry:` skipped); `None` when the stream ends.
    /// Callers bound it with their own deadline.
    pub async fn next(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut msg = Message::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        msg.id = Some(v.to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        msg.event = Some(v.to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        msg.data.push_str(v);
                        any = true;
                    }
                }
                if any {
                    return Ok(Some(msg));
                }
                continue;
            }
            match self.body.next().await {
                None => return Ok(None),
                Some(chunk) => self.buf.push_str(std::str::from_utf8(&chunk?)?),
            }
        }
    }
}
