//! A fake Slack: incoming webhooks at `POST /hooks/<name>` (answers `ok`, or a status with
//! a plain-text error) and `POST /api/chat.postMessage` (answers `{"ok":…}` JSON), as
//! `fixtures/slack/README.md` describes.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use super::{Received, Recorder, Reply, recorder_api};

/// A fake Slack server.
pub struct FakeSlack {
    addr: SocketAddr,
    recorder: Recorder,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeSlack {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let (recorder, rx) = Recorder::new();
        let app = Router::new()
            .route("/hooks/{name}", post(webhook))
            .route("/api/chat.postMessage", post(post_message))
            .with_state(recorder.clone());
        let (addr, server) = crate::net::serve_router(app).await;
        Self {
            addr,
            recorder,
            rx: Mutex::new(rx),
            _server: server,
        }
    }

    /// The incoming-webhook URL whose requests are recorded under target `name`.
    pub fn webhook_url(&self, name: &str) -> String {
        format!("http://{}/hooks/{name}", self.addr)
    }

    /// The Web API base URL to configure (`api_url`).
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }
}

recorder_api!(FakeSlack);

fn status_for(code: &str) -> StatusCode {
    match code {
        "channel_not_found" => StatusCode::NOT_FOUND,
        "channel_is_archived" => StatusCode::GONE,
        "action_prohibited" | "invalid_token" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn webhook(
    State(rec): State<Recorder>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    let Some(text) = body["text"].as_str().map(str::to_owned) else {
        return (StatusCode::BAD_REQUEST, "no_text").into_response();
    };
    let path = format!("/hooks/{name}");
    let r = Received {
        at: tokio::time::Instant::now(),
        target: name,
        token: None,
        method: "webhook".into(),
        text,
        body,
        reply: Reply::Ok,
    };
    let reply = rec.answer(r);
    if let Some(resp) = reply.common(&path).await {
        return resp;
    }
    match reply {
        Reply::Ok => (StatusCode::OK, "ok").into_response(),
        Reply::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            "rate_limited",
        )
            .into_response(),
        Reply::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, "rollup_error").into_response(),
        Reply::Error(code) => (status_for(code), code).into_response(),
        Reply::ProxyError(_) | Reply::Hang => unreachable!("answered by Reply::common"),
    }
}

async fn post_message(
    State(rec): State<Recorder>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        return axum::Json(json!({"ok": false, "error": "not_authed"})).into_response();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return axum::Json(json!({"ok": false, "error": "invalid_json"})).into_response();
    };
    let channel = body["channel"].as_str().unwrap_or_default().to_owned();
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let r = Received {
        at: tokio::time::Instant::now(),
        target: channel.clone(),
        token: Some(token),
        method: "chat.postMessage".into(),
        text,
        body,
        reply: Reply::Ok,
    };
    let reply = rec.answer(r);
    if let Some(resp) = reply.common("/api/chat.postMessage").await {
        return resp;
    }
    match reply {
        Reply::Ok => axum::Json(json!({"ok": true, "channel": channel, "ts": "1763630442.000100"}))
            .into_response(),
        Reply::RetryAfter(secs) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        Reply::ServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Reply::Error(code) => axum::Json(json!({"ok": false, "error": code})).into_response(),
        Reply::ProxyError(_) | Reply::Hang => unreachable!("answered by Reply::common"),
    }
}
