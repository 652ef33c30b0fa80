//! 1,000 events to 20 chats: all delivered, none twice, no rate-limit violation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use herald_test_support::fake::Received;
use herald_test_support::wait;
use serde_json::json;

use crate::helpers::{TestApp, lead};

const CHATS: i64 = 20;

fn rules() -> String {
    let mut s = String::new();
    for c in 1..=CHATS {
        s.push_str(&format!(
            "[targets.chat{c}]\nkind = \"telegram\"\nchat_id = -{c}\nmarkup = \"plain\"\n\n\
             [[rules]]\nname = \"to{c}\"\nwhen = [{{ field = \"data.chat\", eq = {c} }}]\n\
             targets = [\"chat{c}\"]\ntemplate = \"e{{{{ data.n }}}}\"\n\n"
        ));
    }
    s
}

/// Every `e<n>` marker in the accepted messages (a digest carries several), counted.
fn delivered(received: &[Received]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for r in received {
        for n in r
            .text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('e')?.parse().ok())
        {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

/// Publishes `n` events spread over the chats, pipelining the publishes.
async fn publish_all(app: &TestApp, n: u64) {
    let mut acks = Vec::new();
    for i in 0..n {
        let e = lead("insert", json!({"n": i, "chat": (i as i64 % CHATS) + 1}));
        acks.push(herald_core::publish::send_event(&app.js, &e).await.unwrap());
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

async fn wait_all(app: &TestApp, n: u64, deadline: Duration) -> BTreeMap<u64, usize> {
    let what = format!("all {n} events delivered");
    wait::until_ok(&what, deadline, || {
        let seen = delivered(&app.tg.accepted());
        std::future::ready(if seen.len() as u64 >= n {
            Ok(seen)
        } else {
            Err(format!("only {} of {n} delivered", seen.len()))
        })
    })
    .await
}

#[tokio::test]
async fn a_thousand_events_to_twenty_chats_respect_every_limit() {
    let app = TestApp::spawn(&rules()).await;
    // Telegram's limits: 1/s per chat (20/min per group), 30/s per bot, checked on arrival.
    app.tg.enforce_min_interval(Duration::from_secs(1));
    let start = Instant::now();
    publish_all(&app, 1000).await;
    let seen = wait_all(&app, 1000, Duration::from_secs(60)).await;
    let took = start.elapsed();
    let messages = app.tg.accepted().len();
    assert!(
        seen.values().all(|&c| c == 1),
        "an event was delivered twice"
    );
    assert_eq!(seen.len(), 1000);
    assert!(
        app.tg.violations().is_empty(),
        "rate exceeded: {:?}",
        app.tg.violations()
    );
    // Per-minute group limit: at most 20 messages per chat in the run (well under a minute).
    let mut per_chat = BTreeMap::new();
    for r in app.tg.accepted() {
        *per_chat.entry(r.target).or_insert(0) += 1;
    }
    assert!(per_chat.values().all(|&n| n <= 20), "{per_chat:?}");
    assert!(
        messages < 1000,
        "a rate-limited backlog goes out as digests"
    );
    app.wait_metric("herald_notifier_digests_total{kind=\"telegram\"}", 1)
        .await;
    eprintln!(
        "1000 events to {CHATS} chats: {messages} messages (digests) in {took:?}: {:.0} events/s, {:.1} messages/s",
        1000.0 / took.as_secs_f64(),
        messages as f64 / took.as_secs_f64()
    );
}

#[tokio::test]
async fn throughput_with_the_limits_lifted() {
    let app = TestApp::spawn_with(&rules(), |cfg| {
        cfg.digest.enabled = false;
        cfg.rate.telegram_chat_per_sec = 10_000;
        cfg.rate.telegram_group_per_min = 1_000_000;
        cfg.rate.telegram_global_per_sec = 100_000;
    })
    .await;
    let start = Instant::now();
    publish_all(&app, 2000).await;
    let seen = wait_all(&app, 2000, Duration::from_secs(60)).await;
    let took = start.elapsed();
    assert!(
        seen.values().all(|&c| c == 1),
        "an event was delivered twice"
    );
    assert_eq!(
        app.tg.accepted().len(),
        2000,
        "one message per event without digests"
    );
    eprintln!(
        "2000 events, one message each, limits lifted: {took:?}: {:.0} messages/s",
        2000.0 / took.as_secs_f64()
    );
}
