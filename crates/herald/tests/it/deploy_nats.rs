//! deploy/ runs NATS with identities: each service connects as its own user with its own
//! password from deploy/.env (written by deploy/gen-env), the NATS client port is not
//! published on the host unless the loopback-only override is added, and every variable the
//! NATS configs read is supplied by the compose files.

use std::collections::BTreeSet;

use crate::deploy::{compose, deploy};

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap()
}

const FILES: [&str; 2] = ["docker-compose.yml", "docker-compose.cluster.yml"];

/// The `$VARIABLE` references of a NATS config file.
fn conf_variables(file: &str) -> BTreeSet<String> {
    read(file)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ',' || c == '"'))
        .filter_map(|w| w.strip_prefix('$'))
        .filter(|w| w.starts_with("HERALD_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_service_connects_to_nats_as_its_own_identity() {
    let auth = read("nats/auth.conf");
    for file in FILES {
        let doc = compose(file);
        let mut users = BTreeSet::new();
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            let name = name.as_str().unwrap();
            let Some(cmd) = svc["command"][0]
                .as_str()
                .filter(|c| c.starts_with("herald"))
            else {
                continue;
            };
            let user = if cmd == "herald" { "admin" } else { name };
            let env = &svc["environment"];
            assert_eq!(
                env["HERALD_NATS__USER"].as_str(),
                Some(user),
                "{file}: {name}"
            );
            let var = format!("HERALD_NATS_{}_PASSWORD", user.to_ascii_uppercase());
            assert_eq!(
                env["HERALD_NATS__PASSWORD"].as_str(),
                Some(format!("${{{var}:?run deploy/gen-env}}").as_str()),
                "{file}: {name} reads its own password from deploy/.env"
            );
            if user != "admin" {
                assert_eq!(
                    env["HERALD_NATS__INBOX_PREFIX"].as_str(),
                    Some(format!("_INBOX_{user}").as_str()),
                    "{file}: {name} uses the inbox only it may subscribe to"
                );
            }
            assert!(
                auth.contains(&format!("user: {user}\n")),
                "auth.conf has {user}"
            );
            users.insert(user);
        }
        assert_eq!(
            users,
            BTreeSet::from(["admin", "gateway", "ingest", "notifier", "stats"]),
            "{file}: every identity is used (admin by `herald provision`)"
        );
        assert_eq!(
            auth.matches("user: ").count(),
            users.len(),
            "no other identity"
        );
    }
}

#[test]
fn the_nats_port_is_published_only_on_loopback_and_only_by_the_override() {
    for file in FILES {
        let doc = compose(file);
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            if svc["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("nats:"))
            {
                assert!(
                    svc.get("ports").is_none(),
                    "{file}: {name:?} publishes no port on the host"
                );
            }
        }
    }
    let text = read("docker-compose.nats-port.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let ports = doc["services"]["nats"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].as_str(), Some("127.0.0.1:4222:4222"));
}

#[test]
fn the_nats_configs_read_only_variables_the_compose_files_supply() {
    for (file, confs) in [
        ("docker-compose.yml", ["nats/single.conf", "nats/auth.conf"]),
        (
            "docker-compose.cluster.yml",
            ["nats/cluster.conf", "nats/auth.conf"],
        ),
    ] {
        let doc = compose(file);
        let mut wanted = BTreeSet::new();
        for conf in confs {
            wanted.extend(conf_variables(conf));
        }
        assert!(
            wanted.len() >= 5,
            "{file}: the configs read the passwords: {wanted:?}"
        );
        for (name, svc) in doc["services"].as_mapping().unwrap() {
            if !svc["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("nats:"))
            {
                continue;
            }
            let volumes = format!("{:?}", svc["volumes"]);
            for conf in confs {
                assert!(volumes.contains(conf), "{file}: {name:?} mounts {conf}");
            }
            for var in &wanted {
                assert!(
                    svc["environment"].get(var.as_str()).is_some(),
                    "{file}: {name:?} gets {var}, which its config reads"
                );
            }
        }
    }
}

#[test]
fn gen_env_writes_every_secret_the_compose_files_require_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(".env");
    let gen_env = |extra: &[&str]| {
        std::process::Command::new(deploy("gen-env"))
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(gen_env(&[]).status.success());
    let first = std::fs::read_to_string(&out).unwrap();
    let vars: BTreeSet<&str> = first
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            assert!(v.len() >= 64, "{k} has 32 random bytes");
            k
        })
        .collect();
    for file in FILES {
        let text = read(file);
        for required in text.split("${").skip(1) {
            let Some((var, _)) = required.split_once(":?") else {
                continue;
            };
            if !var.contains(['}', '-']) {
                assert!(
                    vars.contains(var),
                    "gen-env writes {var}, required by {file}"
                );
            }
        }
    }
    assert!(vars.contains("HERALD_NATS_ROUTE_PASSWORD"));
    let refused = gen_env(&[]);
    assert!(
        !refused.status.success(),
        "an existing .env is not overwritten"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
    assert!(gen_env(&["--force"]).status.success());
    assert_ne!(
        std::fs::read_to_string(&out).unwrap(),
        first,
        "fresh secrets"
    );
    let gitignore = std::fs::read_to_string(deploy("../.gitignore")).unwrap();
    assert!(
        gitignore.lines().any(|l| l == "/deploy/.env"),
        ".env is git-ignored"
    );
}
