//! The tail: one ordered consumer per process on `herald.events.>`, feeding the hub.
//!
//! It provisions the streams in the background (the gateway answers `/readyz` not-ready until
//! then), then follows `HERALD_EVENTS` from the position it last saw. When NATS goes away it
//! marks the feed degraded (clients get `status`), waits for the connection, re-reads the
//! stream's identity (a recreated stream means a new epoch: `reset` for everyone) and resumes
//! its consumer after the last sequence it delivered, so clients miss nothing.
//!
//! "Away" includes a server that keeps its socket open and says nothing (frozen by SIGSTOP, a
//! paused VM): the client still reports `Connected` for up to a few ping intervals, so the
//! tail also follows the active probe ([`herald_core::liveness`]). When the probe reports
//! silence the tail drops its consumer at once (clients get `degraded` within the probe's
//! `interval + deadline`), and when the server answers again it creates a new one from its
//! last sequence: a consumer that lived through a long freeze is never trusted to resume.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt;
use herald_core::cursor::{Cursor, Epoch};
use herald_core::liveness::{Liveness, SilenceReason};
use herald_core::nats::{is_connected, provision_until_ready};
use herald_core::retry::{Backoff, Policy};
use herald_core::streams::{self, EVENTS_STREAM, StreamSettings};
use herald_core::subject;
use tokio_util::sync::CancellationToken;

use crate::frame::{self, EventFrame};
use crate::hub::Hub;
use crate::metrics::Metrics;

