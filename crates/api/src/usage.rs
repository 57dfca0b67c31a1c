//! `GET /v1/usage` (metered usage grouped by tenant, provider, contract, job or GPU model),
//! `GET /v1/usage/records` (the records themselves, in keyset pages), `GET /v1/usage/chargeback`
//! (per tenant: contract, on-demand and spot cost against list), `GET /v1/usage/focus` (a FOCUS 1.2
//! CSV export, streamed page by page) and `GET /v1/invoices` (one provider's invoice for a month),
//! read from the store's usage records and computed by the ledger. Money in JSON answers is integer
//! micro-dollars (`money_unit`). A member or viewer sees only its own tenant's usage.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cumulo_ledger::{
    ChargebackRow, FocusOptions, GroupBy, Invoice, Month, Timestamp, UsageFilter, UsageRow, parse_time,
};
use cumulo_store::usage::{UsageKey, UsagePageQuery, UsageRecord};
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
    let filter = usage_filter(&principal, query)?;
    let records = state.store.usage_between(filter.since, filter.until).await?;
    let rows = cumulo_ledger::usage_by(&records, &filter, group_by);
    Ok(Json(UsageAnswer { money_unit: "micro-USD".into(), group_by: group_by.to_string(), rows }))
}

/// The tenant a caller reads: the one asked for if it may read it, else its own (all for admins).
fn tenant_scope(principal: &Principal, asked: Option<String>) -> Result<Option<String>, ApiError> {
    match asked.filter(|t| !t.is_empty()) {
        Some(t) if !principal.may_read_tenant(&t) => Err(ApiError::Forbidden(format!(
            "token `{}` of tenant `{}` may not read usage of tenant `{t}`",
            principal.name, principal.tenant
        ))),
        Some(t) => Ok(Some(t)),
        None if principal.is_admin() => Ok(None),
        None => Ok(Some(principal.tenant.clone())),
    }
}

fn time_param(field: &'static str, text: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    text.filter(|s| !s.is_empty()).map(|s| parse_time(field, &s)).transpose().map_err(|e| ledger_error(field, e))
}

/// The filter of a usage query, scoped to what the caller may read.
fn usage_filter(principal: &Principal, query: UsageQuery) -> Result<UsageFilter, ApiError> {
    let tenant = tenant_scope(principal, query.tenant)?;
    let provider = match query.provider.filter(|p| !p.is_empty()) {
        Some(p) => Some(Provider::new(&p).map_err(|e| ApiError::bad_request("provider", e.to_string()))?),
        None => None,
    };
    let since = time_param("since", query.since)?;
    let until = time_param("until", query.until)?;
    // `until` at or before `since` is an empty window: it holds no usage (the answer is empty),
    // as any two times the OpenAPI document allows are a request the server answers.
    Ok(UsageFilter { tenant, provider, contract: query.contract.filter(|c| !c.is_empty()), since, until })
}

/// `?since&until&tenant&after&limit` of `GET /v1/usage/records`.
#[derive(Debug, Default, Deserialize)]
pub struct RecordsQuery {
    pub tenant: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The `next` token of the previous page.
    pub after: Option<String>,
    /// Records per page, 1 to [`MAX_RECORDS_PAGE`] (default 1000).
    pub limit: Option<u32>,
}

