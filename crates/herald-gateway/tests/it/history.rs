//! `GET /v1/history`: the latest events, oldest first, from the ring or backwards from
//! JetStream, paged with `before`, scoped to the token, and a cursor a stream continues from
//! with no gap and no repeat.

use herald_core::cursor::Cursor;
use herald_core::streams::StreamSettings;
use serde_json::{Value, json};

use herald_test_support::wait;

use crate::helpers::{DEADLINE, TestApp, duplicates, test_config};
use crate::scenario::{acme_token, get_with, poll_json, with_ring};

/// `GET /v1/history?<query>` with `token`: the status and the JSON body.
async fn history(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let resp = get_with(app, &format!("/v1/history?{query}"), token).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The event schema from proto/.
fn event_schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto/event.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// The sequence of a cursor string.
fn seq(cursor: &Value) -> u64 {
    cursor.as_str().unwrap().parse::<Cursor>().unwrap().seq
}

/// The sequences of a page's events, checking each event's tenant and topic.
fn page_seqs(body: &Value, topics: &[&str]) -> Vec<u64> {
    let events = body["events"].as_array().unwrap();
    events
        .iter()
        .map(|item| {
            let e = &item["event"];
            assert_eq!(e["tenant"], "acme", "only the token's tenant: {e}");
            assert!(topics.contains(&e["topic"].as_str().unwrap()), "{e}");
            assert_eq!(item["topic"], e["topic"]);
            seq(&item["cursor"])
        })
        .collect()
}

/// Publishes `n` rounds of acme `leads`, acme `deals` and other-tenant `leads` events, then
/// waits until the gateway has seen them all; returns the acme `leads` sequences and the last
/// sequence of the stream.
async fn publish_mixed(app: &TestApp, n: usize) -> (Vec<u64>, u64) {
    let mut leads = Vec::new();
    for i in 0..n {
        leads.push(app.publish("acme", "leads", json!({"i": i})).await);
        app.publish("acme", "deals", json!({"i": i})).await;
        app.publish("other", "leads", json!({"i": i})).await;
    }
    let last = app.publish("other", "deals", json!({})).await;
    seen(app, last).await;
    (leads, last)
}

/// Waits until the gateway's position (a history page's `cursor`) reaches `seq`.
async fn seen(app: &TestApp, seq: u64) {
    wait::until("the gateway to see every event", DEADLINE, || async {
        let (_, body) = history(app, &acme_token(), "topics=none").await;
        body["cursor"]
            .as_str()
            .is_some_and(|c| c.parse::<Cursor>().unwrap().seq >= seq)
    })
    .await;
}

/// Pages back through `topics` with `limit` until `more` is false; every page's events in
/// stream order.
async fn page_back(app: &TestApp, topics: &str, limit: usize) -> Vec<u64> {
    let token = acme_token();
    let (status, mut body) = history(app, &token, &format!("topics={topics}&limit={limit}")).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = topics.split(',').collect();
    let mut all = page_seqs(&body, &names);
    while body["more"] == true {
        let oldest = body["events"][0]["cursor"].as_str().unwrap().to_owned();
        let query = format!("topics={topics}&limit={limit}&before={oldest}");
        let (status, next) = history(app, &token, &query).await;
        assert_eq!(status, 200, "{next}");
        assert_eq!(seq(&next["cursor"]), seq(&json!(oldest)) - 1, "{next}");
        let mut older = page_seqs(&next, &names);
        assert!(older.len() <= limit);
        older.append(&mut all);
        all = older;
        body = next;
    }
    all
}

#[tokio::test]
async fn latest_events_oldest_first_with_the_stream_position() {
    let app = TestApp::spawn().await;
    let (leads, last) = publish_mixed(&app, 10).await;
    let token = acme_token();
    let (status, body) = history(&app, &token, "topics=leads&limit=4").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_seqs(&body, &["leads"]), leads[6..].to_vec());
    assert_eq!(body["more"], true);
    assert_eq!(
        seq(&body["cursor"]),
        last,
        "the stream's position, not the page's"
    );
    let event = &body["events"][3]["event"];
    assert_eq!(event["data"]["i"], 9);
    // Each event is the envelope as stored and streamed: proto/event.schema.json, untouched.
    let schema = event_schema();
    for item in body["events"].as_array().unwrap() {
        assert!(schema.is_valid(&item["event"]), "{item}");
    }

    let (_, all) = history(&app, &token, "topics=leads").await;
    assert_eq!(page_seqs(&all, &["leads"]), leads, "limit 50 by default");
    assert_eq!(all["more"], false);

    let (_, both) = history(&app, &token, "topics=leads,deals&limit=3").await;
    assert_eq!(page_seqs(&both, &["leads", "deals"]).len(), 3);

    // A topic with no events: no events, and still the stream's position.
    let (_, empty) = history(&app, &token, "topics=nothing").await;
    assert_eq!(
        (empty["events"].as_array().unwrap().len(), &empty["more"]),
        (0, &json!(false))
    );
    assert_eq!(seq(&empty["cursor"]), last);
}

