//! The producer: signed CloudEvents webhooks to ingest, each retried with the same id
//! until it is acknowledged (as Sequin and every Standard Webhooks sender do), and a record
//! of every answer.
//!
//! The record is the checker's ground truth: an id answered 2xx must be in the stream
//! exactly once; an id never acknowledged may be there at most once.

use herald_core::retry::{Backoff, Policy};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::plan::{ACTIONS, ID_PREFIX, TENANTS, TOPICS};

/// How long a webhook is retried after the load phase ended before it counts as never
/// acknowledged.
const RETRY_GRACE: Duration = Duration::from_secs(30);

/// What happened to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The tenant (which source it was posted to).
    pub tenant: &'static str,
    /// The topic.
    pub topic: &'static str,
    /// The action.
    pub action: &'static str,
    /// Attempts made (1 = the first was acknowledged).
    pub attempts: u32,
    /// Whether ingest answered 2xx.
    pub acked: bool,
    /// A 4xx answer: ingest refused a well-formed, correctly signed webhook.
    pub refused: Option<u16>,
}

/// Every webhook sent, by event id.
pub type Ledger = Arc<Mutex<BTreeMap<String, Sent>>>;

/// One answer from ingest worth a look: slower than a second, or a 5xx, or a request that
/// got no answer before the client's 10 s timeout (`status: None`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The event id.
    pub id: String,
    /// When the request was sent.
    pub began: tokio::time::Instant,
    /// How long the answer took.
    pub took: Duration,
    /// The status; `None` for a hang (no answer within the client's timeout).
    pub status: Option<u16>,
    /// Whether it carried `Retry-After`.
    pub retry_after: bool,
}

/// Every answer ingest gave, counted; the notable ones kept.
#[derive(Debug, Default, Clone)]
pub struct AnswerLog {
    /// Answers received (any status), hangs included.
    pub answered: u64,
    /// The notable ones.
    pub answers: Vec<Answer>,
}

/// The answer log, shared with the checker.
pub type Answers = Arc<Mutex<AnswerLog>>;

/// Posts `rate` webhooks per second over `producers` tasks until `stop` fires; then
/// finishes (or gives up on) the ones in flight. Returns the ledger.
pub async fn run(
    ingest: String,
    rate: u32,
    producers: usize,
    seed: u64,
    answers: Answers,
    stop: CancellationToken,
) -> Ledger {
    let ledger = Ledger::default();
    let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let per_task = Duration::from_secs_f64(producers as f64 / f64::from(rate.max(1)));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client with a timeout");
    let mut tasks = JoinSet::new();
    for p in 0..producers {
        let answers = answers.clone();
        let (ingest, http, ledger, next_id, stop) = (
            ingest.clone(),
            http.clone(),
            ledger.clone(),
            next_id.clone(),
            stop.clone(),
        );
        let mut rng = StdRng::seed_from_u64(seed ^ (p as u64).wrapping_mul(0x9e37_79b9));
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(per_task);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let n = next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("{ID_PREFIX}{n:07}");
                let tenant = TENANTS[rng.gen_range(0..TENANTS.len())];
                let topic = TOPICS[rng.gen_range(0..TOPICS.len())];
                let action = ACTIONS[rng.gen_range(0..ACTIONS.len())];
                let sent = deliver(
                    &http,
                    &ingest,
                    &id,
                    (tenant, topic, action),
                    &answers,
                    &stop,
                )
                .await;
                ledger
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, sent);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    ledger
}

/// Posts one webhook until it is acknowledged, refused, or the grace after `stop` ran out.
#[tracing::instrument(skip_all, fields(event_id = id))]
async fn deliver(
    http: &reqwest::Client,
    ingest: &str,
    id: &str,
    (tenant, topic, action): (&'static str, &'static str, &'static str),
    answers: &Answers,
    stop: &CancellationToken,
) -> Sent {
    let body = serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": "herald-chaos",
        "type": format!("chaos.{topic}.{action}"),
        "topic": topic,
        "action": action,
        "datacontenttype": "application/json",
        "data": {"n": id, "status": action},
    })
    .to_string();
    let url = format!("{ingest}/v1/webhooks/{tenant}");
    let secret = crate::stack::webhook_secret();
    let mut sent = Sent {
        tenant,
        topic,
        action,
        attempts: 0,
        acked: false,
        refused: None,
    };
    let mut backoff = Backoff::new(Policy::doubling(
        Duration::from_millis(50),
        Duration::from_secs(1),
    ));
    let mut give_up_at: Option<tokio::time::Instant> = None;
    loop {
        sent.attempts += 1;
        // Signed afresh on every attempt, as senders do (the timestamp moves on).
        let headers = herald_test_support::webhook::standard_headers(&secret, id, body.as_bytes());
        let req = herald_test_support::webhook::apply(http.post(&url), &headers)
            .header("content-type", "application/json")
            .body(body.clone());
        let began = tokio::time::Instant::now();
        let res = req.send().await;
        note(answers, id, began, &res);
        match res {
            Ok(resp) if resp.status().is_success() => {
                sent.acked = true;
                return sent;
            }
            Ok(resp) if resp.status().is_client_error() => {
                sent.refused = Some(resp.status().as_u16());
                tracing::error!(status = %resp.status(), "ingest refused a valid webhook");
                return sent;
            }
            Ok(_) | Err(_) => {}
        }
        if stop.is_cancelled() {
            let deadline =
                *give_up_at.get_or_insert_with(|| tokio::time::Instant::now() + RETRY_GRACE);
            if tokio::time::Instant::now() >= deadline {
                return sent;
            }
        }
        // Backoff between retries, as a real sender waits; not synchronisation.
        tokio::time::sleep(backoff.advance()).await;
    }
}

/// Records an answer (or a hang) in the answer log.
fn note(
    answers: &Answers,
    id: &str,
    began: tokio::time::Instant,
    res: &Result<reqwest::Response, reqwest::Error>,
) {
    let took = began.elapsed();
    let (status, retry_after) = match res {
        Ok(r) => (
            Some(r.status().as_u16()),
            r.headers().contains_key("retry-after"),
        ),
        Err(e) if e.is_timeout() => (None, false),
        Err(_) => return, // refused or reset: ingest is down, not slow
    };
    let mut log = answers.lock().unwrap_or_else(|p| p.into_inner());
    log.answered += 1;
    if took > Duration::from_secs(1) || status.is_none_or(|s| s >= 500) {
        log.answers.push(Answer {
            id: id.to_owned(),
            began,
            took,
            status,
            retry_after,
        });
    }
}

/// Tallies of a ledger, for the report.
#[derive(Debug, Default, serde::Serialize)]
pub struct Tally {
    /// Webhooks made.
    pub sent: usize,
    /// Acknowledged with 2xx.
    pub acknowledged: usize,
    /// Never acknowledged (gave up after the grace period).
    pub unacknowledged: usize,
    /// Refused with 4xx.
    pub refused: usize,
    /// Attempts beyond the first, over all webhooks (503s, connection errors during kills).
    pub retries: u64,
}

/// Counts a ledger.
pub fn tally(ledger: &BTreeMap<String, Sent>) -> Tally {
    let mut t = Tally::default();
    for s in ledger.values() {
        t.sent += 1;
        t.retries += u64::from(s.attempts.saturating_sub(1));
        match (s.acked, s.refused) {
            (true, _) => t.acknowledged += 1,
            (false, Some(_)) => t.refused += 1,
            (false, None) => t.unacknowledged += 1,
        }
    }
    t
}
