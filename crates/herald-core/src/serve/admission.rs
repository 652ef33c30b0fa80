//! Who gets in: the overall connection cap, the cap on connections still sending their first
//! request head, and (optionally) a cap per client IP. Each is a permit released on drop.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::HttpConfig;

/// Which cap refused a connection (the `reason` label of the refused-connections counter).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Refusal {
    /// `max_pending_connections`: too many connections have not sent a request head yet.
    Pending,
    /// `max_connections`: too many connections are open.
    Connections,
    /// Too many connections are open from the client's IP address.
    PerIp,
}

impl Refusal {
    /// The label value: `pending`, `connections` or `per_ip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connections => "connections",
            Self::PerIp => "per_ip",
        }
    }
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The labels of the refused-connections counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Which cap refused it.
    pub reason: Refusal,
}

/// Admits connections while every cap has room.
#[derive(Clone)]
pub struct Admission {
    connections: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    per_ip: Option<Arc<PerIp>>,
}

/// An admitted connection: holds its slots until dropped. The pending slot goes first, once
/// the connection has sent a whole request head ([`Admitted::head_read`]).
#[derive(Debug)]
pub struct Admitted {
    slots: Slots,
    pending: Option<OwnedSemaphorePermit>,
}

/// A connection's slot in `max_connections` and in its IP's cap, held while the socket lives
/// (also after an HTTP upgrade hands it to a WebSocket).
#[derive(Debug)]
pub struct Slots {
    _connection: OwnedSemaphorePermit,
    _ip: Option<IpSlot>,
}

impl Admitted {
    /// The open-connection slots, and the pending slot if the head is not in yet.
    pub fn split(self) -> (Slots, Pending) {
        (self.slots, Pending(self.pending))
    }

    /// The connection has sent a whole request head: it no longer counts as pending.
    pub fn head_read(&mut self) {
        self.pending = None;
    }

    /// Whether the connection still counts as pending (no whole head yet).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// A connection's pending slot, until its first request head is in.
#[derive(Debug)]
pub struct Pending(Option<OwnedSemaphorePermit>);

impl Pending {
    /// The head is in: the slot is released.
    pub fn head_read(&mut self) {
        self.0 = None;
    }

    /// Whether the head is still awaited.
    pub fn is_pending(&self) -> bool {
        self.0.is_some()
    }
}

impl Admission {
    /// Caps from `cfg`; `per_ip` (if any, and not 0) caps the open connections per client IP.
    pub fn new(cfg: &HttpConfig, per_ip: Option<usize>) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            pending: Arc::new(Semaphore::new(cfg.max_pending_connections.max(1))),
            per_ip: per_ip.filter(|&n| n > 0).map(|max| {
                Arc::new(PerIp {
                    max,
                    open: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Admits a new connection from `ip`, or says which cap is full. Never waits.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        // The per-IP cap first: one client filling it must not take the others' slots.
        let ip = match &self.per_ip {
            Some(per_ip) => Some(PerIp::take(per_ip, ip).ok_or(Refusal::PerIp)?),
            None => None,
        };
        let connection = Arc::clone(&self.connections)
            .try_acquire_owned()
            .map_err(|_| Refusal::Connections)?;
        let pending = Arc::clone(&self.pending)
            .try_acquire_owned()
            .map_err(|_| Refusal::Pending)?;
        Ok(Admitted {
            slots: Slots {
                _connection: connection,
                _ip: ip,
            },
            pending: Some(pending),
        })
    }
}

/// Open connections per client IP.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(this: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = this.open();
        let n = open.entry(ip).or_insert(0);
        if *n >= this.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: Arc::clone(this),
            ip,
        })
    }
}

/// One connection's slot of its IP; released on drop.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl std::fmt::Debug for IpSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpSlot").field("ip", &self.ip).finish()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