#[tokio::test]
async fn paging_back_from_the_ring_yields_every_event_once() {
    let app = TestApp::spawn().await;
    let (leads, _) = publish_mixed(&app, 23).await;
    let read_before = app.metric("herald_gateway_replay_messages_total").await;
    let all = page_back(&app, "leads", 5).await;
    assert_eq!(all, leads, "every event, in order");
    assert!(duplicates(&all).is_empty());
    assert_eq!(
        app.metric("herald_gateway_replay_messages_total").await,
        read_before,
        "the ring held them all: JetStream was not read"
    );
}

#[tokio::test]
async fn paging_back_past_the_ring_reads_jetstream() {
    let app = with_ring(4).await;
    let (leads, _) = publish_mixed(&app, 23).await;
    let all = page_back(&app, "leads", 5).await;
    assert_eq!(all, leads, "every event, in order");
    assert!(duplicates(&all).is_empty());
    let read = app.metric("herald_gateway_replay_messages_total").await;
    assert!(
        read >= leads.len() as f64 - 4.0,
        "read from JetStream: {read}"
    );
    assert!(
        read <= 3.0 * leads.len() as f64,
        "only the topic's events, each window once: {read}"
    );
    let both = page_back(&app, "leads,deals", 7).await;
    assert_eq!(both.len(), 2 * leads.len());
}

#[tokio::test]
async fn after_a_restart_history_comes_from_jetstream() {
    let mut app = TestApp::spawn().await;
    let (leads, last) = publish_mixed(&app, 12).await;
    app.restart_gateway().await;
    let (status, body) = history(&app, &acme_token(), "topics=leads&limit=10").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_seqs(&body, &["leads"]), leads[2..].to_vec());
    assert_eq!((seq(&body["cursor"]), &body["more"]), (last, &json!(true)));
    assert!(app.metric("herald_gateway_replay_messages_total").await >= 10.0);
    assert_eq!(page_back(&app, "leads", 4).await, leads);
}

#[tokio::test]
async fn history_is_scoped_to_the_token() {
    let app = TestApp::spawn().await;
    let (leads, _) = publish_mixed(&app, 3).await;
    let only_leads = TestApp::token("acme", &["leads"], 60);
    let (status, body) = history(&app, &only_leads, "topics=deals").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("topic_forbidden"))
    );
    let (status, body) = history(&app, &only_leads, "topics=*").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("topic_forbidden"))
    );
    // No topics: every topic the token grants.
    let (status, body) = history(&app, &only_leads, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(page_seqs(&body, &["leads"]), leads);
    // The other tenant's token sees its own events only.
    let other = TestApp::token("other", &["*"], 60);
    let (_, body) = history(&app, &other, "").await;
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "3 leads, 1 deals: {body}");
    assert!(events.iter().all(|e| e["event"]["tenant"] == "other"));
    let resp = app.http.get(app.url("/v1/history")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn bad_parameters_are_400() {
    let app = TestApp::spawn().await;
    publish_mixed(&app, 1).await;
    let token = acme_token();
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "before=nope",
        "before=12",
        "topics=a.b",
        "topics=le*",
        "topics=%3E",
        "topics=leads,$stats",
        "topics=a%20b",
    ] {
        let (status, body) = history(&app, &token, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{query}");
    }
    let (status, _) = history(&app, &token, "limit=500").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cursors_that_cannot_be_paged_back_from_are_refused_like_a_reset() {
    let settings = StreamSettings {
        max_msgs: 5,
        ..StreamSettings::default()
    };
    let mut cfg = test_config();
    cfg.ring_events = 2;
    let app = TestApp::spawn_with(cfg, settings).await;
    let mut last = 0;
    for i in 0..12 {
        last = app.publish("acme", "leads", json!({"i": i})).await;
    }
    seen(&app, app.publish("acme", "deals", json!({})).await).await;
    let epoch = app.epoch().await;
    let token = acme_token();
    let at = |seq: u64| format!("topics=leads&before={seq}-{epoch}");

    let (status, body) = history(&app, &token, &at(3)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (410, &json!("out_of_retention"))
    );
    let (status, body) = history(&app, &token, &at(1_000)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("cursor_ahead"))
    );
    let other_epoch = format!("topics=leads&before={last}-{:08x}", epoch.0 ^ 1);
    let (status, body) = history(&app, &token, &other_epoch).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("epoch_mismatch"))
    );

    // Within retention: what is left, and nothing more.
    let (status, body) = history(&app, &token, "topics=leads").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        page_seqs(&body, &["leads"]),
        (last - 3..=last).collect::<Vec<_>>()
    );
    assert_eq!(body["more"], false);
}

