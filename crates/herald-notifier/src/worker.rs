//! One worker per target: waits for the target's rate limits, sends one message (or a digest
//! of its backlog), records each delivery, and reports every event's outcome.
//!
//! Rate limits are kept in-process: per chat / Slack target here, per Telegram bot in
//! [`SharedLimiters`]. A 429 blocks the target until the platform's `retry_after` has passed.
//! A target's sends are counted when the platform answers, so the platform never sees two
//! requests closer than the limit, whatever the network jitter.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::event::Event;
use herald_core::names::TenantId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{DigestConfig, RateConfig};
use crate::dedup::Dedup;
use crate::limiter::{Limiter, SharedLimiters, Window};
use crate::metrics::Metrics;
use crate::rules::{Destination, Target, TargetId};
use crate::targets::{SendError, Senders};
use crate::template::{Markup, SLACK_MAX_CHARS, TELEGRAM_MAX_CHARS};

/// One event's message for one target.
pub struct Job {
    /// The event.
    pub event: Arc<Event>,
    /// The target (as configured when the event was routed).
    pub target: Arc<Target>,
    /// The rendered, escaped text.
    pub text: String,
    /// Where the outcome goes.
    pub reply: oneshot::Sender<Outcome>,
    /// Send alone, never in a digest (set after a digest it was in was refused).
    pub solo: bool,
}

/// What happened to one event's delivery to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The platform accepted it and the delivery was recorded.
    Sent,
    /// Try again later: after `after` (what a 429 asked for), or after the configured
    /// backoff when `None`.
    Retry {
        /// The platform's delay, if it named one.
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Never deliverable as it is: dead-letter it.
    Dead(String),
}

/// What every worker shares.
pub struct WorkerContext {
    /// The platform clients.
    pub senders: Senders,
    /// The delivery records.
    pub dedup: Dedup,
    /// Counters.
    pub metrics: Metrics,
    /// Rate limits.
    pub rate: RateConfig,
    /// Digest settings.
    pub digest: DigestConfig,
    /// The longest wait jobs are held for; longer waits hand them back.
    pub max_hold: Duration,
    /// Per-bot limits.
    pub bots: SharedLimiters,
    /// Stops the workers (after the send in progress).
    pub shutdown: CancellationToken,
    /// Tracks the workers, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

/// Hands jobs to per-target workers, starting them on first use.
pub struct Dispatcher {
    ctx: Arc<WorkerContext>,
    workers: Mutex<HashMap<TargetId, mpsc::UnboundedSender<Job>>>,
}

impl Dispatcher {
    /// A dispatcher with no workers yet.
    pub fn new(ctx: WorkerContext) -> Self {
        Self {
            ctx: Arc::new(ctx),
            workers: Mutex::default(),
        }
    }

    /// Queues `job` for its target. If the worker is gone (shutdown), the job is dropped and
    /// its reply channel closes, which the caller treats as "retry".
    pub fn submit(&self, job: Job) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let id = job.target.id.clone();
        let tx = workers.entry(id.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let ctx = self.ctx.clone();
            self.ctx.tracker.spawn(run(ctx, id.clone(), rx));
            tx
        });
        if let Err(mpsc::error::SendError(job)) = tx.send(job) {
            drop(job);
        }
    }
}

fn windows(target: &Target, rate: &RateConfig) -> Vec<Window> {
    match &target.destination {
        Destination::Telegram { chat, .. } => {
            let mut w = vec![Window::per_sec(rate.telegram_chat_per_sec)];
            if chat.is_group() {
                w.push(Window::per_min(rate.telegram_group_per_min));
            }
            w
        }
        Destination::SlackWebhook { .. } | Destination::SlackChat { .. } => {
            vec![Window::per_sec(rate.slack_target_per_sec)]
        }
    }
}

fn max_chars(target: &Target) -> usize {
    match target.destination {
        Destination::Telegram { .. } => TELEGRAM_MAX_CHARS,
        _ => SLACK_MAX_CHARS,
    }
}

