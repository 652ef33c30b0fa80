//! One chaos run from start to verdict, and its JSON report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use herald_core::cursor::Cursor;
use herald_core::nats::NatsConfig;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::check::{self, ClientVerdict, NotificationVerdict, Violation};
use crate::client::{self, SharedLog};
use crate::driver::{self, Chaos, Timing};
use crate::error::Error;
use crate::facts::{self, Events};
use crate::plan::{self, ClientSpec, Settings, TENANTS, TOPICS};
use crate::producer::{self, Tally};
use crate::stack::{Component, Components as _, Stack};

mod settle;
use settle::{read_events, settle};

/// The outcome of a run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// No violation.
    pub ok: bool,
    /// The seed: `--seed <it>` replays the same kill schedule and load.
    pub seed: u64,
    /// How long the soak (load + chaos) lasted, in seconds.
    pub soak_s: f64,
    /// How long the system took to settle afterwards, in seconds.
    pub settle_s: f64,
    /// Where the config and every process's log are (kept when the run fails).
    pub run_dir: String,
    /// Kills per component.
    pub kills_by_component: BTreeMap<String, usize>,
    /// Faults injected per kind (kill, freeze, delay, drop, half-open, blackhole, store-full).
    pub faults_by_kind: BTreeMap<&'static str, usize>,
    /// Per promise: how many cases were checked and how many violations were found.
    pub promises: BTreeMap<&'static str, PromiseCount>,
    /// What the timed promises measured.
    pub timed: check::bounds::Timed,
    /// What the driver did and saw.
    pub chaos: Chaos,
    /// What the producer sent.
    pub webhooks: Tally,
    /// Events in `HERALD_EVENTS` at the end.
    pub stream_events: usize,
    /// Per client.
    pub clients: BTreeMap<String, ClientVerdict>,
    /// Events delivered to clients, over all clients.
    pub client_events_checked: usize,
    /// Stats documents compared with a recount.
    pub stats_documents_checked: usize,
    /// Notifications.
    pub notifications: NotificationVerdict,
    /// Every broken promise (at most ten examples per kind).
    pub violations: Vec<Violation>,
}

/// One promise's tally.
#[derive(Debug, Default, serde::Serialize)]
pub struct PromiseCount {
    /// Cases checked (webhooks, client events, documents, notifications, answers, pairs).
    pub checked: u64,
    /// Violations found (before condensing).
    pub violations: usize,
}

/// The promise a violation kind belongs to.
fn promise_of(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("webhook_answer") || k.starts_with("webhook_503") => {
            "webhook_answered_in_time"
        }
        k if k.starts_with("webhook") || k == "phantom_event" => "webhook_stored_once",
        "client_not_told_degraded" => "degraded_within_2s",
        "client_not_told_live" => "live_within_5s",
        k if k.starts_with("client") => "client_complete_in_order",
        k if k.starts_with("stats") => "stats_equal_recount",
        k if k.starts_with("notification") => "notification_once_or_dlq",
        _ => "components_only_die_when_killed",
    }
}

/// Runs a whole soak and checks it: launch → soak → settle → check → report.
pub async fn run(settings: &Settings) -> Result<Report, Error> {
    let dir = tempfile::Builder::new()
        .prefix("herald-chaos-")
        .tempdir()
        .map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let mut run = Run::launch(settings, dir.path()).await?;
    let soaked = run.soak(settings).await;
    tracing::info!(
        soak_s = soaked.soak_s,
        kills = soaked.chaos.kills.len(),
        "soak over; settling"
    );

    let settle_began = Instant::now();
    let mut violations = run.restart_all().await?;
    let events = read_events(&run.js, settings.settle).await?;
    let settled = settle(&run.js, &events, &run.clients, settings.settle).await;
    if !settled {
        tracing::warn!("the system did not settle within {:?}", settings.settle);
    }
    let settle_s = settle_began.elapsed().as_secs_f64();
    run.stop_clients().await;

    let Soaked {
        chaos,
        ledger,
        answers,
        soak_s,
    } = soaked;
    let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner()).clone();
    violations.extend(check::webhooks(&ledger, &events.events));
    let (clients, client_events_checked) = check_clients(&run.clients, &events, &mut violations);
    let stats_documents_checked = check_stats(&run.js, &events, &mut violations).await?;
    let notifications = run
        .check_notifications(&events, &chaos, &mut violations)
        .await?;
    for crash in &chaos.crashes {
        violations.push(Violation {
            kind: "component_crashed",
            detail: crash.clone(),
        });
    }
    let timed = timed_checks(&answers, &chaos, &run.clients, &mut violations);
    let checked = Checked {
        webhooks: ledger.len(),
        client_events: client_events_checked,
        stats_documents: stats_documents_checked,
    };
    let promises = promises(&checked, &notifications, &timed, &violations);
    let violations = check::condense(violations);
    let ok = violations.is_empty();
    let run_dir = if ok && !settings.keep {
        "(removed)".to_owned()
    } else {
        dir.keep().display().to_string()
    };
    run.shutdown().await;
    Ok(Report {
        ok,
        seed: settings.seed,
        soak_s: round(soak_s),
        settle_s: round(settle_s),
        run_dir,
        kills_by_component: kills_by_component(&chaos),
        faults_by_kind: chaos.faults_by_kind.clone(),
        promises,
        timed,
        chaos,
        webhooks: producer::tally(&ledger),
        stream_events: events.events.len(),
        clients,
        client_events_checked,
        stats_documents_checked,
        notifications,
        violations,
    })
}