#[tokio::test]
async fn history_then_stream_from_its_cursor_misses_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    let token = acme_token();
    let mut published = Vec::new();
    for i in 0..20 {
        published.push(app.publish("acme", "leads", json!({"i": i})).await);
    }
    // More events arrive while the history is read and the stream opens.
    let js = app.nats.jetstream().await;
    let writer = tokio::spawn(async move {
        let mut seqs = Vec::new();
        for i in 20..60 {
            seqs.push(crate::helpers::publish(&js, "acme", "leads", json!({"i": i})).await);
            tokio::task::yield_now().await;
        }
        seqs
    });
    let (status, body) = history(&app, &token, "topics=leads&limit=500").await;
    assert_eq!(status, 200, "{body}");
    let cursor = body["cursor"].as_str().unwrap().to_owned();
    let mut got = page_seqs(&body, &["leads"]);
    // A long-poll from the same cursor starts right after the page too.
    // (Events carry their publication index `i`, and the page holds the first `got.len()`.)
    let wait = if got.len() < 60 { 5 } else { 0 };
    let query = format!("topics=leads&wait={wait}&since={cursor}");
    let polled = poll_json(&app, &token, &query).await;
    let next = polled["events"]
        .as_array()
        .unwrap()
        .first()
        .map(|e| e["data"]["i"].clone());
    assert_eq!(next, (got.len() < 60).then(|| json!(got.len())), "{polled}");
    let mut sse = app.sse(&token, "topics=leads", Some(&cursor)).await;
    published.extend(writer.await.unwrap());
    let last = *published.last().unwrap();
    while got.last() != Some(&last) {
        got.push(sse.event().await.unwrap().seq());
    }
    assert!(duplicates(&got).is_empty(), "nothing twice: {got:?}");
    assert_eq!(got, published, "every event, in order");
}

/// A small deterministic generator (no seed file to keep): xorshift64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn random_pages_over_random_rings_match_a_reference() {
    let mut app = TestApp::spawn().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let topics = ["a", "b", "c"];
    // The reference: every acme event's (sequence, topic), in stream order.
    let mut reference: Vec<(u64, &str)> = Vec::new();
    for _ in 0..150 {
        let topic = topics[rng.below(3) as usize];
        let tenant = if rng.below(4) == 0 { "other" } else { "acme" };
        let seq = app.publish(tenant, topic, json!({})).await;
        if tenant == "acme" {
            reference.push((seq, topic));
        }
    }
    let last = app.publish("other", "a", json!({})).await;
    for ring in [1, 7, 40, 10_000] {
        app.cfg.ring_events = ring;
        app.restart_gateway().await;
        // Only part of the history is in this gateway's ring: publish a few more it sees live.
        for _ in 0..rng.below(10) {
            let topic = topics[rng.below(3) as usize];
            reference.push((app.publish("acme", topic, json!({})).await, topic));
        }
        seen(&app, reference.last().map_or(last, |r| r.0).max(last)).await;
        for _ in 0..3 {
            let chosen: Vec<&str> = topics
                .iter()
                .copied()
                .filter(|_| rng.below(2) == 0)
                .collect();
            let chosen = if chosen.is_empty() { vec!["b"] } else { chosen };
            let limit = 1 + rng.below(30) as usize;
            let want: Vec<u64> = reference
                .iter()
                .filter(|(_, t)| chosen.contains(t))
                .map(|(s, _)| *s)
                .collect();
            let got = page_back(&app, &chosen.join(","), limit).await;
            assert_eq!(got, want, "ring {ring}, topics {chosen:?}, limit {limit}");
        }
    }
}
