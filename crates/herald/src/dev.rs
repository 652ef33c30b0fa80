//! The local development defaults `herald up` fills in when nothing is configured: one demo
//! tenant, two Sequin-style webhook sources and a publish-API key.
//!
//! These credentials are public (they are in the README) and only for a stack bound to
//! 127.0.0.1. Configure real ones for anything else: `herald up` never overrides configured
//! sources or keys.

use std::collections::BTreeMap;

use herald_core::names::TenantId;
use herald_core::secret::Secret;
use herald_ingest::config::{Format, SourceConfig, Verify};

/// The demo tenant.
pub const TENANT: &str = "demo";
/// The bearer token of the `demo-sequin` source (what real Sequin sends).
pub const SEQUIN_TOKEN: &str = "dev-sequin-token";
/// The HMAC secret of the `demo-signed` source (GitHub-style `X-Hub-Signature-256`).
pub const WEBHOOK_SECRET: &str = "dev-webhook-secret";
/// The publish-API key of the demo tenant.
pub const API_KEY: &str = "dev-api-key";
/// The gateway's HS256 secret for dev tokens.
pub const JWT_SECRET: &str = "dev-jwt-secret-change-me";

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap_or_else(|_| unreachable!("a valid literal"))
}

/// Adds the demo sources and key to an ingest config that has none. Returns whether it did.
pub fn apply_ingest_defaults(cfg: &mut herald_ingest::Config) -> bool {
    if !cfg.sources.is_empty() || !cfg.api_keys.is_empty() {
        return false;
    }
    let sequin = |verify, secret: &str| SourceConfig {
        tenant: tenant(),
        format: Format::Sequin,
        verify,
        secrets: vec![Secret::new(secret)],
        topic: None,
        action: None,
        id_header: None,
        action_header: None,
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
            },
            WEBHOOK_SECRET,
        ),
    );
    cfg.api_keys = BTreeMap::from([(tenant(), vec![Secret::new(API_KEY)])]);
    true
}
