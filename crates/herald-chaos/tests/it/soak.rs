//! A short soak: the whole harness end to end, with kills of every kind of component.

use std::time::Duration;

use herald_chaos::Settings;

use crate::helpers;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_kills_passes_every_check() {
    let settings = Settings {
        duration: Duration::from_secs(20),
        seed: 7,
        rate: 30,
        producers: 2,
        kill_every: (Duration::from_millis(800), Duration::from_secs(2)),
        downtime: (Duration::from_millis(200), Duration::from_millis(1500)),
        settle: Duration::from_secs(90),
        bin_dir: helpers::service_binaries(),
        keep: false,
        faults: herald_chaos::faults::FaultKind::ALL.to_vec(),
        pause: (Duration::from_millis(100), Duration::from_millis(2500)),
    };
    let report = herald_chaos::run(&settings).await.expect("the soak runs");
    let json = serde_json::to_string_pretty(&report).expect("a report");
    assert!(report.ok, "violations:\n{json}");
    assert!(
        report.chaos.faults.len() >= 5 && report.faults_by_kind.len() >= 5,
        "the driver injected faults of most kinds: {json}"
    );
    assert!(
        !report.chaos.kills.is_empty(),
        "the driver killed things: {json}"
    );
    assert!(report.webhooks.acknowledged > 100, "{json}");
    assert_eq!(report.stream_events, report.webhooks.acknowledged, "{json}");
    for (name, c) in &report.clients {
        assert!(c.received > 0 && c.received == c.expected, "{name}: {json}");
    }
    assert!(report.notifications.sent > 0, "{json}");
    assert!(report.notifications.dead_lettered > 0, "{json}");
    assert_eq!(report.stats_documents_checked, 4, "{json}");
}
