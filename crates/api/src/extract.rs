//! Extractors whose refusals are [`ApiError`]s (JSON naming the field), where axum's own answer
//! with a `text/plain` 400: query strings (a parameter given twice, a NUL byte, a wrong type) and
//! path segments (not UTF-8).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string deserialised into `T`; every parameter at most once, none holding a NUL or
/// another control byte (U+0000 to U+001F; the OpenAPI document's text pattern).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request("query", format!("invalid query string: {}", e.body_text())))?
            .0;
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in &pairs {
            if !seen.insert(name.as_str()) {
                let times = pairs.iter().filter(|(n, _)| n == name).count();
                return Err(ApiError::bad_request(
                    name.clone(),
                    format!("query parameter `{name}` is given {times} times: expected it at most once"),
                ));
            }
            if value.contains('\0') || name.contains('\0') {
                return Err(ApiError::bad_request(
                    name.clone(),
                    format!("query parameter `{name}` holds a NUL byte: expected text without control bytes"),
                ));
            }
            if let Some(byte) = value.chars().chain(name.chars()).find(|c| *c < ' ') {
                return Err(ApiError::bad_request(
                    name.clone(),
                    format!(
                        "query parameter `{name}` holds the control byte {:#04x}: expected text without control bytes",
                        byte as u32
                    ),
                ));
            }
        }
        let query = Query::<T>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request("query", format!("invalid query string: {}", e.body_text())))?;
        Ok(ApiQuery(query.0))
    }
}

/// One path parameter as text; a segment that is not UTF-8 is a 400 naming `field`.
pub struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request("id", format!("invalid path: {}", e.body_text())))
    }
}
