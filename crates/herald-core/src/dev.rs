//! The public development credentials `herald up` uses when nothing is configured, and the
//! one check every service runs at start-up: a known dev credential is refused unless the
//! service listens on loopback only.
//!
//! These values are in the README and in this source: anyone can sign a webhook, publish an
//! event or mint a gateway token with them. They are safe only on a stack nobody else can
//! reach.

use std::io;
use std::net::SocketAddr;

use crate::secret::Secret;

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

/// Every public dev credential, with the name an error message gives it.
pub const CREDENTIALS: &[(&str, &str)] = &[
    ("the dev Sequin token", SEQUIN_TOKEN),
    ("the dev webhook secret", WEBHOOK_SECRET),
    ("the dev API key", API_KEY),
    ("the dev JWT secret", JWT_SECRET),
];

/// The name of the public dev credential `value` is, if it is one.
pub fn credential_name(value: &str) -> Option<&'static str> {
    CREDENTIALS
        .iter()
        .find(|(_, known)| *known == value)
        .map(|(name, _)| *name)
}

/// A public dev credential on a listener other hosts can reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "HERALD_{service_env}__LISTEN={addr} is not loopback, and {service} is configured with \
     {credential}, which is public; configure a real secret or bind 127.0.0.1"
)]
pub struct ExposedDevCredential {
    /// The service (`ingest`, `gateway`, …).
    pub service: String,
    /// The service name as it appears in environment variables (`INGEST`).
    pub service_env: String,
    /// Where the service listens.
    pub addr: SocketAddr,
    /// Which credential (its name, never its value).
    pub credential: &'static str,
}

/// Refuses a public dev credential among `secrets` unless `addr` is a loopback address.
///
/// Every service calls this from its `App::build` with its bound address and every secret it
/// was configured with. The error is an [`io::Error`] of kind
/// [`io::ErrorKind::PermissionDenied`] wrapping [`ExposedDevCredential`], so each service's
/// existing I/O error variant carries it.
pub fn refuse_exposed<'a>(
    service: &str,
    addr: SocketAddr,
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> io::Result<()> {
    if addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    let found = secrets
        .into_iter()
        .find_map(|s| credential_name(s.expose()));
    match found {
        None => Ok(()),
        Some(credential) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            ExposedDevCredential {
                service: service.to_owned(),
                service_env: service.to_ascii_uppercase(),
                addr,
                credential,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_dev_credential_on_a_public_listener_is_refused_by_name_never_by_value() {
        let secrets = [Secret::new("a-real-secret"), Secret::new(JWT_SECRET)];
        let err = refuse_exposed("gateway", addr("0.0.0.0:8080"), &secrets).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let msg = err.to_string();
        assert!(
            msg.contains("HERALD_GATEWAY__LISTEN=0.0.0.0:8080 is not loopback")
                && msg.contains("the dev JWT secret"),
            "{msg}"
        );
        assert!(!msg.contains(JWT_SECRET), "{msg}");
        let v6 = refuse_exposed("ingest", addr("[::]:8081"), &[Secret::new(API_KEY)]);
        assert!(v6.is_err());
    }

    #[test]
    fn loopback_or_real_secrets_are_fine() {
        let dev = [Secret::new(API_KEY)];
        assert!(refuse_exposed("ingest", addr("127.0.0.1:8081"), &dev).is_ok());
        assert!(refuse_exposed("ingest", addr("[::1]:8081"), &dev).is_ok());
        assert!(refuse_exposed("ingest", addr("[::ffff:127.0.0.1]:8081"), &dev).is_ok());
        let real = [Secret::new("s3cret-from-the-vault")];
        assert!(refuse_exposed("ingest", addr("0.0.0.0:8081"), &real).is_ok());
    }
}
