//! The notifier's consumer, as JetStream reports it.

use async_nats::jetstream::context::ConsumerInfoError;
use async_nats::jetstream::{self, consumer};
use herald_core::streams::EVENTS_STREAM;

/// The notifier's durable consumer on `HERALD_EVENTS` as the server reports it now; `Err`
/// when there is none. The stream itself must exist.
pub async fn notifier_consumer(
    js: &jetstream::Context,
) -> Result<consumer::Info, ConsumerInfoError> {
    let stream = js.get_stream(EVENTS_STREAM).await.expect("HERALD_EVENTS");
    stream.consumer_info("notifier").await
}
