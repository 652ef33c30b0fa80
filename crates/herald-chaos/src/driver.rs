//! The chaos driver: at seeded random moments it SIGKILLs one component — sometimes two
//! at once — keeps it down for a seeded random while, and starts it again. It also notices
//! a component that died without being killed (a crash is a finding, not chaos).

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng, SeedableRng};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stack::{Component, Stack};

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
    /// Components found dead without having been killed, and restarts that failed.
    pub crashes: Vec<String>,
}

/// Timing of the chaos.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Shortest and longest pause between two rounds of kills.
    pub every: (Duration, Duration),
    /// Shortest and longest downtime.
    pub down: (Duration, Duration),
}

fn between(rng: &mut StdRng, (lo, hi): (Duration, Duration)) -> Duration {
    if hi <= lo {
        return lo;
    }
    rng.gen_range(lo..hi)
}

/// Kills and restarts components until `stop` fires; leaves every component running.
pub async fn run(
    stack: Arc<Mutex<Stack>>,
    seed: u64,
    timing: Timing,
    stop: CancellationToken,
) -> Chaos {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut chaos = Chaos::default();
    let began = Instant::now();
    let components = Component::all();
    loop {
        let pause = between(&mut rng, timing.every);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
        {
            let mut s = stack.lock().await;
            for &c in &components {
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
        // One victim usually; one round in five takes down two at once.
        let n = if rng.gen_ratio(1, 5) { 2 } else { 1 };
        let victims: Vec<Component> = components.choose_multiple(&mut rng, n).copied().collect();
        let down = between(&mut rng, timing.down);
        {
            let mut s = stack.lock().await;
            for &c in &victims {
                s.kill(c).await;
                tracing::info!(component = %c, down = ?down, "SIGKILL");
                chaos.kills.push(Kill {
                    at_s: (began.elapsed().as_secs_f64() * 10.0).round() / 10.0,
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
    }
    chaos
}
