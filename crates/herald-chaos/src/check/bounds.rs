//! The promises with a time bound: every webhook answered within `publish_timeout` + 1 s
//! (a 503 carries `Retry-After`); every client told `degraded` within 2 s of its gateway's
//! NATS going silent; every such client told `live` within 5 s of the fault ending.

use std::time::Duration;

use tokio::time::Instant;

use super::{Violation, violation};
use crate::client::ClientLog;
use crate::faults::{Fault, FaultKind};
use crate::plan::GATEWAYS;
use crate::producer::AnswerLog;

/// `publish_timeout` (2 s in a chaos run) + 1 s.
pub const ANSWER_BOUND: Duration = Duration::from_secs(3);
/// The gateway's bound for telling clients `degraded`.
pub const DEGRADED_BOUND: Duration = Duration::from_secs(2);
/// Slack for the harness's own scheduling on a loaded machine (the status frame must have
/// reached the client's task, not only have been sent).
pub const TOLERANCE: Duration = Duration::from_millis(250);
/// The bound for telling clients `live` again once the fault ended.
pub const LIVE_BOUND: Duration = Duration::from_secs(5);

/// What the timed checks measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct Timed {
    /// Answers from ingest (any status) checked against [`ANSWER_BOUND`].
    pub webhook_answers_checked: u64,
    /// 503 answers (each with `Retry-After` unless a violation says otherwise).
    pub webhook_503s: u64,
    /// Slowest answer outside an ingest freeze, in ms.
    pub webhook_answer_max_ms: u64,
    /// (client, silent NATS) pairs checked for `degraded`.
    pub degraded_checked: usize,
    /// Slowest `degraded`, in ms after the fault began.
    pub degraded_max_ms: u64,
    /// (client, fault end) pairs checked for `live`.
    pub live_checked: usize,
    /// Slowest `live`, in ms after the fault ended.
    pub live_max_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Every answer within [`ANSWER_BOUND`] (except while ingest itself was frozen), every 503
/// with `Retry-After`, no other 5xx.
pub fn webhook_answers(log: &AnswerLog, faults: &[Fault], timed: &mut Timed) -> Vec<Violation> {
    let frozen: Vec<(Instant, Instant)> = faults
        .iter()
        .filter(|f| f.kind == FaultKind::Freeze.name() && f.component == "ingest")
        .map(|f| (f.began, f.ended))
        .collect();
    let mut out = Vec::new();
    timed.webhook_answers_checked = log.answered;
    timed.webhook_503s = log.answers.iter().filter(|a| a.status == Some(503)).count() as u64;
    for a in &log.answers {
        let end = a.began + a.took;
        if frozen.iter().any(|&(b, e)| a.began <= e && end >= b) {
            continue;
        }
        timed.webhook_answer_max_ms = timed.webhook_answer_max_ms.max(ms(a.took));
        if a.took > ANSWER_BOUND {
            out.push(violation(
                "webhook_answer_slow",
                format!("{} answered {:?} after {} ms", a.id, a.status, ms(a.took)),
            ));
        }
        match a.status {
            Some(503) if !a.retry_after => {
                out.push(violation("webhook_503_without_retry_after", a.id.clone()))
            }
            Some(s) if s >= 500 && s != 503 => out.push(violation(
                "webhook_answer_not_503",
                format!("{} answered {s}", a.id),
            )),
            _ => {}
        }
    }
    out
}

/// The gateways that lose NATS (silently) in `f`.
fn silenced(f: &Fault) -> Vec<usize> {
    let silent = [FaultKind::Blackhole.name(), FaultKind::HalfOpen.name()];
    if f.kind == FaultKind::Freeze.name() && f.component == "nats-server" {
        (0..GATEWAYS).collect()
    } else if silent.contains(&f.kind) {
        (0..GATEWAYS)
            .filter(|n| f.component == format!("gateway-{n}"))
            .collect()
    } else {
        Vec::new()
    }
}

