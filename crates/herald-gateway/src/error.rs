//! Errors: every refused connection maps to one status and one stable code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::http::error_response;

/// Why a connection or poll was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no token, or a token that is malformed, expired or wrongly signed.
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    /// 403: a topic outside the token's `topics` claim.
    #[error("the token does not grant topic {0:?}")]
    Forbidden(String),
    /// 403: a WebSocket upgrade authenticated by cookie from an origin that is not allowed
    /// (or with no `Origin` at all).
    #[error("a WebSocket authenticated by cookie must come from an allowed origin")]
    OriginForbidden,
    /// 400: a malformed query parameter, cursor or topic.
    #[error("{0}")]
    BadRequest(String),
    /// 429: too many open connections for this user or tenant.
    #[error("too many open connections for this {0}")]
    TooManyConnections(&'static str),
    /// 503: new connections arrive faster than the configured rate.
    #[error("too many new connections; retry later")]
    RateLimited {
        /// Seconds for `Retry-After`.
        retry_after: u32,
    },
    /// 503: the gateway has not reached JetStream yet.
    #[error("the gateway is not connected to the event store yet; retry later")]
    NotReady,
    /// 404: no stats document for this topic yet.
    #[error("nothing has been counted for this topic yet")]
    NoStats,
    /// 409/410: a `before` cursor that cannot be paged back from (`GET /v1/history`): the
    /// stream was recreated or the cursor is past its end (409), or it is out of retention
    /// (410). The same reasons a stream answers with `reset`.
    #[error("the cursor cannot be paged back from ({}): fetch the latest history without `before`", .0.as_str())]
    CursorReset(crate::frame::ResetReason),
    /// 400: a topic asked for as a collection is not one (`/v1/snapshot`, `snapshot=1`).
    #[error("{0}")]
    NotACollection(String),
    /// 410: a page of a snapshot this gateway no longer holds (`/v1/snapshot` with `cursor`).
    #[error("this snapshot is no longer held; start again without `cursor`")]
    SnapshotExpired,
    /// 503: the gateway is loading its mirror of the collections.
    #[error("the gateway is loading the collections; retry shortly")]
    StateLoading,
    /// 404: a topic that is not a presence topic (`GET /v1/presence`).
    #[error("topic {0:?} is not a presence topic")]
    NotPresenceTopic(String),
    /// 404: a tenant with no public topics (`/v1/public/<tenant>/…`).
    #[error("this tenant has no public topics")]
    NotPublic,
    /// 403: a topic that is not public (`/v1/public/<tenant>/…`).
    #[error("topic {0:?} is not public")]
    TopicNotPublic(String),
    /// 429: too many open public connections from this address; with `Retry-After`.
    #[error("too many open public connections from this address")]
    TooManyPublic,
    /// 500: something the gateway cannot explain to the client (the cause is logged).
    #[error("internal error")]
    Internal,
}

/// Why a token was refused. One variant per failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the header, cookie or query.
    #[error("missing access token")]
    Missing,
    /// Not a JWT, or claims of the wrong shape.
    #[error("malformed access token")]
    Malformed,
    /// The signature does not verify (or the algorithm is not accepted).
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("the access token is not from the expected issuer")]
    WrongIssuer,
    /// `aud` is missing or does not name the configured audience.
    #[error("the access token is not meant for this audience")]
    WrongAudience,
    /// No key is configured for the token's algorithm.
    #[error("token authentication is not configured")]
    NotConfigured,
    /// A refreshed token names another user or tenant than the session.
    #[error("the new token belongs to another user or tenant")]
    IdentityChanged,
}

impl AuthError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Malformed => "malformed_token",
            Self::BadSignature => "invalid_token",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongIssuer => "invalid_issuer",
            Self::WrongAudience => "invalid_audience",
            Self::NotConfigured => "auth_not_configured",
            Self::IdentityChanged => "identity_changed",
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::OriginForbidden | Self::TopicNotPublic(_) => {
                StatusCode::FORBIDDEN
            }
            Self::NotPresenceTopic(_) | Self::NotPublic => StatusCode::NOT_FOUND,
            Self::TooManyPublic => StatusCode::TOO_MANY_REQUESTS,
            Self::BadRequest(_) | Self::NotACollection(_) => StatusCode::BAD_REQUEST,
            Self::SnapshotExpired => StatusCode::GONE,
            Self::TooManyConnections(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::RateLimited { .. } | Self::NotReady | Self::StateLoading => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::NoStats => StatusCode::NOT_FOUND,
            Self::CursorReset(crate::frame::ResetReason::OutOfRetention) => StatusCode::GONE,
            Self::CursorReset(_) => StatusCode::CONFLICT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(a) => a.code(),
            Self::Forbidden(_) => "topic_forbidden",
            Self::OriginForbidden => "origin_forbidden",
            Self::BadRequest(_) => "bad_request",
            Self::TooManyConnections(_) => "too_many_connections",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotReady => "not_ready",
            Self::NoStats => "no_stats",
            Self::NotACollection(_) => "not_a_collection",
            Self::SnapshotExpired => "snapshot_expired",
            Self::StateLoading => "state_loading",
            Self::NotPresenceTopic(_) => "not_presence_topic",
            Self::NotPublic => "not_public",
            Self::TopicNotPublic(_) => "topic_not_public",
            Self::TooManyPublic => "too_many_connections",
            Self::CursorReset(reason) => reason.as_str(),
            Self::Internal => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = error_response(self.status(), self.code(), &self.to_string());
        let retry_after = match self {
            Self::RateLimited { retry_after } => Some(retry_after),
            Self::NotReady | Self::StateLoading | Self::TooManyPublic => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<crate::filter::FilterError> for ApiError {
    fn from(err: crate::filter::FilterError) -> Self {
        Self::BadRequest(err.to_string())
    }
}

/// Why the gateway could not be built or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener's address could not be read, or serving failed.
    #[error("serving HTTP failed")]
    Io(#[from] std::io::Error),
    /// The JWT key configuration is unusable.
    #[error("invalid JWT configuration: {0}")]
    Jwt(String),
    /// The `[state]` section is unusable.
    #[error("invalid [state] configuration")]
    State(#[from] herald_core::state::StateConfigError),
    /// A `[gateway.public]` or `[gateway.presence]` entry names an invalid tenant or topic.
    #[error("invalid [gateway.{section}] entry: {message}")]
    Topics {
        /// `public` or `presence`.
        section: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A setting that must be positive is zero.
    #[error("{0} must be greater than zero")]
    NotPositive(&'static str),
}
