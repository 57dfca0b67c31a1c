//! `/metrics` in the Prometheus text format (version 0.0.4), written by hand: queue depth by state,
//! placements and preemptions, the scheduling decision latency histogram, and GPU utilisation by
//! provider and GPU model; the money families (cost, budgets, contract projections) come from
//! `money_metrics`.
//!
//! Counters and the histogram live in [`Metrics`], fed by the reconcile loop through
//! [`Metrics::record_pass`]; gauges are read from the store and the fleet at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use cumulo_types::JobState;

use crate::AppState;
use crate::error::ApiError;

/// Upper bounds (seconds) of the decision latency histogram's buckets.
pub const LATENCY_BUCKETS_S: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Counters and the decision latency histogram, shared by the loop (writer) and `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    placements: AtomicU64,
    preemptions: AtomicU64,
    passes: AtomicU64,
    /// Cumulative counts per bucket of `LATENCY_BUCKETS_S`, then `+Inf`.
    buckets: [AtomicU64; 13],
    latency_sum_us: AtomicU64,
    /// Placements the leader's plan check refused (an engine bug if ever above 0).
    refused_placements: AtomicU64,
    /// Requests answered 503 because the server had too much work in flight.
    shed_requests: AtomicU64,
    /// Passes that kept the last plan: nothing it decides from had changed.
    kept_plans: AtomicU64,
    /// Sums over metered usage for the money families (`money_metrics`), reused for a short TTL.
    pub(crate) money: crate::money_metrics::MoneyCache,
}

impl Metrics {
    /// Records one scheduling pass: how long `schedule` took and what it decided.
    pub fn record_pass(&self, decision: Duration, placements: u64, preemptions: u64) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.placements.fetch_add(placements, Ordering::Relaxed);
        self.preemptions.fetch_add(preemptions, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(decision.as_micros() as u64, Ordering::Relaxed);
        let seconds = decision.as_secs_f64();
        let index = LATENCY_BUCKETS_S.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Records placements the leader's plan check refused.
    pub fn record_refused(&self, placements: u64) {
        self.refused_placements.fetch_add(placements, Ordering::Relaxed);
    }

    /// Records one pass that kept the last plan instead of scheduling (not a decision: the
    /// latency histogram leaves it out).
    pub fn record_kept_plan(&self) {
        self.kept_plans.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one request shed for load (answered 503 with `Retry-After`).
    pub fn record_shed(&self) {
        self.shed_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn placements(&self) -> u64 {
        self.placements.load(Ordering::Relaxed)
    }
}

/// GPUs of one provider and model: how many exist and how many thousandths are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuUse {
    pub total: u64,
    pub used_milli: u64,
}

/// Everything `/metrics` prints, gathered; [`render`] turns it into text.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub jobs_by_state: BTreeMap<JobState, u64>,
    pub active_attempts: u64,
    pub gpus: BTreeMap<(String, String), GpuUse>,
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text for `scrape` and the counters in `metrics`.
pub fn render(scrape: &Scrape, metrics: &Metrics) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP cumulo_jobs Jobs in the store by state (the queue depth is state=\"pending\").");
    let _ = writeln!(out, "# TYPE cumulo_jobs gauge");
    for state in JobState::ALL {
        let n = scrape.jobs_by_state.get(state).copied().unwrap_or(0);
        let _ = writeln!(out, "cumulo_jobs{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP cumulo_active_attempts Attempts planned, launching or running.");
    let _ = writeln!(out, "# TYPE cumulo_active_attempts gauge");
    let _ = writeln!(out, "cumulo_active_attempts {}", scrape.active_attempts);
    let _ = writeln!(out, "# HELP cumulo_placements_total Placements decided by scheduling passes of this process.");
    let _ = writeln!(out, "# TYPE cumulo_placements_total counter");
    let _ = writeln!(out, "cumulo_placements_total {}", metrics.placements.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP cumulo_preemptions_total Preemptions decided by scheduling passes of this process.");
    let _ = writeln!(out, "# TYPE cumulo_preemptions_total counter");
    let _ = writeln!(out, "cumulo_preemptions_total {}", metrics.preemptions.load(Ordering::Relaxed));
    let _ =
        writeln!(out, "# HELP cumulo_plan_refused_placements_total Placements the plan check refused before commit.");
    let _ = writeln!(out, "# TYPE cumulo_plan_refused_placements_total counter");
    let _ =
        writeln!(out, "cumulo_plan_refused_placements_total {}", metrics.refused_placements.load(Ordering::Relaxed));
    let _ =
        writeln!(out, "# HELP cumulo_requests_shed_total Requests answered 503 because too much work was in flight.");
    let _ = writeln!(out, "# TYPE cumulo_requests_shed_total counter");
    let _ = writeln!(out, "cumulo_requests_shed_total {}", metrics.shed_requests.load(Ordering::Relaxed));
    let _ = writeln!(
        out,
        "# HELP cumulo_plans_kept_total Reconcile passes that kept the last plan: nothing it decides from had changed."
    );
    let _ = writeln!(out, "# TYPE cumulo_plans_kept_total counter");
    let _ = writeln!(out, "cumulo_plans_kept_total {}", metrics.kept_plans.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP cumulo_decision_latency_seconds Time one scheduling pass spent deciding.");
    let _ = writeln!(out, "# TYPE cumulo_decision_latency_seconds histogram");
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
        cumulative += metrics.buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "cumulo_decision_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += metrics.buckets[LATENCY_BUCKETS_S.len()].load(Ordering::Relaxed);
    let _ = writeln!(out, "cumulo_decision_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let sum_s = metrics.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "cumulo_decision_latency_seconds_sum {sum_s}");
    let _ = writeln!(out, "cumulo_decision_latency_seconds_count {}", metrics.passes.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP cumulo_gpus GPUs in the fleet by provider and model.");
    let _ = writeln!(out, "# TYPE cumulo_gpus gauge");
    for ((provider, gpu), use_) in &scrape.gpus {
        let _ = writeln!(
            out,
            "cumulo_gpus{{provider=\"{}\",gpu=\"{}\"}} {}",
            escape_label(provider),
            escape_label(gpu),
            use_.total
        );
    }
    let _ = writeln!(out, "# HELP cumulo_gpu_utilisation Share of GPUs held by active attempts (0 to 1).");
    let _ = writeln!(out, "# TYPE cumulo_gpu_utilisation gauge");
    for ((provider, gpu), use_) in &scrape.gpus {
        let ratio = if use_.total == 0 { 0.0 } else { use_.used_milli as f64 / (use_.total as f64 * 1000.0) };
        let _ = writeln!(
            out,
            "cumulo_gpu_utilisation{{provider=\"{}\",gpu=\"{}\"}} {ratio}",
            escape_label(provider),
            escape_label(gpu)
        );
    }
    out
}

/// `GET /metrics`.
pub(crate) async fn handler(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let jobs_by_state = state.store.job_counts_by_state().await?;
    let active = state.store.active_attempts().await?.len() as u64;
    let gpus = crate::fleet::gpu_use_by_provider_and_model(&state)
        .await?
        .into_iter()
        .map(|(key, (total, used_milli))| (key, GpuUse { total, used_milli }))
        .collect();
    let scrape = Scrape { jobs_by_state, active_attempts: active, gpus };
    let mut text = render(&scrape, &state.metrics);
    text.push_str(&crate::money_metrics::scrape(&state).await?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `name{labels} value` lines into a map, failing on any line that is not a comment or a
    /// well-formed sample.
    fn samples(text: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in `{line}`"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in `{line}`"));
            assert!(out.insert(key.to_string(), value).is_none(), "duplicate sample `{key}`");
        }
        out
    }

    #[test]
    fn render_writes_every_family_with_consistent_histogram() {
        let metrics = Metrics::default();
        metrics.record_pass(Duration::from_micros(800), 3, 1);
        metrics.record_pass(Duration::from_millis(30), 2, 0);
        metrics.record_pass(Duration::from_secs(9), 0, 0);
        metrics.record_refused(2);
        metrics.record_shed();
        metrics.record_kept_plan();
        let mut scrape = Scrape::default();
        scrape.jobs_by_state.insert(JobState::Pending, 7);
        scrape.gpus.insert(("aws".into(), "H100".into()), GpuUse { total: 16, used_milli: 4000 });
        let text = render(&scrape, &metrics);
        let s = samples(&text);
        assert_eq!(s["cumulo_jobs{state=\"pending\"}"], 7.0);
        assert_eq!(s["cumulo_jobs{state=\"running\"}"], 0.0);
        assert_eq!(s["cumulo_placements_total"], 5.0);
        assert_eq!(s["cumulo_preemptions_total"], 1.0);
        assert_eq!(s["cumulo_plan_refused_placements_total"], 2.0);
        assert_eq!(s["cumulo_requests_shed_total"], 1.0);
        assert_eq!(s["cumulo_plans_kept_total"], 1.0);
        assert_eq!(s["cumulo_decision_latency_seconds_bucket{le=\"0.001\"}"], 1.0);
        assert_eq!(s["cumulo_decision_latency_seconds_bucket{le=\"0.025\"}"], 1.0);
        assert_eq!(s["cumulo_decision_latency_seconds_bucket{le=\"0.05\"}"], 2.0);
        assert_eq!(s["cumulo_decision_latency_seconds_bucket{le=\"5\"}"], 2.0);
        assert_eq!(s["cumulo_decision_latency_seconds_bucket{le=\"+Inf\"}"], 3.0);
        assert_eq!(s["cumulo_decision_latency_seconds_count"], 3.0);
        assert!((s["cumulo_decision_latency_seconds_sum"] - 9.0308).abs() < 1e-9);
        assert_eq!(s["cumulo_gpu_utilisation{provider=\"aws\",gpu=\"H100\"}"], 0.25);
        assert_eq!(s["cumulo_gpus{provider=\"aws\",gpu=\"H100\"}"], 16.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
