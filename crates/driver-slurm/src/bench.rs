//! Dispatch and observe throughput against a live cluster, for `cargo bench -p cumulo-driver-slurm`
//! and `cumulo bench slurm`: submits held (never running) attempts so that ten thousand fit on one
//! small machine, measures submissions per second and the time of whole-cluster polls, then
//! cancels what it submitted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cumulo_driver::{AttemptId, Driver, JobId, JobSpec, LaunchRequest, NodeAssignment};
use serde::Serialize;

use crate::SlurmDriver;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Attempts to submit (and then observe in one call).
    pub attempts: u64,
    /// Submissions in flight at once.
    pub concurrency: usize,
    /// Polls of all attempts to time.
    pub polls: usize,
    /// First job id used; ids `first_job..first_job + attempts` must be unused on the cluster.
    pub first_job: u64,
}

/// The figures, as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub backend: String,
    /// `slurmrestd` or `squeue`.
    pub observe_with: String,
    pub attempts: u64,
    pub concurrency: usize,
    pub dispatch_seconds: f64,
    pub dispatch_per_second: f64,
    /// Every poll's duration, in seconds, for all `attempts` in one `observe` call.
    pub observe_seconds: Vec<f64>,
    pub observe_median_seconds: f64,
    pub observed_known: usize,
}

fn held_request(a: AttemptId) -> LaunchRequest {
    let mut job = JobSpec::new("bench", "bench");
    job.run = Some("true".into());
    let mut req = LaunchRequest::new(a, job);
    req.nodes = vec![NodeAssignment::default()];
    req
}

/// Submits `config.attempts` held attempts (the cluster settings `slurm` with `submit_held` set)
/// with bounded concurrency, then times `config.polls` observations of all of them, then cancels
/// them.
pub async fn dispatch_and_observe(mut slurm: crate::Config, config: &BenchConfig) -> Result<BenchReport, crate::Error> {
    slurm.submit_held = true;
    let squeue = matches!(slurm.observe_with, crate::ObserveWith::Squeue { .. });
    let driver = Arc::new(SlurmDriver::new(slurm)?);
    let ids: Vec<AttemptId> =
        (0..config.attempts).map(|i| AttemptId { job: JobId(config.first_job + i), attempt: 1 }).collect();
    // The first launch reads the cluster's job list once; keep that out of the dispatch figure.
    driver.refresh_known().await?;
    let queue = Arc::new(std::sync::Mutex::new(ids.clone().into_iter()));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency.max(1) {
        let driver = driver.clone();
        let queue = queue.clone();
        tasks.spawn(async move {
            loop {
                let next = queue.lock().expect("queue poisoned").next();
                let Some(a) = next else { return Ok::<(), cumulo_driver::Error>(()) };
                driver.launch(&held_request(a)).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| cumulo_driver::Error::io("bench task", std::io::Error::other(e.to_string())))??;
    }
    let dispatch = start.elapsed();
    let mut observe_seconds = Vec::new();
    let mut observed_known = 0;
    for _ in 0..config.polls.max(1) {
        let t = Instant::now();
        let obs = driver.observe(&ids).await?;
        observe_seconds.push(t.elapsed().as_secs_f64());
        observed_known = obs.iter().filter(|o| o.state != cumulo_driver::AttemptState::Unknown).count();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sorted = observe_seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let ids = Arc::new(ids);
    let mut cancels = tokio::task::JoinSet::new();
    for worker in 0..config.concurrency.max(1) {
        let (driver, ids, step) = (driver.clone(), ids.clone(), config.concurrency.max(1));
        cancels.spawn(async move {
            for a in ids.iter().skip(worker).step_by(step) {
                driver.cancel(*a).await?;
            }
            Ok::<(), cumulo_driver::Error>(())
        });
    }
    while let Some(r) = cancels.join_next().await {
        r.map_err(|e| cumulo_driver::Error::io("bench task", std::io::Error::other(e.to_string())))??;
    }
    Ok(BenchReport {
        backend: driver.backend_name().to_string(),
        observe_with: if squeue { "squeue" } else { driver.backend_name() }.to_string(),
        attempts: config.attempts,
        concurrency: config.concurrency,
        dispatch_seconds: dispatch.as_secs_f64(),
        dispatch_per_second: config.attempts as f64 / dispatch.as_secs_f64(),
        observe_seconds,
        observe_median_seconds: median,
        observed_known,
    })
}