/// Each client connected to a gateway whose NATS went silent for longer than the bound is
/// told `degraded` within [`DEGRADED_BOUND`] and `live` within [`LIVE_BOUND`] of the end.
pub fn degraded_then_live(
    clients: &[(String, &ClientLog)],
    faults: &[Fault],
    timed: &mut Timed,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let bound = DEGRADED_BOUND + TOLERANCE;
    for f in faults {
        let gws = silenced(f);
        if gws.is_empty() || f.ended - f.began < bound {
            continue;
        }
        for (name, log) in clients {
            let on = log.connections.iter().rev().find(|(t, _)| *t <= f.began);
            let reconnected = log
                .connections
                .iter()
                .any(|(t, _)| *t > f.began && *t <= f.ended + LIVE_BOUND);
            let Some(&(_, gw)) = on else { continue };
            if !gws.contains(&gw) || reconnected {
                continue;
            }
            timed.degraded_checked += 1;
            let degraded = log
                .statuses
                .iter()
                .find(|(t, live)| !live && *t >= f.began && *t <= f.ended);
            match degraded {
                Some((t, _)) if *t - f.began <= bound => {
                    timed.degraded_max_ms = timed.degraded_max_ms.max(ms(*t - f.began));
                }
                other => {
                    out.push(violation(
                        "client_not_told_degraded",
                        format!(
                            "{name} on gateway-{gw}: {} {} at {:.1}s for {} ms; degraded after {:?}",
                            f.kind,
                            f.component,
                            f.at_s,
                            f.down_ms,
                            other.map(|(t, _)| *t - f.began)
                        ),
                    ));
                    continue;
                }
            }
            timed.live_checked += 1;
            let live = log.statuses.iter().find(|(t, live)| *live && *t >= f.ended);
            match live {
                Some((t, _)) if *t - f.ended <= LIVE_BOUND => {
                    timed.live_max_ms = timed.live_max_ms.max(ms(*t - f.ended));
                }
                other => out.push(violation(
                    "client_not_told_live",
                    format!(
                        "{name} on gateway-{gw}: {} {} at {:.1}s; live after {:?}",
                        f.kind,
                        f.component,
                        f.at_s,
                        other.map(|(t, _)| *t - f.ended)
                    ),
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::Answer;

    fn fault(kind: FaultKind, component: &str, began: Instant, lasts: Duration) -> Fault {
        Fault {
            at_s: 0.0,
            kind: kind.name(),
            component: component.to_owned(),
            down_ms: ms(lasts),
            began,
            ended: began + lasts,
        }
    }

    fn answer(id: &str, began: Instant, took: Duration, status: Option<u16>, ra: bool) -> Answer {
        Answer {
            id: id.to_owned(),
            began,
            took,
            status,
            retry_after: ra,
        }
    }

    #[test]
    fn a_hang_a_503_without_retry_after_and_a_500_are_violations() {
        let t0 = Instant::now();
        let log = AnswerLog {
            answered: 4,
            answers: vec![
                answer("evt-1", t0, Duration::from_secs(10), None, false),
                answer("evt-2", t0, Duration::from_millis(2100), Some(503), true),
                answer("evt-3", t0, Duration::from_millis(5), Some(503), false),
                answer("evt-4", t0, Duration::from_millis(5), Some(500), false),
            ],
        };
        let mut timed = Timed::default();
        let kinds: Vec<_> = webhook_answers(&log, &[], &mut timed)
            .into_iter()
            .map(|v| v.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "webhook_answer_slow",
                "webhook_503_without_retry_after",
                "webhook_answer_not_503"
            ]
        );
        assert_eq!(timed.webhook_answer_max_ms, 10_000);
    }

    #[test]
    fn a_slow_answer_while_ingest_itself_was_frozen_is_excused() {
        let t0 = Instant::now();
        let log = AnswerLog {
            answered: 1,
            answers: vec![answer(
                "evt-1",
                t0,
                Duration::from_secs(6),
                Some(202),
                false,
            )],
        };
        let frozen = fault(FaultKind::Freeze, "ingest", t0, Duration::from_secs(5));
        let mut timed = Timed::default();
        assert!(webhook_answers(&log, &[frozen], &mut timed).is_empty());
    }

    fn client_on(gw: usize, at: Instant, statuses: &[(Duration, bool)]) -> ClientLog {
        ClientLog {
            connections: vec![(at, gw)],
            statuses: statuses.iter().map(|&(d, l)| (at + d, l)).collect(),
            ..ClientLog::default()
        }
    }

    #[test]
    fn degraded_too_late_or_never_live_again_are_violations() {
        let t0 = Instant::now();
        let began = t0 + Duration::from_secs(1);
        let nats_frozen = fault(
            FaultKind::Freeze,
            "nats-server",
            began,
            Duration::from_secs(4),
        );
        let s = Duration::from_secs;
        let good = client_on(0, t0, &[(s(2), false), (s(6), true)]);
        let late = client_on(1, t0, &[(s(4), false), (s(6), true)]);
        let stuck = client_on(0, t0, &[(s(2), false)]);
        let clients = [
            ("good".to_owned(), &good),
            ("late".to_owned(), &late),
            ("stuck".to_owned(), &stuck),
        ];
        let mut timed = Timed::default();
        let v = degraded_then_live(&clients, &[nats_frozen], &mut timed);
        let kinds: Vec<_> = v.iter().map(|v| v.kind).collect();
        assert_eq!(
            kinds,
            ["client_not_told_degraded", "client_not_told_live"],
            "{v:?}"
        );
        assert_eq!(timed.degraded_checked, 3);
        assert_eq!(timed.degraded_max_ms, 1000);
        assert_eq!(timed.live_max_ms, 1000);
    }

    #[test]
    fn a_blackholed_gateway_concerns_only_its_own_clients() {
        let t0 = Instant::now();
        let cut = fault(
            FaultKind::Blackhole,
            "gateway-1",
            t0 + Duration::from_secs(1),
            Duration::from_secs(3),
        );
        let elsewhere = client_on(0, t0, &[]);
        let clients = [("elsewhere".to_owned(), &elsewhere)];
        let mut timed = Timed::default();
        assert!(degraded_then_live(&clients, &[cut], &mut timed).is_empty());
        assert_eq!(timed.degraded_checked, 0);
    }
}
