//! A fake Telegram Bot API: `POST /bot<token>/<method>`; `sendMessage` answers with
//! `fixtures/telegram/sendMessage-ok.json` (chat and text filled in), or the scripted error
//! in the Bot API's error format.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use super::{Received, Recorder, Reply, recorder_api};
use crate::fixtures;

/// A fake Telegram Bot API server.
pub struct FakeTelegram {
    addr: SocketAddr,
    recorder: Recorder,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
    _server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct AppState {
    recorder: Recorder,
    next_id: Arc<AtomicI64>,
    ok: Arc<Value>,
}

impl FakeTelegram {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let (recorder, rx) = Recorder::new();
        let state = AppState {
            recorder: recorder.clone(),
            next_id: Arc::new(AtomicI64::new(101)),
            ok: Arc::new(fixtures::json("telegram/sendMessage-ok.json")),
        };
        let app = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(state);
        let (addr, server) = crate::net::serve_router(app).await;
        Self {
            addr,
            recorder,
            rx: Mutex::new(rx),
            _server: server,
        }
    }

    /// The API base URL to configure (`api_url`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

recorder_api!(FakeTelegram);

async fn handle(
    State(state): State<AppState>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return error(404, "Not Found", None);
    };
    if !method.eq_ignore_ascii_case("sendMessage") {
        return error(404, "Not Found: method not found", None);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Bad Request: invalid JSON", None);
    };
    let chat = match &body["chat_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return error(400, "Bad Request: chat_id is empty", None),
    };
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let rec = Received {
        at: tokio::time::Instant::now(),
        target: chat.clone(),
        token: Some(token.to_owned()),
        method: "sendMessage".into(),
        text: text.clone(),
        body: body.clone(),
        reply: Reply::Ok,
    };
    let refusal = if text.is_empty() {
        Some("Bad Request: message text is empty".to_owned())
    } else if text.chars().count() > 4096 {
        Some("Bad Request: message is too long".to_owned())
    } else {
        check_markup(body["parse_mode"].as_str(), &text)
            .err()
            .map(|problem| format!("Bad Request: can't parse entities: {problem}"))
    };
    if let Some(description) = refusal {
        state.recorder.refused(rec, Reply::Error("bad_request"));
        return error(400, &description, None);
    }
    let reply = state.recorder.answer(rec);
    if let Some(resp) = reply.common(&format!("/{bot}/{method}")).await {
        return resp;
    }
    match reply {
        Reply::Ok => {
            let mut ok = (*state.ok).clone();
            ok["result"]["message_id"] = json!(state.next_id.fetch_add(1, Ordering::Relaxed));
            ok["result"]["chat"]["id"] = body["chat_id"].clone();
            ok["result"]["text"] = json!(text);
            (StatusCode::OK, axum::Json(ok)).into_response()
        }
        Reply::RetryAfter(secs) => {
            let mut v = fixtures::json("telegram/429.json");
            v["description"] = json!(format!("Too Many Requests: retry after {secs}"));
            v["parameters"]["retry_after"] = json!(secs);
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(v)).into_response()
        }
        Reply::ServerError => error(502, "Bad Gateway", None),
        Reply::Error("unauthorized") => error(401, "Unauthorized", None),
        Reply::Error(_) => {
            let v = fixtures::json("telegram/400-chat-not-found.json");
            (StatusCode::BAD_REQUEST, axum::Json(v)).into_response()
        }
        Reply::ProxyError(_) | Reply::Hang => unreachable!("answered by Reply::common"),
    }
}

fn error(code: u16, description: &str, params: Option<Value>) -> Response {
    let mut v = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = params {
        v["parameters"] = p;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(v)).into_response()
}

/// What Telegram rejects: in MarkdownV2, a reserved character outside entity syntax that is
/// not escaped; in HTML, an unsupported tag or a bare `&`.
fn check_markup(parse_mode: Option<&str>, text: &str) -> Result<(), String> {
    match parse_mode {
        Some("MarkdownV2") => check_markdown_v2(text),
        Some("HTML") => check_html(text),
        _ => Ok(()),
    }
}

fn check_markdown_v2(text: &str) -> Result<(), String> {
    let mut chars = text.chars().peekable();
    let mut prev = '\n';
    let mut in_link_url = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if chars.next().is_none() {
                    return Err("Character '\\' at the end of the text".into());
                }
                prev = 'x';
                continue;
            }
            '(' if prev == ']' => in_link_url = true,
            ')' if in_link_url => in_link_url = false,
            '>' if prev == '\n' => {}
            '_' | '*' | '~' | '|' | '`' | '[' | ']' => {}
            '(' | ')' | '>' | '#' | '+' | '-' | '=' | '{' | '}' | '.' | '!' if !in_link_url => {
                return Err(format!(
                    "Character '{c}' is reserved and must be escaped with the preceding '\\'"
                ));
            }
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

fn check_html(text: &str) -> Result<(), String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ];
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if tail.starts_with('&') {
            let ok = ["&lt;", "&gt;", "&amp;", "&quot;"]
                .iter()
                .any(|e| tail.starts_with(e))
                || (tail.starts_with("&#") && tail.contains(';'));
            if !ok {
                return Err("Unsupported HTML entity or bare '&'".into());
            }
        } else {
            let end = tail.find('>').ok_or("Unclosed start tag")?;
            let name: String = tail[1..end]
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !TAGS.contains(&name.as_str()) {
                return Err(format!("Unsupported start tag \"{name}\""));
            }
        }
        rest = &tail[1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_checks_follow_telegram() {
        assert!(check_markdown_v2("*bold* \\. [link](http://x.y/z)").is_ok());
        assert!(check_markdown_v2("a.b").is_err());
        assert!(check_markdown_v2("(x)").is_err());
        assert!(check_html("<b>a &amp; b</b>").is_ok());
        assert!(check_html("a & b").is_err());
        assert!(check_html("<script>").is_err());
    }
}
