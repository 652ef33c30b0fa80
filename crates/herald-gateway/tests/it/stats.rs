//! `GET /v1/stats` and live `$stats` documents, counted by the real aggregator in-process.

use std::time::Duration;

use herald_core::cursor::Cursor;
use herald_core::nats::NatsConfig;
use herald_core::service::{CommonConfig, ServiceContext};
use herald_test_support::{NatsServer, wait};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{DEADLINE, SseEvent, TestApp};

/// Runs `herald_stats::App` against `nats`, counting `leads` by `data.status`.
async fn start_aggregator(nats: &NatsServer) -> CancellationToken {
    let common = CommonConfig {
        nats: NatsConfig {
            url: nats.url(),
            ..NatsConfig::default()
        },
        ..CommonConfig::default()
    };
    let shutdown = CancellationToken::new();
    let ctx = ServiceContext::connect(&common, "herald-stats-test", shutdown.clone())
        .await
        .unwrap();
    let cfg = herald_stats::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        group_by: vec!["leads.status".parse().unwrap()],
        flush_interval: Duration::from_millis(5),
        ..herald_stats::Config::default()
    };
    let listener = herald_test_support::net::listener().await;
    let app = herald_stats::App::build(cfg, listener, ctx).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    shutdown
}

impl TestApp {
    /// `GET /v1/stats` with an optional `topic`.
    pub async fn stats(&self, token: &str, topic: Option<&str>) -> reqwest::Response {
        let query = topic.map(|t| format!("?topic={t}")).unwrap_or_default();
        self.http
            .get(self.url(&format!("/v1/stats{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /v1/stats")
    }

    /// Waits until `GET /v1/stats?topic=` shows `total`.
    async fn stats_total(&self, token: &str, topic: &str, total: u64) -> Value {
        let what = format!("the aggregator to count {total} {topic} events");
        wait::until_ok(&what, DEADLINE, || async {
            let resp = self.stats(token, Some(topic)).await;
            if resp.status() != 200 {
                return Err(format!("GET /v1/stats answered {}", resp.status()));
            }
            let body: Value = resp.json().await.unwrap();
            if body["doc"]["total"] == total {
                Ok(body)
            } else {
                Err(format!("GET /v1/stats answered {body}"))
            }
        })
        .await
    }
}

/// Reads SSE messages until a `stats` document of `topic` with `total`.
async fn stats_until(sse: &mut crate::helpers::SseClient, topic: &str, total: u64) -> SseEvent {
    loop {
        let msg = sse.next().await.unwrap().expect("the stream stays open");
        if msg.event.as_deref() == Some("stats") {
            let body = msg.json();
            assert_eq!(body["doc"]["topic"], body["topic"]);
            if body["topic"] == topic && body["doc"]["total"] == total {
                return msg;
            }
        }
    }
}

#[tokio::test]
async fn snapshots_are_scoped_to_the_token_and_carry_their_cursor() {
    let app = TestApp::spawn().await;
    let _aggregator = start_aggregator(&app.nats).await.drop_guard();
    let epoch = app.epoch().await;
    let token = TestApp::token("acme", &["leads", "deals"], 3600);
    assert_eq!(
        app.stats(&token, Some("leads")).await.status(),
        404,
        "nothing counted yet"
    );
    app.publish("acme", "leads", json!({"status": "new"})).await;
    let last = app.publish("acme", "leads", json!({"status": "won"})).await;
    app.publish("globex", "leads", json!({"status": "new"}))
        .await;

    let body = app.stats_total(&token, "leads", 2).await;
    assert_eq!(body["topic"], "leads");
    assert_eq!(body["cursor"], Cursor::new(last, epoch).to_string());
    assert_eq!(
        body["doc"]["tenant"], "acme",
        "the tenant comes from the token"
    );
    assert_eq!(
        body["doc"]["group_by"]["status"],
        json!({"new": 1, "won": 1})
    );

    let missing = app.stats(&token, Some("deals")).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "no_stats"
    );
    assert_eq!(app.stats(&token, Some("secret")).await.status(), 403);
    assert_eq!(app.stats(&token, Some("a.b")).await.status(), 400);
    assert_eq!(app.stats("nope", Some("leads")).await.status(), 401);

    let all: Value = app.stats(&token, None).await.json().await.unwrap();
    assert_eq!(all["stats"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["stats"][0]["doc"]["total"], 2);
    // A wildcard token lists what the bucket holds for its tenant only.
    let wildcard = TestApp::token("globex", &["*"], 3600);
    app.stats_total(&wildcard, "leads", 1).await;
    let all: Value = app.stats(&wildcard, None).await.json().await.unwrap();
    let stats = all["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 1, "{all}");
    assert_eq!(stats[0]["doc"]["tenant"], "globex");
}

#[tokio::test]
async fn live_documents_reach_stats_subscribers_of_their_tenant_and_topics_only() {
    let app = TestApp::spawn().await;
    let _aggregator = start_aggregator(&app.nats).await.drop_guard();
    app.publish("acme", "leads", json!({"status": "new"})).await;
    app.stats_total(&TestApp::token("acme", &["*"], 60), "leads", 1)
        .await;

    let acme = TestApp::token("acme", &["*"], 3600);
    // `$stats` alone: current documents first, then each new one; no events.
    let mut stats_only = app.sse(&acme, "topics=$stats", None).await;
    let first = stats_until(&mut stats_only, "leads", 1).await;
    assert!(first.id.is_none(), "a document does not move the cursor");
    // With events too, in one stream.
    let mut both = app.sse(&acme, "topics=leads,$stats", None).await;
    let mut other_tenant = app
        .sse(
            &TestApp::token("globex", &["*"], 3600),
            "topics=leads,$stats",
            None,
        )
        .await;
    let mut other_topic = app
        .sse(
            &TestApp::token("acme", &["deals"], 3600),
            "topics=deals,$stats",
            None,
        )
        .await;
    let mut ws = app.ws(&acme).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["$stats"]}))
        .await;
    let frame = ws.expect("stats").await.unwrap();
    assert_eq!(frame["doc"]["total"], 1);

