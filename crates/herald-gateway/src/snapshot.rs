//! Snapshots of collections (`proto/state.md`): which topics a request names, its pages, how
//! they are rendered, and the snapshots a gateway keeps for their later pages.
//!
//! A snapshot is a [`Cut`] of the mirror (cut in O(1) under the hub's lock) seen by one user
//! ([`View`]): rows whose event had an audience (`to`) are visible only to its users. Rows are
//! ordered by topic (as requested; every collection the token grants, by name, for a
//! wildcard) then key (bytewise), and paged `limit` rows at a time with an opaque `after`
//! token (the topic and key of the page's last row). Filters (`actions`, `where`) apply to
//! events only: a snapshot holds every row of its topics the user may see.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{BufMut, Bytes, BytesMut};
use herald_core::cursor::Cursor;
use herald_core::names::{TenantId, Topic};
use herald_core::state::Collections;

use crate::auth::TopicSet;
use crate::error::ApiError;
use crate::mirror::{CollectionId, Cut, MirrorRow};

/// Rows per page when `limit` is not given (and per stream `snapshot` frame).
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// The collection topics of a request, in order: the requested ones (as requested), or every
/// collection of the tenant `scope` holds (by name) when none or `*` is requested. `strict`
/// (`/v1/snapshot`): a requested topic that is not a collection is `400 not_a_collection`;
/// otherwise (`snapshot=1` streams) it is left out. No collection at all is a 400 either way.
pub fn collection_topics(
    collections: &Collections,
    tenant: &TenantId,
    requested: &[String],
    scope: &TopicSet,
    strict: bool,
) -> Result<Vec<Topic>, ApiError> {
    let mut topics: Vec<Topic> = Vec::new();
    if requested.is_empty() || requested.iter().any(|t| t == "*") {
        topics = collections
            .iter()
            .filter(|(t, p, _)| *t == tenant && scope.contains(p))
            .map(|(_, p, _)| p.clone())
            .collect();
        topics.sort();
    } else {
        for raw in requested {
            let Ok(topic) = Topic::parse(raw.as_str()) else {
                continue; // the scope check already refused malformed names
            };
            if !collections.contains(tenant, &topic) {
                if strict {
                    return Err(ApiError::NotACollection(format!(
                        "topic {raw:?} is not a collection"
                    )));
                }
                continue;
            }
            if scope.contains(&topic) && !topics.contains(&topic) {
                topics.push(topic);
            }
        }
    }
    if topics.is_empty() {
        return Err(ApiError::NotACollection(
            "none of the topics is a collection".into(),
        ));
    }
    Ok(topics)
}

/// Where a page ends: the index of its last row's topic, and that row's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    topic: usize,
    key: String,
}

impl Position {
    /// The opaque `after` token: base64url of `<topic>\n<key>`.
    fn token(&self, topics: &[Topic]) -> String {
        let topic = topics.get(self.topic).map_or("", Topic::as_str);
        URL_SAFE_NO_PAD.encode(format!("{topic}\n{}", self.key))
    }

    /// Parses an `after` token of a request for `topics`.
    pub fn parse(token: &str, topics: &[Topic]) -> Result<Self, ApiError> {
        let bad = || ApiError::BadRequest("malformed `after` token".into());
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (topic, key) = text.split_once('\n').ok_or_else(bad)?;
        let topic = topics
            .iter()
            .position(|t| t.as_str() == topic)
            .ok_or_else(|| {
                ApiError::BadRequest("`after` belongs to a request for other topics".into())
            })?;
        Ok(Self {
            topic,
            key: key.to_owned(),
        })
    }
}

/// One page, rendered.
#[derive(Debug, Clone)]
pub struct Page {
    /// The snapshot's cursor.
    pub cursor: Cursor,
    /// `{"cursor":…,"topics":{…},"more":…}` (and `"after"` when asked for and `more`).
    pub json: String,
    /// Whether more rows follow.
    pub more: bool,
    /// Where the next page starts, when `more`.
    pub after: Option<Position>,
    /// Rows on the page.
    pub rows: usize,
}

/// A snapshot as one user of one tenant sees it.
#[derive(Debug, Clone)]
pub struct View {
    cut: Cut,
    ids: Vec<CollectionId>,
    topics: Vec<Topic>,
    user: String,
}

impl View {
    /// `cut`'s `topics` of `tenant`, as `user` sees them.
    pub fn new(cut: Cut, tenant: &TenantId, topics: Vec<Topic>, user: String) -> Self {
        let ids = topics.iter().map(|t| (tenant.clone(), t.clone())).collect();
        Self {
            cut,
            ids,
            topics,
            user,
        }
    }

    /// The snapshot's cursor.
    pub fn cursor(&self) -> Cursor {
        self.cut.cursor
    }

