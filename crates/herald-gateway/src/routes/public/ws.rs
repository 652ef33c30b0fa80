//! The public WebSocket: one session, fixed at the upgrade, written out; the client may only
//! `{"op":"ping"}` (answered `{"type":"pong"}`) or close.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::time::Instant;

use crate::frame::Frame;
use crate::metrics::{ConnectionGuard, Transport};
use crate::session::{Output, Session};
use crate::state::AppState;

use super::PublicPermit;

/// What to do after one turn of the loop.
enum Step {
    Send(Vec<Message>),
    Skip,
    Last(Message),
    End,
}

fn text(json: impl Into<Utf8Bytes>) -> Message {
    Message::Text(json.into())
}

/// A client frame: `ping` is answered, anything else refused (the connection stays).
fn on_peer(message: Message) -> Step {
    match message {
        Message::Text(t) => {
            let ping = serde_json::from_str::<serde_json::Value>(t.as_str())
                .is_ok_and(|v| v.get("op").and_then(|o| o.as_str()) == Some("ping"));
            if ping {
                return Step::Send(vec![text(r#"{"type":"pong"}"#)]);
            }
            let refused = serde_json::json!({
                "type": "error", "code": "read_only",
                "message": "a public WebSocket takes its topics and cursor in the URL; only ping frames are accepted",
            });
            Step::Send(vec![text(refused.to_string())])
        }
        Message::Close(_) => Step::End,
        _ => Step::Skip,
    }
}

fn on_session(state: &AppState, session: &mut Session, out: Output) -> Step {
    let ping = || Message::Ping(bytes::Bytes::new());
    let utf8 = |b: bytes::Bytes| Utf8Bytes::try_from(b).ok().map(Message::Text);
    match out {
        Output::Heartbeat => match session.take_skipped() {
            Some(cursor) => {
                let frame = serde_json::json!({"type": "cursor", "cursor": cursor.to_string()});
                Step::Send(vec![text(frame.to_string()), ping()])
            }
            None => Step::Send(vec![ping()]),
        },
        Output::Frame(Frame::Event(e)) => {
            state.metrics.delivered(Transport::Ws, 1);
            utf8(e.ws_text()).map_or(Step::Skip, |m| Step::Send(vec![m]))
        }
        Output::Frame(Frame::Stats(s)) => {
            utf8(s.ws.clone()).map_or(Step::Skip, |m| Step::Send(vec![m]))
        }
        Output::Frame(Frame::Control(c)) => Step::Send(vec![text(c.ws_text())]),
        // A public session has no snapshot scope; were one sent, it goes out as on /v1/ws.
        Output::Frame(Frame::Snapshot(s)) => {
            utf8(s.ws_text()).map_or(Step::Skip, |m| Step::Send(vec![m]))
        }
        Output::End => Step::Last(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: Utf8Bytes::from_static("bye"),
        }))),
    }
}

/// Pumps the session out and the peer's frames in until either side ends; a peer not heard
/// from (not even a pong) for 2.5 heartbeats is gone.
pub(super) async fn connection(
    state: AppState,
    mut socket: WebSocket,
    mut session: Session,
    _guard: (PublicPermit, ConnectionGuard),
) {
    let silence_limit = state.cfg.heartbeat.saturating_mul(5) / 2;
    let silence = tokio::time::sleep(silence_limit);
    tokio::pin!(silence);
    loop {
        let step = tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(message)) = msg else { return };
                silence.as_mut().reset(Instant::now() + silence_limit);
                on_peer(message)
            }
            out = session.next() => on_session(&state, &mut session, out),
            () = &mut silence => {
                state.metrics.silent_peers.inc();
                return;
            }
        };
        match step {
            Step::Send(messages) => {
                for message in messages {
                    let sent =
                        tokio::time::timeout(state.cfg.write_timeout, socket.send(message)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
            }
            Step::Skip => {}
            Step::Last(message) => {
                let _ = socket.send(message).await;
                return;
            }
            Step::End => return,
        }
    }
}
