//! The 3-node cluster from `deploy/nats/cluster.conf` (routes authenticate) and the TLS switch
//! (`include ./tls.conf`) with a self-signed certificate.

use std::path::Path;
use std::time::Duration;

use herald_core::streams::{self, StreamSettings};
use herald_test_support::NatsServer;
use herald_test_support::cluster::NatsCluster;
use herald_test_support::nats::{Identities, Options, ROUTE_USER, deploy_conf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::DEADLINE;
use super::stack::Stack;

/// What node `port`'s route listener answers to a route CONNECT with `credentials` (JSON
/// fields): the first line after INFO.
async fn route_answer(port: u16, credentials: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the route port answers");
    let (read, mut write) = tcp.into_split();
    let mut lines = BufReader::new(read).lines();
    let info = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(info.starts_with("INFO "), "a route INFO: {info}");
    let connect = format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\
         \"name\":\"intruder\",\"cluster\":\"herald\"{credentials}}}\r\nPING\r\n"
    );
    write.write_all(connect.as_bytes()).await.unwrap();
    tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("the node answers")
        .unwrap()
        .unwrap_or_else(|| "<closed>".to_owned())
}

#[tokio::test]
async fn deploy_cluster_routes_refuse_intruders_and_services_deliver_with_auth_on() {
    // The cluster forms (it places an R3 stream) only if its routes authenticate each other.
    let cluster = NatsCluster::start_deploy(3).await;
    let ids = cluster.identities().unwrap().clone();
    for credentials in [
        "",
        &format!(",\"user\":\"{ROUTE_USER}\",\"pass\":\"guess\""),
    ] {
        let answer = route_answer(cluster.route_port(0), credentials).await;
        assert!(
            answer.contains("Authorization Violation"),
            "a route with credentials {credentials:?} is refused: {answer}"
        );
    }
    for i in 0..cluster.len() {
        let anonymous = async_nats::connect(cluster.node(i).url()).await;
        assert!(anonymous.is_err(), "node {i} refuses anonymous clients");
    }
    let settings = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    streams::apply(&cluster.jetstream().await, &settings)
        .await
        .expect("admin provisions R3 streams");
    let stack = Stack::start(&cluster.url(), &ids, &settings).await;
    stack.wait_ready().await;
    stack.delivers_a_webhook_to_sse().await;
    stack
        .stores_a_collection_row(&cluster.jetstream().await)
        .await;
    stack.stop().await;
    assert!(!cluster.logs().contains("Violation"), "{}", cluster.logs());
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the `openssl` CLI.
fn self_signed(dir: &Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI (this test generates its certificate with it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca-key.pem", "-out", "ca.pem"],
        &["-days", "1", "-subj", "/CN=herald-test-ca"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "server-key.pem", "-out", "server.csr"],
        &["-subj", "/CN=localhost"],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
}

#[tokio::test]
async fn the_tls_switch_encrypts_clients_and_services_connect_with_their_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    // The switch: single.conf with its `include ./tls.conf` line uncommented; tls.conf as
    // shipped, its certificate paths pointed at the generated files.
    let single = std::fs::read_to_string(deploy_conf("single.conf")).unwrap();
    let switched = single.replace("# include ./tls.conf", "include ./tls.conf");
    assert_ne!(
        single, switched,
        "single.conf has the documented TLS switch"
    );
    std::fs::write(dir.path().join("single.conf"), switched).unwrap();
    std::fs::copy(deploy_conf("auth.conf"), dir.path().join("auth.conf")).unwrap();
    let tls = std::fs::read_to_string(deploy_conf("tls.conf"))
        .unwrap()
        .replace("/etc/nats/certs", &dir.path().display().to_string());
    std::fs::write(dir.path().join("tls.conf"), tls).unwrap();
    let ids = Identities::random();
    let nats = NatsServer::start_with(Options {
        config: Some(dir.path().join("single.conf")),
        identities: Some(ids.clone()),
        ..Default::default()
    })
    .await;

    // A client that does not trust the certificate cannot connect, even with a password.
    let untrusting = ids.connect_options("ingest").connect(nats.url()).await;
    assert!(untrusting.is_err(), "a client without the CA is refused");
    // The services' own settings: HERALD_NATS__TLS_REQUIRED and HERALD_NATS__TLS_CA_FILE.
    let mut cfg = ids.nats_config("ingest", &nats.url());
    cfg.tls_required = true;
    cfg.tls_ca_file = Some(dir.path().join("ca.pem"));
    cfg.connect_timeout = Duration::from_secs(5);
    let client = herald_core::nats::connect_once(&cfg, "tls-ingest")
        .await
        .expect("ingest connects over TLS");
    assert!(client.server_info().tls_required, "the server requires TLS");
    client.flush().await.expect("a round trip over TLS");
    // Authentication still applies over TLS.
    let mut anonymous = cfg.clone();
    anonymous.user = None;
    anonymous.password = None;
    let refused = herald_core::nats::connect_once(&anonymous, "tls-anonymous").await;
    assert!(refused.is_err(), "an anonymous TLS client is refused");
}
