//! The binary: SIGHUP reloads the rules (an invalid file keeps the old ones in force).

use serde_json::json;

use crate::crash::spawn;
use crate::helpers::{DEADLINE, TG_TOKEN, event, lead, metric, publish};
use herald_test_support::process::sighup;
use herald_test_support::wait;

const LEADS: &str = "[targets.a]\nkind = \"telegram\"\nchat_id = 1\nmarkup = \"plain\"\n\
    [[rules]]\nname = \"a\"\ntopic = \"leads\"\ntargets = [\"a\"]\ntemplate = \"lead {{ data.n }}\"\n";
const DEALS: &str = "[targets.b]\nkind = \"telegram\"\nchat_id = 2\nmarkup = \"plain\"\n\
    [[rules]]\nname = \"b\"\ntopic = \"deals\"\ntargets = [\"b\"]\ntemplate = \"deal {{ data.n }}\"\n";

async fn wait_metric(http: &reqwest::Client, url: &str, needle: &str, value: u64) {
    let what = format!("{needle} to reach {value}");
    wait::until(&what, DEADLINE, || async {
        let Ok(resp) = http.get(url).send().await else {
            return false;
        };
        resp.text().await.is_ok_and(|t| metric(&t, needle) >= value)
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_rules_and_keeps_them_when_the_file_is_invalid() {
    let nats = herald_test_support::NatsServer::start().await;
    let tg = herald_test_support::fake::FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("rules.toml");
    std::fs::write(&rules_file, LEADS).unwrap();
    // A free port for the ops endpoints, so the test can read /metrics.
    let port = herald_test_support::net::listener()
        .await
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = \"{}\"\n[notifier]\nlisten = \"127.0.0.1:{port}\"\nrules_file = \"{}\"\n\
             [notifier.telegram]\napi_url = \"{}\"\nbot_token = \"{TG_TOKEN}\"\n",
            nats.url(),
            rules_file.display(),
            tg.url()
        ),
    )
    .unwrap();
    let mut child = spawn(&config);
    let http = reqwest::Client::new();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    wait_metric(&http, &metrics, "herald_notifier_rules ", 1).await;
    let js = nats.jetstream().await;
    wait::until("the notifier to become ready", DEADLINE, || async {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await;
        ok.is_ok_and(|r| r.status().is_success())
    })
    .await;

    std::fs::write(&rules_file, "not = = toml").unwrap();
    sighup(&child);
    wait_metric(
        &http,
        &metrics,
        "herald_notifier_reloads_total{result=\"error\"}",
        1,
    )
    .await;
    publish(&js, &lead("insert", json!({"n": 1}))).await;
    let got = tg.wait_accepted(1, DEADLINE).await;
    assert_eq!(got[0].text, "lead 1", "the old rules stayed in force");

    std::fs::write(&rules_file, DEALS).unwrap();
    sighup(&child);
    wait_metric(
        &http,
        &metrics,
        "herald_notifier_reloads_total{result=\"ok\"}",
        1,
    )
    .await;
    publish(&js, &event("acme", "deals", "insert", json!({"n": 2}))).await;
    let got = tg.wait_accepted(2, DEADLINE).await;
    assert_eq!(
        (got[1].target.as_str(), got[1].text.as_str()),
        ("2", "deal 2")
    );
    child.kill().await;
}
