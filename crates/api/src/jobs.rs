//! Job routes: submit (one or a batch), list, get and cancel.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cumulo_store::{JobFilter, JobOrder, JobRecord, NewJob};
use cumulo_types::{JobId, JobSpec};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::wire::{BatchRequest, BatchResponse, JobDetail, JobList, ListQuery, SubmitResponse, parse_state};

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Reads a request body up to the configured limit; a larger one is a 413 that says the limit.
pub(crate) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    let limit = state.config.body_limit_bytes;
    let too_large = |size: String| {
        ApiError::PayloadTooLarge(format!(
            "request body of {size} is over the limit of {limit} bytes; split the jobs into smaller batches"
        ))
    };
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large(format!("{length} bytes")));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large("more bytes".to_string()))?;
    String::from_utf8(bytes.to_vec())
        .map_err(|e| ApiError::bad_request("body", format!("request body is not UTF-8 text: {e}")))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |what: &str| {
        ApiError::bad_request(
            "Idempotency-Key",
            format!("{what}: expected 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
        )
    };
    let text = value.to_str().map_err(|_| bad("header is not ASCII text"))?.trim();
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(&format!("invalid key `{}`", text.chars().take(40).collect::<String>())));
    }
    Ok(Some(text.to_string()))
}

/// Parses one job file and checks that the caller may submit it. `path` prefixes field names in
/// errors (`jobs[3].`), empty for a single submit.
async fn accept_job(state: &AppState, principal: &Principal, text: &str, path: &str) -> Result<JobSpec, ApiError> {
    let source = if path.is_empty() { "request body".to_string() } else { path.trim_end_matches('.').to_string() };
    let mut spec = cumulo_jobfile::parse_str(text, &source).map_err(|err| {
        let field = err.problems().first().map(|p| p.path.clone()).filter(|p| !p.is_empty());
        ApiError::BadRequest {
            field: Some(format!("{path}{}", field.unwrap_or_else(|| "body".to_string()))),
            reason: err.to_string(),
        }
    })?;
    // A job file without a tenant belongs to the caller's tenant.
    if !text.contains("tenant") {
        spec.tenant = principal.tenant.clone();
    }
    if !state.knows_tenant(&spec.tenant).await? {
        return Err(state.unknown_tenant(format!("{path}tenant"), &spec.tenant));
    }
    if !principal.may_write_tenant(&spec.tenant) {
        principal.require_writer()?;
        return Err(ApiError::Forbidden(format!(
            "token `{}` belongs to tenant `{}` and cannot submit jobs for tenant `{}`",
            principal.name, principal.tenant, spec.tenant
        )));
    }
    Ok(spec)
}

/// `POST /v1/jobs`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_writer()?;
    let key = idempotency_key(&headers)?;
    let text = read_body(&state, &headers, body).await?;
    let spec = accept_job(&state, &principal, &text, "").await?;
    let submitted = state.store.submit(vec![NewJob { spec, idempotency_key: key }]).await?;
    let first = submitted.first().ok_or_else(|| ApiError::Internal("store returned no id for a submit".into()))?;
    let status = if first.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SubmitResponse { id: first.id, created: first.created })).into_response())
}

/// Splits a YAML stream into its documents (`---` lines), dropping empty ones.
fn yaml_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("---") && line[3..].trim().is_empty() {
            docs.push(std::mem::take(&mut current));
        } else if line.starts_with("...") && line[3..].trim().is_empty() {
            continue;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push(current);
    docs.into_iter().filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))).collect()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
}

/// `POST /v1/jobs:batch`: a JSON `{"jobs": [...]}` or a YAML stream of job files. All are stored or
/// none; an `Idempotency-Key` covers the batch (job `i` gets key `KEY#i`).
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_writer()?;
    let key = idempotency_key(&headers)?;
    let text = read_body(&state, &headers, body).await?;
    let texts: Vec<String> = if is_json(&headers) {
        let request: BatchRequest = serde_json::from_str(&text).map_err(|e| {
            ApiError::bad_request("jobs", format!("invalid batch JSON: {e}; expected {{\"jobs\": [job, ...]}}"))
        })?;
        request
            .jobs
            .into_iter()
            .map(|job| match job {
                serde_json::Value::String(yaml) => yaml,
                other => other.to_string(),
            })
            .collect()
    } else {
        yaml_documents(&text)
    };
    if texts.is_empty() {
        return Err(ApiError::bad_request("jobs", "the batch has no jobs: expected at least one job file"));
    }
    if texts.len() > state.config.max_batch_jobs {
        return Err(ApiError::bad_request(
            "jobs",
            format!("the batch has {} jobs: expected at most {}", texts.len(), state.config.max_batch_jobs),
        ));
    }
    let mut jobs = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let spec = accept_job(&state, &principal, text, &format!("jobs[{i}].")).await?;
        jobs.push(NewJob { spec, idempotency_key: key.as_ref().map(|k| format!("{k}#{i}")) });
    }
    let submitted = state.store.submit(jobs).await?;
    let any_created = submitted.iter().any(|s| s.created);
    let jobs = submitted.into_iter().map(|s| SubmitResponse { id: s.id, created: s.created }).collect();
    let status = if any_created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(BatchResponse { jobs })).into_response())
}

