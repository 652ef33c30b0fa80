//! Any JSON body. The whole body becomes `data`.
//!
//! Headers are not covered by `hmac-sha256` or `bearer`, and standard-webhooks signs only
//! `webhook-id`, `webhook-timestamp` and the body; so a header decides nothing unless the
//! source config opts in:
//! - topic: the source's `topic`, else its `topic_header` (opt-in);
//! - action: the source's `action`, else its `action_header` (opt-in, e.g. `X-GitHub-Event`);
//! - id: the verified (signed) `webhook-id`, else `id_header` (e.g. `X-GitHub-Delivery`), else
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
            let (value, name) = opted_in(ctx, ctx.source.topic_header.as_deref())
                .ok_or_else(|| {
                    ParseError::Shape(format!(
                        "no topic: set `topic` on source {:?}, or `topic_header` and send that header",
                        ctx.name
                    ))
                })?;
            super::topic(value, &format!("{name} header"))?
        }
    };
    let action = match &ctx.source.action {
        Some(a) => a.clone(),
        None => {
            let (value, name) = opted_in(ctx, ctx.source.action_header.as_deref())
                .ok_or_else(|| {
                    ParseError::Shape(format!(
                        "no action: set `action` on source {:?}, or `action_header` and send that header",
                        ctx.name
                    ))
                })?;
            super::action(value, &format!("{name} header"))?
        }
    };
    // The signed id first: an unsigned header must not let a replay dodge de-duplication.
    let id = match ctx
        .verified
        .webhook_id()
        .map(|v| (v, "webhook-id"))
        .or_else(|| opted_in(ctx, ctx.source.id_header.as_deref()))
        .or_else(|| header(h, "herald-event-id").map(|v| (v, "Herald-Event-Id")))
        .or_else(|| header(h, "idempotency-key").map(|v| (v, "Idempotency-Key")))
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

/// The value of the header the source config named, with that name.
fn opted_in<'a>(ctx: &Context<'a>, name: Option<&'a str>) -> Option<(&'a str, &'a str)> {
    name.and_then(|name| header(ctx.headers, name).map(|v| (v, name)))
}
