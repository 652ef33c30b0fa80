//! `herald token`: mint an HS256 JWT the gateway accepts.

use std::time::Duration;

use herald_core::names::TenantId;
use herald_gateway::auth::Claims;
use jsonwebtoken::{EncodingKey, Header};

/// Options of `herald token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The tenant the token is scoped to.
    #[arg(long)]
    pub tenant: TenantId,
    /// Topics granted, comma-separated; `*` for all.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    pub topics: Vec<String>,
    /// The subject (user id), used for per-user connection limits.
    #[arg(long, default_value = "cli")]
    pub sub: String,
    /// Lifetime, e.g. `15m`, `12h`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Let the token see who is connected to presence topics (claim `presence: true`);
    /// without it, presence answers carry counts only.
    #[arg(long)]
    pub presence: bool,
    /// The gateway's HS256 secret.
    #[arg(long, env = "HERALD_GATEWAY__JWT__SECRET", hide_env_values = true)]
    pub secret: String,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[error("could not sign the token")]
pub struct MintError(#[from] jsonwebtoken::errors::Error);

/// Signs a token for `tenant` with `topics`, valid for `ttl`.
pub fn mint(
    secret: &str,
    sub: &str,
    tenant: &TenantId,
    topics: &[String],
    ttl: Duration,
) -> Result<String, MintError> {
    mint_with(secret, claims(sub, tenant, topics, ttl))
}

/// The claims of a token for `tenant` with `topics`, valid for `ttl` from now (no presence
/// names).
pub fn claims(sub: &str, tenant: &TenantId, topics: &[String], ttl: Duration) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    Claims {
        sub: sub.to_owned(),
        tenant: tenant.clone(),
        topics: topics.to_vec(),
        exp: now + ttl.as_secs(),
        presence: false,
    }
}

/// Signs `claims`.
pub fn mint_with(secret: &str, claims: Claims) -> Result<String, MintError> {
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// Prints a fresh token.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let claims = Claims {
        presence: args.presence,
        ..claims(&args.sub, &args.tenant, &args.topics, args.ttl)
    };
    println!("{}", mint_with(&args.secret, claims)?);
    Ok(())
}