    /// The topics, in page order.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// The rows after `from` (from the start: `None`) the user may see, in page order.
    fn rows_after<'a>(
        &'a self,
        from: Option<&'a Position>,
    ) -> impl Iterator<Item = (usize, &'a String, &'a MirrorRow)> + 'a {
        let start = from.map_or(0, |p| p.topic);
        self.ids
            .iter()
            .enumerate()
            .skip(start)
            .flat_map(move |(i, id)| {
                let lower = match from {
                    Some(p) if p.topic == i => Bound::Excluded(p.key.clone()),
                    _ => Bound::Unbounded,
                };
                self.cut
                    .tables
                    .get(id)
                    .into_iter()
                    .flat_map(move |t| t.range((lower.clone(), Bound::Unbounded)))
                    .map(move |(k, r)| (i, k, r))
            })
            .filter(|(_, _, r)| r.visible_to(&self.user))
    }

    /// The page of at most `limit` rows after `from`; `with_after` adds the `after` token.
    pub fn page(&self, from: Option<&Position>, limit: usize, with_after: bool) -> Page {
        let mut rows = self.rows_after(from);
        let taken: Vec<(usize, &String, &MirrorRow)> = rows.by_ref().take(limit.max(1)).collect();
        let more = rows.next().is_some();
        let after = more
            .then(|| taken.last())
            .flatten()
            .map(|(i, k, _)| Position {
                topic: *i,
                key: (*k).clone(),
            });
        let mut out = String::with_capacity(64 + taken.len() * 64);
        out.push_str("{\"cursor\":\"");
        out.push_str(&self.cut.cursor.to_string());
        out.push_str("\",\"topics\":{");
        let mut rows = taken.iter().peekable();
        for (i, topic) in self.topics.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, topic.as_str());
            out.push_str(":{");
            let mut first = true;
            while let Some((_, key, row)) = rows.next_if(|(t, _, _)| *t == i) {
                if !first {
                    out.push(',');
                }
                first = false;
                push_json_str(&mut out, key);
                out.push(':');
                out.push_str(row.data.get());
            }
            out.push('}');
        }
        out.push_str("},\"more\":");
        out.push_str(if more { "true" } else { "false" });
        if let (true, Some(after)) = (with_after, &after) {
            out.push_str(",\"after\":\"");
            out.push_str(&after.token(&self.topics));
            out.push('"');
        }
        out.push('}');
        Page {
            cursor: self.cut.cursor,
            json: out,
            more,
            after,
            rows: taken.len(),
        }
    }

    /// The collections it shows.
    pub fn ids(&self) -> &[CollectionId] {
        &self.ids
    }
}

fn push_json_str(out: &mut String, s: &str) {
    // Serializing a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// The `after` token of a page, if it has one.
pub fn after_token(view: &View, page: &Page) -> Option<String> {
    page.after.as_ref().map(|p| p.token(view.topics()))
}

/// A snapshot page for a stream: SSE `event: snapshot` (with `id:` only on the last page),
/// WebSocket `{"type":"snapshot",…}`.
#[derive(Debug)]
pub struct SnapshotFrame {
    /// The snapshot's cursor.
    pub cursor: Cursor,
    /// Whether more pages follow.
    pub more: bool,
    /// `{"cursor","topics","more"}`.
    pub json: Bytes,
}

impl SnapshotFrame {
    /// The frame of `page`.
    pub fn new(page: Page) -> Self {
        Self {
            cursor: page.cursor,
            more: page.more,
            json: Bytes::from(page.json),
        }
    }

    /// The SSE message: the last page carries `id:` (the cursor), so `Last-Event-ID` is set
    /// only once the whole snapshot is in.
    pub fn sse(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.json.len() + 48);
        if !self.more {
            out.put_slice(b"id: ");
            out.put_slice(self.cursor.to_string().as_bytes());
            out.put_slice(b"\n");
        }
        out.put_slice(b"event: snapshot\ndata: ");
        out.put_slice(&self.json);
        out.put_slice(b"\n\n");
        out.freeze()
    }

    /// The WebSocket text frame.
    pub fn ws_text(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.json.len() + 20);
        out.put_slice(b"{\"type\":\"snapshot\",");
        out.put_slice(&self.json[1..]);
        out.freeze()
    }
}

/// A snapshot being sent on a stream, page by page (rendered as they go out).
#[derive(Debug)]
pub struct Pager {
    view: View,
    next: Option<Position>,
    done: bool,
}

impl Pager {
    /// The pages of `view`.
    pub fn new(view: View) -> Self {
        Self {
            view,
            next: None,
            done: false,
        }
    }

    /// The snapshot's cursor.
    pub fn cursor(&self) -> Cursor {
        self.view.cursor()
    }

    /// The next page, `None` after the last.
    pub fn next_page(&mut self) -> Option<SnapshotFrame> {
        if self.done {
            return None;
        }
        let page = self.view.page(self.next.as_ref(), DEFAULT_LIMIT, false);
        self.next = page.after.clone();
        self.done = !page.more;
        Some(SnapshotFrame::new(page))
    }
}

/// The snapshots a gateway keeps for their later pages: each for `ttl` after its last page,
/// at most `max` (the least recently paged goes first). A kept snapshot shares its unchanged
/// rows with the live mirror: it costs the rows changed since it was cut.
#[derive(Debug)]
pub struct Retained {
    ttl: Duration,
    max: usize,
    held: Mutex<HashMap<Cursor, (Cut, Instant)>>,
}

impl Retained {
    /// An empty store.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Cursor, (Cut, Instant)>> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        held.retain(|_, (_, used)| now.duration_since(*used) < self.ttl);
        held
    }

    /// Keeps `cut` (or refreshes it) for another `ttl`.
    pub fn keep(&self, cut: &Cut) {
        if self.max == 0 {
            return;
        }
        let mut held = self.held();
        if !held.contains_key(&cut.cursor) && held.len() >= self.max {
            let oldest = held
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(c, _)| *c);
            if let Some(c) = oldest {
                held.remove(&c);
            }
        }
        held.insert(cut.cursor, (cut.clone(), Instant::now()));
    }

    /// The snapshot cut at `cursor`, if still held (its `ttl` starts again).
    pub fn get(&self, cursor: Cursor) -> Option<Cut> {
        let mut held = self.held();
        let (cut, used) = held.get_mut(&cursor)?;
        *used = Instant::now();
        Some(cut.clone())
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.held().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
