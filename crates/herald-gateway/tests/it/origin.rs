//! WebSocket upgrades authenticated by cookie must come from an allowed origin: CORS does
//! not cover WebSockets, and a browser attaches the cookie whichever site opens the socket.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Error as WsError};

use crate::helpers::{TestApp, test_config};

const APP_ORIGIN: &str = "https://app.example.com";

/// Upgrades `/v1/ws` with `headers`: `Ok(())` on 101, else the status and error code.
async fn upgrade(app: &TestApp, headers: &[(&'static str, String)]) -> Result<(), (u16, String)> {
    let mut req = format!("ws://{}/v1/ws", app.gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(resp)) => {
            let status = resp.status().as_u16();
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap_or_default())
                .expect("a JSON error body");
            Err((
                status,
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
        Err(other) => panic!("upgrade failed: {other}"),
    }
}

async fn app() -> TestApp {
    let mut cfg = test_config();
    cfg.cors_origins = vec![APP_ORIGIN.into(), "*".into()];
    TestApp::spawn_with(cfg, Default::default()).await
}

fn cookie() -> (&'static str, String) {
    let token = TestApp::token("acme", &["*"], 3600);
    ("Cookie", format!("herald_token={token}"))
}

fn forbidden() -> Result<(), (u16, String)> {
    Err((403, "origin_forbidden".into()))
}

#[tokio::test]
async fn ws_origin_foreign_origin_with_a_cookie_token_is_refused() {
    let app = app().await;
    for origin in [
        "https://evil.example.net",
        "null",
        "https://app.example.com.evil.net",
    ] {
        let refused = upgrade(&app, &[cookie(), ("Origin", origin.into())]).await;
        assert_eq!(refused, forbidden(), "{origin}");
    }
    assert_eq!(
        app.metric(r#"herald_gateway_connections{transport="ws"}"#)
            .await,
        0.0,
        "nothing was upgraded"
    );
    // A bad cookie from a foreign origin learns nothing about the token either.
    let bad = ("Cookie", "herald_token=garbage".to_owned());
    let refused = upgrade(&app, &[bad, ("Origin", "https://evil.example.net".into())]).await;
    assert_eq!(refused, forbidden());
}

#[tokio::test]
async fn ws_origin_missing_origin_with_a_cookie_token_is_refused() {
    // Browsers always send Origin on a WebSocket upgrade; a cookie without one is not a
    // browser's, and other clients send their token as a header.
    let app = app().await;
    assert_eq!(upgrade(&app, &[cookie()]).await, forbidden());
}

#[tokio::test]
async fn ws_origin_allowed_or_own_origin_with_a_cookie_token_is_upgraded() {
    let app = app().await;
    let own = format!("http://{}", app.gw.addr);
    for origin in [APP_ORIGIN, "HTTPS://APP.example.com/", own.as_str()] {
        let ok = upgrade(&app, &[cookie(), ("Origin", origin.into())]).await;
        assert_eq!(ok, Ok(()), "{origin}");
    }
}

#[tokio::test]
async fn ws_origin_header_and_query_tokens_need_no_allowed_origin() {
    // A foreign page cannot attach these: it would have to hold the token already.
    let app = app().await;
    let token = TestApp::token("acme", &["*"], 3600);
    let bearer = ("Authorization", format!("Bearer {token}"));
    assert_eq!(upgrade(&app, std::slice::from_ref(&bearer)).await, Ok(()));
    let foreign = ("Origin", "https://other.example.org".to_owned());
    assert_eq!(upgrade(&app, &[bearer, foreign.clone()]).await, Ok(()));
    let mut req = format!("ws://{}/v1/ws?access_token={token}", app.gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "herald.v1".parse().unwrap());
    req.headers_mut()
        .insert("Origin", foreign.1.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    socket
        .close(Some(tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        }))
        .await
        .unwrap();
}