/// A launched stack with its clients connected.
struct Run {
    stack: Arc<tokio::sync::Mutex<Stack>>,
    js: jetstream::Context,
    ingest: String,
    clients: Vec<(ClientSpec, SharedLog)>,
    client_tasks: tokio::task::JoinSet<()>,
    stop_clients: CancellationToken,
}

/// What the soak left: the driver's record, the producer's ledger and slow answers.
struct Soaked {
    chaos: Chaos,
    ledger: producer::Ledger,
    answers: producer::Answers,
    soak_s: f64,
}

impl Run {
    /// Launches the stack in `dir`, connects to its NATS and starts every planned client.
    async fn launch(settings: &Settings, dir: &std::path::Path) -> Result<Self, Error> {
        let stack = Stack::launch(&settings.bin_dir, dir, crate::stack::DEFAULT_LOG_FILTER).await?;
        let nats_cfg = NatsConfig {
            request_timeout: Duration::from_secs(5),
            ..stack.nats_config()
        };
        let nats = herald_core::nats::connect(&nats_cfg, "herald-chaos")
            .await
            .map_err(|e| Error::nats("a connection", e))?;
        let js = herald_core::nats::jetstream(nats, &nats_cfg);
        let epoch = facts::epoch(&js).await?;
        let gateways = stack.gateway_urls();
        let ingest = stack.ingest_url();
        let stack = Arc::new(tokio::sync::Mutex::new(stack));

        let stop_clients = CancellationToken::new();
        let mut clients: Vec<(ClientSpec, SharedLog)> = Vec::new();
        let mut client_tasks = tokio::task::JoinSet::new();
        for (i, spec) in plan::clients().into_iter().enumerate() {
            let log = SharedLog::default();
            let token = client::token(&spec)?;
            client_tasks.spawn(client::run(
                spec.clone(),
                i,
                gateways.clone(),
                token,
                Cursor::new(0, epoch),
                log.clone(),
                stop_clients.clone(),
            ));
            clients.push((spec, log));
        }
        Ok(Self {
            stack,
            js,
            ingest,
            clients,
            client_tasks,
            stop_clients,
        })
    }

    /// The soak itself: load and chaos run for `settings.duration`.
    async fn soak(&self, settings: &Settings) -> Soaked {
        let began = Instant::now();
        let stop_load = CancellationToken::new();
        let answers = producer::Answers::default();
        let load = tokio::spawn(producer::run(
            self.ingest.clone(),
            settings.rate,
            settings.producers,
            settings.seed,
            answers.clone(),
            stop_load.clone(),
        ));
        let stop_chaos = CancellationToken::new();
        let timing = Timing {
            every: settings.kill_every,
            down: settings.downtime,
            pause: settings.pause,
            kinds: settings.faults.clone(),
        };
        let chaos = tokio::spawn(driver::run(
            self.stack.clone(),
            self.js.clone(),
            settings.seed,
            timing,
            stop_chaos.clone(),
        ));
        tokio::time::sleep(settings.duration).await;
        stop_chaos.cancel();
        stop_load.cancel();
        let chaos = chaos.await.unwrap_or_default();
        let ledger = load.await.unwrap_or_default();
        Soaked {
            chaos,
            ledger,
            answers,
            soak_s: began.elapsed().as_secs_f64(),
        }
    }

    /// Starts every component the soak left down and waits until all are ready; one that
    /// is not is a violation.
    async fn restart_all(&self) -> Result<Vec<Violation>, Error> {
        let mut violations = Vec::new();
        let mut s = self.stack.lock().await;
        for c in Component::all() {
            if !s.is_running(c) {
                s.start(c).await?;
            }
        }
        for c in Component::all() {
            if let Err(err) = s.wait_ready(c).await {
                violations.push(Violation {
                    kind: "not_ready_after_chaos",
                    detail: herald_core::error_chain(&err),
                });
            }
        }
        Ok(violations)
    }

    /// Stops the clients and waits for them.
    async fn stop_clients(&mut self) {
        self.stop_clients.cancel();
        while self.client_tasks.join_next().await.is_some() {}
    }

