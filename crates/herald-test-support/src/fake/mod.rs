//! Fake Telegram Bot API and Slack servers: real HTTP on `127.0.0.1:0` that answer in each
//! platform's real formats (`fixtures/telegram`, `fixtures/slack`), record every request
//! into a channel the test awaits, and can be scripted to answer 429, 5xx or permanent
//! errors per chat or channel.
//!
//! Both can also enforce a minimum interval per chat, the way the platforms do: a request
//! that comes too soon is answered 429 and counted as a violation, so a test can assert that
//! a client never exceeded a rate.

mod slack;
mod telegram;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

pub use slack::FakeSlack;
pub use telegram::FakeTelegram;

/// How a fake answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Success.
    Ok,
    /// 429 with the platform's retry delay (`parameters.retry_after` / `Retry-After`), in
    /// seconds.
    RetryAfter(u64),
    /// A 5xx (Telegram 502 JSON error; Slack 500 `rollup_error`).
    ServerError,
    /// A permanent error. Telegram: `chat_not_found` (400) or `unauthorized` (401); requests
    /// the fake Telegram refuses by itself (empty or over-long text, unparsable MarkdownV2 or
    /// HTML) are recorded as `bad_request`. Slack: the error code, e.g. `channel_not_found`,
    /// `channel_is_archived`, `invalid_auth`.
    Error(&'static str),
    /// A proxy's plain-text error page with this status that echoes the request path back
    /// (`Cannot POST /bot<token>/sendMessage`), as many do: the path carries the bot token
    /// (Telegram) or is the webhook's secret (Slack).
    ProxyError(u16),
    /// No answer at all: the request hangs until the client gives up (its timeout).
    Hang,
}

impl Reply {
    /// The answer to a reply the platforms share ([`Reply::ProxyError`], [`Reply::Hang`]) for
    /// a request to `path`; `None` for the platform-specific ones.
    async fn common(&self, path: &str) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        match self {
            Self::ProxyError(code) => {
                let status = axum::http::StatusCode::from_u16(*code)
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
                Some((status, format!("Cannot POST {path}")).into_response())
            }
            Self::Hang => std::future::pending().await,
            _ => None,
        }
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived (tokio clock).
    pub at: Instant,
    /// The chat id (Telegram), webhook name or channel (Slack).
    pub target: String,
    /// The bot token (Telegram, from the URL; Slack, from `Authorization: Bearer`).
    pub token: Option<String>,
    /// The method (`sendMessage`, `webhook`, `chat.postMessage`).
    pub method: String,
    /// The message text.
    pub text: String,
    /// The whole JSON body.
    pub body: serde_json::Value,
    /// What the fake answered.
    pub reply: Reply,
}

#[derive(Default)]
struct State {
    once: HashMap<String, VecDeque<Reply>>,
    always: HashMap<String, Reply>,
    last_ok: HashMap<String, Instant>,
    received: Vec<Received>,
    violations: Vec<(String, Duration)>,
}

/// Scripts, records and rate-checks requests; shared by both fakes.
#[derive(Clone)]
struct Recorder {
    state: Arc<Mutex<State>>,
    tx: mpsc::UnboundedSender<Received>,
    min_interval: Arc<Mutex<Option<Duration>>>,
}

impl Recorder {
    fn new() -> (Self, mpsc::UnboundedReceiver<Received>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = Self {
            state: Arc::default(),
            tx,
            min_interval: Arc::default(),
        };
        (r, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a request the fake refused on its own (malformed, too long, bad markup).
    fn refused(&self, mut rec: Received, reply: Reply) {
        rec.reply = reply;
        self.lock().received.push(rec.clone());
        let _ = self.tx.send(rec);
    }

    /// Decides the reply for a request to `target` and records it.
    fn answer(&self, mut rec: Received) -> Reply {
        let min = *self.min_interval.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = self.lock();
        let scripted = s.once.get_mut(&rec.target).and_then(VecDeque::pop_front);
        let mut reply = scripted
            .or_else(|| s.always.get(&rec.target).cloned())
            .unwrap_or(Reply::Ok);
        if let (Some(min), Some(last)) = (min, s.last_ok.get(&rec.target).copied()) {
            let gap = rec.at.saturating_duration_since(last);
            if gap < min {
                s.violations.push((rec.target.clone(), gap));
                reply = Reply::RetryAfter(1);
            }
        }
        if reply == Reply::Ok {
            s.last_ok.insert(rec.target.clone(), rec.at);
        }
        rec.reply = reply.clone();
        s.received.push(rec.clone());
        drop(s);
        let _ = self.tx.send(rec);
        reply
    }
}

/// What both fakes offer a test; implemented by [`FakeTelegram`] and [`FakeSlack`].
macro_rules! recorder_api {
    ($ty:ty) => {
        impl $ty {
            /// Answers the next requests to `target` with `replies`, in order, then as before.
            pub fn script(
                &self,
                target: impl std::fmt::Display,
                replies: impl IntoIterator<Item = $crate::fake::Reply>,
            ) {
                self.recorder
                    .lock()
                    .once
                    .entry(target.to_string())
                    .or_default()
                    .extend(replies);
            }

            /// Answers every request to `target` with `reply` until [`Self::heal`].
            pub fn always(&self, target: impl std::fmt::Display, reply: $crate::fake::Reply) {
                self.recorder
                    .lock()
                    .always
                    .insert(target.to_string(), reply);
            }

            /// Undoes [`Self::always`] for `target`.
            pub fn heal(&self, target: impl std::fmt::Display) {
                self.recorder.lock().always.remove(&target.to_string());
            }

            /// Answers 429 (and records a violation) when a target gets two accepted requests
            /// less than `min` apart.
            pub fn enforce_min_interval(&self, min: std::time::Duration) {
                *self
                    .recorder
                    .min_interval
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(min);
            }

            /// The next request, waiting at most `timeout`.
            pub async fn next(
                &self,
                timeout: std::time::Duration,
            ) -> Option<$crate::fake::Received> {
                let mut rx = self.rx.lock().await;
                tokio::time::timeout(timeout, rx.recv())
                    .await
                    .ok()
                    .flatten()
            }

            /// Every request so far.
            pub fn received(&self) -> Vec<$crate::fake::Received> {
                self.recorder.lock().received.clone()
            }

            /// The requests so far that were accepted.
            pub fn accepted(&self) -> Vec<$crate::fake::Received> {
                self.received()
                    .into_iter()
                    .filter(|r| r.reply == $crate::fake::Reply::Ok)
                    .collect()
            }

            /// Requests that came sooner than [`Self::enforce_min_interval`] allows: (target, gap).
            pub fn violations(&self) -> Vec<(String, std::time::Duration)> {
                self.recorder.lock().violations.clone()
            }

            /// Waits until at least `n` requests were accepted (at most `timeout`); returns
            /// them all.
            pub async fn wait_accepted(
                &self,
                n: usize,
                timeout: std::time::Duration,
            ) -> Vec<$crate::fake::Received> {
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    let accepted = self.accepted();
                    if accepted.len() >= n {
                        return accepted;
                    }
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() || self.next(left).await.is_none() {
                        return self.accepted();
                    }
                }
            }
        }
    };
}
use recorder_api;
