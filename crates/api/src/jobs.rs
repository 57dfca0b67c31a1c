//! Job routes: submit (one or a batch), list, get and cancel.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cumulo_store::{JobFilter, JobOrder, JobRecord, NewJob};
use cumulo_types::{JobId, JobSpec};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::wire::{BatchRequest, BatchResponse, JobDetail, JobList, ListQuery, SubmitResponse, parse_state};

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// A request body read as text, holding its share of the in-flight body budget.
pub(crate) struct RequestText {
    pub(crate) text: String,
    _held: crate::load::Held,
}

/// Reads a request body up to the configured limit; a larger one is a 413 that says the limit.
/// The body's bytes are taken from the in-flight budget first (503 when it is spent).
pub(crate) async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<RequestText, ApiError> {
    let limit = state.config.body_limit_bytes;
    let too_large = |size: String| {
        ApiError::PayloadTooLarge(format!(
            "request body of {size} is over the limit of {limit} bytes; split the jobs into smaller batches"
        ))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(too_large(format!("{length} bytes")));
    }
    let held = state.load.admit_body(declared.map_or(limit, |l| l as usize), &state.metrics)?;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large("more bytes".to_string()))?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|e| ApiError::bad_request("body", format!("request body is not UTF-8 text: {e}")))?;
    Ok(RequestText { text, _held: held })
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

/// The header that carries a secret value the job file leaves to the submitter
/// (`Cumulo-Secret: NAME=BASE64(VALUE)`, one per secret; `cumulo submit --secret`).
pub(crate) const SECRET_HEADER: &str = "cumulo-secret";

/// Secret values given in `Cumulo-Secret` headers, by name.
fn given_secrets(headers: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    use base64::Engine as _;
    let bad = |reason: &str| {
        ApiError::bad_request("Cumulo-Secret", format!("{reason}: expected NAME=VALUE with the value in base64"))
    };
    let mut given = BTreeMap::new();
    for value in headers.get_all(SECRET_HEADER) {
        let text = value.to_str().map_err(|_| bad("header is not ASCII text"))?;
        let (name, encoded) = text.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad("not base64"))?;
        let value = String::from_utf8(bytes).map_err(|_| bad("the value is not UTF-8 text"))?;
        given.insert(name.trim().to_string(), value);
    }
    Ok(given)
}

/// Fills `spec`'s secrets from the values the submitter gave (they override the file's), then
/// seals them with the server's key: nothing of a value is stored in clear.
fn seal_secrets(
    state: &AppState,
    spec: &mut JobSpec,
    given: &BTreeMap<String, String>,
    path: &str,
) -> Result<(), ApiError> {
    for (name, value) in spec.secrets.iter_mut() {
        if let Some(v) = given.get(name) {
            *value = Some(v.clone());
        }
    }
    state.secret_key.seal_spec(spec).map_err(|err| {
        let field = match &err {
            cumulo_store::secrets::SecretError::Missing { name } => format!("{path}secrets.{name}"),
            _ => format!("{path}secrets"),
        };
        ApiError::bad_request(&field, err.to_string())
    })
}

/// Refuses secret values given for names no job of the request declares.
fn check_secrets_used<'a>(
    given: &BTreeMap<String, String>,
    specs: impl Iterator<Item = &'a JobSpec> + Clone,
) -> Result<(), ApiError> {
    for name in given.keys() {
        if !specs.clone().any(|s| s.secrets.contains_key(name)) {
            return Err(ApiError::bad_request(
                format!("secrets.{name}"),
                format!(
                    "secret `{name}` was given (--secret) but the job file declares no such secret: add `secrets: {{{name}: null}}` to the file"
                ),
            ));
        }
    }
    Ok(())
}

/// A job as the API shows it: secret values masked.
pub(crate) fn shown(mut job: JobRecord) -> JobRecord {
    cumulo_store::secrets::mask(&mut job.spec);
    job
}

/// Parses one job file and checks that the caller may submit it. `path` prefixes field names in
/// errors (`jobs[3].`), empty for a single submit. A file without a `tenant` field belongs to the
/// caller's tenant.
async fn accept_job(state: &AppState, principal: &Principal, text: &str, path: &str) -> Result<JobSpec, ApiError> {
    let source = if path.is_empty() { "request body".to_string() } else { path.trim_end_matches('.').to_string() };
    let spec = cumulo_jobfile::parse_str_in_tenant(text, &source, &principal.tenant)
        .map_err(|err| job_file_error(&err, path))?;
    admit(state, principal, &spec, path).await?;
    Ok(spec)
}