#[tracing::instrument(skip_all, fields(target = %id))]
async fn run(ctx: Arc<WorkerContext>, id: TargetId, rx: mpsc::UnboundedReceiver<Job>) {
    let mut worker = Worker {
        ctx,
        id,
        rx,
        backlog: VecDeque::new(),
        limiter: None,
        blocked_until: None,
    };
    while worker.turn().await.is_continue() {}
}

/// One target's worker: its queue, its backlog and its rate-limit state.
struct Worker {
    ctx: Arc<WorkerContext>,
    id: TargetId,
    rx: mpsc::UnboundedReceiver<Job>,
    backlog: VecDeque<Job>,
    /// The target's own windows, made from the first job's target.
    limiter: Option<Limiter>,
    /// Set by a 429: no send before then.
    blocked_until: Option<Instant>,
}

impl Worker {
    /// One message: collect → wait → send → settle. Breaks when the worker should stop
    /// (shutdown, or every sender gone).
    async fn turn(&mut self) -> ControlFlow<()> {
        let Some((target, tenant)) = self.collect().await? else {
            return ControlFlow::Continue(());
        };
        self.wait(&target, &tenant).await?;
        if self.backlog.is_empty() {
            return ControlFlow::Continue(());
        }
        let batch = self.next_batch(&target).await;
        if batch.is_empty() {
            return ControlFlow::Continue(());
        }
        let result = self.send(&target, &tenant, &batch).await;
        self.settle(batch, result, target.destination.kind()).await;
        ControlFlow::Continue(())
    }

    /// Waits for a job when there is none, drops the jobs nobody awaits any more, and
    /// returns the target and tenant of the next one (`None`: nothing left to send).
    async fn collect(&mut self) -> ControlFlow<(), Option<(Arc<Target>, TenantId)>> {
        if self.ctx.shutdown.is_cancelled() {
            return ControlFlow::Break(());
        }
        if self.backlog.is_empty() {
            tokio::select! {
                () = self.ctx.shutdown.cancelled() => return ControlFlow::Break(()),
                job = self.rx.recv() => match job {
                    Some(job) => self.backlog.push_back(job),
                    None => return ControlFlow::Break(()),
                },
            }
        }
        self.backlog.retain(|j| !j.reply.is_closed());
        let next = self
            .backlog
            .front()
            .map(|first| (first.target.clone(), first.event.tenant.clone()));
        ControlFlow::Continue(next)
    }

