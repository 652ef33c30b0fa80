//! The local development defaults `herald up` fills in when nothing is configured: one demo
//! tenant, two Sequin-style webhook sources, a publish-API key and the gateway's HS256
//! secret (the values live in [`herald_core::dev`], where every service can refuse them).
//!
//! These credentials are public (they are in the README) and only for a stack bound to
//! loopback. `herald up` uses them all or none: only when no source, no API key and no JWT
//! key source (secret, public key file, JWKS file or URL) is configured, and then it refuses
//! any listener that is not loopback.

use std::collections::BTreeMap;

use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_core::state::{CollectionConfig, StateConfig};
use herald_ingest::config::{Format, SourceConfig, Verify};

pub use herald_core::dev::{API_KEY, JWT_SECRET, SEQUIN_TOKEN, TENANT, WEBHOOK_SECRET};

/// The demo's topic (`herald up --demo` posts changes of a `leads` table): a presence topic
/// under `herald up` with the dev credentials, so the dashboard shows who is online.
pub const DEMO_TOPIC: &str = "leads";

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap_or_else(|_| unreachable!("a valid literal"))
}

/// Whether nothing that authenticates anyone is configured: no webhook source, no API key,
/// no JWT key source of any kind. Only then may the dev credentials be used.
pub fn nothing_configured(
    ingest: &herald_ingest::Config,
    gateway: &herald_gateway::Config,
) -> bool {
    let jwt = &gateway.jwt;
    ingest.sources.is_empty()
        && ingest.api_keys.is_empty()
        && jwt.secret.is_none()
        && jwt.public_key_file.is_none()
        && jwt.jwks_file.is_none()
        && jwt.jwks_url.is_none()
}

/// Fills in every dev credential (the demo sources, the API key and the gateway's JWT secret)
/// when [`nothing_configured`]. Returns whether it did; when it did not, nothing was changed.
pub fn apply_defaults(
    ingest: &mut herald_ingest::Config,
    gateway: &mut herald_gateway::Config,
) -> bool {
    if !nothing_configured(ingest, gateway) {
        return false;
    }
    gateway.jwt.secret = Some(Secret::new(JWT_SECRET));
    apply_ingest_defaults(ingest);
    true
}

/// The demo's collections, declared when `herald up` runs on the dev credentials and nothing
/// is in `[state]`: `leads` rows by `id` (the demo's Sequin table) and `services` by `name`
/// (the demo's status upserts), which the dashboard shows as live tables. Returns whether it
/// declared them.
pub fn apply_state_defaults(state: &mut StateConfig) -> bool {
    if !state.collections.is_empty() {
        return false;
    }
    let key = |k: &str| CollectionConfig { key: k.into() };
    state.collections.insert(
        TENANT.into(),
        BTreeMap::from([
            ("leads".into(), key("id")),
            ("services".into(), key("name")),
        ]),
    );
    true
}

fn apply_ingest_defaults(cfg: &mut herald_ingest::Config) {
    let sequin = |verify, secret: &str| SourceConfig {
        tenant: tenant(),
        format: Format::Sequin,
        verify,
        secrets: vec![Secret::new(secret)],
        topic: None,
        action: None,
        id_header: None,
        action_header: None,
        topic_header: None,
        to: None,
    };
    cfg.sources.insert(
        "demo-sequin".into(),
        sequin(
            Verify::Bearer {
                header: "Authorization".into(),
                prefix: "Bearer ".into(),
            },
            SEQUIN_TOKEN,
        ),
    );
    cfg.sources.insert(
        "demo-signed".into(),
        sequin(
            Verify::HmacSha256 {
                header: "X-Hub-Signature-256".into(),
                prefix: "sha256=".into(),
                timestamp_header: None,
                tolerance: herald_core::signature::DEFAULT_TOLERANCE,
            },
            WEBHOOK_SECRET,
        ),
    );
    cfg.api_keys = BTreeMap::from([(tenant(), vec![Secret::new(API_KEY)])]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(tweak: impl FnOnce(&mut herald_ingest::Config, &mut herald_gateway::Config)) -> bool {
        let mut ingest = herald_ingest::Config::default();
        let mut gateway = herald_gateway::Config::default();
        tweak(&mut ingest, &mut gateway);
        let (sources, keys) = (ingest.sources.len(), ingest.api_keys.len());
        let jwt = gateway.jwt.secret.clone();
        let applied = apply_defaults(&mut ingest, &mut gateway);
        if !applied {
            assert_eq!(
                (ingest.sources.len(), ingest.api_keys.len()),
                (sources, keys)
            );
            assert_eq!(gateway.jwt.secret, jwt, "nothing changed");
        }
        applied
    }

    #[test]
    fn any_configured_key_source_turns_every_dev_credential_off() {
        assert!(apply(|_, _| {}));
        assert!(!apply(
            |_, g| g.jwt.secret = Some(Secret::new("real-secret-0123456789"))
        ));
        assert!(!apply(|_, g| g.jwt.public_key_file = Some("key.pem".into())));
        assert!(!apply(|_, g| g.jwt.jwks_file = Some("jwks.json".into())));
        assert!(!apply(
            |_, g| g.jwt.jwks_url = Some("https://idp.example/jwks".into())
        ));
        assert!(!apply(|i, _| {
            i.api_keys
                .insert(tenant(), vec![Secret::new("real-key-0123456789")]);
        }));
    }

    #[test]
    fn the_demo_collections_are_declared_unless_state_is_configured() {
        let mut state = StateConfig::default();
        assert!(apply_state_defaults(&mut state));
        let collections = state.collections().expect("valid");
        let topic = |t: &str| herald_core::names::Topic::parse(t.to_owned()).expect("topic");
        assert_eq!(
            collections
                .get(&tenant(), &topic("leads"))
                .map(ToString::to_string),
            Some("id".to_owned())
        );
        assert_eq!(
            collections
                .get(&tenant(), &topic("services"))
                .map(ToString::to_string),
            Some("name".to_owned())
        );
        let mut own = StateConfig::default();
        own.collections
            .entry("acme".into())
            .or_default()
            .insert("orders".into(), CollectionConfig { key: "pk".into() });
        let before = own.clone();
        assert!(!apply_state_defaults(&mut own));
        assert_eq!(own, before, "a configured [state] is left as it is");
    }

    #[test]
    fn the_dev_credentials_come_all_together() {
        let mut ingest = herald_ingest::Config::default();
        let mut gateway = herald_gateway::Config::default();
        assert!(apply_defaults(&mut ingest, &mut gateway));
        assert_eq!(
            gateway.jwt.secret.as_ref().map(Secret::expose),
            Some(JWT_SECRET)
        );
        assert_eq!(ingest.sources.len(), 2);
        assert_eq!(ingest.api_keys[&tenant()][0].expose(), API_KEY);
    }
}
