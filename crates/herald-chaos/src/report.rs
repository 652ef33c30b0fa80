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

/// How often convergence is re-checked while the system settles.
const SETTLE_POLL: Duration = Duration::from_millis(500);

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

/// Runs a whole soak and checks it.
pub async fn run(settings: &Settings) -> Result<Report, Error> {
    let dir = tempfile::Builder::new()
        .prefix("herald-chaos-")
        .tempdir()
        .map_err(|source| Error::Write {
            path: std::env::temp_dir(),
            source,
        })?;
    let stack = Stack::launch(
        &settings.bin_dir,
        dir.path(),
        crate::stack::DEFAULT_LOG_FILTER,
    )
    .await?;
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

    let began = Instant::now();
    let stop_load = CancellationToken::new();
    let answers = producer::Answers::default();
    let load = tokio::spawn(producer::run(
        ingest,
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
        stack.clone(),
        js.clone(),
        settings.seed,
        timing,
        stop_chaos.clone(),
    ));
    // The soak itself: load and chaos run for this long.
    tokio::time::sleep(settings.duration).await;
    stop_chaos.cancel();
    stop_load.cancel();
    let chaos = chaos.await.unwrap_or_default();
    let ledger = load.await.unwrap_or_default();
    let soak_s = began.elapsed().as_secs_f64();
    tracing::info!(soak_s, kills = chaos.kills.len(), "soak over; settling");

    let settle_began = Instant::now();
    let mut violations = Vec::new();
    {
        let mut s = stack.lock().await;
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
    }
    let events = read_events(&js, settings.settle).await?;
    let settled = settle(&js, &events, &clients, settings.settle).await;
    if !settled {
        tracing::warn!("the system did not settle within {:?}", settings.settle);
    }
    let settle_s = settle_began.elapsed().as_secs_f64();
    stop_clients.cancel();
    while client_tasks.join_next().await.is_some() {}

    let ledger = ledger.lock().unwrap_or_else(|p| p.into_inner()).clone();
    violations.extend(check::webhooks(&ledger, &events.events));
    let mut verdicts = BTreeMap::new();
    let mut client_events_checked = 0;
    for (spec, log) in &clients {
        let log = client::lock(log);
        let (verdict, vs) = check::client(spec, &log, &events.events, events.epoch);
        client_events_checked += verdict.received;
        verdicts.insert(spec.name.clone(), verdict);
        violations.extend(vs);
    }
    let mut stats_documents_checked = 0;
    for tenant in TENANTS {
        for topic in TOPICS {
            let doc = facts::stats_doc(&js, tenant, topic).await?;
            let recount = check::recount(&events.events, tenant, topic);
            stats_documents_checked += usize::from(doc.is_some());
            violations.extend(check::stats(tenant, topic, doc.as_ref(), &recount));
        }
    }
    let (notifications, vs) = {
        let s = stack.lock().await;
        let accepted: Vec<(String, String)> = s
            .fakes
            .telegram
            .accepted()
            .into_iter()
            .chain(s.fakes.slack.accepted())
            .map(|r| (r.target, r.text))
            .collect();
        let dead = facts::dead_letters(&js).await?;
        // A notifier killed, frozen or cut off from NATS may have sent a message whose ack
        // never reached NATS: each such fault opens one crash window.
        let notifier_kills = chaos
            .faults
            .iter()
            .filter(|f| f.component == Component::Notifier.to_string() && f.kind != "delay")
            .count();
        check::notifications(&events.events, &accepted, &dead, notifier_kills)
    };
    violations.extend(vs);
    for crash in &chaos.crashes {
        violations.push(Violation {
            kind: "component_crashed",
            detail: crash.clone(),
        });
    }
    let timed = timed_checks(&answers, &chaos, &clients, &mut violations);
    let mut promises: BTreeMap<&'static str, PromiseCount> = BTreeMap::new();
    for (p, n) in [
        ("webhook_stored_once", ledger.len() as u64),
        ("client_complete_in_order", client_events_checked as u64),
        ("stats_equal_recount", stats_documents_checked as u64),
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
    for v in &violations {
        promises.entry(promise_of(v.kind)).or_default().violations += 1;
    }
    let violations = check::condense(violations);
    let mut kills_by_component = BTreeMap::new();
    for k in &chaos.kills {
        *kills_by_component.entry(k.component.clone()).or_default() += 1;
    }
    let ok = violations.is_empty();
    let run_dir = if ok && !settings.keep {
        "(removed)".to_owned()
    } else {
        dir.keep().display().to_string()
    };
    let stack = Arc::try_unwrap(stack)
        .ok()
        .map(tokio::sync::Mutex::into_inner);
    if let Some(stack) = stack {
        stack.shutdown().await;
    }
    Ok(Report {
        ok,
        seed: settings.seed,
        soak_s: round(soak_s),
        settle_s: round(settle_s),
        run_dir,
        kills_by_component,
        faults_by_kind: chaos.faults_by_kind.clone(),
        promises,
        timed,
        chaos,
        webhooks: producer::tally(&ledger),
        stream_events: events.events.len(),
        clients: verdicts,
        client_events_checked,
        stats_documents_checked,
        notifications,
        violations,
    })
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

/// Reads the stream, retrying while NATS comes back from its last restart.
async fn read_events(js: &jetstream::Context, within: Duration) -> Result<Events, Error> {
    let deadline = Instant::now() + within;
    loop {
        match facts::events(js).await {
            Ok(e) => return Ok(e),
            Err(err) if Instant::now() < deadline => {
                tracing::debug!(error = %herald_core::error_chain(&err), "reading the stream; retrying");
                tokio::time::sleep(SETTLE_POLL).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Waits (at most `within`) until every client has caught up, the stats documents equal the
/// recount, and the notifier's consumer has nothing left. Returns whether it got there.
async fn settle(
    js: &jetstream::Context,
    events: &Events,
    clients: &[(ClientSpec, SharedLog)],
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if settled(js, events, clients).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

async fn settled(
    js: &jetstream::Context,
    events: &Events,
    clients: &[(ClientSpec, SharedLog)],
) -> bool {
    for (spec, log) in clients {
        let want = check::expected_for(spec, &events.events)
            .last()
            .map_or(0, |e| e.seq);
        let have = client::lock(log)
            .received
            .iter()
            .map(|g| g.cursor.seq)
            .max()
            .unwrap_or(0);
        if have < want {
            return false;
        }
    }
    for tenant in TENANTS {
        for topic in TOPICS {
            let recount = check::recount(&events.events, tenant, topic);
            match facts::stats_doc(js, tenant, topic).await {
                Ok(doc) if recount.total == 0 || doc.as_ref() == Some(&recount) => {}
                _ => return false,
            }
        }
    }
    matches!(facts::consumer_backlog(js, "notifier").await, Ok((0, 0)))
}
