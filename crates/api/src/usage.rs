//! `GET /v1/usage` (metered usage grouped by tenant, provider, contract, job or GPU model) and
//! `GET /v1/invoices` (one provider's invoice for a month), read from the store's usage records and
//! computed by the ledger. Money in answers is integer micro-dollars (`money_unit`).

use axum::Json;
use axum::extract::{Extension, State};
use cumulo_ledger::{GroupBy, Invoice, Month, UsageFilter, UsageRow, parse_time};
use cumulo_types::Provider;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    pub tenant: Option<String>,
    pub provider: Option<String>,
    pub contract: Option<String>,
    /// RFC 3339 or YYYY-MM-DD, inclusive.
    pub since: Option<String>,
    /// RFC 3339 or YYYY-MM-DD, exclusive.
    pub until: Option<String>,
    /// tenant (default), provider, contract, job or gpu.
    pub group_by: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UsageAnswer {
    pub money_unit: String,
    pub group_by: String,
    pub rows: Vec<UsageRow>,
}

#[derive(Debug, Deserialize)]
pub struct InvoiceQuery {
    pub provider: Option<String>,
    /// YYYY-MM.
    pub month: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct InvoiceAnswer {
    pub money_unit: String,
    #[serde(flatten)]
    pub invoice: Invoice,
}

fn ledger_error(field: &str, err: cumulo_ledger::Error) -> ApiError {
    ApiError::bad_request(field, err.to_string())
}

/// Usage grouped as asked. A member or viewer sees only its own tenant's usage.
pub async fn usage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<UsageAnswer>, ApiError> {
    let group_by: GroupBy = match query.group_by.as_deref().filter(|g| !g.is_empty()) {
        Some(g) => g.parse().map_err(|e| ledger_error("group_by", e))?,
        None => GroupBy::Tenant,
    };
    let tenant = match query.tenant.filter(|t| !t.is_empty()) {
        Some(t) if !principal.may_read_tenant(&t) => {
            return Err(ApiError::Forbidden(format!(
                "token `{}` of tenant `{}` may not read usage of tenant `{t}`",
                principal.name, principal.tenant
            )));
        }
        Some(t) => Some(t),
        None if principal.is_admin() => None,
        None => Some(principal.tenant.clone()),
    };
    let provider = match query.provider.filter(|p| !p.is_empty()) {
        Some(p) => Some(Provider::new(&p).map_err(|e| ApiError::bad_request("provider", e.to_string()))?),
        None => None,
    };
    let since = query
        .since
        .filter(|s| !s.is_empty())
        .map(|s| parse_time("since", &s))
        .transpose()
        .map_err(|e| ledger_error("since", e))?;
    let until = query
        .until
        .filter(|s| !s.is_empty())
        .map(|s| parse_time("until", &s))
        .transpose()
        .map_err(|e| ledger_error("until", e))?;
    let records = state.store.usage_between(since, until).await?;
    let filter = UsageFilter { tenant, provider, contract: query.contract.filter(|c| !c.is_empty()), since, until };
    let rows = cumulo_ledger::usage_by(&records, &filter, group_by);
    Ok(Json(UsageAnswer { money_unit: "micro-USD".into(), group_by: group_by.to_string(), rows }))
}

/// A provider's invoice for a month: every tenant's usage, so admins only.
pub async fn invoices(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<InvoiceQuery>,
) -> Result<Json<InvoiceAnswer>, ApiError> {
    principal.require_admin()?;
    let provider = query
        .provider
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("provider", "provider is required, e.g. ?provider=aws&month=2026-11"))?;
    let provider = Provider::new(&provider).map_err(|e| ApiError::bad_request("provider", e.to_string()))?;
    let month = query
        .month
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("month", "month is required, e.g. ?provider=aws&month=2026-11"))?;
    let month = Month::parse(&month).map_err(|e| ledger_error("month", e))?;
    let records = state.store.usage_between(Some(month.start()), Some(month.end())).await?;
    let invoice = cumulo_ledger::invoice(&records, &provider, month);
    Ok(Json(InvoiceAnswer { money_unit: "micro-USD".into(), invoice }))
}
