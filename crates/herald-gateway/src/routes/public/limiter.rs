//! Limits of public (token-less) connections, per client IP address: open connections and a
//! connection rate. There is no user to count by, so the address stands in for one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::config::Limits;
use crate::error::ApiError;

/// Addresses remembered before idle ones (no open connection) are forgotten.
const PRUNE_ABOVE: usize = 4096;

/// Open public connections and their rate, per client address.
pub struct PublicLimiter {
    per_ip: usize,
    rate: f64,
    burst: f64,
    state: Mutex<HashMap<IpAddr, Slot>>,
}

struct Slot {
    open: usize,
    tokens: f64,
    refilled: Instant,
}

/// An admitted public connection; frees its slot on drop.
pub struct PublicPermit {
    limiter: Arc<PublicLimiter>,
    ip: IpAddr,
}

impl PublicLimiter {
    /// A limiter with `limits.public_*`.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            per_ip: limits.public_per_ip,
            rate: f64::from(limits.public_connect_rate.max(1)),
            burst: f64::from(limits.public_connect_burst.max(1)),
            state: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Slot>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`: 503 (`rate_limited`, `Retry-After`) when the address
    /// opens them faster than `public_connect_rate`, 429 (`too_many_connections`,
    /// `Retry-After`) when it has `public_per_ip` open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PublicPermit, ApiError> {
        let now = Instant::now();
        let mut slots = self.lock();
        if slots.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            slots.retain(|_, s| {
                s.open > 0 || s.tokens + now.duration_since(s.refilled).as_secs_f64() * rate < burst
            });
        }
        let slot = slots.entry(ip).or_insert(Slot {
            open: 0,
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.duration_since(slot.refilled).as_secs_f64();
        slot.tokens = (slot.tokens + elapsed * self.rate).min(self.burst);
        slot.refilled = now;
        if slot.tokens < 1.0 {
            let wait = ((1.0 - slot.tokens) / self.rate).ceil().max(1.0);
            return Err(ApiError::RateLimited {
                retry_after: wait.min(f64::from(u32::MAX)) as u32,
            });
        }
        if self.per_ip > 0 && slot.open >= self.per_ip {
            return Err(ApiError::TooManyPublic);
        }
        slot.tokens -= 1.0;
        slot.open += 1;
        Ok(PublicPermit {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Open public connections from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip).map_or(0, |s| s.open)
    }
}

impl Drop for PublicPermit {
    fn drop(&mut self) {
        if let Some(slot) = self.limiter.lock().get_mut(&self.ip) {
            slot.open = slot.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_ip: usize, rate: u32, burst: u32) -> Arc<PublicLimiter> {
        PublicLimiter::new(&Limits {
            public_per_ip: per_ip,
            public_connect_rate: rate,
            public_connect_burst: burst,
            ..Limits::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn open_connections_are_capped_per_address_and_released_on_drop() {
        let l = limiter(2, 100, 100);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = l.admit(a).unwrap();
        let _second = l.admit(a).unwrap();
        assert!(matches!(l.admit(a), Err(ApiError::TooManyPublic)));
        let _other = l.admit(b).expect("another address has its own slots");
        drop(first);
        assert_eq!(l.open(a), 1);
        assert!(l.admit(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_rate_is_per_address_and_refills() {
        let l = limiter(0, 1, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let _p: Vec<_> = (0..2).map(|_| l.admit(a).unwrap()).collect();
        assert!(matches!(
            l.admit(a),
            Err(ApiError::RateLimited { retry_after: 1 })
        ));
        assert!(l.admit("10.0.0.9".parse().unwrap()).is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.admit(a).is_ok());
    }
}
