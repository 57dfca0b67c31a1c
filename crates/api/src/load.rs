//! Backpressure: bounds on the work the API holds in memory at once, so that overload is answered
//! with 503 and `Retry-After` instead of growing until the process dies.
//!
//! Two budgets, each a semaphore taken without waiting (a request that does not fit is shed at
//! once, before its body is read): request body bytes (a body's `Content-Length`, or the whole
//! body limit when it is sent chunked) and submitted jobs (taken once a body is split into job
//! files, held until the store answered). Small requests never meet either: 64 single submits in
//! flight hold 64 jobs of the 50,000.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long a shed client is asked to wait before retrying.
pub const RETRY_AFTER_S: u32 = 1;

/// The in-flight budgets of one server.
#[derive(Debug)]
pub struct Load {
    body_bytes: Arc<Semaphore>,
    max_body_bytes: usize,
    jobs: Arc<Semaphore>,
    max_jobs: usize,
}

/// Budget held by one request; released when dropped.
#[derive(Debug)]
pub struct Held {
    _permit: OwnedSemaphorePermit,
}

impl Load {
    pub fn new(max_body_bytes: usize, max_jobs: usize) -> Load {
        Load {
            body_bytes: Arc::new(Semaphore::new(max_body_bytes)),
            max_body_bytes,
            jobs: Arc::new(Semaphore::new(max_jobs)),
            max_jobs,
        }
    }

    fn take(
        semaphore: &Arc<Semaphore>,
        amount: usize,
        what: String,
        max: usize,
        metrics: &Metrics,
    ) -> Result<Held, ApiError> {
        let permits = u32::try_from(amount.max(1)).unwrap_or(u32::MAX);
        match semaphore.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Ok(Held { _permit: permit }),
            Err(_) => {
                metrics.record_shed();
                Err(ApiError::Overloaded {
                    reason: format!(
                        "the server is busy: {what} would pass its in-flight limit of {max}; retry after {RETRY_AFTER_S} s"
                    ),
                    retry_after_s: RETRY_AFTER_S,
                })
            }
        }
    }

    /// Takes `bytes` of the body budget (capped at the whole budget, so one maximal body always
    /// fits an idle server).
    pub fn admit_body(&self, bytes: usize, metrics: &Metrics) -> Result<Held, ApiError> {
        let bytes = bytes.min(self.max_body_bytes);
        Self::take(&self.body_bytes, bytes, format!("a body of {bytes} bytes"), self.max_body_bytes, metrics)
            .map_err(|e| with_unit(e, "bytes of request bodies"))
    }

    /// Takes `jobs` of the job budget (capped like [`Load::admit_body`]).
    pub fn admit_jobs(&self, jobs: usize, metrics: &Metrics) -> Result<Held, ApiError> {
        let jobs = jobs.min(self.max_jobs);
        Self::take(&self.jobs, jobs, format!("{jobs} more jobs"), self.max_jobs, metrics)
            .map_err(|e| with_unit(e, "jobs being submitted"))
    }
}

fn with_unit(err: ApiError, unit: &str) -> ApiError {
    match err {
        ApiError::Overloaded { reason, retry_after_s } => {
            ApiError::Overloaded { reason: reason.replacen("; retry", &format!(" {unit}; retry"), 1), retry_after_s }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_shed_what_does_not_fit_and_recover_when_released() {
        let metrics = Metrics::default();
        let load = Load::new(100, 10);
        let first = load.admit_body(60, &metrics).expect("fits an idle budget");
        let shed = load.admit_body(60, &metrics).expect_err("60 + 60 is over 100");
        assert_eq!(shed.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            shed.body().reason,
            "the server is busy: a body of 60 bytes would pass its in-flight limit of 100 bytes of request bodies; \
             retry after 1 s"
        );
        drop(first);
        let _again = load.admit_body(1_000, &metrics).expect("a body over the budget is capped to it when idle");
        let jobs = load.admit_jobs(10, &metrics).unwrap();
        assert!(load.admit_jobs(1, &metrics).is_err(), "the job budget is spent");
        drop(jobs);
        assert!(load.admit_jobs(1, &metrics).is_ok());
    }
}
