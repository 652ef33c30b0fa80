//! A real JetStream cluster of `nats-server` processes on loopback.
//!
//! Each node is a [`NatsServer`] (its own free client port, temp store and log) started with
//! `--cluster nats://127.0.0.1:<port> --cluster_name herald --routes <the others>` and named
//! `n1`, `n2`, …. [`NatsCluster::start`] returns once every node logged "Server is ready"
//! *and* JetStream can place a replicated stream (a meta leader is elected and every peer
//! has joined), so a test can provision R3 streams at once. Nodes can be killed (SIGKILL,
//! a crash) and restarted on the same ports and store, one at a time.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::NatsServer;
use crate::nats::{ClusterOptions, Identities, Options, ROUTE_USER, deploy_conf};

/// The cluster's name (`--cluster_name`).
pub const CLUSTER_NAME: &str = "herald";
/// How long the cluster may take to elect a JetStream meta leader with every peer.
const JETSTREAM_DEADLINE: Duration = Duration::from_secs(30);
/// The stream created (and deleted) to prove the cluster can place replicated streams.
const PROBE_STREAM: &str = "HERALD_CLUSTER_PROBE";

/// A running JetStream cluster. Every process is killed and every store deleted on drop.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    identities: Option<Identities>,
    /// Each node's cluster (route) port, for deploy/ clusters.
    route_ports: Vec<u16>,
    /// The generated node configs (deploy/ clusters), deleted on drop.
    _confs: Option<tempfile::TempDir>,
}

impl NatsCluster {
    /// Starts `size` nodes (`n1`…`n<size>`) routed to each other, and waits until JetStream
    /// can create a stream with `size` replicas.
    pub async fn start(size: usize) -> Self {
        // Routes name every node's cluster port up front, so those ports are chosen first.
        // Binding them all at once and releasing them together leaves only a tiny window in
        // which another process could take one; the client ports are learned from the logs.
        Self::start_inner(free_ports(size), None).await
    }

    /// Like [`start`](Self::start), one node per cluster port of `cluster_ports` (see
    /// [`free_ports`]), but node `from` dials node `to` at `route(from, to)`, e.g. the URL of
    /// a [`Proxy`](crate::proxy::Proxy) to `127.0.0.1:<cluster_ports[to]>` (to cut the link in
    /// a test). No node advertises a reachable route address, so nodes never dial each other
    /// directly: every route between two nodes passes one of the two URLs of that pair.
    pub async fn start_routed(
        cluster_ports: Vec<u16>,
        route: impl Fn(usize, usize) -> String,
    ) -> Self {
        Self::start_inner(cluster_ports, Some(&route)).await
    }

    async fn start_inner(
        cluster_ports: Vec<u16>,
        route: Option<&dyn Fn(usize, usize) -> String>,
    ) -> Self {
        let size = cluster_ports.len();
        assert!(size >= 1, "a cluster has at least one node");
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in cluster_ports.iter().enumerate() {
            let routes: Vec<String> = cluster_ports
                .iter()
                .enumerate()
                .filter(|(_, p)| *p != port)
                .map(|(j, p)| match route {
                    Some(route) => route(i, j),
                    None => format!("nats://127.0.0.1:{p}"),
                })
                .collect();
            let cluster = ClusterOptions {
                name: CLUSTER_NAME.to_owned(),
                port: *port,
                routes,
                // Gossiped route addresses would let nodes dial each other directly (an
                // "implicit route"), around the given URLs: advertise a closed port.
                advertise: route.map(|_| "127.0.0.1:1".to_owned()),
            };
            nodes.push(
                NatsServer::start_with(Options {
                    args: vec!["-n".to_owned(), Self::name(i)],
                    cluster: Some(cluster),
                    ..Options::default()
                })
                .await,
            );
        }
        let cluster = Self {
            nodes,
            identities: None,
            route_ports: cluster_ports,
            _confs: None,
        };
        cluster.wait_for_jetstream(size).await;
        cluster
    }

    /// Starts `size` nodes from the real `deploy/nats/cluster.conf` (identities and
    /// permissions from `deploy/nats/auth.conf`, authenticated routes), with fresh random
    /// passwords. Only the cluster port is rewritten (to a free loopback port); the route
    /// URLs come from the environment, as in docker-compose.cluster.yml.
    pub async fn start_deploy(size: usize) -> Self {
        assert!(
            (1..=3).contains(&size),
            "deploy/nats/cluster.conf names three nodes"
        );
        let identities = Identities::random();
        let confs = tempfile::Builder::new()
            .prefix("herald-nats-conf-")
            .tempdir()
            .expect("a temp dir for node configs");
        let text = std::fs::read_to_string(deploy_conf("cluster.conf")).expect("cluster.conf");
        let ports = free_ports(3);
        let mut nodes = Vec::with_capacity(size);
        for i in 0..size {
            let dir = confs.path().join(Self::name(i));
            std::fs::create_dir_all(&dir).expect("a node config dir");
            for include in ["auth.conf", "tls.conf"] {
                std::fs::copy(deploy_conf(include), dir.join(include)).expect("copy an include");
            }
            // (NatsServer copies this directory again, pointing store_dir at its store.)
            let conf = dir.join("cluster.conf");
            std::fs::write(&conf, node_conf(&text, &ports, i)).expect("write a node config");
            let opts = Options {
                args: vec!["-n".to_owned(), Self::name(i)],
                config: Some(conf),
                env: route_urls(&identities, &ports),
                identities: Some(identities.clone()),
                cluster: None,
            };
            nodes.push(NatsServer::start_with(opts).await);
        }
        let cluster = Self {
            nodes,
            identities: Some(identities),
            route_ports: ports[..size].to_vec(),
            _confs: Some(confs),
        };
        cluster.wait_for_jetstream(size).await;
        cluster
    }

