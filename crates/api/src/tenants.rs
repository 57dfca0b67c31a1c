//! Tenant routes: the tenants jobs and tokens may name, which are the fleet file's and those an
//! admin created over the API (stored, so they outlive restarts; the reconcile loop gives them
//! their fair-share weight and quota on its next pass).

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use cumulo_store::TenantRecord;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// A tenant as `GET /v1/tenants` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantView {
    pub name: String,
    /// `fleet file` (fixed while the server runs) or `api` (created with `POST /v1/tenants`).
    pub source: String,
    /// Fair-share weight; for fleet-file tenants the file says (not shown here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_milli: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_milli: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The monthly budget in force, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetView>,
}

/// A tenant's monthly budget as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetView {
    /// Dollars per calendar month (UTC), exact (`50000.000000`).
    pub monthly: String,
    /// `hard` (jobs that would pass it wait) or `soft` (only `/metrics` and warnings).
    pub kind: String,
    /// `fleet file` or `api` (a budget set over the API overrides the fleet file's).
    pub source: String,
}

/// The largest monthly budget the API takes, in dollars.
pub const MAX_BUDGET_DOLLARS: i64 = 1_000_000_000_000;

/// `PUT /v1/tenants/{name}/budget`: `monthly` in dollars (a JSON number), `kind` hard or soft.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    pub monthly: serde_json::Value,
    /// `hard` (default) or `soft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `POST /v1/tenants`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub name: String,
    /// Fair-share weight, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
    pub weight: Option<u32>,
    /// Quota: at most this many thousandths of GPUs at once.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
    pub gpus_milli: Option<u64>,
    /// Quota: at most this many thousandths of vCPUs at once.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number")]
    pub cpus_milli: Option<u64>,
}

/// A non-negative whole number, or null. `3.0` is the integer 3, as JSON Schema's `integer`
/// reads it (the OpenAPI document says `integer`); past 2^53 a float holds no exact integer.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if number.is_f64() && f.fract() == 0.0 && (0.0..=EXACT).contains(&f) => Some(f as u64),
        _ => None,
    };
    let expected = || {
        D::Error::custom(format!(
            "invalid value `{number}`: expected a non-negative whole number ({})",
            std::any::type_name::<T>()
        ))
    };
    whole.and_then(|n| T::try_from(n).ok()).map(Some).ok_or_else(expected)
}

impl AppState {
    /// Whether jobs and tokens may name `tenant`: a fleet-file tenant, or a stored one (the
    /// stored names are cached; an unknown name asks the store again, so a tenant created by
    /// another server on the same database is found).
    pub(crate) async fn knows_tenant(&self, tenant: &str) -> Result<bool, ApiError> {
        if self.fleet.knows_tenant(tenant) || self.stored_tenants.read().is_ok_and(|t| t.contains(tenant)) {
            return Ok(true);
        }
        let stored: BTreeSet<String> = self.store.tenants().await?.into_iter().map(|t| t.name).collect();
        let known = stored.contains(tenant);
        if let Ok(mut cache) = self.stored_tenants.write() {
            *cache = stored;
        }
        Ok(known)
    }

    /// Every tenant name, fleet file first, for error messages.
    pub(crate) fn tenant_names(&self) -> String {
        let mut names = self.fleet.tenant_names();
        if let Ok(stored) = self.stored_tenants.read() {
            names.extend(stored.iter().filter(|s| !names.contains(s)).cloned().collect::<Vec<_>>());
        }
        names.join(", ")
    }

    /// The error for a tenant nobody created.
    pub(crate) fn unknown_tenant(&self, field: String, tenant: &str) -> ApiError {
        ApiError::bad_request(
            field,
            format!(
                "unknown tenant `{tenant}`: known tenants are {} (an admin adds one with `cumulo tenant create NAME`)",
                self.tenant_names()
            ),
        )
    }
}

impl AppState {
    /// The budgets in force by tenant: the fleet file's, overridden by those stored.
    pub(crate) async fn budgets(&self) -> Result<std::collections::BTreeMap<String, BudgetView>, ApiError> {
        let view = |budget: &cumulo_store::budget::Budget, source: &str| BudgetView {
            monthly: budget.monthly.to_string(),
            kind: budget.kind.to_string(),
            source: source.to_string(),
        };
        let mut out: std::collections::BTreeMap<String, BudgetView> =
            self.fleet.budgets.iter().map(|(t, b)| (t.clone(), view(b, "fleet file"))).collect();
        for stored in self.store.budgets().await? {
            out.insert(stored.tenant, view(&stored.budget, "api"));
        }
        Ok(out)
    }
}

