//! Out of space: JetStream refused events because its store is full.
//!
//! A full store is not a silent NATS: the server answers at once, with a refusal. Ingest
//! answers `503 store_full` with `Retry-After` (nothing of the request is acknowledged), and
//! `/readyz` says `not_ready` with the refusal for `Retry-After` seconds after the latest one,
//! so a load balancer stops sending while producers back off. Readiness then returns on its
//! own: the next request tries again, and either is stored (space returned) or renews the
//! refusal. A stored event clears it at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::http::{NatsReadiness, Readiness, ReadyFuture};

/// The latest "store full" refusal, shared by the publisher and `/readyz`.
#[derive(Clone)]
pub struct StoreFull {
    latest: Arc<Mutex<Option<Refusal>>>,
    hold: Duration,
}

struct Refusal {
    at: Instant,
    reason: String,
}

impl StoreFull {
    /// A latch whose refusal keeps `/readyz` not-ready for `hold` (ingest's `Retry-After`).
    pub fn new(hold: Duration) -> Self {
        Self {
            latest: Arc::default(),
            hold,
        }
    }

    /// JetStream refused a publish for lack of space; `reason` is the server's refusal.
    pub fn refused(&self, reason: String) {
        *self.lock() = Some(Refusal {
            at: Instant::now(),
            reason,
        });
    }

    /// An event was stored: there is space again.
    pub fn stored(&self) {
        self.lock().take();
    }

    /// Why ingest is not ready, while the latest refusal is younger than the hold.
    pub fn describe(&self) -> Option<String> {
        let latest = self.lock();
        let refusal = latest.as_ref()?;
        let age = refusal.at.elapsed();
        (age < self.hold).then(|| {
            format!(
                "the JetStream store is full: {} ({:.1}s ago); free space or raise \
                 max_file_store (docs/operations.md)",
                refusal.reason,
                age.as_secs_f64()
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Refusal>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Ingest's `/readyz`: NATS answering and the streams present ([`NatsReadiness`]), and no
/// recent "store full" refusal.
pub struct IngestReadiness {
    /// The shared NATS checks.
    pub nats: NatsReadiness,
    /// The store-full latch.
    pub full: StoreFull,
}

impl Readiness for IngestReadiness {
    fn check(&self) -> ReadyFuture<'_> {
        Box::pin(async move {
            self.nats.check().await?;
            match self.full.describe() {
                Some(reason) => Err(reason),
                None => Ok(()),
            }
        })
    }
}
