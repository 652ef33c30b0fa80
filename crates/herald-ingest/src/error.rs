//! Errors: every request failure maps to one status and one stable code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::http::error_response;
use herald_core::signature::SignatureError;

/// Why a request was refused. Nothing is published for any of these.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no source of that name is configured.
    #[error("no webhook source named {0:?} is configured")]
    UnknownSource(String),
    /// 415: the body is not declared as JSON.
    #[error("content type must be application/json (or application/*+json); got {0:?}")]
    UnsupportedMediaType(String),
    /// 413: the body exceeds the limit.
    #[error("request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// 400: the body could not be read.
    #[error("could not read the request body")]
    BodyRead,
    /// 401: the signature or token is missing or wrong.
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    /// 400: the body is not valid JSON.
    #[error("body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 400: a tenant, topic, action or id is not usable.
    #[error("{0}")]
    InvalidName(String),
    /// 403: a body names a tenant the credentials do not grant.
    #[error("{0}")]
    TenantMismatch(String),
    /// 400: an event's audience (`to`, or the source's audience path) is not 1 to 64
    /// distinct valid user ids.
    #[error("{0}")]
    InvalidAudience(#[from] crate::audience::AudienceError),
    /// 422: valid JSON of the wrong shape.
    #[error("{0}")]
    InvalidShape(String),
    /// 503: JetStream refused the events because its store is full (`max_file_store`, the
    /// disk, or a stream limit). Nothing of the request was stored.
    #[error("the event store is full; nothing was stored; retry later")]
    StoreFull {
        /// Seconds for `Retry-After`.
        retry_after: u32,
    },
    /// 503: NATS is unreachable or did not acknowledge in time.
    #[error("the event store is unavailable; retry later")]
    Unavailable {
        /// Seconds for `Retry-After`.
        retry_after: u32,
    },
}

/// Why authentication failed. One variant per failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A signature scheme failed (missing/malformed header, stale or future timestamp,
    /// mismatch).
    #[error("signature verification failed: {0}")]
    Signature(#[from] SignatureError),
    /// No token was presented.
    #[error("missing {0} header")]
    MissingToken(String),
    /// The token matches no configured secret.
    #[error("invalid token")]
    InvalidToken,
}

impl AuthError {
    fn code(&self) -> &'static str {
        match self {
            Self::Signature(SignatureError::MissingHeader(_)) => "missing_signature",
            Self::Signature(SignatureError::MalformedHeader(_)) => "malformed_signature",
            Self::Signature(SignatureError::StaleTimestamp) => "stale_timestamp",
            Self::Signature(SignatureError::FutureTimestamp) => "future_timestamp",
            Self::Signature(SignatureError::Mismatch) => "invalid_signature",
            Self::Signature(SignatureError::InvalidSecret) => "invalid_signature",
            Self::MissingToken(_) => "missing_token",
            Self::InvalidToken => "invalid_token",
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownSource(_) => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead
            | Self::MalformedJson(_)
            | Self::InvalidName(_)
            | Self::InvalidAudience(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TenantMismatch(_) => StatusCode::FORBIDDEN,
            Self::InvalidShape(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } | Self::StoreFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownSource(_) => "unknown_source",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::BodyRead => "unreadable_body",
            Self::Unauthorized(a) => a.code(),
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidName(_) => "invalid_name",
            Self::InvalidAudience(_) => "invalid_audience",
            Self::TenantMismatch(_) => "tenant_mismatch",
            Self::InvalidShape(_) => "invalid_shape",
            Self::Unavailable { .. } => "unavailable",
            Self::StoreFull { .. } => "store_full",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = error_response(self.status(), self.code(), &self.to_string());
        if let Self::Unavailable { retry_after } | Self::StoreFull { retry_after } = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        resp
    }
}

/// The body of a parsed request did not make events: a shape or name problem.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all.
    #[error("{0}")]
    Json(String),
    /// JSON, but not of the expected shape.
    #[error("{0}")]
    Shape(String),
    /// A name or id is invalid.
    #[error("{0}")]
    Name(String),
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Json(m) => Self::MalformedJson(m),
            ParseError::Shape(m) => Self::InvalidShape(m),
            ParseError::Name(m) => Self::InvalidName(m),
        }
    }
}
