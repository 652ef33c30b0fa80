//! Herald gateway: delivers events to browsers over SSE, WebSocket and long-poll, with
//! gap-free resume from a cursor.
//!
//! One ordered consumer per process ([`tail`]) follows `HERALD_EVENTS` and feeds an in-process
//! fan-out ([`hub`]) that serializes each event once ([`frame`]) and keeps a ring buffer of
//! recent events. Each client gets a [`session`]: its backlog (from the ring, or a [`replay`]
//! from JetStream, or a `reset`), then live events, with no gap and no duplicate.
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | `Config`: listener, JWT, heartbeat, ring, limits, CORS, `web_dir` |
//! | [`auth`] | JWT verification, token sources, topic scoping |
//! | [`tail`] | the one ordered consumer; outage and recreated-stream handling |
//! | [`stats_feed`] | the one `herald_stats` watch feeding live `$stats` documents |
//! | [`hub`] | subscribers by (tenant, topic), bounded queues, ring buffer, hand-off |
//! | [`replay`] | short-lived tenant-filtered replays, bounded by a semaphore; reset detection |
//! | [`mirror`] | every collection in memory, applied in stream order inside the hub; its exact load |
//! | [`snapshot`] | snapshot topics, pages, rendering, and the snapshots kept for later pages |
//! | [`history`] | the latest events of some topics, from the ring or backwards from JetStream |
//! | [`filter`] | `actions` / `where` filters, applied to live, ring, replay and history alike |
//! | [`session`] | one client's ordered delivery, heartbeats, expiry, drain |
//! | [`frame`] | SSE and WebSocket renderings of events and control messages |
//! | [`routes`] | `/v1/stream`, `/v1/ws`, `/v1/poll`, `/v1/stats`, `/v1/history`, `/v1/snapshot`, `/v1/presence`, `/v1/public/…` |
//! | [`server`] | the HTTP server: hyper for requests, a lean writer for SSE streams |
//! | [`limits`] | connections per user and tenant, connection rate |
//! | [`presence`] | who is connected to a topic, across gateways (KV `herald_presence`) |
//! | [`metrics`] | Prometheus metrics |
//! | [`web`] | the allowlisted browser files of `web_dir` |
//! | [`error`] | `ApiError` (JSON bodies) and `Error` |
//! | [`app`] | [`App`]: build, then run until the shutdown token fires, then drain |

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod filter;
pub mod frame;
pub mod history;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod mirror;
pub mod presence;
pub mod replay;
pub mod routes;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod stats_feed;
pub mod tail;
pub mod web;

pub use app::App;
pub use config::Config;
pub use error::Error;

/// The config section (`[gateway]`, `HERALD_GATEWAY__*`).
pub const SECTION: &str = "gateway";