/// The answer to a refused job file: 422 when every problem is a conflict between values that
/// are each valid (two spellings of one GPU model), else 400; the field is the first problem's,
/// prefixed with `path` (`jobs[3].`).
fn job_file_error(err: &cumulo_jobfile::Error, path: &str) -> ApiError {
    let field = err.problems().first().map(|p| p.path.as_str()).filter(|p| !p.is_empty()).unwrap_or("body");
    let field = Some(format!("{path}{field}"));
    let reason = err.to_string();
    if err.is_conflict() { ApiError::Unprocessable { field, reason } } else { ApiError::BadRequest { field, reason } }
}

/// Checks that the caller may submit `spec` for its tenant.
async fn admit(state: &AppState, principal: &Principal, spec: &JobSpec, path: &str) -> Result<(), ApiError> {
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
    Ok(())
}

/// True when a YAML stream's jobs depend on each other: a first document that heads a pipeline
/// or a job group, or an `after:` naming another job.
fn is_linked(texts: &[String]) -> bool {
    if texts.iter().any(|t| t.lines().any(|l| l.starts_with("after:"))) {
        return true;
    }
    if texts.len() < 2 {
        return false;
    }
    let Ok(serde_yaml::Value::Mapping(first)) = serde_yaml::from_str::<serde_yaml::Value>(&texts[0]) else {
        return false;
    };
    first.contains_key("execution") || (first.len() == 1 && first.contains_key("name"))
}

/// Submits a pipeline, a job group or jobs linked by `after:` (one YAML stream). A job group is
/// stored all or nothing with one group id; linked jobs are stored one by one in file order, each
/// naming the ids of those it waits for. A failure part way leaves the earlier ones stored: a retry
/// with the same `Idempotency-Key` stores the rest (each job's key is `KEY#i`).
async fn submit_linked(
    state: &AppState,
    principal: &Principal,
    text: &str,
    key: Option<&str>,
    given: &BTreeMap<String, String>,
    upload: Option<&str>,
) -> Result<Vec<SubmitResponse>, ApiError> {
    let submission = cumulo_jobfile::parse_submission_in_tenant(text, "request body", &principal.tenant)
        .map_err(|err| job_file_error(&err, ""))?;
    let mut jobs = submission.jobs;
    for (i, job) in jobs.iter_mut().enumerate() {
        crate::uploads::attach_upload(job, upload, &format!("jobs[{i}]."))?;
    }
    check_secrets_used(given, jobs.iter())?;
    for (i, job) in jobs.iter_mut().enumerate() {
        seal_secrets(state, job, given, &format!("jobs[{i}]."))?;
    }
    if jobs.len() > state.config.max_batch_jobs {
        return Err(ApiError::bad_request(
            "jobs",
            format!("the batch has {} jobs: expected at most {}", jobs.len(), state.config.max_batch_jobs),
        ));
    }
    for (i, job) in jobs.iter().enumerate() {
        admit(state, principal, job, &format!("jobs[{i}].")).await?;
    }
    let job_key = |i: usize| key.map(|k| batch_key(k, i));
    if let cumulo_jobfile::Shape::Group { name } = &submission.shape {
        // One id for this submission of the group: stable across retries with the same key.
        let suffix = match key {
            Some(k) => format!("{:016x}", fnv1a(k.as_bytes())),
            None => crate::auth::generate_token().chars().rev().take(12).collect(),
        };
        let group = format!("{name}-{suffix}");
        let batch = jobs
            .into_iter()
            .enumerate()
            .map(|(i, mut spec)| {
                spec.group = Some(group.clone());
                NewJob { spec, idempotency_key: job_key(i) }
            })
            .collect();
        let submitted = state.store.submit(batch).await?;
        return Ok(submitted.into_iter().map(|s| SubmitResponse { id: s.id, created: s.created }).collect());
    }
    let mut answers: Vec<SubmitResponse> = Vec::with_capacity(jobs.len());
    for (i, mut spec) in jobs.into_iter().enumerate() {
        for earlier in &submission.after[i] {
            let id = answers[*earlier].id;
            if !spec.after.contains(&id) {
                spec.after.push(id);
            }
        }
        let submitted = state.store.submit(vec![NewJob { spec, idempotency_key: job_key(i) }]).await?;
        let first = submitted.first().ok_or_else(|| ApiError::Internal("store returned no id for a submit".into()))?;
        answers.push(SubmitResponse { id: first.id, created: first.created });
    }
    Ok(answers)
}

/// FNV-1a, 64 bits: a stable short name for an idempotency key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The key a single submit's `Idempotency-Key` is stored under. Single submits and batches have
/// their own namespaces, so a batch's job `KEY#0` and a single submit with key `KEY#0` never meet.
fn single_key(key: &str) -> String {
    format!("one:{key}")
}

