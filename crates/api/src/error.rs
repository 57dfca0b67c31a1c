//! `ApiError`: the one error type every handler returns, rendered as JSON `{error, field?, reason}`.
//!
//! Store errors are mapped here; backend text goes to the log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The JSON body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short machine-readable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, ...
    pub error: String,
    /// The request field at fault (`tenant`, `resources.accelerators`, `state`...), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What was wrong and what was expected, for people.
    pub reason: String,
}

/// An error answer. Build one with the constructors; the status code follows the variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    BadRequest {
        field: Option<String>,
        reason: String,
    },
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    /// The store cannot write (disk full or read-only): 507, nothing was stored; the detail is
    /// logged, the client sees a fixed reason.
    InsufficientStorage(String),
    /// The request is well formed but contradicts an earlier one (an `Idempotency-Key` reused
    /// with another body) or itself (two spellings of one GPU model in a job's `speedups`).
    Unprocessable {
        field: Option<String>,
        reason: String,
    },
    /// Too much work is in flight; the client should retry after `retry_after_s` seconds.
    Overloaded {
        reason: String,
        retry_after_s: u32,
    },
    /// Something failed inside; the text is logged, the client sees "internal error".
    Internal(String),
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest { field: Some(field.into()), reason: reason.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (error, field, reason) = match self {
            ApiError::BadRequest { field, reason } => ("bad_request", field.clone(), reason.clone()),
            ApiError::Unauthorized(r) => ("unauthorized", None, r.clone()),
            ApiError::Forbidden(r) => ("forbidden", None, r.clone()),
            ApiError::NotFound(r) => ("not_found", None, r.clone()),
            ApiError::Conflict(r) => ("conflict", None, r.clone()),
            ApiError::PayloadTooLarge(r) => ("payload_too_large", None, r.clone()),
            ApiError::UnsupportedMediaType(r) => ("unsupported_media_type", None, r.clone()),
            ApiError::InsufficientStorage(_) => (
                "insufficient_storage",
                None,
                "the server's disk is full (or its database is read-only): nothing was stored; retry once space is freed"
                    .to_string(),
            ),
            ApiError::Unprocessable { field, reason } => ("unprocessable", field.clone(), reason.clone()),
            ApiError::Overloaded { reason, .. } => ("overloaded", None, reason.clone()),
            ApiError::Internal(_) => ("internal", None, "internal error; see the server log".to_string()),
        };
        ErrorBody { error: error.to_string(), field, reason }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = self.body();
        match body.field {
            Some(field) => write!(f, "{} ({field}): {}", body.error, body.reason),
            None => write!(f, "{}: {}", body.error, body.reason),
        }
    }
}

impl From<cumulo_store::Error> for ApiError {
    fn from(err: cumulo_store::Error) -> ApiError {
        match err {
            cumulo_store::Error::NotFound { what, id } => ApiError::NotFound(format!("{what} `{id}` not found")),
            cumulo_store::Error::Conflict(reason) => ApiError::Conflict(reason),
            cumulo_store::Error::Invalid { field, value, expected } => {
                ApiError::bad_request(field, format!("invalid {field} `{value}`: expected {expected}"))
            }
            cumulo_store::Error::Backend(text) => ApiError::Internal(text),
            cumulo_store::Error::StorageFull(text) => ApiError::InsufficientStorage(text),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed inside the server"),
            ApiError::InsufficientStorage(detail) => {
                tracing::error!(%detail, "the store cannot write: disk full or read-only")
            }
            _ => {}
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::Overloaded { retry_after_s, .. } = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*retry_after_s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_is_507_with_a_fixed_reason_and_no_backend_text() {
        let err = ApiError::from(cumulo_store::Error::StorageFull("(code: 13) database or disk is full".into()));
        assert_eq!(err.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body = err.body();
        assert_eq!(body.error, "insufficient_storage");
        assert!(body.reason.contains("disk is full") && body.reason.contains("nothing was stored"), "{}", body.reason);
        assert!(!body.reason.contains("code: 13"), "backend text must not reach the client: {}", body.reason);
    }
}
