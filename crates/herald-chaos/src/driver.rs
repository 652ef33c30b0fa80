//! The chaos driver: at seeded random moments it injects one fault of a seeded random kind
//! (each kind once in every round of the enabled kinds, in shuffled order)
//! ([`FaultKind`]): a SIGKILL of one component — sometimes two at once — kept down for a
//! while and restarted; a freeze (SIGSTOP/SIGCONT) of any component; a proxy mode between a
//! service and NATS; or a full `HERALD_EVENTS`. It also notices a component that died
//! without being killed (a crash is a finding, not chaos).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use async_nats::jetstream;
use herald_test_support::proxy::{Direction, Mode};

use crate::faults::{self, Fault, FaultKind};
use crate::stack::{Component, Components as _, Stack};

/// One injected failure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Kill {
    /// Seconds since the soak started.
    pub at_s: f64,
    /// What was killed.
    pub component: String,
    /// How long it stayed down, in milliseconds.
    pub down_ms: u64,
}

/// What the driver did and saw.
#[derive(Debug, Default, serde::Serialize)]
pub struct Chaos {
    /// Every SIGKILL, in order.
    pub kills: Vec<Kill>,
    /// Every fault of every kind (kills included), in order.
    pub faults: Vec<Fault>,
    /// Faults injected per kind.
    pub faults_by_kind: std::collections::BTreeMap<&'static str, usize>,
    /// Components found dead without having been killed, and restarts that failed.
    pub crashes: Vec<String>,
    /// Faults the harness could not inject (e.g. a stream update while NATS restarts).
    pub not_injected: Vec<String>,
}

/// Timing of the chaos.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Shortest and longest pause between two rounds of kills.
    pub every: (Duration, Duration),
    /// Shortest and longest downtime of a kill.
    pub down: (Duration, Duration),
    /// Shortest and longest freeze, proxy fault or full store.
    pub pause: (Duration, Duration),
    /// The kinds drawn from.
    pub kinds: Vec<FaultKind>,
}

fn between(rng: &mut StdRng, (lo, hi): (Duration, Duration)) -> Duration {
    if hi <= lo {
        return lo;
    }
    rng.gen_range(lo..hi)
}

