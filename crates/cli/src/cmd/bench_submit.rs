//! `cumulo bench submit`: submit throughput and latency of a running server, over HTTP.
//!
//! `concurrency` workers share the jobs; each sends requests of `batch` jobs (one job per request
//! with `--batch 1`, through `POST /v1/jobs`; more through `POST /v1/jobs:batch`) and times every
//! request from send to answer. Job files are CPU-only batch jobs serialised before timing starts.
//!
//! With `--backlog N`, N more jobs are submitted first (batches of 1,000, untimed) and timing starts
//! once the server's reconcile loop has run two passes over them: what submits cost while the loop
//! schedules a backlog (issue 12, finding 10). The report counts the passes run during the timed
//! part (`reconcile_passes`, from `/metrics`), so a run where the loop was off says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::remote::runtime;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct BenchSubmitArgs {
    /// Server URL
    #[arg(long, env = "CUMULO_SERVER")]
    pub server: String,
    /// API token of a member or admin of `--tenant`
    #[arg(long, env = "CUMULO_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Jobs to submit in all
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u64,
    /// Requests in flight at once
    #[arg(long, default_value_t = 32)]
    pub concurrency: u32,
    /// Jobs per request (1: single-job requests)
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Tenant named in the job files
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Send an Idempotency-Key with every request
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Jobs to submit before timing (untimed, in batches of 1,000), then wait for two reconcile
    /// passes: the backlog the loop schedules while submits are timed
    #[arg(long, default_value_t = 0)]
    pub backlog: u64,
}

