//! `herald up --demo`: a traffic generator posting Sequin-style webhooks for a fake `leads`
//! table, so a new dashboard moves on first start.
//!
//! Inserts, status changes (with `changes` holding the previous status, as Sequin sends) and
//! the occasional delete, every 0.5–1.5 s, through the real ingest endpoint with the demo
//! source's bearer token.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::dev;

const NAMES: &[&str] = &[
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Katherine Johnson",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Ken Thompson",
    "Frances Allen",
];
const COMPANIES: &[&str] = &[
    "Analytical Engines",
    "Compiler Co",
    "Bletchley Labs",
    "Apollo Systems",
];
const FLOW: &[&str] = &["new", "contacted", "qualified", "won"];

struct Lead {
    id: u64,
    record: Value,
}

/// Posts demo traffic to ingest at `ingest` until `shutdown`.
pub async fn run(ingest: SocketAddr, shutdown: CancellationToken) {
    let url = format!("http://{ingest}/v1/webhooks/demo-sequin");
    let http = reqwest::Client::new();
    let run_id = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut leads: Vec<Lead> = Vec::new();
    let mut next_id = 1u64;
    let mut n = 0u64;
    loop {
        let pause = Duration::from_millis(rand::thread_rng().gen_range(500..1500));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        n += 1;
        let msg = next_change(&mut leads, &mut next_id, &format!("demo-{run_id}-{n}"));
        let sent = http
            .post(&url)
            .bearer_auth(dev::SEQUIN_TOKEN)
            .json(&msg)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "demo webhook refused"),
            Err(err) => tracing::warn!(%err, "demo webhook not sent"),
        }
    }
}

fn next_change(leads: &mut Vec<Lead>, next_id: &mut u64, key: &str) -> Value {
    let mut rng = rand::thread_rng();
    let roll: f64 = rng.r#gen();
    let (action, record, changes) = if leads.len() < 3 || roll < 0.45 {
        let id = *next_id;
        *next_id += 1;
        let record = json!({
            "id": id,
            "name": NAMES.choose(&mut rng).copied().unwrap_or("Ada Lovelace"),
            "company": COMPANIES.choose(&mut rng).copied().unwrap_or("Compiler Co"),
            "status": "new",
            "score": rng.gen_range(20..100),
        });
        leads.push(Lead {
            id,
            record: record.clone(),
        });
        ("insert", record, Value::Null)
    } else if roll < 0.92 {
        let i = rng.gen_range(0..leads.len());
        let lead = &mut leads[i];
        let old = lead.record["status"].as_str().unwrap_or("new").to_owned();
        let pos = FLOW.iter().position(|s| *s == old).unwrap_or(0);
        let new = if pos + 1 < FLOW.len() && rng.gen_bool(0.85) {
            FLOW[pos + 1]
        } else {
            "lost"
        };
        lead.record["status"] = json!(new);
        let record = lead.record.clone();
        if new == "won" || new == "lost" {
            leads.retain(|l| l.id != record["id"].as_u64().unwrap_or(0));
        }
        ("update", record, json!({"status": old}))
    } else {
        let i = rng.gen_range(0..leads.len());
        let lead = leads.swap_remove(i);
        ("delete", lead.record, Value::Null)
    };
    json!({
        "record": record,
        "changes": changes,
        "action": action,
        "metadata": {
            "table_schema": "public",
            "table_name": "leads",
            "commit_timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            "idempotency_key": key,
            "database_name": "demo",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_valid_sequin_messages_with_consistent_transitions() {
        let (mut leads, mut next) = (Vec::new(), 1);
        for i in 0..500 {
            let msg = next_change(&mut leads, &mut next, &format!("k{i}"));
            let action = msg["action"].as_str().unwrap();
            assert!(["insert", "update", "delete"].contains(&action));
            assert_eq!(msg["metadata"]["table_name"], "leads");
            if action == "update" {
                assert_ne!(msg["changes"]["status"], msg["record"]["status"], "{msg}");
            } else {
                assert!(msg["changes"].is_null());
            }
        }
    }
}
