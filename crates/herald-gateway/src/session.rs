//! One client's delivery, independent of the transport.
//!
//! A [`Session`] yields, in order: the resume backlog (ring events, a JetStream replay, or a
//! `reset`), then live frames, with heartbeats in between; it ends with a final control
//! message (`overflow`, or `reconnect` at token expiry, on drain or after a failed replay).
//! Every event's sequence is checked against the last one sent, so the hand-off from replay to
//! live can never send an event twice.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herald_core::cursor::{Cursor, Epoch};
use herald_core::names::{TenantId, Topic};
use rand::Rng;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::auth::TopicSet;
use crate::error::ApiError;
use crate::filter::Filter;
use crate::frame::{Control, Frame, ReconnectReason, ResetReason};
use crate::hub::{Backlog, Closed, Queued, Subscription};
use crate::metrics::ResumeSource;
use crate::mirror::Cut;
use crate::replay::{self, Plan, Replay};
use crate::snapshot::{Pager, View};
use crate::state::AppState;

/// What a session produces next.
#[derive(Debug)]
pub enum Output {
    /// A frame to write.
    Frame(Frame),
    /// Time for a heartbeat.
    Heartbeat,
    /// The session is over; close the connection.
    End,
}

/// What a session receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The topics whose events it receives.
    pub topics: TopicSet,
    /// The topics whose stats documents it receives (`$stats`), if any.
    pub stats: Option<TopicSet>,
    /// Which of those topics' events it receives (`actions`, `where`).
    pub filter: Filter,
    /// Who is connected (the token's `sub`): private events reach it only when their
    /// audience names it ([`Filter::for_viewer`]). `None` (a public, token-less reader):
    /// no private event reaches it.
    pub viewer: Option<Arc<str>>,
    /// Snapshot mode (`snapshot=1`): which collections it gets a snapshot of, and for whom.
    pub snapshot: Option<SnapshotScope>,
}

/// What a snapshot-mode session gets snapshots of ([`crate::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotScope {
    /// The collection topics, in page order.
    pub topics: Vec<Topic>,
    /// The user (`sub`): rows with an audience are in its snapshots only if it names them.
    pub user: String,
}

/// A session's clocks.
pub(crate) struct Timing {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Time until the token expires.
    pub expires_in: Duration,
    /// Window over which a draining session picks its moment to end.
    pub drain_window: Duration,
}

/// What a session sends before its live frames, while it is being opened.
struct Start<'a> {
    state: &'a AppState,
    /// The hello, then the resume's events or reset.
    backlog: VecDeque<Frame>,
    /// A JetStream replay to run before live delivery.
    replay: Option<Box<Replay>>,
    /// The last sequence the client has (live events up to it are dropped).
    last_seq: u64,
    /// The subscription's head cursor and sequence: where a reset resumes.
    head: Cursor,
    head_seq: u64,
    /// The resume was refused with a `reset`.
    was_reset: bool,
}

impl<'a> Start<'a> {
    /// The hello frame, and `since` as the last sequence sent when it is of this epoch.
    /// In snapshot mode the hello carries no cursor: the snapshot's last page does.
    fn hello(
        state: &'a AppState,
        sub: &Subscription,
        since: Option<Cursor>,
        snapshot: bool,
    ) -> Self {
        let head = sub.head_cursor();
        let mut backlog = VecDeque::new();
        backlog.push_back(Frame::Control(Control::Hello {
            live: sub.live,
            heartbeat_ms: u64::try_from(state.cfg.heartbeat.as_millis()).unwrap_or(u64::MAX),
            cursor: (since.is_none() && !snapshot).then_some(head),
        }));
        Self {
            state,
            backlog,
            replay: None,
            last_seq: since.filter(|c| c.epoch == sub.epoch).map_or(0, |c| c.seq),
            head,
            head_seq: sub.head,
            was_reset: false,
        }
    }

    /// The resume cannot be honoured: a `reset` to the head, from which delivery goes on.
    fn reset(&mut self, reason: ResetReason) {
        self.state.metrics.resets.inc();
        self.backlog.push_back(Frame::Control(Control::Reset {
            reason,
            cursor: self.head,
        }));
        self.last_seq = self.head_seq;
        self.was_reset = true;
    }

