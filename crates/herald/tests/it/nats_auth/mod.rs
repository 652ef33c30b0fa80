//! NATS with identities: a real nats-server started from `deploy/nats/single.conf` (and a
//! 3-node cluster from `deploy/nats/cluster.conf`), with the identities and permissions of
//! `deploy/nats/auth.conf`. Only ports and the store are overridden (see
//! `herald_test_support::nats`). Anonymous clients are refused, each service identity can do
//! its job and is refused outside it, and the real services deliver with auth on.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv};
use futures::StreamExt;
use herald_core::state::STATE_BUCKET;
use herald_core::streams::{self, DLQ_STREAM, EVENTS_STREAM, STATS_BUCKET, StreamSettings};
use herald_test_support::NatsServer;
use herald_test_support::nats::Identities;
use tokio::sync::mpsc;

mod cluster;
mod stack;
mod state;

/// How long a refused operation may take to be reported by the server.
const DEADLINE: Duration = Duration::from_secs(10);

/// A client connected as one identity, with the server's errors (permission violations).
pub struct As {
    user: &'static str,
    client: async_nats::Client,
    js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

impl As {
    /// Connects to `url` as `user`, with its own inbox prefix.
    pub async fn connect(url: &str, ids: &Identities, user: &'static str) -> Self {
        let (tx, errors) = mpsc::unbounded_channel();
        let client = ids
            .connect_options(user)
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(err) = event {
                        let _ = tx.send(err.to_string());
                    }
                }
            })
            .connect(herald_core::nats::server_urls(url))
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(2));
        Self {
            user,
            client,
            js,
            errors,
        }
    }

    /// Runs `op` and asserts the server refused `subject` ("Permissions Violation").
    pub async fn refused<T>(&mut self, subject: &str, op: impl Future<Output = T>) {
        let (user, errors) = (self.user, &mut self.errors);
        let violation = async {
            while let Some(err) = errors.recv().await {
                if err.contains("Permissions Violation") && err.contains(&format!("\"{subject}\""))
                {
                    return;
                }
            }
        };
        let refused = tokio::time::timeout(DEADLINE, async {
            tokio::pin!(violation);
            tokio::select! {
                () = &mut violation => {}
                _ = op => violation.await,
            }
        })
        .await;
        assert!(refused.is_ok(), "{user} was not refused {subject}");
    }
}

/// A server from deploy/nats/single.conf with Herald's streams provisioned by admin.
async fn provisioned() -> (NatsServer, Identities) {
    let nats = NatsServer::start_deploy().await;
    let ids = nats.identities().expect("deploy identities").clone();
    streams::apply(&nats.jetstream().await, &StreamSettings::default())
        .await
        .expect("admin provisions the streams");
    (nats, ids)
}

#[tokio::test]
async fn anonymous_and_wrong_password_clients_are_refused_by_the_deploy_config() {
    let nats = NatsServer::start_deploy().await;
    let anonymous = async_nats::connect(nats.url()).await;
    assert!(anonymous.is_err(), "an anonymous client is refused");
    let wrong = async_nats::ConnectOptions::with_user_and_password("ingest".into(), "guess".into())
        .connect(nats.url())
        .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let ids = nats.identities().unwrap();
    for user in herald_test_support::nats::USERS {
        nats.client_as(user)
            .await
            .unwrap_or_else(|e| panic!("{user} connects with its password: {e}"));
    }
    // Each identity has its own password: one service's password does not open another's.
    let borrowed = async_nats::ConnectOptions::with_user_and_password(
        "admin".into(),
        ids.password("gateway").into(),
    )
    .connect(nats.url())
    .await;
    assert!(borrowed.is_err(), "gateway's password is not admin's");
}

#[tokio::test]
async fn ingest_may_publish_events_but_not_delete_streams_or_read_events() {
    let (nats, ids) = provisioned().await;
    let mut ingest = As::connect(&nats.url(), &ids, "ingest").await;
    let ack = ingest
        .js
        .publish("herald.events.acme.orders.created", "{}".into())
        .await
        .unwrap()
        .await
        .expect("ingest stores an event");
    assert_eq!(ack.stream, EVENTS_STREAM);
    ingest
        .js
        .get_stream(EVENTS_STREAM)
        .await
        .expect("STREAM.INFO");
    let js = ingest.js.clone();
    ingest
        .refused(
            "$JS.API.STREAM.DELETE.HERALD_EVENTS",
            js.delete_stream(EVENTS_STREAM),
        )
        .await;
    let client = ingest.client.clone();
    ingest
        .refused("herald.events.>", client.subscribe("herald.events.>"))
        .await;
    ingest
        .refused("_INBOX_gateway.>", client.subscribe("_INBOX_gateway.>"))
        .await;
    ingest
        .refused(
            "herald.dlq.notifier.acme",
            client.publish("herald.dlq.notifier.acme", "{}".into()),
        )
        .await;
    let stats = kv_as_admin(&nats).await;
    let keys = stats.keys().await.unwrap().count().await;
    assert_eq!(keys, 0, "nothing reached herald_stats");
}

