//! The one place where errors become HTTP status codes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dicomweb_service::ServiceError;

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
    /// `Content-Type` is not supported (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Service(e) => match e {
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::InvalidInput(_) => StatusCode::BAD_REQUEST,
                ServiceError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
                e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Storage(_) | ServiceError::Index(_) | ServiceError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
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
        HttpResponse::build(status).json(serde_json::json!({
            "status": status.as_u16(),
            "message": self.to_string(),
        }))
    }
}