    /// A cursor past what this process has seen: fine if the stream holds it.
    async fn ahead(&mut self, since: Cursor) -> Result<(), ApiError> {
        let state = self.state;
        let held = replay::stream_holds(&state.js, &state.replay_slots, since)
            .await
            .map_err(|err| {
                tracing::warn!(error = %herald_core::error_chain(&err), "checking a cursor failed");
                ApiError::NotReady
            })?;
        // Held: live delivery brings everything after it (events up to it are dropped
        // by sequence); not held: the client would silently skip events.
        if !held {
            self.reset(ResetReason::CursorAhead);
        }
        Ok(())
    }

    /// A cursor older than the ring: plans a JetStream replay up to the head.
    async fn replay(
        &mut self,
        tenant: &TenantId,
        topics: &TopicSet,
        since: Cursor,
    ) -> Result<(), ApiError> {
        let state = self.state;
        let target = replay::Target {
            tenant,
            topics,
            read: state.metrics.replay_messages.clone(),
        };
        let plan = replay::plan(&state.js, &state.replay_slots, target, since, self.head_seq)
            .await
            .map_err(|err| {
                tracing::warn!(error = %herald_core::error_chain(&err), "replay failed to start");
                ApiError::NotReady
            })?;
        match plan {
            Plan::Reset(reason) => self.reset(reason),
            Plan::Empty => state.metrics.resumed(ResumeSource::Jetstream),
            Plan::Replay(r) => {
                state.metrics.resumed(ResumeSource::Jetstream);
                self.replay = Some(r);
            }
        }
        Ok(())
    }
}

/// One client's ordered, gap-free delivery.
pub struct Session {
    sub: Subscription,
    epoch: Epoch,
    head: u64,
    topics: TopicSet,
    /// The topics whose stats documents it receives, if any.
    stats: Option<TopicSet>,
    /// Which events of its topics it receives.
    filter: Filter,
    /// Snapshot mode: what it gets snapshots of.
    snapshots: Option<SnapshotScope>,
    /// Snapshot mode: a snapshot is due (after a `reset`, or the mirror is loading); events
    /// of collection topics are held back until it comes (it holds them).
    awaiting: bool,
    /// A snapshot being sent, page by page.
    pager: Option<Pager>,
    /// The snapshot cut at registration, sent once the backlog (hello, reset) is out.
    opening: Option<Cut>,
    /// An event was filtered out since the client last got a cursor
    /// ([`Session::take_skipped`]).
    skipped: bool,
    backlog: VecDeque<Frame>,
    replay: Option<Box<Replay>>,
    last_seq: u64,
    heartbeat: Interval,
    expires: Pin<Box<Sleep>>,
    drain: Option<Pin<Box<Sleep>>>,
    drain_window: Duration,
    ended: bool,
    /// Its presence membership and `presence` events, if any ([`Session::attach_presence`]).
    presence: crate::presence::Attached,
}

impl Session {
    /// Registers a subscriber and plans its resume from `since`. Fails with 503 before the
    /// stream was reached or when a needed replay cannot start.
    pub async fn open(
        state: &AppState,
        tenant: TenantId,
        scope: Scope,
        since: Option<Cursor>,
        expires_in: Duration,
    ) -> Result<Self, ApiError> {
        let Scope {
            topics,
            stats,
            filter,
            viewer,
            snapshot,
        } = scope;
        // Private events are checked where the filter is: whatever their source (live, ring,
        // JetStream), one not addressed to the viewer moves the cursor like a filtered one.
        let filter = match viewer {
            Some(viewer) => filter.for_viewer(viewer),
            None => filter,
        };
        let mut sub = state
            .hub
            .subscribe_with(
                tenant.clone(),
                topics.clone(),
                since,
                state.cfg.client_queue,
                snapshot.is_some(),
            )
            .ok_or(ApiError::NotReady)?;
        if stats.is_some() {
            sub.set_stats(stats.clone());
        }
        let mut start = Start::hello(state, &sub, since, snapshot.is_some());
        match std::mem::replace(&mut sub.backlog, Backlog::Nothing) {
            Backlog::Nothing => {}
            Backlog::Ring(events) => {
                state.metrics.resumed(ResumeSource::Memory);
                start.backlog.extend(events.into_iter().map(Frame::Event));
            }
            Backlog::Reset(reason) => start.reset(reason),
            Backlog::Ahead(since) => start.ahead(since).await?,
            Backlog::Replay(since) => start.replay(&tenant, &topics, since).await?,
        }
        let cut = sub.cut.take();
        let mut session = Self::new(
            sub,
            topics,
            Timing {
                heartbeat: state.cfg.heartbeat,
                expires_in,
                drain_window: state.cfg.drain_window,
            },
        );
        session.backlog = start.backlog;
        session.stats = stats;
        session.filter = filter;
        session.replay = start.replay;
        session.last_seq = start.last_seq;
        session.snapshots = snapshot;
        // A snapshot only when the client has no cursor, or its cursor was refused.
        if session.snapshots.is_some() && (since.is_none() || start.was_reset) {
            match cut {
                Some(cut) => session.opening = Some(cut),
                None => session.awaiting = true,
            }
        }
        Ok(session)
    }