    let seq = app.publish("acme", "leads", json!({"status": "won"})).await;
    let doc = stats_until(&mut stats_only, "leads", 2).await;
    assert_eq!(doc.json()["doc"]["group_by"]["status"]["won"], 1);
    let (event, _) = loop {
        let msg = both.next().await.unwrap().unwrap();
        if msg.event.is_none() {
            break (msg, ());
        }
    };
    assert_eq!(event.seq(), seq);
    stats_until(&mut both, "leads", 2).await;
    let frame = loop {
        let f = ws.expect("stats").await.unwrap();
        if f["doc"]["total"] == 2 {
            break f;
        }
    };
    assert_eq!(frame["topic"], "leads");

    // The others got none of it: every document above was queued before these marker
    // events, so each one's first message is its marker.
    let markers = [
        app.publish("globex", "leads", json!({})).await,
        app.publish("acme", "deals", json!({})).await,
    ];
    for (sse, marker) in [&mut other_tenant, &mut other_topic]
        .into_iter()
        .zip(markers)
    {
        let msg = sse.next().await.unwrap().unwrap();
        assert_eq!(msg.event, None, "{msg:?}");
        assert_eq!(msg.seq(), marker);
    }
    assert!(app.metric("herald_gateway_stats_documents_total").await >= 2.0);
}

#[tokio::test]
async fn one_watch_per_process_and_poll_includes_documents() {
    let app = TestApp::spawn().await;
    let _aggregator = start_aggregator(&app.nats).await.drop_guard();
    let token = TestApp::token("acme", &["*"], 3600);
    let first = app.publish("acme", "leads", json!({"status": "new"})).await;
    app.stats_total(&token, "leads", 1).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut sse = app.sse(&token, "topics=$stats", None).await;
        stats_until(&mut sse, "leads", 1).await;
        clients.push(sse);
    }
    let js = app.nats.jetstream().await;
    let mut kv_stream = js.get_stream("KV_herald_stats").await.unwrap();
    let consumers = kv_stream.info().await.unwrap().state.consumer_count;
    assert_eq!(consumers, 1, "one KV watch for five subscribers");

    // Poll: a document counted past `since` ends the wait and comes with the answer.
    let epoch = app.epoch().await;
    let since = Cursor::new(first - 1, epoch);
    let body: Value = app
        .poll(&token, &format!("topics=$stats&since={since}&wait=5"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["stats"][0]["doc"]["total"], 1, "{body}");
    assert!(body["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn nats_away_is_503_and_the_one_watch_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let _aggregator = start_aggregator(&app.nats).await.drop_guard();
    let token = TestApp::token("acme", &["*"], 3600);
    app.publish("acme", "leads", json!({"status": "new"})).await;
    app.stats_total(&token, "leads", 1).await;
    let mut sse = app.sse(&token, "topics=*,$stats", None).await;
    stats_until(&mut sse, "leads", 1).await;

    app.nats.stop().await;
    let down = app.stats(&token, Some("leads")).await;
    assert_eq!(down.status(), 503, "NATS away: a retryable answer");
    assert!(down.headers().contains_key("retry-after"));
    assert_eq!(
        down.json::<Value>().await.unwrap()["error"]["code"],
        "not_ready"
    );
    app.nats.restart().await;
    app.wait_ready().await;
    let seq = app.publish("acme", "leads", json!({"status": "won"})).await;
    // The same stream (kept open through the outage) gets the event, then its document.
    let doc = stats_until(&mut sse, "leads", 2).await;
    assert_eq!(
        doc.json()["cursor"]
            .as_str()
            .map(|c| c.starts_with(&format!("{seq}-"))),
        Some(true)
    );
    // An interrupted watch may leave its ephemeral consumer behind until the server expires
    // it; what must not happen is one more per attempt, or none.
    let js = app.nats.jetstream().await;
    let kv_stream = js.get_stream("KV_herald_stats").await.unwrap();
    wait::until(
        "one watch on the stats bucket, not one per attempt",
        DEADLINE,
        || {
            let mut kv_stream = kv_stream.clone();
            async move { kv_stream.info().await.unwrap().state.consumer_count == 1 }
        },
    )
    .await;
}

#[tokio::test]
async fn ws_unsubscribe_from_stats_keeps_the_events() {
    let app = TestApp::spawn().await;
    let _aggregator = start_aggregator(&app.nats).await.drop_guard();
    let token = TestApp::token("acme", &["*"], 3600);
    app.publish("acme", "leads", json!({"status": "new"})).await;
    app.stats_total(&token, "leads", 1).await;
    let mut ws = app.ws(&token).await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["leads", "$stats"]}))
        .await;
    assert_eq!(ws.expect("stats").await.unwrap()["doc"]["total"], 1);
    ws.send(json!({"op": "unsubscribe", "topics": ["$stats"]}))
        .await;
    // A ping round trip: the unsubscribe was handled before anything published below.
    ws.send(json!({"op": "ping"})).await;
    ws.expect("pong").await.unwrap();
    let first = app.publish("acme", "leads", json!({})).await;
    app.stats_total(&token, "leads", 2).await;
    let second = app.publish("acme", "leads", json!({})).await;
    // The document counting `first` was written in between; it does not come.
    for seq in [first, second] {
        let frame = ws.expect("event").await.unwrap();
        assert!(
            frame["cursor"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{seq}-"))
        );
    }
}
