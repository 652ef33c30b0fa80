//! One worker per target: waits for the target's rate limits, sends one message (or a digest
//! of its backlog), records each delivery, and reports every event's outcome.
//!
//! Rate limits are kept in-process: per chat / Slack target here, per Telegram bot in
//! [`SharedLimiters`]. A 429 blocks the target until the platform's `retry_after` has passed.
//! A target's sends are counted when the platform answers, so the platform never sees two
//! requests closer than the limit, whatever the network jitter.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::event::Event;
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
async fn run(ctx: Arc<WorkerContext>, id: TargetId, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut backlog: VecDeque<Job> = VecDeque::new();
    let mut limiter: Option<Limiter> = None;
    let mut blocked_until: Option<Instant> = None;
    loop {
        if ctx.shutdown.is_cancelled() {
            break;
        }
        if backlog.is_empty() {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                job = rx.recv() => match job {
                    Some(job) => backlog.push_back(job),
                    None => break,
                },
            }
        }
        backlog.retain(|j| !j.reply.is_closed());
        let Some(first) = backlog.front() else {
            continue;
        };
        let target = first.target.clone();
        let tenant = first.event.tenant.clone();
        let limiter = limiter.get_or_insert_with(|| Limiter::new(windows(&target, &ctx.rate)));
        // Wait until the target's limits, any 429 block and the bot's limit all allow a send.
        loop {
            let now = Instant::now();
            let blocked =
                blocked_until.map_or(Duration::ZERO, |b| b.saturating_duration_since(now));
            let mut wait = limiter.wait(now).max(blocked);
            if wait.is_zero()
                && let Some(key) = ctx.senders.bot_key(&target, &tenant)
            {
                let global = Window::per_sec(ctx.rate.telegram_global_per_sec);
                if let Err(d) = ctx.bots.try_acquire(&key, global, now) {
                    wait = d;
                }
            }
            if wait.is_zero() {
                break;
            }
            if wait > ctx.max_hold {
                // A long block: give everything waiting back to JetStream rather than
                // holding it (and the consumer's in-flight budget) that long.
                while let Ok(job) = rx.try_recv() {
                    backlog.push_back(job);
                }
                tracing::info!(
                    ?wait,
                    events = backlog.len(),
                    "target blocked; events put back"
                );
                for job in backlog.drain(..) {
                    let _ = job.reply.send(Outcome::Retry {
                        after: Some(wait),
                        reason: format!("target rate-limited for {wait:?}"),
                    });
                }
                break;
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if backlog.is_empty() {
            continue;
        }
        while let Ok(job) = rx.try_recv() {
            backlog.push_back(job);
        }
        backlog.retain(|j| !j.reply.is_closed());
        let batch = take_batch(&mut backlog, &ctx.digest, &target);
        let batch = skip_delivered(&ctx, &id, batch).await;
        if batch.is_empty() {
            continue;
        }
        let text = compose(&batch, &target);
        let kind = target.destination.kind();
        let result = ctx.senders.send(&target, &tenant, &text).await;
        // Counted from the answer, not the request: the next request then starts a full
        // period after this one arrived, however long either spent on the way.
        limiter.record(Instant::now());
        match result {
            Ok(()) => {
                Metrics::inc(&ctx.metrics.sent, kind);
                if batch.len() > 1 {
                    Metrics::inc(&ctx.metrics.digests, kind);
                }
                for job in batch {
                    let msg_id = job.event.msg_id();
                    if let Err(err) = ctx.dedup.mark_done(&msg_id, &id).await {
                        // The message is out; acking without the record only risks a resend
                        // if this event is redelivered, which a nak would make certain.
                        tracing::warn!(error = %herald_core::error_chain(&err), event_id = %job.event.id, "delivery record not written");
                    }
                    Metrics::inc(&ctx.metrics.events_delivered, kind);
                    let _ = job.reply.send(Outcome::Sent);
                }
            }
            Err(err) => {
                Metrics::inc(&ctx.metrics.failed, kind);
                tracing::warn!(error = %err, events = batch.len(), "send failed");
                let outcome = match err {
                    SendError::RateLimited { retry_after } => {
                        blocked_until = Some(Instant::now() + retry_after);
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
                            backlog.push_front(job);
                        }
                        continue;
                    }
                    SendError::Permanent(reason) => Outcome::Dead(reason),
                };
                for job in batch {
                    let _ = job.reply.send(outcome.clone());
                }
            }
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