fn parse_job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<u64>()
        .map(JobId)
        .map_err(|_| ApiError::bad_request("id", format!("invalid job id `{text}`: expected a positive integer")))
}

/// `GET /v1/jobs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let state_filter = query.state.as_deref().filter(|s| !s.is_empty()).map(parse_state).transpose()?;
    let tenant = match query.tenant.filter(|t| !t.is_empty()) {
        Some(t) if !principal.may_read_tenant(&t) => {
            return Err(ApiError::Forbidden(format!(
                "token `{}` belongs to tenant `{}` and cannot list jobs of tenant `{t}`",
                principal.name, principal.tenant
            )));
        }
        Some(t) => Some(t),
        None if principal.is_admin() => None,
        None => Some(principal.tenant.clone()),
    };
    let after = query
        .after
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|a| {
            a.parse::<u64>()
                .map(JobId)
                .map_err(|_| ApiError::bad_request("after", format!("invalid `after` `{a}`: expected a job id")))
        })
        .transpose()?;
    let limit = match query.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(l) => l.parse::<u32>().ok().filter(|n| *n >= 1 && *n <= JobFilter::MAX_LIMIT).ok_or_else(|| {
            ApiError::bad_request(
                "limit",
                format!("invalid limit `{l}`: expected a number from 1 to {}", JobFilter::MAX_LIMIT),
            )
        })?,
    };
    let kind = query
        .kind
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|k| {
            serde_json::from_value::<cumulo_types::JobKind>(serde_json::Value::String(k.to_string())).map_err(|_| {
                ApiError::bad_request(
                    "kind",
                    format!("unknown kind `{k}`: expected training, inference, batch or sandbox"),
                )
            })
        })
        .transpose()?;
    let order = match query.order.as_deref().filter(|s| !s.is_empty()) {
        None | Some("oldest") => JobOrder::OldestFirst,
        Some("newest") => JobOrder::NewestFirst,
        Some(other) => {
            return Err(ApiError::bad_request("order", format!("unknown order `{other}`: expected oldest or newest")));
        }
    };
    let name_contains = query.q.filter(|q| !q.trim().is_empty()).map(|q| q.trim().to_string());
    let cluster = query.cluster.filter(|c| !c.is_empty());
    let filter = JobFilter { state: state_filter, tenant, after, limit, kind, name_contains, cluster, order };
    let page = state.store.list_jobs(filter).await?;
    Ok(Json(JobList { jobs: page.jobs, next: page.next }))
}

/// Loads a job the caller may see; a job of another tenant looks exactly like a missing one.
pub(crate) async fn visible_job(state: &AppState, principal: &Principal, id: JobId) -> Result<JobRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("job `{id}` not found"));
    match state.store.get_job(id).await {
        Ok(job) if principal.may_read_tenant(&job.spec.tenant) => Ok(job),
        Ok(_) | Err(cumulo_store::Error::NotFound { .. }) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/jobs/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = visible_job(&state, &principal, id).await?;
    let events = state.store.job_events(id).await?;
    Ok(Json(JobDetail { job, events }))
}

/// `POST /v1/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = visible_job(&state, &principal, id).await?;
    if !principal.may_write_tenant(&job.spec.tenant) {
        principal.require_writer()?;
        return Err(ApiError::NotFound(format!("job `{id}` not found")));
    }
    Ok(Json(state.store.cancel_job(id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_streams_split_into_documents() {
        let docs = yaml_documents("---\nname: a\n---\n# only a comment\n---\nname: b\n...\n");
        assert_eq!(docs, vec!["name: a\n".to_string(), "name: b\n".to_string()]);
        assert_eq!(yaml_documents("name: a\nrun: echo ---\n"), vec!["name: a\nrun: echo ---\n".to_string()]);
    }
}