/// `PUT /v1/tenants/{name}/budget`: admin only; sets (or replaces) the tenant's monthly budget.
pub(crate) async fn set_budget(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    crate::extract::ApiPath(name): crate::extract::ApiPath,
    body: axum::body::Body,
) -> Result<Json<TenantView>, ApiError> {
    principal.require_admin()?;
    if !state.knows_tenant(&name).await? {
        return Err(ApiError::NotFound(format!("tenant `{name}` not found")));
    }
    let text = crate::jobs::read_body(&state, &axum::http::HeaderMap::new(), body).await?;
    let request: BudgetRequest = serde_json::from_str(&text.text).map_err(|e| {
        ApiError::bad_request(
            "body",
            format!("invalid budget request: {e}; expected {{\"monthly\": DOLLARS, \"kind\": \"hard\"|\"soft\"}}"),
        )
    })?;
    let monthly = match &request.monthly {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(whole), _) if (0..=MAX_BUDGET_DOLLARS).contains(&whole) => whole.to_string(),
            (None, Some(dollars)) if (0.0..=MAX_BUDGET_DOLLARS as f64).contains(&dollars) => {
                cumulo_types::Money::from_dollars_f64(dollars).unwrap_or_default().to_string()
            }
            _ => {
                return Err(ApiError::bad_request(
                    "monthly",
                    format!("invalid amount `{n}`: expected dollars of at least 0 and at most {MAX_BUDGET_DOLLARS}"),
                ));
            }
        },
        other => {
            return Err(ApiError::bad_request(
                "monthly",
                format!("invalid amount `{other}`: expected a number of dollars such as 50000"),
            ));
        }
    };
    let budget = cumulo_store::budget::parse_budget(&monthly, request.kind.as_deref().unwrap_or("hard"))
        .map_err(|(field, reason)| ApiError::bad_request(field, reason))?;
    let record = cumulo_store::budget::BudgetRecord { tenant: name.clone(), budget, updated_at: chrono::Utc::now() };
    state.store.set_budget(record).await?;
    tracing::info!(tenant = %name, monthly = %budget.monthly.usd(), kind = %budget.kind, by = %principal.name, "budget set");
    let mut all = list(State(state)).await?.0;
    let index = all.iter().position(|t| t.name == name).unwrap_or(0);
    Ok(Json(all.swap_remove(index)))
}

/// `GET /v1/tenants`: every tenant (any token).
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<TenantView>>, ApiError> {
    let mut out: Vec<TenantView> = state
        .fleet
        .tenant_names()
        .into_iter()
        .map(|name| TenantView {
            name,
            source: "fleet file".to_string(),
            weight: None,
            gpus_milli: None,
            cpus_milli: None,
            created_at: None,
            budget: None,
        })
        .collect();
    for t in state.store.tenants().await? {
        out.push(TenantView {
            name: t.name,
            source: "api".to_string(),
            weight: Some(t.weight),
            gpus_milli: t.gpus_milli,
            cpus_milli: t.cpus_milli,
            created_at: Some(t.created_at),
            budget: None,
        });
    }
    let mut budgets = state.budgets().await?;
    for tenant in &mut out {
        tenant.budget = budgets.remove(&tenant.name);
    }
    Ok(Json(out))
}

/// The most thousandths of GPUs or vCPUs a tenant's quota may name (the store keeps them as
/// signed 64-bit integers).
pub const MAX_QUOTA_MILLI: u64 = i64::MAX as u64;

/// Reads and checks a `POST /v1/tenants` body: `name` as the store takes it (no surrounding
/// blanks), `weight` at least 1, quotas at most [`MAX_QUOTA_MILLI`]. A whole number written with
/// a fraction (`2.0`) is that integer, as JSON Schema reads it.
fn tenant_request(text: &str) -> Result<TenantRequest, ApiError> {
    let bad_body = |e: serde_json::Error| {
        ApiError::bad_request(
            "body",
            format!(
                "invalid tenant request: {e}; expected {{\"name\": N, \"weight\": W, \"gpus_milli\": G, \"cpus_milli\": C}}"
            ),
        )
    };
    let request: TenantRequest = serde_json::from_str(text).map_err(bad_body)?;
    if let Err(cumulo_store::Error::Invalid { value, expected, .. }) = cumulo_store::check_tenant_name(&request.name) {
        return Err(ApiError::bad_request("name", format!("invalid tenant name `{value}`: expected {expected}")));
    }
    if request.weight == Some(0) {
        return Err(ApiError::bad_request("weight", "invalid weight `0`: expected a weight of at least 1"));
    }
    for (field, quota) in [("gpus_milli", request.gpus_milli), ("cpus_milli", request.cpus_milli)] {
        if let Some(quota) = quota.filter(|q| *q > MAX_QUOTA_MILLI) {
            return Err(ApiError::bad_request(
                field,
                format!("invalid quota `{quota}`: expected at most {MAX_QUOTA_MILLI} thousandths"),
            ));
        }
    }
    Ok(request)
}

/// `POST /v1/tenants`: admin only; 201 with the tenant, 409 when the name is taken.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    principal.require_admin()?;
    let text = crate::jobs::read_body(&state, &axum::http::HeaderMap::new(), body).await?;
    let request = tenant_request(&text.text)?;
    let name = request.name.clone();
    if state.fleet.tenant_names().contains(&name) {
        return Err(ApiError::Conflict(format!("tenant `{name}` exists already (in the fleet file)")));
    }
    let record = TenantRecord {
        name: name.clone(),
        weight: request.weight.unwrap_or(1),
        gpus_milli: request.gpus_milli,
        cpus_milli: request.cpus_milli,
        created_at: chrono::Utc::now(),
    };
    state.store.create_tenant(record.clone()).await?;
    if let Ok(mut cache) = state.stored_tenants.write() {
        cache.insert(name.clone());
    }
    tracing::info!(tenant = %name, weight = record.weight, by = %principal.name, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(TenantView {
            name,
            source: "api".to_string(),
            weight: Some(record.weight),
            gpus_milli: record.gpus_milli,
            cpus_milli: record.cpus_milli,
            created_at: Some(record.created_at),
            budget: None,
        }),
    ))
}
