//! Public topics: `/v1/public/<tenant>/{stream,poll,ws}` without a token — only the tenant's
//! public topics, cursors and resume as everywhere, CORS `*`, limits per client address.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_gateway::config::TenantTopics;
use herald_test_support::wait;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;

/// A gateway whose tenant `acme` has the public topic `prices`.
async fn app_with(tune: impl FnOnce(&mut herald_gateway::Config)) -> TestApp {
    let mut cfg = test_config();
    cfg.public = BTreeMap::from([(
        "acme".to_owned(),
        TenantTopics {
            topics: vec!["prices".into()],
        },
    )]);
    tune(&mut cfg);
    TestApp::spawn_with(cfg, Default::default()).await
}

async fn public_sse(app: &TestApp, query: &str, last_event_id: Option<&str>) -> SseClient {
    let mut req = app
        .http
        .get(app.url(&format!("/v1/public/acme/stream?{query}")))
        .header("Origin", "https://anywhere.example");
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers.get("access-control-allow-credentials").is_none());
    let mut client = SseClient::new(resp);
    client.open().await.unwrap();
    client
}

async fn error_of(resp: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap())
}

#[tokio::test]
async fn public_topics_stream_without_a_token_on_sse_poll_and_ws_and_resume() {
    let app = app_with(|_| {}).await;
    let mut sse = public_sse(&app, "topics=prices", None).await;
    let p1 = app.publish("acme", "prices", json!({"p": 1})).await;
    app.publish("acme", "secret", json!({"x": 1})).await;
    app.publish("globex", "prices", json!({"x": 2})).await;
    let p2 = app.publish("acme", "prices", json!({"p": 2})).await;
    let got = sse.events(2).await.unwrap();
    assert_eq!(
        got.iter().map(SseEvent::seq).collect::<Vec<_>>(),
        [p1, p2],
        "only the public topic of the tenant in the path"
    );
    assert_eq!(got[1].json()["data"], json!({"p": 2}));

    // Last-Event-ID resumes after it, as on /v1/stream.
    let first = got[0].id.clone().unwrap();
    let mut resumed = public_sse(&app, "", Some(&first)).await;
    assert_eq!(resumed.event().await.unwrap().seq(), p2);

    // Long-poll from the same cursor.
    let resp = app
        .http
        .get(app.url(&format!(
            "/v1/public/acme/poll?topics=prices&since={first}&wait=1"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["data"], json!({"p": 2}));

    // A read-only WebSocket with the cursor in the URL.
    let url = format!(
        "ws://{}/v1/public/acme/ws?topics=prices&since={first}",
        app.gw.addr
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut ws = WsClient::new(socket);
    let event = ws.expect("event").await.unwrap();
    assert_eq!(event["event"]["data"], json!({"p": 2}));
    ws.send(json!({"op": "ping"})).await;
    ws.expect("pong").await.unwrap();
    ws.send(json!({"op": "subscribe", "topics": ["secret"]}))
        .await;
    assert_eq!(ws.expect("error").await.unwrap()["code"], "read_only");
}

#[tokio::test]
async fn public_refusals_are_json_with_cors() {
    let app = app_with(|_| {}).await;
    let get = |path: &str| {
        app.http
            .get(app.url(path))
            .header("Origin", "https://anywhere.example")
            .send()
    };
    for (path, status, code) in [
        ("/v1/public/globex/stream", 404, "not_public"),
        (
            "/v1/public/acme/stream?topics=secret",
            403,
            "topic_not_public",
        ),
        (
            "/v1/public/acme/poll?topics=prices,secret",
            403,
            "topic_not_public",
        ),
        ("/v1/public/acme/ws?topics=secret", 403, "topic_not_public"),
        ("/v1/public/acme/stream?topics=a.b", 400, "bad_request"),
        ("/v1/public/acme/stream?since=nope", 400, "bad_request"),
        ("/v1/public/acme/ws?topics=prices", 400, "bad_request"),
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.headers()["access-control-allow-origin"], "*", "{path}");
        let (got, _, body) = error_of(resp).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    // The private endpoints still want a token.
    let (status, _, _) = error_of(get("/v1/stream?topics=prices").await.unwrap()).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn public_connections_are_limited_per_address() {
    let app = app_with(|cfg| {
        cfg.heartbeat = Duration::from_millis(200);
        cfg.limits.public_per_ip = 2;
        cfg.limits.public_connect_rate = 1;
        cfg.limits.public_connect_burst = 3;
    })
    .await;
    let first = public_sse(&app, "", None).await;
    let _second = public_sse(&app, "", None).await;
    let url = app.url("/v1/public/acme/stream");
    let (status, retry, body) = error_of(app.http.get(&url).send().await.unwrap()).await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")));
    assert_eq!(body["error"]["code"], "too_many_connections");
    // Another client address has slots of its own: the cap is per address, not global.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let theirs = other.get(&url).send().await.unwrap();
    assert_eq!(theirs.status(), 200, "127.0.0.2 is not 127.0.0.1");

    // A closed stream frees its slot (noticed by the next heartbeat's write at the latest);
    // refusals by the cap do not spend the rate.
    drop(first);
    let third = std::sync::Mutex::new(None);
    let slot = &third;
    let (http, url_ref) = (&app.http, &url);
    wait::until("a freed public slot", DEADLINE, move || async move {
        let resp = http.get(url_ref).send().await.unwrap();
        let ok = resp.status() == 200;
        if ok {
            *slot.lock().unwrap() = Some(resp);
        }
        ok
    })
    .await;
    // The burst (3) is spent: the next one is over the rate.
    let (status, retry, body) = error_of(app.http.get(&url).send().await.unwrap()).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert_eq!(body["error"]["code"], "rate_limited");
    drop((third, theirs));
}

#[tokio::test]
async fn private_events_never_reach_a_public_stream() {
    let app = app_with(|_| {}).await;
    let mut sse = public_sse(&app, "topics=prices", None).await;
    let js = app.nats.jetstream().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Herald-To", "u-42");
    let event = json!({"specversion": "1.0", "id": "private-1", "tenant": "acme",
        "topic": "prices", "action": "insert", "data": {"secret": true}});
    js.publish_with_headers(
        "herald.events.acme.prices.insert",
        headers,
        event.to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let public = app.publish("acme", "prices", json!({"p": 1})).await;
    let next = sse.event().await.unwrap();
    assert_eq!(next.seq(), public, "the private event was skipped");
    assert!(!next.data.contains("secret"));
    // A long-poll from before it (resumed from the ring) skips it too.
    let since = sse.hello.as_ref().unwrap().id.clone().unwrap();
    let body: Value = app
        .http
        .get(app.url(&format!("/v1/public/acme/poll?since={since}&wait=1")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0]["data"], json!({"p": 1}));
}

#[tokio::test]
async fn public_streams_get_presence_counts_never_names() {
    let app = app_with(|cfg| {
        cfg.presence = BTreeMap::from([(
            "acme".to_owned(),
            TenantTopics {
                topics: vec!["prices".into()],
            },
        )]);
        cfg.presence_debounce = Duration::from_millis(20);
    })
    .await;
    let mut anon = public_sse(&app, "presence=1", None).await;
    let snapshot = anon.until("presence").await.unwrap().0.json();
    assert_eq!(
        snapshot,
        json!({"topic":"prices","count":0,"joined":[],"left":[],"snapshot":true})
    );
    let _user = app
        .sse(
            &TestApp::token("acme", &["prices"], 60),
            "topics=prices",
            None,
        )
        .await;
    let change = anon.until("presence").await.unwrap().0.json();
    assert_eq!(
        change,
        json!({"topic":"prices","count":1,"joined":[],"left":[]})
    );
}
