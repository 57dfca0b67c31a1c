//! Token routes: who am I, and creating tokens (admin only).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use cumulo_store::Role;

use crate::AppState;
use crate::auth::{Principal, issue_token};
use crate::error::ApiError;
use crate::wire::{TokenRequest, TokenResponse, WhoAmI};

/// The longest token name accepted.
pub const MAX_TOKEN_NAME_CHARS: usize = 200;

/// `GET /v1/whoami`.
pub(crate) async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoAmI> {
    Json(WhoAmI { tenant: principal.tenant, role: principal.role, name: principal.name })
}

/// `POST /v1/tokens`: admin only; answers the secret once.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    principal.require_admin()?;
    let headers = axum::http::HeaderMap::new();
    let body = crate::jobs::read_body(&state, &headers, body).await?;
    let request: TokenRequest = serde_json::from_str(&body.text).map_err(|e| {
        ApiError::bad_request("body", format!("invalid token request: {e}; expected {{\"tenant\": T, \"role\": R}}"))
    })?;
    let role: Role = request.role.parse().map_err(|_| {
        ApiError::bad_request("role", format!("unknown role `{}`: expected admin, member or viewer", request.role))
    })?;
    // The name as given: the OpenAPI document lists the tenants, and ` a` is none of them.
    let tenant = request.tenant;
    if tenant.is_empty() || !state.knows_tenant(&tenant).await? {
        return Err(state.unknown_tenant("tenant".to_string(), &tenant));
    }
    let name = request.name.filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("{tenant}-{role}"));
    if name.chars().count() > MAX_TOKEN_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name",
            format!("invalid token name: expected at most {MAX_TOKEN_NAME_CHARS} characters and no control characters"),
        ));
    }
    let token = issue_token(state.store.as_ref(), &tenant, role, &name).await?;
    tracing::info!(tenant = %tenant, role = %role, name = %name, by = %principal.name, "api token created");
    Ok((StatusCode::CREATED, Json(TokenResponse { token, tenant, role, name })))
}
