//! `GET /v1/jobs/{id}/logs`: an attempt's log, read through the driver that runs it, whole or with
//! `follow=true` as a chunked stream that sends new bytes as they come and ends with the attempt.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cumulo_driver::Driver;
use cumulo_types::{AttemptId, JobId};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::fleet::placement_cluster;
use crate::jobs::visible_job;
use crate::wire::LogQuery;

/// How often a followed log is asked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most bytes a whole (not followed) answer collects.
const MAX_WHOLE_LOG: usize = 64 << 20;

fn driver_error(attempt: AttemptId, err: cumulo_driver::Error) -> ApiError {
    match err {
        cumulo_driver::Error::NotFound { .. } => ApiError::NotFound(format!("no log for attempt {attempt} yet")),
        cumulo_driver::Error::Unsupported { driver, .. } => {
            ApiError::NotFound(format!("the {driver} driver keeps no logs"))
        }
        other => ApiError::Internal(format!("reading the log of attempt {attempt}: {other}")),
    }
}

fn parse_flag(field: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(field, format!("invalid {field} `{other}`: expected true or false"))),
    }
}

pub(crate) async fn handler(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let id = id
        .parse::<u64>()
        .map(JobId)
        .map_err(|_| ApiError::bad_request("id", format!("invalid job id `{id}`: expected a positive integer")))?;
    let follow = parse_flag("follow", query.follow.as_deref())?;
    let job = visible_job(&state, &principal, id).await?;
    let number = match query.attempt.as_deref().filter(|a| !a.is_empty()) {
        // Any number from 1 is a valid question; one past the job's attempts is answered 404 below.
        Some(a) => a.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::bad_request("attempt", format!("invalid attempt `{a}`: expected a number from 1"))
        })?,
        None => u64::from(job.attempt_count),
    };
    if number == 0 {
        let why = job.pending_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        return Err(ApiError::NotFound(format!("job `{id}` has no attempt yet (state {}{why})", job.state)));
    }
    let Some(number) = u32::try_from(number).ok().filter(|n| *n <= job.attempt_count) else {
        return Err(ApiError::NotFound(format!("job `{id}` has no attempt {number} (it has {})", job.attempt_count)));
    };
    let attempt = AttemptId { job: id, attempt: number };
    let cluster = job
        .attempts
        .iter()
        .find(|a| a.id == attempt)
        .and_then(|a| placement_cluster(&a.placement))
        .ok_or_else(|| ApiError::NotFound(format!("attempt {attempt} has no placement on a cluster")))?;
    let driver = state.fleet.cluster(&cluster).map(|c| c.driver.clone()).ok_or_else(|| {
        ApiError::NotFound(format!("attempt {attempt} ran on cluster `{cluster}`, which this server does not know"))
    })?;
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if !follow {
        let mut out = Vec::new();
        loop {
            let chunk = driver.logs(attempt, 0, out.len() as u64).await.map_err(|e| driver_error(attempt, e))?;
            if chunk.data.is_empty() || out.len() >= MAX_WHOLE_LOG {
                break;
            }
            out.extend_from_slice(&chunk.data);
        }
        return Ok((headers, out).into_response());
    }
    let stream = futures_util::stream::unfold(
        Follow { state: state.clone(), driver, attempt, offset: 0, done: false },
        follow_step,
    );
    Ok((headers, Body::from_stream(stream)).into_response())
}

struct Follow {
    state: AppState,
    driver: Arc<dyn Driver>,
    attempt: AttemptId,
    offset: u64,
    done: bool,
}

/// One step of a followed log: the next chunk of new bytes, waiting for it; `None` once the
/// driver says the attempt has finished and everything it wrote was sent.
async fn follow_step(mut f: Follow) -> Option<(Result<Vec<u8>, std::io::Error>, Follow)> {
    if f.done {
        return None;
    }
    loop {
        match f.driver.logs(f.attempt, 0, f.offset).await {
            Ok(chunk) if !chunk.data.is_empty() => {
                f.offset = chunk.next_offset;
                return Some((Ok(chunk.data), f));
            }
            Ok(chunk) if chunk.complete => return None,
            Ok(_) => tokio::time::sleep(FOLLOW_POLL).await,
            // The driver has not heard of the attempt: wait for its launch unless it already ended.
            Err(cumulo_driver::Error::NotFound { .. }) if attempt_ended(&f.state, f.attempt).await => return None,
            Err(cumulo_driver::Error::NotFound { .. }) => tokio::time::sleep(FOLLOW_POLL).await,
            Err(e) if e.is_transient() => tokio::time::sleep(FOLLOW_POLL).await,
            Err(e) => {
                f.done = true;
                return Some((Err(std::io::Error::other(e.to_string())), f));
            }
        }
    }
}

async fn attempt_ended(state: &AppState, attempt: AttemptId) -> bool {
    match state.store.get_job(attempt.job).await {
        Ok(job) => job.attempts.iter().find(|a| a.id == attempt).is_none_or(|a| a.state.is_terminal()),
        Err(_) => true,
    }
}
