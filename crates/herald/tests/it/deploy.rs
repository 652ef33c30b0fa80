//! deploy/ is checked against the code (Docker cannot run here): the compose files parse,
//! every HERALD_* variable they or .env.example set is one the binaries accept, and ports,
//! healthchecks and scrape targets line up with the services' defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use herald_core::service::CommonConfig;
use serde_json::Value;

/// A file under the workspace's `deploy/`.
pub(crate) fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

/// Every configuration key each service accepts: the shared sections plus its own, as
/// serialized from the defaults.
fn accepted() -> BTreeMap<&'static str, Value> {
    let common = serde_json::to_value(CommonConfig::default()).unwrap();
    let with = |section: &str, cfg: Value| {
        let mut v = common.clone();
        v[section] = cfg;
        v
    };
    BTreeMap::from([
        (
            "ingest",
            with(
                "ingest",
                serde_json::to_value(herald_ingest::Config::default()).unwrap(),
            ),
        ),
        (
            "gateway",
            with(
                "gateway",
                serde_json::to_value(herald_gateway::Config::default()).unwrap(),
            ),
        ),
        (
            "notifier",
            with(
                "notifier",
                serde_json::to_value(herald_notifier::Config::default()).unwrap(),
            ),
        ),
        (
            "stats",
            with(
                "stats",
                serde_json::to_value(herald_stats::Config::default()).unwrap(),
            ),
        ),
    ])
}

/// Whether `HERALD_A__B__C` names a key of `cfg`.
fn accepts(cfg: &Value, var: &str) -> bool {
    let Some(rest) = var.strip_prefix("HERALD_") else {
        return false;
    };
    let mut node = cfg;
    for part in rest.to_ascii_lowercase().split("__") {
        match node.get(part) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

fn default_port(service: &str) -> u16 {
    let cfg = &accepted()[service];
    let listen: std::net::SocketAddr = cfg[service]["listen"].as_str().unwrap().parse().unwrap();
    listen.port()
}

/// A compose file with its merge keys applied (also inside services and their environment).
pub(crate) fn compose(file: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(deploy(file)).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    v.apply_merge().unwrap();
    // Merge keys inside services too (`<<: *herald`, `<<: *herald-env`).
    if let Some(services) = v.get_mut("services").and_then(|s| s.as_mapping_mut()) {
        for (_, svc) in services.iter_mut() {
            svc.apply_merge().unwrap();
            if let Some(env) = svc.get_mut("environment") {
                env.apply_merge().unwrap();
            }
        }
    }
    v
}

#[test]
fn compose_files_match_the_code() {
    let accepted = accepted();
    for file in ["docker-compose.yml", "docker-compose.cluster.yml"] {
        let doc = compose(file);
        let services = doc["services"].as_mapping().unwrap();
        let mut herald_services = 0;
        for (name, svc) in services {
            let name = name.as_str().unwrap();
            if svc["command"][0].as_str() == Some("herald") {
                // `herald provision`: the shared sections only.
                let common = serde_json::to_value(CommonConfig::default()).unwrap();
                for (key, _) in svc["environment"].as_mapping().unwrap() {
                    let key = key.as_str().unwrap();
                    assert!(accepts(&common, key), "{file}: {name} sets {key}");
                }
                continue;
            }
            let Some(binary) = svc["command"][0]
                .as_str()
                .filter(|c| c.starts_with("herald-"))
            else {
                continue;
            };
            herald_services += 1;
            let service = binary.trim_start_matches("herald-");
            assert_eq!(service, name, "{file}: service {name} runs {binary}");
            let cfg = &accepted[service];
            let env = svc["environment"].as_mapping().unwrap();
            for (key, value) in env {
                let key = key.as_str().unwrap();
                assert!(
                    accepts(cfg, key),
                    "{file}: {name} sets {key}, which herald-{service} does not accept"
                );
                if key == format!("HERALD_{}__LISTEN", service.to_ascii_uppercase()) {
                    let port = value
                        .as_str()
                        .unwrap()
                        .rsplit(':')
                        .next()
                        .unwrap()
                        .parse::<u16>()
                        .unwrap();
                    assert_eq!(
                        port,
                        default_port(service),
                        "{file}: {name} listens on its documented port"
                    );
                    let check = svc["healthcheck"]["test"].as_sequence().unwrap();
                    let url = check.last().unwrap().as_str().unwrap();
                    assert_eq!(
                        check[1].as_str(),
                        Some("herald"),
                        "healthchecks use `herald probe`"
                    );
                    assert_eq!(
                        url,
                        format!("http://127.0.0.1:{port}/readyz"),
                        "{file}: {name} healthcheck"
                    );
                }
            }
        }
        assert_eq!(herald_services, 4, "{file} runs all four services");
    }
}

#[test]
fn env_example_only_sets_accepted_variables() {
    let accepted = accepted();
    let text = std::fs::read_to_string(deploy(".env.example")).unwrap();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (key, _) = line.split_once('=').unwrap();
        if key == "HERALD_IMAGE" || is_nats_secret(key) {
            continue; // compose interpolation, not a service setting
        }
        assert!(
            accepted.values().any(|cfg| accepts(cfg, key)),
            ".env.example sets {key}, which no service accepts"
        );
    }
}

/// `HERALD_NATS_<IDENTITY>_PASSWORD`: read by the NATS configs and interpolated by compose.
fn is_nats_secret(key: &str) -> bool {
    key.starts_with("HERALD_NATS_") && !key.starts_with("HERALD_NATS__")
}

#[test]
fn herald_env_example_only_sets_accepted_variables() {
    let accepted = accepted();
    let text = std::fs::read_to_string(deploy("herald.env.example")).unwrap();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (key, _) = line.split_once('=').unwrap();
        assert!(
            accepted.values().any(|cfg| accepts(cfg, key)),
            "herald.env.example sets {key}, which no service accepts"
        );
    }
}

#[test]
fn prometheus_scrapes_every_service_on_its_port() {
    let text = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
    for service in ["ingest", "gateway", "notifier", "stats"] {
        let target = format!("{service}:{}", default_port(service));
        assert!(text.contains(&target), "prometheus.yml scrapes {target}");
    }
}

#[test]
fn the_image_ships_every_binary_the_compose_files_run() {
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    for bin in [
        "herald",
        "herald-ingest",
        "herald-gateway",
        "herald-notifier",
        "herald-stats",
    ] {
        assert!(
            dockerfile.contains(&format!("target/release/{bin} "))
                || dockerfile.contains(&format!("target/release/{bin}\n")),
            "{bin} copied"
        );
        assert!(dockerfile.contains(&format!("-p {bin} ")), "{bin} built");
    }
    assert!(dockerfile.contains("USER 10001"), "runs as non-root");
}
