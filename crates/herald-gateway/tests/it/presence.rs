//! Presence across two gateways on one NATS: joins and leaves seen from both, counts exact at
//! quiescence, names only for the `presence` claim, a cleanly stopped gateway's users gone at
//! once (a killed one's within the TTL: crates/herald/tests/it/presence.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_core::names::TenantId;
use herald_core::streams::StreamSettings;
use herald_gateway::auth::Claims;
use herald_gateway::config::TenantTopics;
use serde_json::{Value, json};

use crate::helpers::*;

fn token(sub: &str, topics: &[&str], presence: bool) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = Claims {
        sub: sub.into(),
        tenant: TenantId::parse("acme").unwrap(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        exp,
        presence,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Gateway A (the app's) and gateway B on the same NATS; `lobby` of `acme` is a presence
/// topic; entries live `ttl`.
async fn two_gateways(ttl: Duration) -> (TestApp, Gateway) {
    let mut cfg = test_config();
    cfg.presence = BTreeMap::from([(
        "acme".to_owned(),
        TenantTopics {
            topics: vec!["lobby".into()],
        },
    )]);
    cfg.presence_debounce = Duration::from_millis(20);
    let settings = StreamSettings {
        presence_ttl: ttl,
        ..StreamSettings::default()
    };
    let app = TestApp::spawn_with(cfg, settings).await;
    let b = start_gateway(&app.nats, &app.cfg, &app.settings).await;
    let http = &app.http;
    let readyz = b.url("/readyz");
    herald_test_support::wait::until("gateway B to become ready", DEADLINE, || async {
        let ready = http.get(&readyz).send().await;
        ready.is_ok_and(|r| r.status() == 200)
    })
    .await;
    (app, b)
}

/// Follows `presence` events into a member set; every event's count must match it.
struct Watch {
    sse: SseClient,
    members: BTreeSet<String>,
}

impl Watch {
    async fn until(&mut self, want: &[&str]) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        while self.members != want {
            let ev = self.sse.until("presence").await.unwrap().0.json();
            let names = |k: &str| -> Vec<String> {
                ev[k]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            if ev["snapshot"] == true {
                self.members = names("joined").into_iter().collect();
            } else {
                self.members.extend(names("joined"));
                for gone in names("left") {
                    self.members.remove(&gone);
                }
            }
            assert_eq!(ev["topic"], "lobby");
            assert_eq!(
                ev["count"].as_u64(),
                Some(self.members.len() as u64),
                "{ev}"
            );
        }
    }
}

async fn get_presence(app: &TestApp, gw: &Gateway, token: &str, query: &str) -> (u16, Value) {
    let resp = app
        .http
        .get(gw.url(&format!("/v1/presence{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn ws_member(gw: &Gateway, sub: &str, presence: bool) -> WsClient {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let query = if presence { "?presence=1" } else { "" };
    let mut req = format!("ws://{}/v1/ws{query}", gw.addr)
        .into_client_request()
        .unwrap();
    let auth = format!("Bearer {}", token(sub, &["lobby"], false));
    req.headers_mut()
        .insert("Authorization", auth.parse().unwrap());
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws = WsClient::new(socket);
    ws.send(json!({"op": "subscribe", "topics": ["lobby"]}))
        .await;
    ws
}

#[tokio::test]
async fn presence_is_shared_across_gateways_and_exact_at_quiescence() {
    let (app, mut b) = two_gateways(Duration::from_secs(30)).await;
    let admin = token("watcher", &["*"], true);
    let mut watch = Watch {
        sse: app.sse(&admin, "topics=lobby&presence=1", None).await,
        members: BTreeSet::new(),
    };
    watch.until(&["watcher"]).await;
    let _u1 = app
        .sse(&token("u1", &["lobby"], false), "topics=lobby", None)
        .await;
    let u2 = ws_member(&b, "u2", false).await;
    // Two connections of one user count once.
    let _u2_again = ws_member(&b, "u2", false).await;
    watch.until(&["u1", "u2", "watcher"]).await;

    // Seen from B too, with names for the claim and counts only without it.
    let (status, body) = get_presence(&app, &b, &admin, "?topics=lobby").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"presence": [{"topic": "lobby", "count": 3, "members": ["u1", "u2", "watcher"]}]})
    );
    let plain = token("u9", &["lobby"], false);
    let (_, body) = get_presence(&app, &b, &plain, "").await;
    assert_eq!(body, json!({"presence": [{"topic": "lobby", "count": 3}]}));
    let mut counts_only = ws_member(&b, "u9", true).await;
    let snapshot = counts_only.expect("presence").await.unwrap();
    assert_eq!(
        (snapshot["joined"].clone(), snapshot["snapshot"].clone()),
        (json!([]), json!(true))
    );

    // A leave on B is seen on A once the user's last connection is gone.
    drop(u2);
    drop(_u2_again);
    watch.until(&["u1", "u9", "watcher"]).await;

    // A gateway that stops cleanly deletes its entries: its users leave at once, not after
    // the 30 s TTL.
    let stopped = Instant::now();
    b.stop(DEADLINE).await;
    watch.until(&["u1", "watcher"]).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    let (_, body) = get_presence(&app, &app.gw, &admin, "").await;
    assert_eq!(body["presence"][0]["count"], 2);
    drop(counts_only);
}

#[tokio::test]
async fn presence_refuses_topics_it_does_not_track_or_the_token_does_not_grant() {
    let (app, _b) = two_gateways(Duration::from_secs(30)).await;
    let tok = token("u1", &["lobby", "deals"], true);
    let (status, body) = get_presence(&app, &app.gw, &tok, "?topics=deals").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_presence_topic"))
    );
    let (status, body) = get_presence(&app, &app.gw, &tok, "?topics=secret").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("topic_forbidden"))
    );
    let resp = app.http.get(app.url("/v1/presence")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // No token grants nothing of a topic the claim lacks: a wildcard-free token sees only its own.
    let (status, body) = get_presence(&app, &app.gw, &token("u2", &["deals"], true), "").await;
    assert_eq!((status, body), (200, json!({"presence": []})));
}