/// The key job `index` of a batch with `Idempotency-Key` `key` is stored under.
fn batch_key(key: &str, index: usize) -> String {
    format!("batch:{key}#{index}")
}

fn key_reused(key: &str, field: String, detail: String) -> ApiError {
    ApiError::Unprocessable {
        field: Some(field),
        reason: format!(
            "Idempotency-Key `{key}` was used before for a different request ({detail}): \
             retry with the same body, or send a new key for a new job"
        ),
    }
}

/// Checks that job `id`, found under an idempotency key, is the job `spec` asks for.
async fn same_job(state: &AppState, id: JobId, spec: &JobSpec, key: &str, path: &str) -> Result<(), ApiError> {
    let stored = state.store.get_job(id).await?;
    if !cumulo_store::secrets::same_but_secrets(&stored.spec, spec) {
        let field =
            if path.is_empty() { "Idempotency-Key".to_string() } else { path.trim_end_matches('.').to_string() };
        return Err(key_reused(key, field, format!("job {id} was submitted with another job file")));
    }
    Ok(())
}

/// Whether the body is JSON; JSON text is normalised (re-encoded by serde_json) before the job
/// file parser sees it, so JSON escapes such as surrogate pairs (`\ud83d\ude00`) mean what JSON
/// says they mean.
fn json_text(headers: &HeaderMap, text: String) -> Result<String, ApiError> {
    if !is_json(headers) {
        return Ok(text);
    }
    let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        ApiError::bad_request("body", format!("invalid JSON: {e}; expected a job file as a JSON object"))
    })?;
    integral_numbers_as_integers(&mut value);
    Ok(yaml_safe_json(&value))
}

/// `value` as JSON text that a YAML reader reads as the same value. JSON text is YAML, but YAML
/// refuses some characters written raw that JSON allows (DEL, the C1 controls, U+FFFE, U+FFFF)
/// and reads others as line breaks (NEL, U+2028, U+2029) or a byte order mark (U+FEFF); those are
/// written as `\uXXXX` escapes, which both read as the character itself.
pub(crate) fn yaml_safe_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, YamlSafeFormatter);
    // Writing a `Value` into memory cannot fail: its keys are strings and nothing does I/O.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    // serde_json writes UTF-8 and the escapes are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// serde_json's compact formatter, escaping the characters [`yaml_safe_json`] names.
struct YamlSafeFormatter;

impl serde_json::ser::Formatter for YamlSafeFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if is_yaml_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Characters a YAML 1.2 reader refuses raw, or reads as a break or a byte order mark.
fn is_yaml_unsafe(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// JSON has one number type: `435.0` is the integer 435 (JSON Schema's `integer` admits it), so
/// a whole number written with a fraction reaches the job file parser as an integer.
pub(crate) fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    // Beyond 2^53 a float no longer holds every integer exactly; leave such numbers as they are.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT) {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
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
    let body = read_body(&state, &headers, body).await?;
    let _jobs = state.load.admit_jobs(1, &state.metrics)?;
    let text = json_text(&headers, body.text)?;
    let mut spec = accept_job(&state, &principal, &text, "").await?;
    crate::uploads::attach_upload(&mut spec, crate::uploads::given_upload(&state, &headers)?.as_deref(), "")?;
    let given = given_secrets(&headers)?;
    check_secrets_used(&given, std::iter::once(&spec))?;
    seal_secrets(&state, &mut spec, &given, "")?;
    let stored_key = key.as_deref().map(single_key);
    if let (Some(key), Some(stored)) = (&key, &stored_key)
        && let Some(id) = state.store.job_by_idempotency_key(&spec.tenant, stored).await?
    {
        same_job(&state, id, &spec, key, "").await?;
        return Ok((StatusCode::OK, Json(SubmitResponse { id, created: false })).into_response());
    }
    let submitted = state.store.submit(vec![NewJob { spec: spec.clone(), idempotency_key: stored_key }]).await?;
    let first = submitted.first().ok_or_else(|| ApiError::Internal("store returned no id for a submit".into()))?;
    if let (false, Some(key)) = (first.created, &key) {
        // Two first submits with one key raced; the store kept the other one.
        same_job(&state, first.id, &spec, key, "").await?;
    }
    let status = if first.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SubmitResponse { id: first.id, created: first.created })).into_response())
}

