//! Connection limits: open connections per user and per tenant, and a connection rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_core::names::TenantId;
use tokio::time::Instant;

use crate::config::Limits;
use crate::error::ApiError;

/// Tracks open connections and the rate of new ones.
pub struct Limiter {
    cfg: Limits,
    state: Mutex<State>,
}

struct State {
    users: HashMap<(TenantId, String), usize>,
    tenants: HashMap<TenantId, usize>,
    tokens: f64,
    refilled: Instant,
}

/// An admitted connection; releases its slot on drop.
pub struct Permit {
    limiter: Arc<Limiter>,
    tenant: TenantId,
    user: String,
}

impl Limiter {
    /// A limiter for `cfg`.
    pub fn new(cfg: Limits) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                users: HashMap::new(),
                tenants: HashMap::new(),
                tokens: f64::from(cfg.connect_burst.max(1)),
                refilled: Instant::now(),
            }),
            cfg,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a new connection of `user` in `tenant`, or says which limit refuses it.
    pub fn admit(self: &Arc<Self>, tenant: &TenantId, user: &str) -> Result<Permit, ApiError> {
        let mut s = self.state();
        let now = Instant::now();
        let rate = f64::from(self.cfg.connect_rate.max(1));
        let burst = f64::from(self.cfg.connect_burst.max(1));
        let elapsed = now.duration_since(s.refilled).as_secs_f64();
        s.tokens = (s.tokens + elapsed * rate).min(burst);
        s.refilled = now;
        if s.tokens < 1.0 {
            let wait = ((1.0 - s.tokens) / rate).ceil().max(1.0);
            // `wait` is at least 1 and at most 1/rate ≤ 1 s rounded up: it fits a u32.
            return Err(ApiError::RateLimited {
                retry_after: wait as u32,
            });
        }
        let user_key = (tenant.clone(), user.to_owned());
        if s.users.get(&user_key).copied().unwrap_or(0) >= self.cfg.per_user {
            return Err(ApiError::TooManyConnections("user"));
        }
        if s.tenants.get(tenant).copied().unwrap_or(0) >= self.cfg.per_tenant {
            return Err(ApiError::TooManyConnections("tenant"));
        }
        s.tokens -= 1.0;
        *s.users.entry(user_key).or_default() += 1;
        *s.tenants.entry(tenant.clone()).or_default() += 1;
        Ok(Permit {
            limiter: Arc::clone(self),
            tenant: tenant.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self.limiter.state();
        let key = (self.tenant.clone(), std::mem::take(&mut self.user));
        if let Some(n) = s.users.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                s.users.remove(&key);
            }
        }
        if let Some(n) = s.tenants.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                s.tenants.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: usize, per_tenant: usize, rate: u32, burst: u32) -> Arc<Limiter> {
        Limiter::new(Limits {
            per_user,
            per_tenant,
            connect_rate: rate,
            connect_burst: burst,
            topics_per_connection: 8,
            ..Limits::default()
        })
    }

    #[test]
    fn per_user_and_per_tenant_slots_are_released_on_drop() {
        let l = limiter(1, 2, 1000, 1000);
        let t = TenantId::parse("acme").unwrap();
        let a = l.admit(&t, "a").unwrap();
        assert!(matches!(
            l.admit(&t, "a"),
            Err(ApiError::TooManyConnections("user"))
        ));
        let _b = l.admit(&t, "b").unwrap();
        assert!(matches!(
            l.admit(&t, "c"),
            Err(ApiError::TooManyConnections("tenant"))
        ));
        drop(a);
        assert!(l.admit(&t, "a").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn connection_rate_refills_over_time() {
        let l = limiter(100, 100, 2, 2);
        let t = TenantId::parse("acme").unwrap();
        let _p: Vec<_> = (0..2)
            .map(|i| l.admit(&t, &i.to_string()).unwrap())
            .collect();
        assert!(matches!(
            l.admit(&t, "x"),
            Err(ApiError::RateLimited { retry_after: 1 })
        ));
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        assert!(l.admit(&t, "x").is_ok());
    }
}