    /// Waits until the target's limits, any 429 block and the bot's limit all allow a send;
    /// a wait longer than `max_hold` hands the whole backlog back instead.
    async fn wait(&mut self, target: &Target, tenant: &TenantId) -> ControlFlow<()> {
        loop {
            let wait = self.delay(target, tenant);
            if wait.is_zero() {
                return ControlFlow::Continue(());
            }
            if wait > self.ctx.max_hold {
                self.put_back(wait);
                return ControlFlow::Continue(());
            }
            tokio::select! {
                () = self.ctx.shutdown.cancelled() => return ControlFlow::Break(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long until a send is allowed (zero: now, and the bot's slot is taken).
    fn delay(&mut self, target: &Target, tenant: &TenantId) -> Duration {
        let now = Instant::now();
        let blocked = self
            .blocked_until
            .map_or(Duration::ZERO, |b| b.saturating_duration_since(now));
        let mut wait = self.limiter(target).wait(now).max(blocked);
        if wait.is_zero()
            && let Some(key) = self.ctx.senders.bot_key(target, tenant)
        {
            let global = Window::per_sec(self.ctx.rate.telegram_global_per_sec);
            if let Err(d) = self.ctx.bots.try_acquire(&key, global, now) {
                wait = d;
            }
        }
        wait
    }

    /// A long block: gives everything waiting back to JetStream rather than holding it (and
    /// the consumer's in-flight budget) that long.
    fn put_back(&mut self, wait: Duration) {
        self.drain_queue();
        tracing::info!(
            ?wait,
            events = self.backlog.len(),
            "target blocked; events put back"
        );
        for job in self.backlog.drain(..) {
            let _ = job.reply.send(Outcome::Retry {
                after: Some(wait),
                reason: format!("target rate-limited for {wait:?}"),
            });
        }
    }

    /// Moves every queued job into the backlog.
    fn drain_queue(&mut self) {
        while let Ok(job) = self.rx.try_recv() {
            self.backlog.push_back(job);
        }
    }

    /// The target's limiter, made on first use.
    fn limiter(&mut self, target: &Target) -> &mut Limiter {
        let rate = &self.ctx.rate;
        self.limiter
            .get_or_insert_with(|| Limiter::new(windows(target, rate)))
    }

    /// The jobs of the next message, less those whose event this target already has.
    async fn next_batch(&mut self, target: &Target) -> Vec<Job> {
        self.drain_queue();
        self.backlog.retain(|j| !j.reply.is_closed());
        let batch = take_batch(&mut self.backlog, &self.ctx.digest, target);
        skip_delivered(&self.ctx, &self.id, batch).await
    }

    /// Sends the batch as one message and counts it against the target's limits.
    async fn send(
        &mut self,
        target: &Target,
        tenant: &TenantId,
        batch: &[Job],
    ) -> Result<(), SendError> {
        let text = compose(batch, target);
        let result = self.ctx.senders.send(target, tenant, &text).await;
        // Counted from the answer, not the request: the next request then starts a full
        // period after this one arrived, however long either spent on the way.
        self.limiter(target).record(Instant::now());
        result
    }

    /// Reports each job's outcome (recording the deliveries of a message that went out).
    async fn settle(&mut self, batch: Vec<Job>, result: Result<(), SendError>, kind: &'static str) {
        match result {
            Ok(()) => self.delivered(batch, kind).await,
            Err(err) => self.failed(batch, err, kind),
        }
    }

    async fn delivered(&self, batch: Vec<Job>, kind: &'static str) {
        let ctx = &self.ctx;
        Metrics::inc(&ctx.metrics.sent, kind);
        if batch.len() > 1 {
            Metrics::inc(&ctx.metrics.digests, kind);
        }
        for job in batch {
            let msg_id = job.event.msg_id();
            if let Err(err) = ctx.dedup.mark_done(&msg_id, &self.id).await {
                // The message is out; acking without the record only risks a resend
                // if this event is redelivered, which a nak would make certain.
                tracing::warn!(error = %herald_core::error_chain(&err), event_id = %job.event.id, "delivery record not written");
            }
            Metrics::inc(&ctx.metrics.events_delivered, kind);
            let _ = job.reply.send(Outcome::Sent);
        }
    }

    fn failed(&mut self, batch: Vec<Job>, err: SendError, kind: &'static str) {
        Metrics::inc(&self.ctx.metrics.failed, kind);
        tracing::warn!(error = %err, events = batch.len(), "send failed");
        let outcome = match err {
            SendError::RateLimited { retry_after } => {
                self.blocked_until = Some(Instant::now() + retry_after);
                Outcome::Retry {
                    after: Some(retry_after),
                    reason: format!("rate limited by {kind}; retry after {retry_after:?}"),
                }
            }
            SendError::Transient(reason) => Outcome::Retry {
                after: None,
                reason,
            },
            SendError::Permanent(reason) if batch.len() > 1 => {
                // One event's text may be what the platform refused: try each
                // alone, so only the events that really fail are dead-lettered.
                tracing::info!(%reason, "digest refused; sending its events one by one");
                for mut job in batch.into_iter().rev() {
                    job.solo = true;
                    self.backlog.push_front(job);
                }
                return;
            }
            SendError::Permanent(reason) => Outcome::Dead(reason),
        };
        for job in batch {
            let _ = job.reply.send(outcome.clone());
        }
    }
}

/// Drops (as sent) the jobs whose event this target already has: another delivery of the
/// same event (a second notifier replica, a redelivery racing a slow one) got there first
/// while this job waited for the rate limit.
async fn skip_delivered(ctx: &WorkerContext, id: &str, batch: Vec<Job>) -> Vec<Job> {
    let mut keep = Vec::with_capacity(batch.len());
    for job in batch {
        match ctx.dedup.is_done(&job.event.msg_id(), id).await {
            Ok(true) => {
                Metrics::inc(
                    &ctx.metrics.duplicates_skipped,
                    job.target.destination.kind(),
                );
                let _ = job.reply.send(Outcome::Sent);
            }
            // Unknown: sending risks a duplicate, not sending risks nothing being sent.
            Ok(false) | Err(_) => keep.push(job),
        }
    }
    keep
}

/// The next message's jobs: the first job, plus (digests on) the following jobs of the same
/// tenant, up to `max_events` and the platform's length limit.
fn take_batch(backlog: &mut VecDeque<Job>, digest: &DigestConfig, target: &Target) -> Vec<Job> {
    let Some(first) = backlog.pop_front() else {
        return Vec::new();
    };
    let limit = max_chars(target);
    let mut len = first.text.chars().count() + 40;
    let tenant = first.event.tenant.clone();
    let solo = first.solo;
    let mut batch = vec![first];
    if !digest.enabled || solo {
        return batch;
    }
    let mut i = 0;
    while i < backlog.len() && batch.len() < digest.max_events {
        let job = &backlog[i];
        let add = job.text.chars().count() + 2;
        if job.event.tenant != tenant || job.solo {
            i += 1;
            continue;
        }
        if len + add > limit {
            break;
        }
        len += add;
        if let Some(job) = backlog.remove(i) {
            batch.push(job);
        }
    }
    batch
}

/// One message's text: the job's own, or a digest of several.
fn compose(batch: &[Job], target: &Target) -> String {
    let markup = target.destination.markup();
    let limit = max_chars(target);
    let text = match batch {
        [one] => one.text.clone(),
        many => {
            let n = many.len();
            let header = match markup {
                Markup::MarkdownV2 | Markup::Mrkdwn => format!("*{n} events*"),
                Markup::Html => format!("<b>{n} events</b>"),
                Markup::Plain => format!("{n} events"),
            };
            let mut text = header;
            for job in many {
                text.push_str("\n\n");
                text.push_str(&job.text);
            }
            text
        }
    };
    markup.truncate(&text, limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Chat;
    use herald_core::event::EventId;
    use herald_core::names::{Action, TenantId, Topic};

    fn job(tenant: &str, text: &str, target: &Arc<Target>) -> (Job, oneshot::Receiver<Outcome>) {
        let (tx, rx) = oneshot::channel();
        let event = Event::new(
            EventId::generate(),
            TenantId::parse(tenant).unwrap(),
            Topic::parse("leads").unwrap(),
            Action::parse("insert").unwrap(),
            "/t",
            serde_json::json!({}),
        );
        let job = Job {
            event: Arc::new(event),
            target: target.clone(),
            text: text.into(),
            reply: tx,
            solo: false,
        };
        (job, rx)
    }

    fn tg() -> Arc<Target> {
        Arc::new(Target {
            id: "tg".into(),
            destination: Destination::Telegram {
                chat: Chat::Id(-1),
                markup: Markup::MarkdownV2,
                silent: false,
            },
            quiet_hours: None,
        })
    }

    #[test]
    fn digests_take_same_tenant_jobs_up_to_the_limits() {
        let t = tg();
        let mut backlog: VecDeque<Job> = ["a1", "b1", "a2", "a3"]
            .iter()
            .map(|s| job(&s[..1], s, &t).0)
            .collect();
        let digest = DigestConfig {
            enabled: true,
            max_events: 2,
        };
        let batch = take_batch(&mut backlog, &digest, &t);
        let texts: Vec<_> = batch.iter().map(|j| j.text.as_str()).collect();
        assert_eq!(texts, ["a1", "a2"]);
        assert_eq!(compose(&batch, &t), "*2 events*\n\na1\n\na2");
        let left: Vec<_> = backlog.iter().map(|j| j.text.as_str()).collect();
        assert_eq!(left, ["b1", "a3"]);
        let off = DigestConfig {
            enabled: false,
            max_events: 20,
        };
        assert_eq!(take_batch(&mut backlog, &off, &t).len(), 1);
    }

    #[test]
    fn group_chats_get_the_per_minute_window() {
        let rate = RateConfig::default();
        assert_eq!(windows(&tg(), &rate).len(), 2);
    }
}