    /// Node `i`'s cluster (route) port.
    pub fn route_port(&self, i: usize) -> u16 {
        self.route_ports[i]
    }

    /// The identities of a deploy/ cluster.
    pub fn identities(&self) -> Option<&Identities> {
        self.identities.as_ref()
    }

    /// Waits until a stream with `replicas` replicas can be created (then deletes it).
    async fn wait_for_jetstream(&self, replicas: usize) {
        let client = self.client().await;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(2));
        let config = stream::Config {
            name: PROBE_STREAM.to_owned(),
            subjects: vec!["herald.cluster.probe".to_owned()],
            storage: stream::StorageType::Memory,
            num_replicas: replicas,
            ..Default::default()
        };
        let placed =
            herald_launch::wait::until_ok(JETSTREAM_DEADLINE, || js.create_stream(config.clone()))
                .await;
        if let Err(err) = placed {
            panic!(
                "the JetStream cluster could not place an R{replicas} stream: {err}; node logs:\n{}",
                self.logs()
            );
        }
        js.delete_stream(PROBE_STREAM)
            .await
            .expect("delete the probe stream");
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` (0-based; its server name is `n<i+1>`).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// The server name of node `i`: `n<i+1>`.
    pub fn name(i: usize) -> String {
        format!("n{}", i + 1)
    }

    /// The index of the node called `name` (`n1` → 0).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let i: usize = name.strip_prefix('n')?.parse().ok()?;
        (1..=self.nodes.len()).contains(&i).then(|| i - 1)
    }

    /// Every node's client URL, comma-separated: what `HERALD_NATS__URL` takes.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client that knows every node (and fails over between them).
    pub async fn client(&self) -> async_nats::Client {
        let urls: Vec<String> = self.nodes.iter().map(|n| n.url()).collect();
        let opts = match &self.identities {
            Some(ids) => ids.connect_options("admin"),
            None => async_nats::ConnectOptions::new(),
        };
        opts.retry_on_initial_connect()
            .connect(urls)
            .await
            .expect("connect to the test cluster")
    }

    /// A JetStream context on a fresh [`client`](Self::client).
    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client().await)
    }

    /// The node index of `stream`'s current Raft leader, if it has one.
    pub async fn stream_leader(&self, js: &jetstream::Context, stream: &str) -> Option<usize> {
        let mut stream = js.get_stream(stream).await.ok()?;
        let info = stream.info().await.ok()?;
        let leader = info.cluster.as_ref()?.leader.as_deref()?;
        self.index_of(leader)
    }

    /// Kills node `i` with SIGKILL (a crash) and waits for it to exit.
    pub async fn kill(&mut self, i: usize) {
        self.nodes[i].kill().await;
    }

    /// Restarts node `i` on the same ports and store, and waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
    }

    /// Every node's last log lines (for assertion messages).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- {} ---\n{}", Self::name(i), n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `deploy/nats/cluster.conf` for node `i`: its cluster port on loopback.
fn node_conf(text: &str, ports: &[u16], i: usize) -> String {
    let out = text.replacen(
        "  port: 6222",
        &format!("  host: 127.0.0.1\n  port: {}", ports[i]),
        1,
    );
    assert!(
        !out.contains("port: 6222"),
        "the cluster port rewritten:\n{out}"
    );
    out
}

/// `HERALD_NATS_ROUTE_URL_<k>`: what docker-compose.cluster.yml composes from deploy/.env,
/// pointing at the loopback cluster ports.
fn route_urls(ids: &Identities, ports: &[u16]) -> Vec<(String, String)> {
    ports
        .iter()
        .enumerate()
        .map(|(k, port)| {
            (
                format!("HERALD_NATS_ROUTE_URL_{}", k + 1),
                format!(
                    "nats-route://{ROUTE_USER}:{}@127.0.0.1:{port}",
                    ids.route_password()
                ),
            )
        })
        .collect()
}

/// `n` distinct free loopback ports, held together and released together.
pub fn free_ports(n: usize) -> Vec<u16> {
    herald_launch::process::free_ports(n).expect("free loopback ports")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait;

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(3);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3);
    }

    #[tokio::test]
    async fn three_nodes_replicate_and_survive_a_killed_node() {
        let mut cluster = NatsCluster::start(3).await;
        assert_eq!(cluster.len(), 3);
        assert_eq!(cluster.index_of("n2"), Some(1));
        assert_eq!(cluster.index_of("n4"), None);
        let js = cluster.jetstream().await;
        js.create_stream(stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .expect("an R3 stream");
        js.publish("t.a", "1".into())
            .await
            .expect("publish")
            .await
            .expect("PubAck");
        let leader = cluster.stream_leader(&js, "T").await.expect("a leader");
        cluster.kill(leader).await;
        assert!(!cluster.node(leader).is_running());
        // A surviving node still answers with the acknowledged message, once a new leader
        // is elected.
        let survivor = (leader + 1) % 3;
        let js = cluster.node(survivor).jetstream().await;
        let messages = wait::until_ok("a new stream leader", JETSTREAM_DEADLINE, || async {
            let mut s = js.get_stream("T").await.map_err(|e| e.to_string())?;
            let info = s.info().await.map_err(|e| e.to_string())?;
            match info.cluster.as_ref().and_then(|c| c.leader.as_deref()) {
                Some(_) => Ok(info.state.messages),
                None => Err("no leader yet".to_owned()),
            }
        })
        .await;
        assert_eq!(messages, 1);
        cluster.restart(leader).await;
        assert!(cluster.node(leader).is_running());
    }
}
