//! Denial of service through oversized WebSocket frames: the gateway caps client frames,
//! ends the offending connection, and keeps serving everyone else.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use herald_test_support::webhook;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{self, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_websocket_frame_ends_only_that_connection() {
    let app = TestApp::launch(herald_chaos::stack::DEFAULT_LOG_FILTER).await;
    let token = helpers::token("alpha", vec!["leads"]);
    let subscribe = Message::text(r#"{"op":"subscribe","topics":["leads"]}"#);
    let mut hostile = app.ws(&token).await;
    let mut victim = app.ws(&token).await;
    victim.send(subscribe.clone()).await.expect("subscribe");

    // 1 MiB in one frame, sixteen times the cap.
    let huge = format!(
        r#"{{"op":"subscribe","topics":["{}"]}}"#,
        "x".repeat(1 << 20)
    );
    let _ = hostile.send(Message::text(huge)).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match hostile.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert_eq!(
        ended,
        Ok(true),
        "the oversized frame ended the hostile connection"
    );

    // Everyone else is still served.
    let body = serde_json::json!({
        "specversion": "1.0", "id": "evt-after-flood", "source": "test", "type": "t",
        "topic": "leads", "action": "insert", "data": {},
    })
    .to_string();
    let headers = webhook::standard_headers(
        &helpers::webhook_secret(),
        "evt-after-flood",
        body.as_bytes(),
    );
    assert_eq!(app.webhook("alpha", &body, &headers).await, 200);
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = victim.next().await {
            if let Message::Text(t) = msg
                && t.as_str().contains("evt-after-flood")
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "the other connection still receives events");
}
