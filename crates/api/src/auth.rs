//! API tokens: 32 random bytes shown once, stored as their SHA-256 hash, mapped to a tenant and a
//! role. The middleware here turns `Authorization: Bearer TOKEN` into a [`Principal`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cumulo_store::{Role, Store, TokenRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Every token starts with this, so that a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "cum_";

/// A fresh secret: the prefix and 64 hex digits of 32 bytes from the OS's random source.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// What the store keeps instead of the secret: the SHA-256 of the token text, in hex.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Creates a token for `tenant` with `role`, stores its hash and returns the secret (the only time
/// it exists outside the caller's hands).
pub async fn issue_token(store: &dyn Store, tenant: &str, role: Role, name: &str) -> cumulo_store::Result<String> {
    let token = generate_token();
    store
        .create_token(TokenRecord {
            hash: hash_token(&token),
            tenant: tenant.to_string(),
            role,
            name: name.to_string(),
        })
        .await?;
    Ok(token)
}

/// Who is calling: the tenant and role of a valid token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub role: Role,
    pub name: String,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see jobs of `tenant`: admins see all, others their own tenant.
    pub fn may_read_tenant(&self, tenant: &str) -> bool {
        self.is_admin() || self.tenant == tenant
    }

    /// Whether this caller may submit or cancel jobs of `tenant`.
    pub fn may_write_tenant(&self, tenant: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Member => self.tenant == tenant,
            Role::Viewer => false,
        }
    }

    /// `Forbidden` unless the caller may change things at all.
    pub fn require_writer(&self) -> Result<(), ApiError> {
        if self.role == Role::Viewer {
            return Err(ApiError::Forbidden(format!(
                "token `{}` has role viewer, which may only read; submitting and cancelling need member or admin",
                self.name
            )));
        }
        Ok(())
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if !self.is_admin() {
            return Err(ApiError::Forbidden(format!("token `{}` has role {}; this needs admin", self.name, self.role)));
        }
        Ok(())
    }
}

/// Valid tokens recently seen, so that a busy client does not cost a store read per request.
/// Tokens cannot be revoked yet; the short lifetime bounds how stale an entry can be once they can.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl TokenCache {
    const TTL: Duration = Duration::from_secs(30);
    const MAX_ENTRIES: usize = 10_000;

    fn get(&self, hash: &str) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < Self::TTL).map(|(p, _)| p.clone())
    }

    fn put(&self, hash: String, principal: Principal) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (principal, Instant::now()));
    }
}

/// Finds the caller for a request's `Authorization` header value.
pub async fn authenticate(state: &AppState, header: Option<&str>) -> Result<Principal, ApiError> {
    let Some(value) = header else {
        return Err(ApiError::Unauthorized(
            "missing Authorization header: expected `Authorization: Bearer <token>`".to_string(),
        ));
    };
    let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else {
        return Err(ApiError::Unauthorized("malformed Authorization header: expected `Bearer <token>`".to_string()));
    };
    let hash = hash_token(token);
    if let Some(principal) = state.tokens.get(&hash) {
        return Ok(principal);
    }
    match state.store.token_by_hash(&hash).await? {
        Some(record) => {
            let principal = Principal { tenant: record.tenant, role: record.role, name: record.name };
            state.tokens.put(hash, principal.clone());
            Ok(principal)
        }
        None => Err(ApiError::Unauthorized("invalid token: no such API token".to_string())),
    }
}

/// Middleware: rejects requests without a valid token with 401 and hands the [`Principal`] to
/// handlers as a request extension.
pub async fn require_token(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(axum::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    match authenticate(&state, header).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_sha256_hex() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn roles_decide_what_a_principal_may_do() {
        let member = Principal { tenant: "a".into(), role: Role::Member, name: "m".into() };
        let viewer = Principal { tenant: "a".into(), role: Role::Viewer, name: "v".into() };
        let admin = Principal { tenant: "default".into(), role: Role::Admin, name: "x".into() };
        assert!(member.may_write_tenant("a") && !member.may_write_tenant("b"));
        assert!(member.may_read_tenant("a") && !member.may_read_tenant("b"));
        assert!(viewer.may_read_tenant("a") && !viewer.may_write_tenant("a"));
        assert!(admin.may_write_tenant("b") && admin.may_read_tenant("b"));
        assert!(viewer.require_writer().is_err() && member.require_writer().is_ok());
        assert!(member.require_admin().is_err() && admin.require_admin().is_ok());
    }
}
