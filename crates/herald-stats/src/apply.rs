//! Bringing one document up to date, exactly: in stream order, with gaps filled from the
//! stream, written with compare-and-set.
//!
//! A document's `last_seq` promises that *every* event of its topic up to it is counted. The
//! events in hand do not always make that true on their own: a shared consumer gives some
//! events to another instance, and a failed write leaves events awaiting redelivery while
//! later ones arrive. Skipping "at or below `last_seq`" is only safe if nothing was jumped
//! over, so before applying an event the aggregator makes sure every earlier event of the
//! topic is counted: either the batch provably held them all ([`Coverage`]), or it reads the
//! missing ones from `HERALD_EVENTS` itself ([`History`]). A document whose fields or stream
//! epoch no longer match is recounted the same way, from sequence 0.

use async_nats::jetstream::{self, stream::DirectGetErrorKind};
use herald_core::cursor::Epoch;
use herald_core::names::{Action, TenantId, Topic};
use herald_core::subject;

use crate::coverage::Coverage;
use crate::doc::StatsDoc;
use crate::fold::{self, Folded, RawEvent};
use crate::store::{self, Snapshot, StoreError, Stored};

/// How many compare-and-set conflicts one document may meet in one batch before the batch
/// is left for redelivery.
const MAX_ATTEMPTS: usize = 8;
/// The action an event is counted under when its subject's action token is invalid.
pub const INVALID_ACTION: &str = "_invalid";

/// Reads a topic's events from the stream.
pub trait History {
    /// The first event on `filter` with a stream sequence above `after`, if any.
    fn next_after(
        &self,
        filter: &str,
        after: u64,
    ) -> impl Future<Output = Result<Option<RawEvent>, jetstream::stream::DirectGetError>> + Send;
}

impl History for jetstream::stream::Stream {
    async fn next_after(
        &self,
        filter: &str,
        after: u64,
    ) -> Result<Option<RawEvent>, jetstream::stream::DirectGetError> {
        match self
            .direct_get_next_for_subject(filter, Some(after + 1))
            .await
        {
            Ok(msg) => Ok(Some(RawEvent {
                seq: msg.sequence,
                time: msg.time,
                action: parse_subject(&msg.subject).map_or_else(invalid_action, |(_, _, a)| a),
                payload: msg.payload,
            })),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Tenant, topic and action of an event subject. `None` when the tenant or topic is not a
/// valid token (such a message cannot be attributed to a document); an invalid action token
/// becomes [`INVALID_ACTION`].
pub fn parse_subject(subject: &str) -> Option<(TenantId, Topic, Action)> {
    let rest = subject
        .strip_prefix(subject::EVENTS_PREFIX)?
        .strip_prefix('.')?;
    let mut parts = rest.splitn(3, '.');
    let tenant = TenantId::parse(parts.next()?).ok()?;
    let topic = Topic::parse(parts.next()?).ok()?;
    let action = parts
        .next()
        .and_then(|a| Action::parse(a).ok())
        .unwrap_or_else(invalid_action);
    Some((tenant, topic, action))
}

fn invalid_action() -> Action {
    // A constant that satisfies the token grammar.
    Action::parse(INVALID_ACTION)
        .unwrap_or_else(|_| unreachable!("{INVALID_ACTION} is a valid token"))
}

/// What catching a document up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Events counted (from the batch or the stream).
    pub applied: u64,
    /// Of `applied`: read from the stream to fill a gap.
    pub filled: u64,
    /// Of `applied`: payloads that were not envelopes.
    pub malformed: u64,
    /// Events in hand that were already counted.
    pub skipped: u64,
}

impl CatchUp {
    fn count(&mut self, folded: Folded, filled: bool) {
        match folded {
            Folded::Skipped => self.skipped += 1,
            Folded::Counted | Folded::Malformed => {
                self.applied += 1;
                self.filled += u64::from(filled);
                self.malformed += u64::from(folded == Folded::Malformed);
            }
        }
    }
}

/// Applies `events` (sorted by sequence) to `doc`, first filling from `history` every gap
/// that `coverage` does not prove empty; then, if `upto` is given, every event up to it.
pub async fn catch_up<H: History>(
    doc: &mut StatsDoc,
    events: &[RawEvent],
    coverage: &Coverage,
    history: &H,
    upto: Option<u64>,
    max_values: usize,
) -> Result<CatchUp, jetstream::stream::DirectGetError> {
    let filter = subject::topic_filter(&doc.tenant, &doc.topic);
    let mut out = CatchUp::default();
    for event in events {
        if event.seq > doc.last_seq + 1 && !coverage.covers(doc.last_seq + 1, event.seq - 1) {
            fill(doc, &filter, event.seq, history, max_values, &mut out).await?;
        }
        out.count(fold::apply(doc, event, max_values), false);
    }
    if let Some(upto) = upto {
        fill(
            doc,
            &filter,
            upto.saturating_add(1),
            history,
            max_values,
            &mut out,
        )
        .await?;
    }
    Ok(out)
}

/// Applies every event of the topic above `doc.last_seq` and below `before`.
async fn fill<H: History>(
    doc: &mut StatsDoc,
    filter: &str,
    before: u64,
    history: &H,
    max_values: usize,
    out: &mut CatchUp,
) -> Result<(), jetstream::stream::DirectGetError> {
    while let Some(event) = history.next_after(filter, doc.last_seq).await? {
        if event.seq >= before {
            break;
        }
        out.count(fold::apply(doc, &event, max_values), true);
    }
    Ok(())
}

/// Why a document could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Reading or writing the KV bucket failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading a gap's events from the stream failed.
    #[error("cannot read events of {key} from the stream")]
    History {
        /// The document key.
        key: String,
        /// The cause.
        #[source]
        source: jetstream::stream::DirectGetError,
    },
    /// Other writers won every compare-and-set attempt.
    #[error("stats document {0} kept changing under {MAX_ATTEMPTS} attempts")]
    Contended(String),
}

/// What one document needs: its identity, the fields to count, and the events in hand.
#[derive(Debug)]
pub struct Work {
    /// The tenant.
    pub tenant: TenantId,
    /// The topic.
    pub topic: Topic,
    /// The group-by fields configured for the topic.
    pub fields: Vec<String>,
    /// The events in hand, sorted by sequence, without duplicates.
    pub events: Vec<RawEvent>,
}

/// Everything [`settle`] reads from but does not own.
pub struct Env<'a, H> {
    /// The `herald_stats` bucket.
    pub kv: &'a jetstream::kv::Store,
    /// `HERALD_EVENTS`, for gaps.
    pub history: &'a H,
    /// The epoch of `HERALD_EVENTS`.
    pub epoch: Epoch,
    /// The distinct-values cap.
    pub max_values: usize,
}

