//! The one place where errors become HTTP status codes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dicomweb_service::{ServiceError, StoreRequestError};

use crate::auth::AuthError;

/// An error answered to the client: a status and a message saying what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The request's headers or framing are wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// `Accept` names nothing this resource can produce (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The request body stopped arriving (408; the connection is closed).
    #[error("{0}")]
    RequestTimeout(String),
    /// The request body is larger than allowed (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// `Content-Type` or `Content-Encoding` is not supported (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A backend the request needs is unavailable; retrying later may succeed (503).
    #[error("{0}")]
    Unavailable(String),
    /// No acceptable credentials (401), not allowed (403), or the issuer's keys are unreachable (503).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The path exists but not with this method (405); `allow` lists the methods it has, for `Allow`.
    #[error("{method} is not allowed here; this resource allows {allow}")]
    MethodNotAllowed { method: String, allow: String },
}

impl From<StoreRequestError> for ApiError {
    fn from(error: StoreRequestError) -> Self {
        match error {
            StoreRequestError::MalformedBody(_) => ApiError::BadRequest(error.to_string()),
            StoreRequestError::StorageUnavailable(_) => ApiError::Unavailable(error.to_string()),
        }
    }
}

/// Seconds a client is asked to wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Auth(e) => match e {
                AuthError::MissingToken | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
                AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
                AuthError::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Service(e) => match e {
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                ServiceError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
                ServiceError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
                e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Storage(_)
                | ServiceError::Index(_)
                | ServiceError::Catalogue(_)
                | ServiceError::Unavailable(_)
                | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request rejected");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((actix_web::http::header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        if matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            // The rest of the body will not be read (a client that stalled may never send it).
            response.force_close();
        }
        if let ApiError::Auth(error) = self
            && let Some(challenge) = bearer_challenge(error)
        {
            response.insert_header((actix_web::http::header::WWW_AUTHENTICATE, challenge));
        }
        if let ApiError::Service(ServiceError::RangeNotSatisfiable { length }) = self {
            // RFC 9110 15.5.17: the current length of the selected representation.
            response.insert_header((
                actix_web::http::header::CONTENT_RANGE,
                format!("bytes */{length}"),
            ));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        response.json(serde_json::json!({
            "status": status.as_u16(),
            "message": self.to_string(),
        }))
    }
}

/// The `WWW-Authenticate` challenge of RFC 6750 for an authentication failure: no error code when no token was
/// sent, `invalid_token` with the reason for a refused token, `insufficient_scope` for a missing permission.
fn bearer_challenge(error: &AuthError) -> Option<String> {
    const REALM: &str = "Bearer realm=\"dicomweb\"";
    let with_error = |code: &str, description: String| {
        // A quoted-string: the descriptions are ours, but keep quotes and backslashes out regardless.
        let description: String = description
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
            .collect();
        format!("{REALM}, error=\"{code}\", error_description=\"{description}\"")
    };
    match error {
        AuthError::MissingToken => Some(REALM.to_owned()),
        AuthError::InvalidToken(reason) => Some(with_error("invalid_token", reason.to_string())),
        AuthError::Forbidden(_) => Some(with_error("insufficient_scope", error.to_string())),
        AuthError::KeysUnavailable(_) => None,
    }
}
