//! Any JSON body. The whole body becomes `data`.
//!
//! - topic: the source's `topic`, else the `Herald-Topic` header;
//! - action: the source's `action`, else its `action_header` (e.g. `X-GitHub-Event`), else the
//!   `Herald-Action` header;
//! - id: its `id_header` (e.g. `X-GitHub-Delivery`), else the verified `webhook-id`, else
//!   `Herald-Event-Id`, else `Idempotency-Key`, else a generated UUIDv7 (retries of such a
//!   request cannot be recognised: give your producer an id header).

use herald_core::event::{Event, EventId};
use serde_json::Value;

use super::{Context, header};
use crate::error::ParseError;

/// Parses any JSON value into one event.
pub fn parse(ctx: &Context<'_>, body: Value) -> Result<Event, ParseError> {
    let h = ctx.headers;
    let topic = match &ctx.source.topic {
        Some(t) => t.clone(),
        None => {
            let t = header(h, "herald-topic").ok_or_else(|| {
                ParseError::Shape(format!(
                    "no topic: set `topic` on source {:?} or send a Herald-Topic header",
                    ctx.name
                ))
            })?;
            super::topic(t, "Herald-Topic header")?
        }
    };
    let action = match &ctx.source.action {
        Some(a) => a.clone(),
        None => {
            let configured = ctx.source.action_header.as_deref();
            let (value, name) = configured
                .and_then(|name| header(h, name).map(|v| (v, name)))
                .or_else(|| header(h, "herald-action").map(|v| (v, "Herald-Action")))
                .ok_or_else(|| {
                    ParseError::Shape(format!(
                        "no action: set `action` or `action_header` on source {:?}, or send a Herald-Action header",
                        ctx.name
                    ))
                })?;
            super::action(value, &format!("{name} header"))?
        }
    };
    let id = match ctx
        .source
        .id_header
        .as_deref()
        .and_then(|name| header(h, name).map(|v| (v, name.to_owned())))
        .or_else(|| {
            ctx.verified
                .webhook_id()
                .map(|v| (v, "webhook-id".to_owned()))
        })
        .or_else(|| header(h, "herald-event-id").map(|v| (v, "Herald-Event-Id".to_owned())))
        .or_else(|| header(h, "idempotency-key").map(|v| (v, "Idempotency-Key".to_owned())))
    {
        Some((value, name)) => super::event_id(value, &format!("{name} header"))?,
        None => EventId::generate(),
    };
    Ok(Event::new(
        id,
        ctx.tenant().clone(),
        topic,
        action,
        ctx.event_source(),
        body,
    ))
}
