//! Herald's chaos soak.
//!
//! The real binaries run as child processes — nats-server, ingest, two gateways, notifier
//! (against fake Telegram and Slack) and stats — while a producer posts signed webhooks,
//! SSE and WebSocket clients follow their tenants' topics, and a driver SIGKILLs and
//! restarts components at seeded random moments. When the soak ends, the system is given
//! time to settle, and a checker proves Herald's promises from the evidence: every
//! acknowledged webhook is in the stream exactly once; every client got every event of its
//! tenant and topics, in order, with no gap and no duplicate; the stats documents equal a
//! recount; every notification was sent once or dead-lettered.
//!
//! | module | what it holds |
//! |---|---|
//! | [`plan`] | settings, tenants, topics, clients, notification routes |
//! | [`stack`] | the processes: start, SIGKILL, restart, readiness |
//! | [`producer`] | signed webhooks, retried with the same id until acknowledged |
//! | [`client`] | SSE and WebSocket clients that resume by cursor on the other gateway |
//! | [`config`] | the generated `herald.toml` |
//! | [`faults`] | the fault kinds besides SIGKILL: freeze, proxy modes, a full store |
//! | [`driver`] | the seeded chaos: what is killed when, and for how long |
//! | [`facts`] | reading the stream, the DLQ, the stats bucket and consumer progress |
//! | [`cli`] | the command line and its settings |
//! | [`check`] | the promises as comparisons, and their violations |
//! | [`report`] | running it all and the JSON report |
//! | [`error`] | failures of the harness itself |

pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod driver;
pub mod error;
pub mod facts;
pub mod faults;
pub mod plan;
pub mod producer;
pub mod report;
pub mod stack;

pub use error::Error;
pub use plan::Settings;
pub use report::{Report, run};