/// Why the tail lost its place (it recovers by itself).
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The streams could not be provisioned.
    #[error("provisioning the streams failed")]
    Provision(#[from] streams::ProvisionError),
    /// The events stream could not be looked up.
    #[error("looking up the events stream failed")]
    Stream(#[from] jetstream::context::GetStreamError),
    /// The stream info could not be read.
    #[error("reading the events stream info failed")]
    Info(#[from] jetstream::context::RequestError),
    /// The consumer could not be created.
    #[error("creating the ordered consumer failed")]
    Consumer(#[from] jetstream::stream::ConsumerError),
    /// The consumer's messages could not be read.
    #[error("reading the ordered consumer failed")]
    Messages(#[from] jetstream::consumer::StreamError),
    /// The consumer failed.
    #[error("the ordered consumer failed")]
    Ordered(#[from] jetstream::consumer::pull::OrderedError),
    /// The NATS connection is down.
    #[error("NATS is disconnected")]
    Disconnected,
    /// The connection is open but the server stopped answering the liveness probe.
    #[error("NATS is silent")]
    Silent(#[source] SilenceReason),
    /// The stream was deleted and recreated.
    #[error("the events stream was recreated")]
    Recreated,
    /// The stream holds events past ours but the consumer delivered nothing for a whole
    /// stream check: it lives on a server that is gone (e.g. a stream-leader failover).
    #[error("the ordered consumer stalled {lag} events behind the stream")]
    Stalled {
        /// Events in the stream the consumer did not deliver.
        lag: u64,
    },
    /// The consumer's message stream ended.
    #[error("the ordered consumer ended")]
    Ended,
}

/// The tail's dependencies and timing.
pub struct Tail {
    /// The NATS client (for its connection state).
    pub client: async_nats::Client,
    /// The active probe (a connected server may still be silent).
    pub liveness: Liveness,
    /// JetStream.
    pub js: jetstream::Context,
    /// What to provision.
    pub settings: StreamSettings,
    /// The fan-out to feed.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How often to check the connection.
    pub connection_check: Duration,
    /// How often to re-read stream info.
    pub stream_check: Duration,
    /// Stops the tail.
    pub shutdown: CancellationToken,
}

impl Tail {
    /// Runs until shutdown.
    pub async fn run(self) {
        if provision_until_ready(&self.js, &self.settings, &self.shutdown)
            .await
            .is_none()
        {
            return;
        }
        let mut backoff = Backoff::new(Policy::doubling(
            Duration::from_millis(100),
            Duration::from_secs(2),
        ));
        // Provisioned just now; again only when the stream may be gone.
        let mut provision = false;
        let mut liveness = self.liveness.clone();
        loop {
            if !self.wait_connected().await {
                return;
            }
            // A silent server ends the attempt wherever it is (setting up the consumer or
            // following it): the consumer is dropped and a fresh one follows after recovery.
            let followed = tokio::select! {
                followed = self.follow(provision) => followed,
                reason = liveness.silent() => Err(TailError::Silent(reason)),
            };
            let err = match followed {
                Ok(()) => return,
                Err(err) => {
                    // A stalled consumer or a dropped connection only needs a new consumer:
                    // re-provisioning (four JetStream API calls) during a leader election
                    // would add their timeouts to the outage.
                    provision = matches!(
                        err,
                        TailError::Provision(_) | TailError::Stream(_) | TailError::Recreated
                    );
                    // A tail that got as far as following the stream starts over quickly.
                    if self.hub.is_live() {
                        backoff.reset();
                    }
                    self.hub.set_live(false);
                    err
                }
            };
            if !backoff
                .wait(&self.shutdown, "event tail interrupted", &err)
                .await
            {
                return;
            }
        }
    }

    /// Waits until NATS is connected and answers the probe; `false` on shutdown.
    async fn wait_connected(&self) -> bool {
        let mut tick = tokio::time::interval(self.connection_check);
        let mut liveness = self.liveness.clone();
        loop {
            let answering = liveness.is_alive();
            if answering && is_connected(&self.client) {
                return true;
            }
            self.hub.set_live(false);
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                _ = tick.tick() => {}
                () = liveness.alive(), if !answering => {}
            }
        }
    }

    /// Follows the stream from the hub's head until shutdown (`Ok`) or a failure;
    /// `provision` first (idempotent; recreates a deleted stream).
    #[tracing::instrument(skip_all, fields(stream = EVENTS_STREAM))]
    async fn follow(&self, provision: bool) -> Result<(), TailError> {
        if provision {
            streams::provision(&self.js, &self.settings).await?;
        }
        // `get_stream` is itself a STREAM.INFO request: its answer is fresh.
        let mut stream = self.js.get_stream(EVENTS_STREAM).await?;
        let info = stream.cached_info();
        let epoch = Epoch::from_created(info.created);
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let head = match self.hub.head() {
            Some(c) if c.epoch == epoch => c.seq,
            // First start, or a recreated stream: go live from the current end.
            _ => last,
        };
        let head = self.hub.start(epoch, head, first);
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject::EVENTS_ALL.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: head + 1,
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        self.hub.set_live(true);
        tracing::info!(%epoch, from = head + 1, "following the event stream");

        let mut conn_tick = tokio::time::interval(self.connection_check);
        let mut stream_tick = tokio::time::interval(self.stream_check);
        // Whether a message arrived since the previous stream check.
        let mut progressed = true;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                msg = messages.next() => {
                    let msg = msg.ok_or(TailError::Ended)??;
                    progressed = true;
                    let Ok(info) = msg.info() else { continue };
                    let cursor = Cursor::new(info.stream_sequence, epoch);
                    self.metrics.tailed.inc();
                    match EventFrame::new(cursor, msg.subject.as_str(), &msg.payload) {
                        Ok(frame) => {
                            let audience = frame::audience(msg.headers.as_ref());
                            self.hub.publish(Arc::new(frame.with_audience(audience)));
                        }
                        Err(err) => tracing::warn!(seq = cursor.seq, %err, "skipping an undeliverable stored message"),
                    }
                }
                _ = conn_tick.tick() => {
                    if !is_connected(&self.client) {
                        return Err(TailError::Disconnected);
                    }
                }
                _ = stream_tick.tick() => {
                    let lag = self.check_stream(&mut stream, epoch).await?;
                    // Behind the stream with nothing delivered for a whole interval: the
                    // consumer is dead without saying so. Restart from our head; the hub
                    // skips anything already sent, so there is no gap and no duplicate.
                    if lag > 0 && !progressed {
                        return Err(TailError::Stalled { lag });
                    }
                    progressed = false;
                }
            }
        }
    }

    /// Updates the lag metric, detects a recreated stream, and returns the lag (events in the
    /// stream past the hub's head; 0 when the info could not be read in time).
    async fn check_stream(
        &self,
        stream: &mut jetstream::stream::Stream,
        epoch: Epoch,
    ) -> Result<u64, TailError> {
        let timeout = self.connection_check.max(Duration::from_secs(1));
        let Ok(info) = tokio::time::timeout(timeout, stream.info()).await else {
            return Ok(0);
        };
        // An error here (e.g. the stream was deleted) restarts the tail, which re-provisions
        // and compares epochs.
        let info = info?;
        if Epoch::from_created(info.created) != epoch {
            return Err(TailError::Recreated);
        }
        let head = self.hub.head().map_or(0, |c| c.seq);
        let lag = info.state.last_sequence.saturating_sub(head);
        self.metrics.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        Ok(lag)
    }
}
