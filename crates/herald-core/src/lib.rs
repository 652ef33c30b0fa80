//! Herald's shared foundation.
//!
//! Every Herald service builds on this crate and nothing else is shared between them but
//! NATS JetStream itself.
//!
//! | module | what it holds |
//! |---|---|
//! | [`audience`] | the `Herald-To` header of private events, read one way everywhere |
//! | [`names`] | `TenantId`, `Topic`, `Action`: validated subject tokens |
//! | [`event`] | the CloudEvents envelope with Herald's extensions, `EventId` |
//! | [`subject`] | subject builders and parsers (`herald.events.<tenant>.<topic>.<action>`) |
//! | [`cursor`] | `<seq>-<epoch>` cursors clients resume from |
//! | [`streams`] | stream/KV specs and idempotent provisioning |
//! | [`state`] | collections: `[state]` config, the change rules, stored rows and markers |
//! | [`nats`] | connecting with retry, credentials and TLS |
//! | [`retry`] | the one retry-with-backoff loop (doubling, cap, jitter, stops on shutdown) |
//! | [`publish`] | the one publish: `Nats-Msg-Id` from the event, then the PubAck |
//! | [`liveness`] | the active probe that notices a silent (e.g. frozen) NATS server |
//! | [`config`] | defaults → TOML file → `HERALD_*` environment |
//! | [`signature`] | Standard Webhooks and HMAC-SHA256 signing and verification primitives |
//! | [`serve`] | the HTTP server: header timeout, connection caps, refusals |
//! | [`service`] | the `Service` trait, `service::main`, `bind`, `CommonConfig`, `ServiceContext`: one shape for every service |
//! | [`sse`] | the one Server-Sent Events client parser (WHATWG), sans-IO plus a stream adapter |
//! | [`secret`] | a string whose `Debug` prints `[redacted]` |
//! | [`telemetry`] | tracing initialisation (JSON or pretty) |
//! | [`shutdown`] | the one cancellation token, fired by SIGINT/SIGTERM |
//! | [`http`] | the JSON error body, `/healthz`, `/readyz`, `/metrics` |

pub mod audience;
pub mod config;
pub mod cursor;
pub mod dev;
pub mod event;
pub mod http;
pub mod liveness;
pub mod names;
pub mod nats;
pub mod publish;
pub mod retry;
pub mod secret;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod signature;
pub mod sse;
pub mod state;
pub mod streams;
pub mod subject;
pub mod telemetry;

/// Renders an error and its `source()` chain as one line: `outer: inner: root`.
/// For logs; never send it to a client.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
