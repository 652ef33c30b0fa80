//! The one Server-Sent Events client parser: `herald` tests, chaos and bench read
//! `/v1/stream` through it.
//!
//! [`Parser`] is sans-IO and follows the WHATWG "interpreting an event stream" algorithm
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html>): feed it byte chunks as
//! they arrive, split anywhere, and take the complete [`Item`]s out. Lines end in `\r\n`,
//! `\r` or `\n` (a `\r` ending one chunk and a `\n` starting the next are one line end); a
//! leading UTF-8 BOM is skipped; `:` starts a comment; `field:value` loses at most one space
//! after the colon (`id:5` and `id: 5` are the same); a line without a colon is a field with
//! an empty value; `data` lines are joined with `\n`; an event with no data is not
//! dispatched, but its `id` still becomes the last event id; an `id` holding NUL is ignored,
//! `retry` counts only if it is all digits, and unknown fields are ignored.
//!
//! [`EventStream`] runs a parser over a body stream (e.g. `reqwest`'s `bytes_stream()`).

use std::borrow::Cow;
use std::time::Duration;

use futures::{Stream, StreamExt};

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// Its type: the `event` field, or `message` when there was none (or it was empty).
    /// Borrowed for `message`, so an unnamed event costs no allocation for its type.
    pub event: Cow<'static, str>,
    /// The `data` lines, joined with `\n`.
    pub data: String,
    /// The `id` field this event carried itself, if any. The spec's `lastEventId` (which an
    /// event without `id` inherits) is [`Parser::last_event_id`].
    pub id: Option<String>,
}

impl Event {
    /// The event type a message without `event:` gets.
    pub const MESSAGE: &'static str = "message";

    /// Whether this is an unnamed (`message`) event.
    pub fn is_message(&self) -> bool {
        self.event == Self::MESSAGE
    }
}

/// What the parser hands out, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete event.
    Event(Event),
    /// A valid `retry:` field: the server's reconnection time.
    Retry(Duration),
    /// A comment line (`:` …), e.g. a heartbeat. Its text is not kept.
    Comment,
}

/// The UTF-8 byte order mark, skipped once at the start of the stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An incremental event-stream parser: [`Parser::feed`] bytes, then [`Parser::next_item`]
/// until it returns `None`.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes received and not yet consumed (from `start`).
    buf: Vec<u8>,
    /// The first unconsumed byte of `buf`.
    start: usize,
    /// Bytes after `start` already searched for a line end.
    scanned: usize,
    /// The last line ended in `\r`: a `\n` next belongs to it.
    after_cr: bool,
    /// The start of the stream (and its possible BOM) is behind us.
    past_bom: bool,
    /// The event being assembled.
    fields: Fields,
}

/// The spec's buffers: data, event type, last event id.
#[derive(Debug, Default)]
struct Fields {
    data: String,
    event: String,
    id: Option<String>,
    last_event_id: String,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the next bytes of the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            // Only an unfinished line is left: moving it is cheap.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, or `None` until more bytes are fed.
    pub fn next_item(&mut self) -> Option<Item> {
        if !self.past_bom {
            let head = &self.buf[self.start..];
            if head.len() < BOM.len() && BOM.starts_with(head) {
                return None;
            }
            if head.starts_with(BOM) {
                self.start += BOM.len();
            }
            self.past_bom = true;
        }
        loop {
            if self.after_cr {
                match self.buf.get(self.start) {
                    None => return None,
                    Some(b'\n') => self.start += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.start..];
            let Some(len) = rest[self.scanned..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
                .map(|i| self.scanned + i)
            else {
                self.scanned = rest.len();
                return None;
            };
            self.after_cr = rest[len] == b'\r';
            let line = self.start..self.start + len;
            self.start += len + 1;
            self.scanned = 0;
            if let Some(item) = self.fields.line(&self.buf[line]) {
                return Some(item);
            }
        }
    }

    /// The spec's last event id: what an EventSource would send as `Last-Event-ID` now.
    pub fn last_event_id(&self) -> &str {
        &self.fields.last_event_id
    }
}

impl Fields {
    /// Processes one line (without its line end).
    fn line(&mut self, line: &[u8]) -> Option<Item> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return Some(Item::Comment);
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"event" => value.as_ref().clone_into(&mut self.event),
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains('\0') => {
                value.as_ref().clone_into(&mut self.last_event_id);
                self.id = Some(value.into_owned());
            }
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                return value
                    .parse()
                    .ok()
                    .map(|ms| Item::Retry(Duration::from_millis(ms)));
            }
            _ => {}
        }
        None
    }

    /// The blank line: the event so far, unless it has no data.
    fn dispatch(&mut self) -> Option<Item> {
        let id = self.id.take();
        if self.data.is_empty() {
            self.event.clear();
            return None;
        }
        self.data.pop();
        let event = if self.event.is_empty() {
            Cow::Borrowed(Event::MESSAGE)
        } else {
            Cow::Owned(std::mem::take(&mut self.event))
        };
        Some(Item::Event(Event {
            event,
            data: std::mem::take(&mut self.data),
            id,
        }))
    }
}

/// A [`Parser`] over a stream of byte chunks, such as an HTTP response body.
#[derive(Debug)]
pub struct EventStream<S> {
    body: S,
    parser: Parser,
}

impl<S, B, E> EventStream<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
{
    /// Reads `body` from its start.
    pub fn new(body: S) -> Self {
        Self {
            body,
            parser: Parser::new(),
        }
    }

    /// The next item; `None` when the body ends (an unfinished event is dropped, as the spec
    /// says), `Some(Err)` when reading it fails.
    pub async fn next_item(&mut self) -> Option<Result<Item, E>> {
        loop {
            if let Some(item) = self.parser.next_item() {
                return Some(Ok(item));
            }
            match self.body.next().await? {
                Ok(chunk) => self.parser.feed(chunk.as_ref()),
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// The spec's last event id (see [`Parser::last_event_id`]).
    pub fn last_event_id(&self) -> &str {
        self.parser.last_event_id()
    }
}

#[cfg(test)]
mod tests;
