//! The peer's clients: the NATS protocol over nats-server's WebSocket listener.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_bench::natsws::{self, Client};
use herald_bench::stack::nats_with_websocket;
use herald_bench::track::{Board, now_ns};
use herald_test_support::wait;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 20;
const EVENTS: u64 = 300;

#[tokio::test]
async fn websocket_clients_get_every_message_once_and_in_order_even_when_split_across_frames() {
    let (nats, ws_url) = nats_with_websocket().await.unwrap();
    let board = Board::new(CLIENTS);
    let stop = CancellationToken::new();
    let (opened, mut opened_rx) = mpsc::channel(CLIENTS);
    let url: Arc<str> = ws_url.into();
    let mut clients = JoinSet::new();
    for i in 0..CLIENTS {
        let client = Client {
            url: Arc::clone(&url),
            subject: format!("bench.g{}.>", i % 2),
            index: i,
            board: Arc::clone(&board),
        };
        clients.spawn(natsws::run(client, opened.clone(), stop.clone()));
    }
    for _ in 0..CLIENTS {
        tokio::time::timeout(Duration::from_secs(10), opened_rx.recv())
            .await
            .expect("every subscription is live within 10 s")
            .expect("no client failed");
    }

    // Payloads larger than a WebSocket frame's usual size, so MSGs straddle frames.
    let nats_client = nats.client().await;
    let pad = "x".repeat(3000);
    for n in 0..EVENTS {
        for g in 0..2 {
            let payload = format!(r#"{{"data":{{"bn":{n},"bt":{}}},"pad":"{pad}"}}"#, now_ns());
            nats_client
                .publish(format!("bench.g{g}.insert"), payload.into())
                .await
                .unwrap();
        }
    }
    nats_client.flush().await.unwrap();

    wait::until_sync(
        &format!("every client to receive all {EVENTS} events"),
        Duration::from_secs(30),
        || board.count(|_, s| s.next.load(Ordering::Relaxed) >= EVENTS) == CLIENTS,
    )
    .await;
    assert_eq!(board.sum(|s| &s.received), CLIENTS as u64 * EVENTS);
    assert_eq!(board.sum(|s| &s.gaps), 0);
    assert_eq!(board.sum(|s| &s.duplicates), 0);

    stop.cancel();
    while let Some(ended) = clients.join_next().await {
        ended.unwrap().expect("a client ends cleanly when stopped");
    }
}
