//! Presence across two real gateway processes on one nats-server: joins on either are seen
//! from the other, counts are exact at quiescence, and the users of a gateway killed with
//! SIGKILL (no shutdown hook, its entries left in the bucket) leave within the presence TTL.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_test_support::NatsServer;
use herald_test_support::process::{self, ServiceProcess, ServiceSpec, Signal};
use serde_json::{Value, json};

use crate::sse::Reader;

const SECRET: &str = "presence-test-secret-0123456789abcdef";
/// `stream.presence_ttl` of the test: entries not rewritten for this long are gone.
const TTL: Duration = Duration::from_secs(2);
/// What a leave may take beyond the TTL: the sweep (a tenth of it), the debounce, delivery.
const SLACK: Duration = Duration::from_millis(800);
const DEADLINE: Duration = Duration::from_secs(20);

fn token(sub: &str, presence: bool) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({"sub": sub, "tenant": "acme", "topics": ["lobby"], "exp": exp, "presence": presence});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The gateway binary, built with the other service binaries the way every test of this
/// crate builds them (one feature set: no rebuild between tests).
fn gateway_binary() -> std::path::PathBuf {
    process::service_binaries().join("herald-gateway")
}

async fn spawn_gateway(nats: &NatsServer, name: &str, dir: &tempfile::TempDir) -> ServiceProcess {
    let rest = format!(
        "[stream]\npresence_ttl = \"{}ms\"\n[gateway]\npresence_debounce = \"50ms\"\n\
         [gateway.jwt]\nsecret = \"{SECRET}\"\n[gateway.presence.acme]\ntopics = [\"lobby\"]\n",
        TTL.as_millis()
    );
    let config = dir.path().join(format!("{name}.toml"));
    std::fs::write(&config, format!("[nats]\nurl = \"{}\"\n{rest}", nats.url())).unwrap();
    let spec = ServiceSpec::new(name, gateway_binary())
        .config(config)
        .listen(process::free_addr())
        .log_file(dir.path().join(format!("{name}.log")));
    process::spawn_ready(spec).await
}

async fn open(http: &reqwest::Client, gw: &ServiceProcess, sub: &str, query: &str) -> Reader {
    let url = format!("{}/v1/stream?topics=lobby{query}", gw.base_url().unwrap());
    let resp = http
        .get(url)
        .bearer_auth(token(sub, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    Reader::new(resp)
}

/// Reads `presence` events into a member set until it is `want`; each event's count must be
/// the set's size. Returns when it got there.
async fn until(reader: &mut Reader, members: &mut BTreeSet<String>, want: &[&str]) -> Instant {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    while *members != want {
        let msg = tokio::time::timeout(DEADLINE, reader.next())
            .await
            .unwrap_or_else(|_| panic!("no presence event; members {members:?}, want {want:?}"))
            .unwrap()
            .expect("the stream goes on");
        if msg.event.as_deref() != Some("presence") {
            continue;
        }
        let ev = msg.json();
        let names = |k: &str| -> Vec<String> {
            let list = ev[k].as_array().unwrap();
            list.iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        if ev["snapshot"] == true {
            *members = names("joined").into_iter().collect();
        } else {
            members.extend(names("joined"));
            for gone in names("left") {
                members.remove(&gone);
            }
        }
        assert_eq!(ev["count"].as_u64(), Some(members.len() as u64), "{ev}");
    }
    Instant::now()
}

async fn count(http: &reqwest::Client, gw: &ServiceProcess) -> Value {
    let url = format!("{}/v1/presence?topics=lobby", gw.base_url().unwrap());
    let resp = http
        .get(url)
        .bearer_auth(token("probe", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["presence"][0].clone()
}

#[tokio::test]
async fn a_sigkilled_gateways_users_leave_within_the_presence_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start().await;
    let a = spawn_gateway(&nats, "gateway-a", &dir).await;
    let b = spawn_gateway(&nats, "gateway-b", &dir).await;
    let http = reqwest::Client::new();

    let mut watch_a = open(&http, &a, "watcher-a", "&presence=1").await;
    let mut watch_b = open(&http, &b, "watcher-b", "&presence=1").await;
    let _u1 = open(&http, &a, "u1", "").await;
    let _u2 = open(&http, &b, "u2", "").await;
    let _u3 = open(&http, &b, "u3", "").await;
    let everyone = ["u1", "u2", "u3", "watcher-a", "watcher-b"];
    let (mut seen_a, mut seen_b) = (BTreeSet::new(), BTreeSet::new());
    until(&mut watch_a, &mut seen_a, &everyone).await;
    until(&mut watch_b, &mut seen_b, &everyone).await;
    let expected = json!({"topic": "lobby", "count": 5, "members": everyone});
    assert_eq!(
        count(&http, &a).await,
        expected,
        "exact at quiescence, from A"
    );
    assert_eq!(count(&http, &b).await, expected, "and from B");

    // B dies without a word: its entries stay in the bucket until the TTL drops them.
    let killed = Instant::now();
    b.signal(Signal::Kill).unwrap();
    let left = until(&mut watch_a, &mut seen_a, &["u1", "watcher-a"]).await;
    let took = left.duration_since(killed);
    eprintln!("a SIGKILLed gateway's users left after {took:?} (TTL {TTL:?})");
    assert!(took <= TTL + SLACK, "took {took:?}");
    let expected = json!({"topic": "lobby", "count": 2, "members": ["u1", "watcher-a"]});
    assert_eq!(count(&http, &a).await, expected);
}

/// Under deploy/nats/auth.conf the gateway's own identity may write, read and watch
/// `herald_presence` (what its presence sync does); another service's may not write it.
#[tokio::test]
async fn the_gateway_identity_writes_and_watches_presence_others_may_not_write_it() {
    use futures::StreamExt;
    use herald_core::streams::{self, PRESENCE_BUCKET, StreamSettings};

    let nats = NatsServer::start_deploy().await;
    let ids = nats.identities().expect("deploy identities").clone();
    streams::apply(&nats.jetstream().await, &StreamSettings::default())
        .await
        .expect("admin provisions the streams and buckets");
    let connect = |user: &'static str| {
        let ids = ids.clone();
        let url = nats.url();
        async move {
            let client = ids.connect_options(user).connect(url).await.unwrap();
            let mut js = async_nats::jetstream::new(client);
            js.set_timeout(Duration::from_secs(2));
            js
        }
    };
    let gateway = connect("gateway").await;
    // Every identity may look the bucket up (provisioning's STREAM.INFO).
    for user in ["ingest", "notifier", "stats"] {
        let js = connect(user).await;
        js.get_stream(format!("KV_{PRESENCE_BUCKET}"))
            .await
            .unwrap_or_else(|e| panic!("{user} looks herald_presence up: {e}"));
    }
    let kv = gateway.get_key_value(PRESENCE_BUCKET).await.unwrap();
    let mut watch = kv.watch_all().await.unwrap();
    kv.put("acme.lobby.gw-1", r#"{"members":["u1"]}"#.into())
        .await
        .unwrap();
    let seen = tokio::time::timeout(DEADLINE, watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.key, "acme.lobby.gw-1");
    kv.delete("acme.lobby.gw-1").await.unwrap();
    let stats = connect("stats").await;
    let theirs = stats.get_key_value(PRESENCE_BUCKET).await.unwrap();
    assert!(
        theirs.put("acme.lobby.forged", "{}".into()).await.is_err(),
        "stats may not write presence"
    );
}