/// The most records one page of `GET /v1/usage/records` holds.
pub const MAX_RECORDS_PAGE: u32 = 10_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordsAnswer {
    pub money_unit: String,
    /// Records overlapping `[since, until)`, whole, ordered by start, job, attempt and node rank.
    pub records: Vec<UsageRecord>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Usage records in keyset pages (own tenant unless admin).
pub async fn records(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<RecordsQuery>,
) -> Result<Json<RecordsAnswer>, ApiError> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_RECORDS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            format!("limit {limit} is out of range: expected 1 to {MAX_RECORDS_PAGE}"),
        ));
    }
    let after = match query.after.filter(|a| !a.is_empty()) {
        Some(token) => Some(UsageKey::parse(&token).ok_or_else(|| {
            ApiError::bad_request(
                "after",
                format!("invalid page token `{token}`: expected the `next` of a previous page"),
            )
        })?),
        None => None,
    };
    let filter = usage_filter(
        &principal,
        UsageQuery { tenant: query.tenant, since: query.since, until: query.until, ..UsageQuery::default() },
    )?;
    let page = UsagePageQuery { since: filter.since, until: filter.until, tenant: filter.tenant, after, limit };
    let records = state.store.usage_page(page).await?;
    let next = (records.len() == limit as usize).then(|| records.last().map(|r| UsageKey::of(r).to_string())).flatten();
    Ok(Json(RecordsAnswer { money_unit: "micro-USD".into(), records, next }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChargebackAnswer {
    pub money_unit: String,
    /// Per tenant: cost by how the capacity was held, list cost, and savings against list.
    pub rows: Vec<ChargebackRow>,
}

/// Chargeback per tenant over `[since, until)`, filtered by provider and contract (own tenant
/// unless admin).
pub async fn chargeback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<ChargebackAnswer>, ApiError> {
    if query.group_by.as_deref().is_some_and(|g| !g.is_empty()) {
        return Err(ApiError::bad_request("group_by", "chargeback is always per tenant; group_by is for /v1/usage"));
    }
    let filter = usage_filter(&principal, query)?;
    let records = state.store.usage_between(filter.since, filter.until).await?;
    let rows = cumulo_ledger::chargeback(&records, &filter);
    Ok(Json(ChargebackAnswer { money_unit: "micro-USD".into(), rows }))
}

/// Records read per page while streaming a FOCUS export.
const FOCUS_PAGE: u32 = 20_000;

/// The usage records over `[since, until)` (own tenant unless admin) as a FOCUS 1.2 CSV, clipped to
/// the window, streamed a page of records at a time so an export of millions of records never sits
/// in memory whole. A failure after the first bytes ends the stream early (the client sees a
/// truncated body, not a partial success).
///
/// An export of every tenant (an admin's, without `tenant`) on a server with a portfolio ends with
/// the commitment rows ([`cumulo_ledger::focus_commitment_rows`]): per contract and month in the
/// window (up to now when `until` is open), a `Purchase` row billing the amortised commitment and,
/// when some went unused, an `Unused` usage row, so the rows reconcile per commitment and period;
/// usage under a contract is then billed by its Purchase row (`BilledCost` 0). An export of one
/// tenant has no commitment rows (commitments are bought by the organisation, not by a tenant) and
/// bills each usage row its cost.
pub async fn focus(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    if query.group_by.as_deref().is_some_and(|g| !g.is_empty()) {
        return Err(ApiError::bad_request(
            "group_by",
            "a FOCUS export is one row per record; group_by is for /v1/usage",
        ));
    }
    let filter = usage_filter(&principal, query)?;
    let commitments = match (&state.fleet.portfolio, &filter.tenant) {
        (Some(portfolio), None) => Some(CommitmentTail::new(portfolio.clone(), &filter)),
        _ => None,
    };
    let options = FocusOptions { amortized_commitments: commitments.is_some(), ..FocusOptions::default() };
    let first = UsagePageQuery {
        since: filter.since,
        until: filter.until,
        tenant: filter.tenant.clone(),
        after: None,
        limit: FOCUS_PAGE,
    };
    let mut export = FocusExport {
        pending: Some(PageRead::start(state.store.clone(), first)),
        filter: std::sync::Arc::new(filter),
        options: std::sync::Arc::new(options),
        commitments,
    };
    // The first page is read before answering, so a failing store is an error status, not a cut body.
    let mut head = cumulo_ledger::focus_header();
    head.push_str(&export.next_chunk().await?.unwrap_or_default());
    let stream = futures_util::stream::unfold((Some(head), export), |(head, mut export)| async move {
        if let Some(head) = head {
            return Some((Ok::<_, std::io::Error>(head), (None, export)));
        }
        match export.next_chunk().await {
            Ok(Some(text)) => Some((Ok(text), (None, export))),
            Ok(None) => None,
            Err(err) => {
                export.stop();
                Some((Err(std::io::Error::other(err.to_string())), (None, export)))
            }
        }
    });
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"cumulo-focus.csv\""),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// A FOCUS export under way: the page of usage being read, then the commitment rows.
struct FocusExport {
    /// The read of the next page, started before the page before it is encoded.
    pending: Option<PageRead>,
    filter: std::sync::Arc<UsageFilter>,
    options: std::sync::Arc<FocusOptions>,
    commitments: Option<CommitmentTail>,
}

/// One page of usage being read from the store on its own task, so the store reads page `n + 1`
/// while page `n` is encoded.
struct PageRead {
    store: std::sync::Arc<dyn cumulo_store::Store>,
    query: UsagePageQuery,
    read: tokio::task::JoinHandle<Result<Vec<UsageRecord>, cumulo_store::Error>>,
}

impl PageRead {
    fn start(store: std::sync::Arc<dyn cumulo_store::Store>, query: UsagePageQuery) -> PageRead {
        let read = {
            let (store, query) = (store.clone(), query.clone());
            tokio::spawn(async move { store.usage_page(query).await })
        };
        PageRead { store, query, read }
    }

    /// The page, and the read of the page after it (started at once) unless this one was the last.
    async fn finish(mut self) -> Result<(Vec<UsageRecord>, Option<PageRead>), ApiError> {
        let read = (&mut self.read).await;
        let page = read.map_err(|e| ApiError::Internal(format!("usage page read failed: {e}")))??;
        let next = next_page(&self.query, &page).map(|query| PageRead::start(self.store.clone(), query));
        Ok((page, next))
    }
}

impl Drop for PageRead {
    fn drop(&mut self) {
        // an export cut short (a failure, a client gone) reads no further
        self.read.abort();
    }
}

impl FocusExport {
    /// The next chunk of CSV lines: a page of usage rows, then the commitment rows; `None` at the end.
    /// On failure nothing more is read.
    async fn next_chunk(&mut self) -> Result<Option<String>, ApiError> {
        let Some(pending) = self.pending.take() else {
            let Some(tail) = self.commitments.take() else { return Ok(None) };
            return tail.rows(&self.options).map(Some);
        };
        let (page, next) = pending.finish().await?;
        self.pending = next;
        let (filter, options) = (self.filter.clone(), self.options.clone());
        let mut used = self.commitments.as_mut().map(|tail| std::mem::take(&mut tail.used));
        // Encoding is CPU work: off the async workers, beside the read of the next page.
        let (text, used) = tokio::task::spawn_blocking(move || {
            let clipped: Vec<_> = filter.apply_borrowed(&page).collect();
            if let Some(used) = &mut used {
                clipped.iter().for_each(|r| used.add(r));
            }
            let mut text = String::with_capacity(clipped.len() * 1024);
            cumulo_ledger::write_focus_rows(&mut text, clipped.iter().map(|r| r.as_ref()), &options);
            (text, used)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("FOCUS encoding failed: {e}")))?;
        if let (Some(tail), Some(used)) = (self.commitments.as_mut(), used) {
            tail.used = used;
        }
        Ok(Some(text))
    }

    fn stop(&mut self) {
        self.pending = None;
        self.commitments = None;
    }
}

/// The commitment rows that end an export: usage under each contract, gathered as the usage rows
/// stream, against the portfolio's amortised commitments over the export's window.
struct CommitmentTail {
    portfolio: std::sync::Arc<cumulo_portfolio::Portfolio>,
    used: cumulo_ledger::CommitmentUse,
    provider: Option<Provider>,
    contract: Option<String>,
    since: Timestamp,
    until: Timestamp,
}

impl CommitmentTail {
    fn new(portfolio: std::sync::Arc<cumulo_portfolio::Portfolio>, filter: &UsageFilter) -> CommitmentTail {
        let until = filter.until.unwrap_or_else(chrono::Utc::now);
        // periods are clipped to each contract's term, so an open `since` starts at the first term
        let since = filter.since.or_else(|| portfolio.contracts.iter().map(|c| c.term_start()).min()).unwrap_or(until);
        CommitmentTail {
            portfolio,
            used: cumulo_ledger::CommitmentUse::new(),
            provider: filter.provider.clone(),
            contract: filter.contract.clone(),
            since,
            until,
        }
    }

    fn rows(&self, options: &FocusOptions) -> Result<String, ApiError> {
        let periods: Vec<cumulo_ledger::CommitmentPeriod> = self
            .used
            .periods(&self.portfolio, self.since, self.until)
            .into_iter()
            .filter(|p| self.provider.as_ref().is_none_or(|wanted| *wanted == p.provider))
            .filter(|p| self.contract.as_ref().is_none_or(|wanted| *wanted == p.contract))
            .collect();
        cumulo_ledger::focus_commitment_rows(&periods, options).map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// The query for the page after `page`, or `None` when `page` was the last.
fn next_page(query: &UsagePageQuery, page: &[UsageRecord]) -> Option<UsagePageQuery> {
    if page.len() < query.limit as usize {
        return None;
    }
    Some(UsagePageQuery { after: page.last().map(UsageKey::of), ..query.clone() })
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