    /// A live-only session over an existing subscription (tests build sessions without NATS
    /// this way).
    pub(crate) fn new(sub: Subscription, topics: TopicSet, timing: Timing) -> Self {
        let Timing {
            heartbeat,
            expires_in,
            drain_window,
        } = timing;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            epoch: sub.epoch,
            head: sub.head,
            sub,
            topics,
            stats: None,
            filter: Filter::default(),
            snapshots: None,
            awaiting: false,
            pager: None,
            opening: None,
            skipped: false,
            backlog: VecDeque::new(),
            replay: None,
            last_seq: 0,
            heartbeat,
            expires: Box::pin(tokio::time::sleep(expires_in)),
            drain: None,
            drain_window,
            ended: false,
            presence: crate::presence::Attached::default(),
        }
    }

    /// Makes the session a presence member and/or a receiver of `presence` events
    /// ([`crate::presence::Presence::attach`]); they follow its topics from now on.
    pub fn attach_presence(&mut self, presence: crate::presence::Attached) {
        self.presence = presence;
    }

    /// Where the client is: the last event sent or, once the backlog is exhausted, at least
    /// the registration point (events up to it that matched were all sent).
    pub fn cursor(&self) -> Cursor {
        let caught_up = self.backlog.is_empty() && self.replay.is_none();
        let seq = if caught_up {
            self.last_seq.max(self.head)
        } else {
            self.last_seq
        };
        Cursor::new(seq, self.epoch)
    }

    /// The cursor to hand the client when events were filtered out since it last got one
    /// (an event, a `reset`), so its next resume starts after them instead of scanning them
    /// again; `None` otherwise. Sent with a heartbeat: SSE as an `id:` before the comment,
    /// WebSocket as a `cursor` frame before the ping.
    pub fn take_skipped(&mut self) -> Option<Cursor> {
        std::mem::take(&mut self.skipped).then(|| self.cursor())
    }

    /// Moves the token expiry (a WebSocket `refresh`).
    pub fn extend(&mut self, expires_in: Duration) {
        self.expires.as_mut().reset(Instant::now() + expires_in);
    }

    /// The topics the session receives.
    pub fn topics(&self) -> &TopicSet {
        &self.topics
    }

    /// Cuts what the session receives down to what `claims` grant (a refreshed token), stats
    /// documents included; topics kept miss nothing.
    pub fn narrow(&mut self, claims: &crate::auth::Claims) {
        let topics = claims.narrow(&self.topics);
        if topics != self.topics {
            self.set_topics(topics);
        }
        if let Some(stats) = &self.stats {
            let stats = claims.narrow(stats);
            if Some(&stats) != self.stats.as_ref() {
                self.sub.set_stats(Some(stats.clone()));
                self.stats = Some(stats);
            }
        }
    }

    /// Stops sending stats documents.
    pub fn drop_stats(&mut self) {
        self.stats = None;
        self.sub.set_stats(None);
    }

    /// Replaces the topic set; topics kept across the change miss nothing.
    pub fn set_topics(&mut self, topics: TopicSet) {
        self.sub.set_topics(topics.clone());
        self.presence.set_topics(&topics);
        self.topics = topics;
    }

    /// Starts sending `cut` (snapshot mode); the live queue goes on after its cursor.
    fn begin_snapshot(&mut self, cut: Cut) {
        let Some(scope) = &self.snapshots else {
            return;
        };
        let tenant = self.sub.tenant().clone();
        self.last_seq = self.last_seq.max(cut.cursor.seq);
        let view = View::new(cut, &tenant, scope.topics.clone(), scope.user.clone());
        self.pager = Some(Pager::new(view));
        self.awaiting = false;
    }

    fn accept(&mut self, frame: Frame) -> Option<Output> {
        match &frame {
            Frame::Event(e) => {
                if e.seq() <= self.last_seq || !self.topics.contains(&e.topic) {
                    return None;
                }
                // Its snapshot, due, will hold it.
                if self.awaiting && self.sub.is_collection(&e.topic) {
                    return None;
                }
                // A filtered-out event (private to others included) moves the cursor too: a
                // resume starts after it.
                self.last_seq = e.seq();
                if !self.filter.matches(e) {
                    self.skipped = true;
                    return None;
                }
                self.skipped = false;
            }
            // The stream was recreated: sequences start over in the new epoch.
            Frame::Control(Control::Reset { cursor, .. }) => {
                if self.snapshots.is_some() {
                    // The hub sends a fresh snapshot once its mirror is reloaded.
                    self.awaiting = true;
                    self.pager = None;
                }
                self.skipped = false;
                self.last_seq = cursor.seq;
                self.head = cursor.seq;
                self.epoch = cursor.epoch;
            }
            Frame::Stats(_) | Frame::Snapshot(_) | Frame::Control(_) => {}
        }
        Some(Output::Frame(frame))
    }

    fn end(&mut self, control: Control) -> Output {
        self.ended = true;
        Output::Frame(Frame::Control(control))
    }

    /// Whether a frame is already waiting (backlog, or the live queue when not replaying),
    /// so a transport can write several in one go without polling [`Session::next`] in vain.
    pub fn has_ready(&self) -> bool {
        !self.backlog.is_empty()
            || self.pager.is_some()
            || self.opening.is_some()
            || (self.replay.is_none() && !self.sub.rx.is_empty())
    }

    /// The next thing to send. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next(&mut self) -> Output {
        loop {
            if self.ended {
                return Output::End;
            }
            if let Some(frame) = self.backlog.pop_front() {
                if let Some(out) = self.accept(frame) {
                    return out;
                }
                continue;
            }
            if let Some(cut) = self.opening.take() {
                self.begin_snapshot(cut);
            }
            if let Some(pager) = self.pager.as_mut() {
                match pager.next_page() {
                    Some(page) => return Output::Frame(Frame::Snapshot(Arc::new(page))),
                    None => self.pager = None,
                }
                continue;
            }
            if self.drain.is_none() && self.sub.draining() {
                let spread = self.drain_window.as_millis() as u64;
                let delay = Duration::from_millis(rand::thread_rng().gen_range(0..=spread));
                self.drain = Some(Box::pin(tokio::time::sleep(delay)));
            }
            let replaying = self.replay.is_some();
            tokio::select! {
                biased;
                () = wait(&mut self.drain) => {
                    return self.end(Control::Reconnect { reason: ReconnectReason::Draining });
                }
                () = &mut self.expires => {
                    return self.end(Control::Reconnect { reason: ReconnectReason::TokenExpired });
                }
                item = next_replayed(&mut self.replay), if replaying => match item {
                    Some(Ok(frame)) => {
                        if let Some(out) = self.accept(Frame::Event(frame)) {
                            return out;
                        }
                    }
                    None => self.replay = None,
                    Some(Err(err)) => {
                        tracing::warn!(error = %herald_core::error_chain(&err), "replay failed");
                        return self.end(Control::Reconnect { reason: ReconnectReason::ReplayFailed });
                    }
                },
                queued = self.sub.rx.recv(), if !replaying => match queued {
                    Some(Queued::Frame(frame)) => {
                        if let Some(out) = self.accept(frame) {
                            return out;
                        }
                    }
                    // The flag is set: the top of the loop starts the drain.
                    Some(Queued::Drain) => {}
                    // The mirror went live after a reset: the pages go out next.
                    Some(Queued::Snapshot(cut)) => {
                        if self.awaiting {
                            self.begin_snapshot(cut);
                        }
                    }
                    None => {
                        let control = match self.sub.closed() {
                            Some(Closed::Overflow) => Control::Overflow,
                            None => Control::Reconnect { reason: ReconnectReason::Draining },
                        };
                        return self.end(control);
                    }
                },
                frame = self.presence.next() => return Output::Frame(Frame::Stats(frame)),
                _ = self.heartbeat.tick() => return Output::Heartbeat,
            }
        }
    }
}

async fn wait(sleep: &mut Option<Pin<Box<Sleep>>>) {
    match sleep {
        Some(s) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn next_replayed(
    replay: &mut Option<Box<Replay>>,
) -> Option<Result<Arc<crate::frame::EventFrame>, replay::ReplayError>> {
    match replay {
        // Boxed: a replay's future is several KiB, and a session's future, without it, lives
        // in every connection's task for as long as the connection.
        Some(r) => Box::pin(r.next()).await,
        None => None,
    }
}

#[cfg(test)]
mod tests;