/// A batch retried with its `Idempotency-Key`: every job must be the one stored under its key,
/// and the earlier batch must not have been longer. Answers the stored ids.
async fn batch_retry(state: &AppState, jobs: &[NewJob], key: &str) -> Result<Vec<SubmitResponse>, ApiError> {
    let mut answers = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let path = format!("jobs[{i}].");
        let Some(id) = state.store.job_by_idempotency_key(&job.spec.tenant, &batch_key(key, i)).await? else {
            return Err(key_reused(
                key,
                format!("jobs[{i}]"),
                format!("that batch had {i} jobs, this one {}", jobs.len()),
            ));
        };
        same_job(state, id, &job.spec, key, &path).await?;
        answers.push(SubmitResponse { id, created: false });
    }
    let tenant = &jobs[0].spec.tenant;
    if state.store.job_by_idempotency_key(tenant, &batch_key(key, jobs.len())).await?.is_some() {
        return Err(key_reused(key, "jobs".into(), format!("that batch had more than {} jobs", jobs.len())));
    }
    Ok(answers)
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
    let body = read_body(&state, &headers, body).await?;
    let texts: Vec<String> = if is_json(&headers) {
        let request: BatchRequest = serde_json::from_str(&body.text).map_err(|e| {
            ApiError::bad_request("jobs", format!("invalid batch JSON: {e}; expected {{\"jobs\": [job, ...]}}"))
        })?;
        request
            .jobs
            .into_iter()
            .map(|job| match job {
                serde_json::Value::String(yaml) => yaml,
                mut other => {
                    integral_numbers_as_integers(&mut other);
                    yaml_safe_json(&other)
                }
            })
            .collect()
    } else {
        yaml_documents(&body.text)
    };
    if !is_json(&headers) && is_linked(&texts) {
        let given = given_secrets(&headers)?;
        let upload = crate::uploads::given_upload(&state, &headers)?;
        let jobs = submit_linked(&state, &principal, &body.text, key.as_deref(), &given, upload.as_deref()).await?;
        let status = if jobs.iter().any(|j| j.created) { StatusCode::CREATED } else { StatusCode::OK };
        return Ok((status, Json(BatchResponse { jobs })).into_response());
    }
    drop(body);
    if texts.is_empty() {
        return Err(ApiError::bad_request("jobs", "the batch has no jobs: expected at least one job file"));
    }
    if texts.len() > state.config.max_batch_jobs {
        return Err(ApiError::bad_request(
            "jobs",
            format!("the batch has {} jobs: expected at most {}", texts.len(), state.config.max_batch_jobs),
        ));
    }
    let _jobs = state.load.admit_jobs(texts.len(), &state.metrics)?;
    let given = given_secrets(&headers)?;
    let upload = crate::uploads::given_upload(&state, &headers)?;
    let mut jobs = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        let mut spec = accept_job(&state, &principal, text, &format!("jobs[{i}].")).await?;
        crate::uploads::attach_upload(&mut spec, upload.as_deref(), &format!("jobs[{i}]."))?;
        jobs.push(NewJob { spec, idempotency_key: key.as_ref().map(|k| batch_key(k, i)) });
    }
    check_secrets_used(&given, jobs.iter().map(|j| &j.spec))?;
    for (i, job) in jobs.iter_mut().enumerate() {
        seal_secrets(&state, &mut job.spec, &given, &format!("jobs[{i}]."))?;
    }
    drop(texts);
    if let Some(key) = &key
        && state.store.job_by_idempotency_key(&jobs[0].spec.tenant, &batch_key(key, 0)).await?.is_some()
    {
        let jobs = batch_retry(&state, &jobs, key).await?;
        return Ok((StatusCode::OK, Json(BatchResponse { jobs })).into_response());
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
    ApiQuery(query): ApiQuery<ListQuery>,
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
            // Ids are stored as signed 64-bit integers: any larger `after` is past every job.
            a.parse::<u64>()
                .map(|a| JobId(a.min(i64::MAX as u64)))
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
    Ok(Json(JobList { jobs: page.jobs.into_iter().map(shown).collect(), next: page.next }))
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
    ApiPath(id): ApiPath,
) -> Result<Json<JobDetail>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = visible_job(&state, &principal, id).await?;
    let events = state.store.job_events(id).await?;
    Ok(Json(JobDetail { job: shown(job), events }))
}

/// `POST /v1/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath,
) -> Result<Json<JobRecord>, ApiError> {
    let id = parse_job_id(&id)?;
    let job = visible_job(&state, &principal, id).await?;
    if !principal.may_write_tenant(&job.spec.tenant) {
        principal.require_writer()?;
        return Err(ApiError::NotFound(format!("job `{id}` not found")));
    }
    Ok(Json(shown(state.store.cancel_job(id).await?)))
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