#[tokio::test]
async fn gateway_reads_events_and_stats_but_cannot_publish_or_touch_durables() {
    let (nats, ids) = provisioned().await;
    let admin = nats.jetstream().await;
    admin
        .publish("herald.events.acme.orders.created", "{\"n\":1}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    kv_as_admin(&nats)
        .await
        .put("acme.orders", "{}".into())
        .await
        .unwrap();
    let mut gateway = As::connect(&nats.url(), &ids, "gateway").await;
    // An ordered consumer reads the stream (what the tail and replays do).
    let stream = gateway.js.get_stream(EVENTS_STREAM).await.unwrap();
    let ordered = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "herald.events.acme.>".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("an ordered consumer: {e}\n{}", nats.log_tail()));
    let mut messages = ordered.messages().await.unwrap();
    let first = tokio::time::timeout(DEADLINE, messages.next())
        .await
        .unwrap();
    assert_eq!(first.unwrap().unwrap().payload.as_ref(), b"{\"n\":1}");
    // async-nats recreates an ordered consumer under a name (`<prefix>_<serial>`) after a
    // missed heartbeat, with or without its filter: both named forms are allowed.
    for filter in ["herald.events.acme.>", ""] {
        stream
            .create_consumer(consumer::pull::Config {
                name: Some(format!("tail{}_1", filter.len())),
                filter_subject: filter.into(),
                inactive_threshold: Duration::from_secs(5),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("a named ordered consumer: {e}\n{}", nats.log_tail()));
    }
    // The stats bucket reads (the gateway watches it).
    let bucket = gateway.js.get_key_value(STATS_BUCKET).await.unwrap();
    let entry = bucket.entry("acme.orders").await.expect("a stats read");
    assert!(entry.is_some());

    let (client, js) = (gateway.client.clone(), gateway.js.clone());
    gateway
        .refused(
            "herald.events.acme.orders.created",
            js.publish("herald.events.acme.orders.created", "{}".into()),
        )
        .await;
    gateway
        .refused(
            "$KV.herald_stats.acme.orders",
            bucket.put("acme.orders", "x".into()),
        )
        .await;
    gateway
        .refused(
            "$JS.API.STREAM.DELETE.HERALD_EVENTS",
            js.delete_stream(EVENTS_STREAM),
        )
        .await;
    gateway
        .refused(
            "$JS.API.CONSUMER.DELETE.HERALD_EVENTS.notifier",
            js.delete_consumer_from_stream("notifier", EVENTS_STREAM),
        )
        .await;
    for durable in ["notifier", "stats"] {
        gateway
            .refused(
                &format!("$JS.API.CONSUMER.CREATE.HERALD_EVENTS.{durable}.herald.events.>"),
                stream.create_consumer(consumer::pull::Config {
                    name: Some(durable.into()),
                    filter_subject: "herald.events.>".into(),
                    ..Default::default()
                }),
            )
            .await;
    }
    gateway
        .refused("_INBOX_ingest.>", client.subscribe("_INBOX_ingest.>"))
        .await;
    assert_eq!(
        stream_messages(&admin, EVENTS_STREAM).await,
        1,
        "nothing published"
    );
}

#[tokio::test]
async fn notifier_has_its_consumer_dlq_and_dedup_bucket_but_cannot_publish_events_or_touch_stats() {
    let (nats, ids) = provisioned().await;
    let mut notifier = As::connect(&nats.url(), &ids, "notifier").await;
    let stream = notifier.js.get_stream(EVENTS_STREAM).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("notifier".into()),
            filter_subjects: vec!["herald.events.>".into()],
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("its durable consumer");
    let ack = notifier
        .js
        .publish("herald.dlq.notifier.acme", "{}".into())
        .await
        .unwrap()
        .await
        .expect("a dead letter");
    assert_eq!(ack.stream, DLQ_STREAM);
    let dedup = notifier
        .js
        .create_or_update_key_value(kv::Config {
            bucket: "herald_notified".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("its dedup bucket: {e}\n{}", nats.log_tail()));
    dedup.put("k", "1".into()).await.expect("a delivery record");

    let js = notifier.js.clone();
    notifier
        .refused(
            "herald.events.acme.orders.created",
            js.publish("herald.events.acme.orders.created", "{}".into()),
        )
        .await;
    let stats = js.get_key_value(STATS_BUCKET).await;
    assert!(stats.is_ok(), "STREAM.INFO on the stats bucket is allowed");
    let stats = stats.unwrap();
    notifier
        .refused(
            "$KV.herald_stats.acme.orders",
            stats.put("acme.orders", "x".into()),
        )
        .await;
    notifier
        .refused(
            "$JS.API.DIRECT.GET.KV_herald_stats.$KV.herald_stats.acme.orders",
            stats.get("acme.orders"),
        )
        .await;
    notifier
        .refused(
            "$JS.API.CONSUMER.CREATE.HERALD_EVENTS.stats",
            stream.create_consumer(consumer::pull::Config {
                durable_name: Some("stats".into()),
                ..Default::default()
            }),
        )
        .await;
    notifier
        .refused(
            "$JS.API.STREAM.DELETE.HERALD_DLQ",
            js.delete_stream(DLQ_STREAM),
        )
        .await;
}

#[tokio::test]
async fn stats_writes_its_bucket_but_cannot_publish_events_or_delete_streams() {
    let (nats, ids) = provisioned().await;
    let mut stats = As::connect(&nats.url(), &ids, "stats").await;
    let bucket = stats.js.get_key_value(STATS_BUCKET).await.unwrap();
    bucket
        .put("acme.orders", "{}".into())
        .await
        .expect("a stats write");
    let stream = stats.js.get_stream(EVENTS_STREAM).await.unwrap();
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("stats".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("its durable consumer");
    let js = stats.js.clone();
    stats
        .refused(
            "herald.events.acme.orders.created",
            js.publish("herald.events.acme.orders.created", "{}".into()),
        )
        .await;
    stats
        .refused(
            "$JS.API.STREAM.DELETE.HERALD_EVENTS",
            js.delete_stream(EVENTS_STREAM),
        )
        .await;
    stats
        .refused(
            "herald.dlq.notifier.acme",
            js.publish("herald.dlq.notifier.acme", "{}".into()),
        )
        .await;
    // Its ordered consumers (the state writer) may be named; the notifier's durable is not
    // one of them.
    stats
        .refused(
            "$JS.API.CONSUMER.CREATE.HERALD_EVENTS.notifier.herald.events.>",
            stream.create_consumer(consumer::pull::Config {
                name: Some("notifier".into()),
                filter_subject: "herald.events.>".into(),
                ..Default::default()
            }),
        )
        .await;
}

async fn kv_as_admin(nats: &NatsServer) -> kv::Store {
    nats.jetstream()
        .await
        .get_key_value(STATS_BUCKET)
        .await
        .unwrap()
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    let mut stream = js.get_stream(name).await.unwrap();
    stream.info().await.unwrap().state.messages
}

/// Runs the real `herald` binary with `args` and the `HERALD_NATS__*` variables of `user`
/// (none: anonymous); its exit status and stderr.
async fn herald_as(nats: &NatsServer, user: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HERALD_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .env("HERALD_NATS__URL", nats.url())
        .env("HERALD_NATS__REQUEST_TIMEOUT", "1s");
    if let Some(user) = user {
        cmd.envs(nats.identities().unwrap().service_env(user));
    }
    let out = tokio::time::timeout(DEADLINE * 3, cmd.output())
        .await
        .expect("herald exits")
        .expect("herald runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn herald_provision_and_the_cli_work_with_the_admin_identity_only() {
    let nats = NatsServer::start_deploy().await;
    let (ok, err) = herald_as(&nats, None, &["provision"]).await;
    assert!(!ok, "anonymous provisioning is refused");
    assert!(err.contains("connecting to NATS"), "says why: {err}");
    let (ok, err) = herald_as(&nats, Some("ingest"), &["provision"]).await;
    assert!(!ok, "a service identity cannot create the streams");
    assert!(err.contains("herald provision"), "names the fix: {err}");
    let (ok, err) = herald_as(&nats, Some("admin"), &["provision"]).await;
    assert!(ok, "admin provisions: {err}");
    let js = nats.jetstream().await;
    js.get_stream(EVENTS_STREAM)
        .await
        .expect("HERALD_EVENTS exists");
    // Run again: it converges (nothing to change).
    assert!(herald_as(&nats, Some("admin"), &["provision"]).await.0);
    let (ok, err) = herald_as(&nats, Some("admin"), &["dlq", "list"]).await;
    assert!(
        ok,
        "`herald dlq list` takes the admin credentials from HERALD_NATS__*: {err}"
    );
    let (ok, _) = herald_as(&nats, None, &["dlq", "list"]).await;
    assert!(!ok, "the CLI without credentials is refused");
}