    /// Checks what the fake Telegram and Slack accepted and what was dead-lettered.
    async fn check_notifications(
        &self,
        events: &Events,
        chaos: &Chaos,
        violations: &mut Vec<Violation>,
    ) -> Result<NotificationVerdict, Error> {
        let s = self.stack.lock().await;
        let accepted: Vec<(String, String)> = s
            .fakes
            .telegram
            .accepted()
            .into_iter()
            .chain(s.fakes.slack.accepted())
            .map(|r| (r.target, r.text))
            .collect();
        let dead = facts::dead_letters(&self.js).await?;
        // A notifier killed, frozen or cut off from NATS may have sent a message whose ack
        // never reached NATS: each such fault opens one crash window.
        let notifier_kills = chaos
            .faults
            .iter()
            .filter(|f| f.component == Component::Notifier.to_string() && f.kind != "delay")
            .count();
        let (verdict, vs) = check::notifications(&events.events, &accepted, &dead, notifier_kills);
        violations.extend(vs);
        Ok(verdict)
    }

    /// Shuts the stack down (when the driver let go of it).
    async fn shutdown(self) {
        let stack = Arc::try_unwrap(self.stack)
            .ok()
            .map(tokio::sync::Mutex::into_inner);
        if let Some(stack) = stack {
            stack.shutdown().await;
        }
    }
}

/// Each client's verdict, and the events delivered over all clients.
fn check_clients(
    clients: &[(ClientSpec, SharedLog)],
    events: &Events,
    violations: &mut Vec<Violation>,
) -> (BTreeMap<String, ClientVerdict>, usize) {
    let mut verdicts = BTreeMap::new();
    let mut checked = 0;
    for (spec, log) in clients {
        let log = client::lock(log);
        let (verdict, vs) = check::client(spec, &log, &events.events, events.epoch);
        checked += verdict.received;
        verdicts.insert(spec.name.clone(), verdict);
        violations.extend(vs);
    }
    (verdicts, checked)
}

/// Compares every stats document with a recount; returns how many documents there were.
async fn check_stats(
    js: &jetstream::Context,
    events: &Events,
    violations: &mut Vec<Violation>,
) -> Result<usize, Error> {
    let mut checked = 0;
    for tenant in TENANTS {
        for topic in TOPICS {
            let doc = facts::stats_doc(js, tenant, topic).await?;
            let recount = check::recount(&events.events, tenant, topic);
            checked += usize::from(doc.is_some());
            violations.extend(check::stats(tenant, topic, doc.as_ref(), &recount));
        }
    }
    Ok(checked)
}

/// How many cases of the untimed promises were checked.
struct Checked {
    webhooks: usize,
    client_events: usize,
    stats_documents: usize,
}

/// Per promise: the cases checked, and the violations found (before condensing).
fn promises(
    checked: &Checked,
    notifications: &NotificationVerdict,
    timed: &check::bounds::Timed,
    violations: &[Violation],
) -> BTreeMap<&'static str, PromiseCount> {
    let mut promises: BTreeMap<&'static str, PromiseCount> = BTreeMap::new();
    for (p, n) in [
        ("webhook_stored_once", checked.webhooks as u64),
        ("client_complete_in_order", checked.client_events as u64),
        ("stats_equal_recount", checked.stats_documents as u64),
        ("notification_once_or_dlq", notifications.expected as u64),
        (
            "components_only_die_when_killed",
            Component::all().len() as u64,
        ),
        ("webhook_answered_in_time", timed.webhook_answers_checked),
        ("degraded_within_2s", timed.degraded_checked as u64),
        ("live_within_5s", timed.live_checked as u64),
    ] {
        promises.entry(p).or_default().checked = n;
    }
    for v in violations {
        promises.entry(promise_of(v.kind)).or_default().violations += 1;
    }
    promises
}

fn kills_by_component(chaos: &Chaos) -> BTreeMap<String, usize> {
    let mut kills = BTreeMap::new();
    for k in &chaos.kills {
        *kills.entry(k.component.clone()).or_default() += 1;
    }
    kills
}

/// The timed promises: webhook answers, `degraded` and `live` after NATS went silent.
fn timed_checks(
    answers: &producer::Answers,
    chaos: &Chaos,
    clients: &[(ClientSpec, SharedLog)],
    violations: &mut Vec<Violation>,
) -> check::bounds::Timed {
    let mut timed = check::bounds::Timed::default();
    let answer_log = answers.lock().unwrap_or_else(|p| p.into_inner()).clone();
    violations.extend(check::bounds::webhook_answers(
        &answer_log,
        &chaos.faults,
        &mut timed,
    ));
    {
        let logs: Vec<_> = clients
            .iter()
            .map(|(s, l)| (s.name.clone(), client::lock(l)))
            .collect();
        let refs: Vec<(String, &client::ClientLog)> =
            logs.iter().map(|(n, g)| (n.clone(), &**g)).collect();
        violations.extend(check::bounds::degraded_then_live(
            &refs,
            &chaos.faults,
            &mut timed,
        ));
    }
    timed
}

fn round(s: f64) -> f64 {
    (s * 10.0).round() / 10.0
}
