//! Recounting documents from `HERALD_EVENTS`, e.g. after adding a group-by field.
//!
//! The aggregator recounts a document by itself when its fields or stream epoch no longer
//! match the configuration (on the topic's next event). [`rebuild`] does it now, while the
//! aggregator keeps running, without double counting:
//!
//! 1. start from an empty document;
//! 2. read the key's current revision `R`, *then* the stream's last sequence `S`: whatever
//!    document `R` holds counts events at or below some `L ≤ S`;
//! 3. count every event of the topic up to `S` into the new document;
//! 4. write it with compare-and-set on `R`. On a conflict go back to 2, keeping what was
//!    counted: only events above the previous `S` are read.
//!
//! After the write the document's `last_seq` is at least the replaced one's, so the running
//! aggregator skips what the rebuild counted and applies only later events.
//!
//! Only events the stream still holds are counted (see `max_age` / `max_bytes`).

use async_nats::jetstream;
use futures::TryStreamExt;
use herald_core::cursor::Epoch;
use herald_core::names::{TenantId, Topic};
use herald_core::streams::EVENTS_STREAM;

use crate::apply;
use crate::config::Config;
use crate::coverage::Coverage;
use crate::doc::StatsDoc;
use crate::store::{self, StoreError};

/// Why a rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// `HERALD_EVENTS` could not be opened or inspected.
    #[error("cannot read stream {EVENTS_STREAM}")]
    Stream(#[source] async_nats::Error),
    /// Reading or writing the bucket failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the topic's events failed.
    #[error("cannot read events from the stream")]
    History(#[source] jetstream::stream::DirectGetError),
    /// Listing the bucket's keys failed.
    #[error("cannot list stats documents")]
    Keys(#[source] async_nats::Error),
}

/// Recounts the document of `tenant`/`topic` from the stream and stores it; returns it.
#[tracing::instrument(skip_all, fields(%tenant, %topic))]
pub async fn rebuild(
    js: &jetstream::Context,
    cfg: &Config,
    tenant: &TenantId,
    topic: &Topic,
) -> Result<StatsDoc, RebuildError> {
    let stream = js
        .get_stream(EVENTS_STREAM)
        .await
        .map_err(|e| RebuildError::Stream(e.into()))?;
    let epoch = Epoch::from_created(stream.cached_info().created);
    let kv = store::bucket(js).await?;
    let key = crate::doc::key(tenant, topic);
    let mut doc = StatsDoc::new(tenant.clone(), topic.clone(), epoch, &cfg.fields_for(topic));
    loop {
        let revision = store::read_key(&kv, &key).await?.revision();
        let upto = stream
            .get_info()
            .await
            .map_err(|e| RebuildError::Stream(e.into()))?
            .state
            .last_sequence;
        apply::catch_up(
            &mut doc,
            &[],
            &Coverage::default(),
            &stream,
            Some(upto),
            cfg.max_values,
        )
        .await
        .map_err(RebuildError::History)?;
        match store::write(&kv, &doc, revision).await {
            Ok(_) => {
                tracing::info!(%tenant, %topic, last_seq = doc.last_seq, total = doc.total, "stats document rebuilt");
                return Ok(doc);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Recounts one document (`only`) or every document in the bucket; returns how many.
pub async fn run(
    js: &jetstream::Context,
    cfg: &Config,
    only: Option<(TenantId, Topic)>,
) -> Result<usize, RebuildError> {
    match only {
        Some((tenant, topic)) => rebuild(js, cfg, &tenant, &topic).await.map(|_| 1),
        None => rebuild_all(js, cfg).await,
    }
}

/// Recounts every document in the bucket; returns how many.
pub async fn rebuild_all(js: &jetstream::Context, cfg: &Config) -> Result<usize, RebuildError> {
    let kv = store::bucket(js).await?;
    let keys: Vec<String> = kv
        .keys()
        .await
        .map_err(|e| RebuildError::Keys(e.into()))?
        .try_collect()
        .await
        .map_err(|e| RebuildError::Keys(e.into()))?;
    let mut done = 0;
    for key in keys {
        let Some((tenant, topic)) = crate::doc::parse_key(&key) else {
            tracing::warn!(%key, "not a stats document key; skipped");
            continue;
        };
        rebuild(js, cfg, &tenant, &topic).await?;
        done += 1;
    }
    Ok(done)
}
