//! A crowd of clients (SSE to the gateway, or WebSocket to nats-server) run as tasks of
//! this process, opened a bounded number at a time, and waited on as a whole.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::stack::{Layout, Stack};
use crate::track::{Board, Slot};
use crate::{natsws, sse};

/// Connections being opened at once (the listen backlog is the limit, not the servers).
const OPENING: usize = 512;
/// How long opening the whole crowd may take.
const OPEN_DEADLINE: Duration = Duration::from_secs(180);
/// How often a condition over the board is checked.
const POLL: Duration = Duration::from_millis(5);

/// Running clients.
pub struct Crowd {
    /// Their counters.
    pub board: Arc<Board>,
    layout: Layout,
    stop: CancellationToken,
    drops: watch::Sender<u64>,
    tasks: JoinSet<anyhow::Result<Vec<u32>>>,
}

impl Crowd {
    /// Opens `n` SSE clients to the gateway, group by group, and waits until every stream
    /// is open (its `retry:` hint received).
    pub async fn sse(stack: &Stack, layout: Layout, n: usize) -> anyhow::Result<Self> {
        let paths = (0..n)
            .map(|i| stack.sse_path(layout.group_of(i), &format!("c{i}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Self::sse_to(stack.gateway_addr, paths, layout).await
    }

    /// Opens one SSE client per path to `addr` (client `i` on `paths[i]`) and waits until
    /// every stream is open (its `retry:` hint received).
    pub async fn sse_to(
        addr: SocketAddr,
        paths: Vec<String>,
        layout: Layout,
    ) -> anyhow::Result<Self> {
        let n = paths.len();
        let mut crowd = Self::new(layout, n);
        let (opened, mut opened_rx) = mpsc::channel(OPENING);
        let paths: Vec<Arc<str>> = paths.into_iter().map(Arc::from).collect();
        let ctl = sse::Control {
            opened,
            stop: crowd.stop.clone(),
            drops: crowd.drops.subscribe(),
        };
        let board = Arc::clone(&crowd.board);
        crowd
            .open(n, &mut opened_rx, |i| {
                let client = sse::Client {
                    addr,
                    path: Arc::clone(&paths[i]),
                    index: i,
                    board: Arc::clone(&board),
                };
                sse::run(client, ctl.clone())
            })
            .await?;
        Ok(crowd)
    }

    /// Opens `n` NATS-protocol WebSocket clients to nats-server, each subscribed to its
    /// group's subject, and waits until every subscription is live.
    pub async fn nats_ws(stack: &Stack, layout: Layout, n: usize) -> anyhow::Result<Self> {
        let mut crowd = Self::new(layout, n);
        let (opened, mut opened_rx) = mpsc::channel(OPENING);
        let url: Arc<str> = stack.ws_url.as_str().into();
        let board = Arc::clone(&crowd.board);
        let stop = crowd.stop.clone();
        crowd
            .open(n, &mut opened_rx, |i| {
                let client = natsws::Client {
                    url: Arc::clone(&url),
                    subject: stack.subject(layout.group_of(i)),
                    index: i,
                    board: Arc::clone(&board),
                };
                natsws::run(client, opened.clone(), stop.clone())
            })
            .await?;
        Ok(crowd)
    }

    fn new(layout: Layout, n: usize) -> Self {
        Self {
            board: Board::new(n),
            layout,
            stop: CancellationToken::new(),
            drops: watch::channel(0).0,
            tasks: JoinSet::new(),
        }
    }

    async fn open<F, Fut>(
        &mut self,
        n: usize,
        opened: &mut mpsc::Receiver<()>,
        mut spawn: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = anyhow::Result<Vec<u32>>> + Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + OPEN_DEADLINE;
        let (mut spawned, mut open) = (0, 0);
        while open < n {
            if spawned < n && spawned - open < OPENING {
                self.tasks.spawn(spawn(spawned));
                spawned += 1;
                continue;
            }
            tokio::select! {
                got = tokio::time::timeout_at(deadline, opened.recv()) => {
                    got.with_context(|| format!("{open} of {n} opened within {OPEN_DEADLINE:?}"))?
                        .context("the clients went away")?;
                    open += 1;
                }
                Some(failed) = self.tasks.join_next() => {
                    failed??;
                    bail!("a client ended while opening");
                }
            }
        }
        Ok(())
    }

    /// Waits until every client has every event of its group numbered below `want[group]`;
    /// returns how long that took.
    pub async fn wait_for(&mut self, want: &[u64], deadline: Duration) -> anyhow::Result<Duration> {
        let layout = self.layout;
        self.wait_until(deadline, |i, slot| {
            slot.next.load(Ordering::Relaxed) >= want[layout.group_of(i)]
        })
        .await
    }

    /// Waits until `done(client, slot)` holds for every client; returns how long that took.
    pub async fn wait_until(
        &mut self,
        deadline: Duration,
        done: impl Fn(usize, &Slot) -> bool,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let have = self.board.count(&done);
            if have == self.board.slots.len() {
                return Ok(started.elapsed());
            }
            if let Some(ended) = self.tasks.try_join_next() {
                ended??;
                bail!("a client ended early");
            }
            if started.elapsed() > deadline {
                bail!(
                    "{have} of {} clients got there within {deadline:?}",
                    self.board.slots.len()
                );
            }
            // A condition over 10,000 counters, polled under a deadline.
            tokio::time::sleep(POLL).await;
        }
    }

    /// Makes every client drop its connection and resume with its cursor.
    pub fn drop_all(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Turns latency recording on or off.
    pub fn measure(&self, on: bool) {
        self.board.measuring.store(on, Ordering::Relaxed);
    }

    /// Stops every client; returns every latency measured, sorted (µs).
    pub async fn finish(mut self) -> anyhow::Result<Vec<u32>> {
        self.stop.cancel();
        let mut all = Vec::new();
        while let Some(r) = self.tasks.join_next().await {
            all.extend(r??);
        }
        all.sort_unstable();
        Ok(all)
    }
}