#[derive(Serialize)]
struct Report {
    bench: &'static str,
    server: String,
    jobs: u64,
    jobs_accepted: u64,
    batch: u32,
    concurrency: u32,
    requests: u64,
    /// Jobs submitted before timing (`--backlog`).
    backlog: u64,
    /// Reconcile passes the server ran while submits were timed (0: the loop was off or idle).
    reconcile_passes: u64,
    /// Of those, the passes that kept the last plan instead of scheduling the backlog again.
    plans_kept: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    wall_s: f64,
    jobs_per_sec: f64,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn job_file(tenant: &str, i: u64) -> serde_json::Value {
    serde_json::json!({
        "name": format!("bench-{i}"),
        "tenant": tenant,
        "kind": "batch",
        "resources": {"cpus": 1},
        "run": "true",
    })
}

/// Scheduling passes the server has run as leader (`cumulo_decision_latency_seconds_count`).
async fn passes(client: &cumulo_api::client::Client) -> anyhow::Result<u64> {
    let counts = pass_counts(client).await?;
    Ok(counts.planned + counts.kept)
}

/// Reconcile passes the server has run so far: those that scheduled and those that kept the last
/// plan (nothing it decides from had changed; 0 from a server that never keeps one).
struct PassCounts {
    planned: u64,
    kept: u64,
}

async fn pass_counts(client: &cumulo_api::client::Client) -> anyhow::Result<PassCounts> {
    let text = client.metrics().await?;
    let sample = |name: &str| text.lines().find_map(|line| line.strip_prefix(name)).map(|v| v.trim().parse::<u64>());
    let planned = sample("cumulo_decision_latency_seconds_count ")
        .context("no cumulo_decision_latency_seconds_count in /metrics")??;
    let kept = sample("cumulo_plans_kept_total ").transpose()?.unwrap_or(0);
    Ok(PassCounts { planned, kept })
}

/// Submits `jobs` jobs in batches of 1,000 (4 in flight), then waits until the loop has run two
/// passes (at most a minute; a server without the loop is not waited for past that).
async fn submit_backlog(client: &cumulo_api::client::Client, tenant: &str, jobs: u64) -> anyhow::Result<()> {
    const BATCH: u64 = 1000;
    let before = passes(client).await?;
    let batches = jobs.div_ceil(BATCH);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, next, tenant) = (client.clone(), next.clone(), tenant.to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= batches {
                    return anyhow::Ok(());
                }
                let n = BATCH.min(jobs - i * BATCH);
                let body =
                    serde_json::json!({"jobs": (0..n).map(|j| job_file(&tenant, i * BATCH + j)).collect::<Vec<_>>()});
                client
                    .submit_batch_body("application/json", body.to_string(), None)
                    .await
                    .context("submitting the backlog")?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while passes(client).await? < before + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

pub fn run(args: BenchSubmitArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.jobs > 0, "invalid --jobs 0: expected at least 1");
    anyhow::ensure!(args.concurrency > 0, "invalid --concurrency 0: expected at least 1");
    anyhow::ensure!(args.batch > 0, "invalid --batch 0: expected at least 1");
    let client = cumulo_api::client::Client::new(&args.server, Some(args.token.clone()))?;
    let batch = u64::from(args.batch);
    let requests = args.jobs.div_ceil(batch);
    // Bodies built before timing: one per request size (the last request may be smaller).
    let body = |n: u64| -> String {
        if batch == 1 {
            job_file(&args.tenant, 0).to_string()
        } else {
            serde_json::json!({"jobs": (0..n).map(|i| job_file(&args.tenant, i)).collect::<Vec<_>>()}).to_string()
        }
    };
    let full = Arc::new(body(batch));
    let last_size = args.jobs - (requests - 1) * batch;
    let last = Arc::new(body(last_size));
    let run_id = &cumulo_api::auth::generate_token()[4..20];
    let report = runtime()?.block_on(async {
        client.whoami().await.context("the server refused the token")?;
        if args.backlog > 0 {
            submit_backlog(&client, &args.tenant, args.backlog).await?;
        }
        let passes_before = pass_counts(&client).await?;
        let next = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..args.concurrency {
            let (client, next, accepted, full, last) =
                (client.clone(), next.clone(), accepted.clone(), full.clone(), last.clone());
            let key_prefix = args.idempotency_keys.then(|| format!("bench-{run_id}"));
            workers.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let body = if i + 1 == requests { &last } else { &full };
                    let key = key_prefix.as_ref().map(|p| format!("{p}-{i}"));
                    let sent = Instant::now();
                    let result = if batch == 1 {
                        client.submit_json(body.as_str(), key.as_deref()).await.map(|_| 1)
                    } else {
                        client
                            .submit_batch_body("application/json", body.to_string(), key.as_deref())
                            .await
                            .map(|b| b.jobs.len() as u64)
                    };
                    latencies.push(sent.elapsed());
                    match result {
                        Ok(n) => {
                            accepted.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (latencies, errors, first_error)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        for worker in workers {
            let (l, e, f) = worker.await?;
            latencies.extend(l);
            errors += e;
            first_error = first_error.or(f);
        }
        let wall = started.elapsed().as_secs_f64();
        let passes_after = pass_counts(&client).await?;
        let plans_kept = passes_after.kept.saturating_sub(passes_before.kept);
        let reconcile_passes = passes_after.planned.saturating_sub(passes_before.planned) + plans_kept;
        latencies.sort();
        let jobs_accepted = accepted.load(Ordering::Relaxed);
        anyhow::Ok(Report {
            bench: "submit",
            server: args.server.clone(),
            jobs: args.jobs,
            jobs_accepted,
            batch: args.batch,
            concurrency: args.concurrency,
            requests,
            backlog: args.backlog,
            reconcile_passes,
            plans_kept,
            errors,
            first_error,
            wall_s: wall,
            jobs_per_sec: jobs_accepted as f64 / wall,
            requests_per_sec: requests as f64 / wall,
            p50_ms: percentile(&latencies, 50.0),
            p99_ms: percentile(&latencies, 99.0),
            max_ms: latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        })
    })?;
    print_json(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), 50.0);
        assert_eq!(percentile(&ms, 99.0), 99.0);
        assert_eq!(percentile(&ms[..1], 99.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