/// The result of settling one document: the counts and the snapshot now stored.
#[derive(Debug)]
pub struct Settled {
    /// The document as stored, and its revision (for the next batch).
    pub snapshot: Snapshot,
    /// What was applied.
    pub counts: CatchUp,
    /// Compare-and-set conflicts met on the way.
    pub conflicts: u64,
    /// Whether a write happened (false when every event was already counted).
    pub wrote: bool,
}

/// Brings the document of `work` up to date with its events and writes it with
/// compare-and-set; on a conflict re-reads and re-applies. `cached` is the snapshot this
/// process last wrote or read, if any (a stale one only costs a conflict).
#[tracing::instrument(skip_all, fields(tenant = %work.tenant, topic = %work.topic, events = work.events.len()))]
pub async fn settle<H: History>(
    env: &Env<'_, H>,
    work: &Work,
    coverage: &Coverage,
    upto: Option<u64>,
    mut cached: Option<Snapshot>,
) -> Result<Settled, ApplyError> {
    let key = crate::doc::key(&work.tenant, &work.topic);
    let mut conflicts = 0;
    for _ in 0..MAX_ATTEMPTS {
        let stored = match cached.take() {
            Some(snapshot) => Stored::Doc(snapshot),
            None => store::read_key(env.kv, &key).await?,
        };
        let revision = stored.revision();
        let fresh = || {
            let (tenant, topic) = (work.tenant.clone(), work.topic.clone());
            StatsDoc::new(tenant, topic, env.epoch, &work.fields)
        };
        let (mut doc, recount) = match stored {
            Stored::Doc(s) if s.doc.matches(env.epoch, &work.fields) => (s.doc, false),
            Stored::Undecodable { error, .. } => {
                tracing::warn!(error = %herald_core::error_chain(&error), "recounting over a value that is not a stats document");
                (fresh(), true)
            }
            // Never counted, deleted, of another stream, or counting other fields: recount.
            _ => (fresh(), true),
        };
        let counts = catch_up(
            &mut doc,
            &work.events,
            coverage,
            env.history,
            upto,
            env.max_values,
        )
        .await
        .map_err(|source| ApplyError::History {
            key: key.clone(),
            source,
        })?;
        if !recount && counts.applied == 0 {
            let snapshot = Snapshot { doc, revision };
            return Ok(Settled {
                snapshot,
                counts,
                conflicts,
                wrote: false,
            });
        }
        match store::write(env.kv, &doc, revision).await {
            Ok(revision) => {
                let snapshot = Snapshot { doc, revision };
                return Ok(Settled {
                    snapshot,
                    counts,
                    conflicts,
                    wrote: true,
                });
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ApplyError::Contended(key))
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