/// Injects faults until `stop` fires; leaves every component running and NATS reachable.
pub async fn run(
    stack: Arc<Mutex<Stack>>,
    js: jetstream::Context,
    seed: u64,
    timing: Timing,
    stop: CancellationToken,
) -> Chaos {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut chaos = Chaos::default();
    let began = Instant::now();
    let components = Component::all();
    let kinds = if timing.kinds.is_empty() {
        vec![FaultKind::Kill]
    } else {
        timing.kinds.clone()
    };
    let mut bag: Vec<FaultKind> = Vec::new();
    loop {
        let pause = between(&mut rng, timing.every);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
        restart_crashed(&stack, &components, began, &mut chaos).await;
        // A shuffled bag: every kind comes once in each run of `kinds.len()` rounds.
        if bag.is_empty() {
            bag.clone_from(&kinds);
            bag.shuffle(&mut rng);
        }
        let kind = bag.pop().unwrap_or(FaultKind::Kill);
        let at_s = (began.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        let start = Instant::now();
        let (down, hit) = inject(kind, &stack, &js, &mut rng, &timing, &mut chaos, at_s).await;
        let ended = Instant::now();
        for component in hit {
            *chaos.faults_by_kind.entry(kind.name()).or_default() += 1;
            chaos.faults.push(Fault {
                at_s,
                kind: kind.name(),
                component,
                down_ms: u64::try_from(down.as_millis()).unwrap_or(u64::MAX),
                began: start,
                ended,
            });
        }
    }
    chaos
}

/// Injects one fault of `kind`, waits it out and ends it. Returns how long it lasted and
/// what it hit (nothing if it could not be injected).
async fn inject(
    kind: FaultKind,
    stack: &Mutex<Stack>,
    js: &jetstream::Context,
    rng: &mut StdRng,
    timing: &Timing,
    chaos: &mut Chaos,
    at_s: f64,
) -> (Duration, Vec<String>) {
    let mut hit = Vec::new();
    let components = Component::all();
    let services: Vec<Component> = components
        .iter()
        .copied()
        .filter(|&c| c != Component::Nats)
        .collect();
    let down = match kind {
        FaultKind::Kill => {
            let down = between(rng, timing.down);
            hit = kill_round(stack, &components, rng, down, chaos, at_s).await;
            down
        }
        FaultKind::Freeze => {
            let c = *components.choose(rng).unwrap_or(&Component::Nats);
            let down = between(rng, timing.pause);
            if stack.lock().await.signal(c, "-STOP") {
                tracing::info!(component = %c, down = ?down, "SIGSTOP");
                // The freeze is the fault being injected, not a synchronisation.
                tokio::time::sleep(down).await;
                stack.lock().await.signal(c, "-CONT");
                hit.push(c.to_string());
            } else {
                chaos.not_injected.push(format!("freeze {c}: no process"));
            }
            down
        }
        FaultKind::StoreFull => {
            let down = between(rng, timing.pause);
            tracing::info!(down = ?down, "HERALD_EVENTS full");
            match faults::store_full(js, down).await {
                Ok(()) => hit.push(herald_core::streams::EVENTS_STREAM.to_owned()),
                Err(e) => chaos.not_injected.push(format!("store-full: {e}")),
            }
            down
        }
        proxied => {
            let c = *services.choose(rng).unwrap_or(&Component::Ingest);
            let down = between(rng, timing.pause);
            let mode = match proxied {
                FaultKind::Delay => Mode::Delay(between(
                    rng,
                    (Duration::from_millis(20), Duration::from_millis(400)),
                )),
                FaultKind::Drop => Mode::Drop,
                FaultKind::HalfOpen if rng.gen_bool(0.5) => Mode::HalfOpen(Direction::ToClient),
                FaultKind::HalfOpen => Mode::HalfOpen(Direction::ToUpstream),
                _ => Mode::Blackhole,
            };
            tracing::info!(component = %c, ?mode, down = ?down, "proxy fault");
            if let Some(p) = stack.lock().await.proxy(c) {
                p.set_mode(mode);
            }
            // The fault lasts this long; waiting it out is the injection itself.
            tokio::time::sleep(down).await;
            stack.lock().await.heal_proxies();
            hit.push(c.to_string());
            down
        }
    };
    (down, hit)
}

/// Restarts (and records as crashes) the components that died without being killed.
async fn restart_crashed(
    stack: &Mutex<Stack>,
    components: &[Component],
    began: Instant,
    chaos: &mut Chaos,
) {
    let mut s = stack.lock().await;
    for &c in components {
        if !s.is_running(c) {
            chaos.crashes.push(format!(
                "{c} was not running at {:.1}s without being killed",
                began.elapsed().as_secs_f64()
            ));
            if let Err(err) = s.start(c).await {
                chaos.crashes.push(format!(
                    "restarting {c}: {}",
                    herald_core::error_chain(&err)
                ));
            }
        }
    }
}

/// SIGKILLs one component (one round in five: two), keeps it down, restarts it.
async fn kill_round(
    stack: &Mutex<Stack>,
    components: &[Component],
    rng: &mut StdRng,
    down: Duration,
    chaos: &mut Chaos,
    at_s: f64,
) -> Vec<String> {
    let n = if rng.gen_ratio(1, 5) { 2 } else { 1 };
    let victims: Vec<Component> = components.choose_multiple(rng, n).copied().collect();
    {
        let mut s = stack.lock().await;
        for &c in &victims {
            s.kill(c).await;
            tracing::info!(component = %c, down = ?down, "SIGKILL");
            chaos.kills.push(Kill {
                at_s,
                component: c.to_string(),
                down_ms: u64::try_from(down.as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
    // The downtime is the failure being injected: it is waited out, not a synchronisation.
    tokio::time::sleep(down).await;
    let mut s = stack.lock().await;
    // nats-server first, so the services come back to a server that is there.
    let mut order = victims.clone();
    order.sort();
    for c in order {
        if let Err(err) = s.start(c).await {
            chaos.crashes.push(format!(
                "restarting {c}: {}",
                herald_core::error_chain(&err)
            ));
        }
    }
    victims.iter().map(ToString::to_string).collect()
}
