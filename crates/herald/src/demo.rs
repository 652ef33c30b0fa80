//! `herald up --demo`: a traffic generator posting Sequin-style webhooks for a fake `leads`
//! table, so a new dashboard moves on first start, and status upserts for a few `services`.
//!
//! Leads: inserts, status changes (with `changes` holding the previous status, as Sequin
//! sends) and deletes (closed leads go first, so the table stays around a dozen rows), every
//! 0.5–1.5 s, through the real ingest endpoint with the demo source's bearer token. Services:
//! every service's status at start, then one service's new status on about one tick in three,
//! as `upsert` events through the publish API (`POST /v1/events`, the dev API key). Both
//! topics are collections under `herald up`'s defaults (`dev::apply_state_defaults`), so the
//! dashboard shows them as live tables.

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
const SERVICES: &[&str] = &["api", "billing", "search", "mailer", "webhooks"];
/// The leads table stays around this size: inserts stop above it.
const TARGET_LEADS: usize = 12;

struct Lead {
    record: Value,
}

/// Posts demo traffic to ingest at `ingest` until `shutdown`.
pub async fn run(ingest: SocketAddr, shutdown: CancellationToken) {
    let webhook = format!("http://{ingest}/v1/webhooks/demo-sequin");
    let publish = format!("http://{ingest}/v1/events");
    let http = reqwest::Client::new();
    let run_id = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut leads: Vec<Lead> = Vec::new();
    let mut next_id = 1u64;
    let all: Vec<Value> = SERVICES.iter().map(|s| service_status(s)).collect();
    post(
        &http,
        &publish,
        dev::API_KEY,
        &Value::Array(all),
        "services",
    )
    .await;
    let mut n = 0u64;
    loop {
        let pause = Duration::from_millis(rand::thread_rng().gen_range(500..1500));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        n += 1;
        let msg = next_change(&mut leads, &mut next_id, &format!("demo-{run_id}-{n}"));
        post(&http, &webhook, dev::SEQUIN_TOKEN, &msg, "leads").await;
        if rand::thread_rng().gen_bool(1.0 / 3.0) {
            let name = SERVICES
                .choose(&mut rand::thread_rng())
                .copied()
                .unwrap_or("api");
            post(
                &http,
                &publish,
                dev::API_KEY,
                &service_status(name),
                "services",
            )
            .await;
        }
    }
}

/// Posts `body` with a bearer token; a refusal or a failure is logged (the demo goes on).
async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value, what: &str) {
    match http.post(url).bearer_auth(token).json(body).send().await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(status = %r.status(), what, "demo traffic refused"),
        Err(err) => tracing::warn!(%err, what, "demo traffic not sent"),
    }
}

/// A publish-API event: service `name`'s status now (mostly `up`), keyed by `name`.
fn service_status(name: &str) -> Value {
    let mut rng = rand::thread_rng();
    let roll: f64 = rng.r#gen();
    let (status, latency) = if roll < 0.75 {
        ("up", rng.gen_range(8..60))
    } else if roll < 0.93 {
        ("degraded", rng.gen_range(200..900))
    } else {
        ("down", 0)
    };
    json!({
        "topic": "services",
        "action": "upsert",
        "data": {
            "name": name,
            "status": status,
            "latency_ms": latency,
            "checked_at": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }
    })
}

fn next_change(leads: &mut Vec<Lead>, next_id: &mut u64, key: &str) -> Value {
    let mut rng = rand::thread_rng();
    let roll: f64 = rng.r#gen();
    let open = leads.iter().filter(|l| !is_closed(l)).count();
    let (action, record, changes) =
        if leads.len() < 3 || (roll < 0.45 && leads.len() < TARGET_LEADS) {
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
                record: record.clone(),
            });
            ("insert", record, Value::Null)
        } else if roll < 0.85 && open > 0 {
            let i = leads
                .iter()
                .enumerate()
                .filter(|(_, l)| !is_closed(l))
                .map(|(i, _)| i)
                .nth(rng.gen_range(0..open))
                .unwrap_or(0);
            let lead = &mut leads[i];
            let old = lead.record["status"].as_str().unwrap_or("new").to_owned();
            let pos = FLOW.iter().position(|s| *s == old).unwrap_or(0);
            let new = if pos + 1 < FLOW.len() && rng.gen_bool(0.85) {
                FLOW[pos + 1]
            } else {
                "lost"
            };
            lead.record["status"] = json!(new);
            ("update", lead.record.clone(), json!({"status": old}))
        } else {
            // Closed leads leave the table first.
            let i = leads
                .iter()
                .position(is_closed)
                .unwrap_or_else(|| rng.gen_range(0..leads.len()));
            let lead = leads.remove(i);
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

/// Whether a lead is won or lost: it changes no more, and goes first when one is deleted.
fn is_closed(lead: &Lead) -> bool {
    matches!(lead.record["status"].as_str(), Some("won" | "lost"))
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
                assert!(!["won", "lost"].contains(&msg["changes"]["status"].as_str().unwrap()));
            } else {
                assert!(msg["changes"].is_null());
            }
            assert!(leads.len() <= TARGET_LEADS + 1, "the table stays small");
        }
    }

    #[test]
    fn the_table_inserts_updates_and_deletes_rows_it_has() {
        let (mut leads, mut next) = (Vec::new(), 1);
        let mut live = std::collections::BTreeSet::new();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let msg = next_change(&mut leads, &mut next, &format!("k{i}"));
            let id = msg["record"]["id"].as_u64().unwrap();
            let action = msg["action"].as_str().unwrap().to_owned();
            match action.as_str() {
                "insert" => assert!(live.insert(id), "a new id"),
                "update" | "delete" => assert!(live.contains(&id), "{action} of a row that exists"),
                _ => unreachable!(),
            }
            if action == "delete" {
                live.remove(&id);
            }
            seen.insert(action);
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn service_statuses_are_upserts_keyed_by_name() {
        for _ in 0..200 {
            let e = service_status("api");
            assert_eq!(
                (e["topic"].as_str(), e["action"].as_str()),
                (Some("services"), Some("upsert"))
            );
            assert_eq!(e["data"]["name"], "api");
            assert!(["up", "degraded", "down"].contains(&e["data"]["status"].as_str().unwrap()));
        }
    }
}
