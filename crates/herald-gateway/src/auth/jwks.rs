//! The JWK Set at `jwt.jwks_url`: fetched at start-up, every `jwks_refresh`, and when a token
//! names a `kid` it does not hold (at most once per `jwks_min_refresh`, however many such
//! tokens arrive). Only `https` URLs are accepted (plain `http` to a loopback host is allowed,
//! for local identity providers and tests), redirects included. A fetched set without a usable
//! key never replaces the keys in use.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use reqwest::Url;
use reqwest::redirect::{Attempt, Policy};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Authenticator;
use crate::error::Error;

/// The longest one fetch of the JWK Set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Why a fetch of the JWK Set changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed, or the answer was not a JWK Set.
    #[error("fetching the JWK Set failed")]
    Http(#[from] reqwest::Error),
    /// The set holds no RSA or EC P-256 key with a `kid`: the previous keys stay.
    #[error("the fetched JWK Set holds no usable key; keeping the previous keys")]
    NoUsableKey,
    /// Fetched less than `jwks_min_refresh` ago.
    #[error("the JWK Set was fetched less than jwks_min_refresh ago")]
    TooSoon,
}

/// A remote JWK Set.
pub(super) struct Remote {
    url: Url,
    http: reqwest::Client,
    min_refresh: Duration,
    /// When the set was last fetched for an unknown `kid`; held while fetching, so concurrent
    /// unknown `kid`s wait for the one fetch in flight instead of starting their own.
    last: Mutex<Option<Instant>>,
}

/// Whether `url` may serve keys: `https`, or `http` to a loopback host.
pub fn allowed_url(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url.host_str().is_some_and(|host| {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

fn redirect(attempt: Attempt) -> reqwest::redirect::Action {
    if attempt.previous().len() >= MAX_REDIRECTS {
        attempt.error("too many redirects")
    } else if allowed_url(attempt.url()) {
        attempt.follow()
    } else {
        attempt.error("the JWK Set may only be fetched over https")
    }
}

impl Remote {
    pub(super) fn new(raw: &str, min_refresh: Duration) -> Result<Self, Error> {
        let url =
            Url::parse(raw).map_err(|e| Error::Jwt(format!("jwt.jwks_url is not a URL: {e}")))?;
        if !allowed_url(&url) {
            return Err(Error::Jwt(
                "jwt.jwks_url must be https (plain http only to 127.0.0.1, [::1] or localhost)"
                    .into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(Policy::custom(redirect))
            .build()
            .map_err(|e| Error::Jwt(format!("cannot build the JWK Set client: {e}")))?;
        Ok(Self {
            url,
            http,
            min_refresh,
            last: Mutex::new(None),
        })
    }

    async fn fetch(&self) -> Result<JwkSet, reqwest::Error> {
        self.http
            .get(self.url.clone())
            .send()
            .await?
            .error_for_status()?
            .json::<JwkSet>()
            .await
    }

    /// Fetches the set into `auth`. `gated` (an unknown `kid`): unless such a fetch was made
    /// less than `min_refresh` ago. Returns the number of usable keys installed.
    async fn refresh(&self, auth: &Authenticator, gated: bool) -> Result<usize, FetchError> {
        let mut last = self.last.lock().await;
        if gated {
            if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
                return Err(FetchError::TooSoon);
            }
            *last = Some(Instant::now());
        }
        let set = self.fetch().await?;
        match auth.set_jwks(&set) {
            0 => Err(FetchError::NoUsableKey),
            n => Ok(n),
        }
    }

    /// A token named a `kid` the set does not hold: fetch again, unless that was done less
    /// than `min_refresh` ago.
    pub(super) async fn refetch_for_unknown_kid(&self, auth: &Authenticator) {
        match self.refresh(auth, true).await {
            Ok(keys) => tracing::info!(keys, "JWK Set fetched again for an unknown kid"),
            Err(FetchError::TooSoon) => {}
            Err(err) => {
                tracing::warn!(error = %herald_core::error_chain(&err), "fetching the JWK Set failed")
            }
        }
    }
}

impl Authenticator {
    /// Fetches `jwt.jwks_url` now (whatever `jwks_min_refresh` says) and installs its usable
    /// keys; a set without one changes nothing. `Ok(0)` without a `jwks_url`.
    pub async fn refresh_jwks(&self) -> Result<usize, FetchError> {
        match &self.remote {
            Some(remote) => remote.refresh(self, false).await,
            None => Ok(0),
        }
    }
}

/// Fetches the JWK Set now and every `every` into `auth`, until `shutdown`. A failed fetch
/// keeps the previous keys and is retried sooner (30 s at most). `url` (the configured
/// `jwt.jwks_url`, which `auth` was built with) names the set in logs.
pub async fn refresh_jwks(
    auth: Arc<Authenticator>,
    url: String,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let wait = match auth.refresh_jwks().await {
            Ok(keys) => {
                tracing::info!(%url, keys, "JWK Set loaded");
                every
            }
            Err(err) => {
                tracing::warn!(%url, error = %herald_core::error_chain(&err), "fetching the JWK Set failed");
                every.min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
