//! Private events end to end: `POST /v1/events` with `to` → ingest → `HERALD_EVENTS`
//! (`Herald-To`) → the gateway → only the users named, on SSE, long-poll and history; stats
//! count every event and say nothing of who it was for.

use std::time::Duration;

use herald_core::service::CommonConfig;
use herald_test_support::NatsServer;
use serde_json::{Value, json};

use crate::services::{self, InProcess};
use crate::sse::{Message, Reader};

const API_KEY: &str = "audience-api-key";
const SECRET: &str = "audience-jwt-secret-0123456789";
const DEADLINE: Duration = Duration::from_secs(20);

struct Stack {
    ingest: String,
    gateway: String,
    http: reqwest::Client,
    _services: InProcess,
    _nats: NatsServer,
}

impl Stack {
    async fn start() -> Self {
        herald_core::telemetry::init_for_tests();
        let nats = NatsServer::start().await;
        let mut common = CommonConfig::default();
        common.nats.url = nats.url();
        let mut services = InProcess::new(common);
        let ingest = services
            .start::<herald_ingest::App>(services::ingest_config("acme", API_KEY), None)
            .await;
        let gateway = services
            .start::<herald_gateway::App>(services::gateway_config(SECRET), None)
            .await;
        let stats = herald_stats::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            group_by: vec!["inbox.kind".parse().unwrap()],
            ..Default::default()
        };
        services.start::<herald_stats::App>(stats, None).await;
        services.wait_all_ready().await;
        Self {
            ingest: format!("http://{ingest}"),
            gateway: format!("http://{gateway}"),
            http: reqwest::Client::new(),
            _services: services,
            _nats: nats,
        }
    }

    async fn publish(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events", self.ingest))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, sub: &str, path: &str) -> Value {
        let token = services::token(SECRET, sub, "acme", &["*"]);
        let resp = self
            .http
            .get(format!("{}{path}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    /// An SSE stream for `sub`, opened (its `status` read).
    async fn sse(&self, sub: &str, query: &str) -> Reader {
        let token = services::token(SECRET, sub, "acme", &["*"]);
        let resp = self
            .http
            .get(format!("{}/v1/stream?{query}", self.gateway))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut reader = Reader::new(resp);
        let hello = next(&mut reader).await;
        assert_eq!(hello.event.as_deref(), Some("status"));
        reader
    }
}

async fn next(reader: &mut Reader) -> Message {
    tokio::time::timeout(DEADLINE, reader.next())
        .await
        .expect("an SSE message in time")
        .unwrap()
        .expect("the stream goes on")
}

/// The `data.n` of the events `reader` gets up to the one with `data.n == last`.
async fn numbers_until(reader: &mut Reader, last: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let msg = next(reader).await;
        if msg.event.is_some() {
            continue;
        }
        let event = msg.json();
        assert!(event.get("to").is_none(), "{event}");
        seen.push(event["data"]["n"].as_u64().unwrap());
    }
    seen
}

#[tokio::test]
async fn only_the_users_named_receive_a_private_event_and_stats_only_count_it() {
    let stack = Stack::start().await;
    let mut u1 = stack.sse("u-1", "topics=inbox").await;
    let mut u2 = stack.sse("u-2", "topics=inbox,$stats").await;
    let batch = json!([
        {"topic": "inbox", "action": "new", "data": {"n": 1, "kind": "dm"}, "to": ["u-1"]},
        {"topic": "inbox", "action": "new", "data": {"n": 2, "kind": "news"}},
        {"topic": "inbox", "action": "new", "data": {"n": 3, "kind": "dm"}, "to": ["u-2", "u-3"]},
    ]);
    assert_eq!(stack.publish(batch).await.status(), 200);
    let bad = json!({"topic": "inbox", "action": "new", "data": {"n": 9}, "to": ["u 1"]});
    let resp = stack.publish(bad).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_audience", "{body}");
    let last = json!({"topic": "inbox", "action": "new", "data": {"n": 4}, "to": ["u-1", "u-2"]});
    assert_eq!(stack.publish(last).await.status(), 200);

    assert_eq!(numbers_until(&mut u1, 4).await, [1, 2, 4]);
    // u-2 also gets stats documents: they count every event, private or not, and name no one.
    let mut seen = Vec::new();
    let mut counted = false;
    while !(seen.last() == Some(&4) && counted) {
        let msg = next(&mut u2).await;
        if msg.event.as_deref() == Some("stats") {
            assert!(
                !msg.data.contains("u-1") && !msg.data.contains("u-3"),
                "{}",
                msg.data
            );
            counted |= msg.json()["doc"]["total"] == 4;
            continue;
        }
        let event = msg.json();
        assert!(
            event.get("to").is_none() && !msg.data.contains("u-3"),
            "{event}"
        );
        seen.push(event["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(seen, [2, 3, 4]);

    for (sub, expected) in [
        ("u-1", vec![1, 2, 4]),
        ("u-3", vec![2, 3]),
        ("u-9", vec![2]),
    ] {
        let history = stack.get(sub, "/v1/history?topics=inbox").await;
        let ns: Vec<u64> = history["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["data"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, expected, "history of {sub}: {history}");
        // Long-poll from the start of the stream (the epoch is the history cursor's).
        let cursor = history["cursor"].as_str().unwrap();
        let epoch = cursor.split_once('-').unwrap().1;
        let poll = stack
            .get(
                sub,
                &format!("/v1/poll?topics=inbox&since=0-{epoch}&wait=1"),
            )
            .await;
        let ns: Vec<u64> = poll["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, expected, "poll of {sub}: {poll}");
        assert_eq!(poll["cursor"], cursor, "past every event, its own or not");
    }
    let stats = stack.get("u-9", "/v1/stats?topics=inbox").await;
    let text = stats.to_string();
    assert!(!text.contains("u-1") && !text.contains("u-2"), "{text}");
}
