//! The one way to publish to JetStream: `Nats-Msg-Id` set, then the PubAck awaited.
//!
//! [`publish_event`] stores one [`Event`] on its subject in `HERALD_EVENTS` with the event's
//! de-duplication key ([`Event::msg_id`]) and waits for JetStream to acknowledge it;
//! [`send_event`] is the same without waiting (pipelined publishers await the returned
//! futures together), and [`event_message`] the message both send (ingest adds its own
//! bookkeeping around it). [`publish_with_id`] is for what is not an event (dead letters,
//! re-drives) or an event under another key: the caller names the id.

use async_nats::HeaderMap;
use async_nats::jetstream::{
    self,
    context::{PublishAckFuture, PublishError},
    message::PublishMessage,
    publish::PublishAck,
};
use bytes::Bytes;

use crate::event::Event;
use crate::streams::EVENTS_STREAM;

/// The content type of a stored event.
pub const EVENT_CONTENT_TYPE: &str = "application/cloudevents+json";

/// The message `event` is stored as: its JSON, `Nats-Msg-Id` from [`Event::msg_id`], the
/// CloudEvents content type, and `HERALD_EVENTS` as the expected stream (so a subject no
/// stream or another stream captures is refused, not silently stored elsewhere).
pub fn event_message(event: &Event) -> PublishMessage {
    PublishMessage::build()
        .message_id(event.msg_id())
        .expected_stream(EVENTS_STREAM)
        .header("Content-Type", EVENT_CONTENT_TYPE)
        .payload(event.to_bytes())
}

/// Sends `event` on its subject; the returned future resolves to its PubAck.
pub async fn send_event(
    js: &jetstream::Context,
    event: &Event,
) -> Result<PublishAckFuture, PublishError> {
    js.send_publish(event.subject(), event_message(event)).await
}

/// Publishes `event` on its subject and waits for the PubAck (which says whether JetStream
/// already had it: `duplicate`).
pub async fn publish_event(
    js: &jetstream::Context,
    event: &Event,
) -> Result<PublishAck, PublishError> {
    send_event(js, event).await?.await
}

/// Publishes `payload` with `headers` on `subject` as `Nats-Msg-Id: msg_id` and waits for the
/// PubAck: publishing the same id again within the stream's duplicate window stores it once.
pub async fn publish_with_id(
    js: &jetstream::Context,
    subject: String,
    headers: HeaderMap,
    msg_id: &str,
    payload: Bytes,
) -> Result<PublishAck, PublishError> {
    let msg = PublishMessage::build()
        .headers(headers)
        .message_id(msg_id)
        .payload(payload);
    js.send_publish(subject, msg).await?.await
}
