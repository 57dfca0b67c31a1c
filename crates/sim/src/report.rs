//! What a simulation reports: per policy, job completion and queueing times, GPU allocation over
//! time and against demand, fragmentation, cost by provider and contract, commitment burn-down,
//! inference SLO attainment, preemptions and GPU-hours lost to failures.

use std::collections::BTreeMap;

use cumulo_types::{CapacityKind, GpuModel, JobKind, Money};
use serde::Serialize;

use crate::engine::RunInput;
use crate::workload::TraceJob;

/// One point of the time series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub t_s: u64,
    /// GPUs delivered and up.
    pub capacity_gpus: f64,
    pub allocated_gpus: f64,
    /// GPUs wanted by work that has arrived and not finished (running or pending).
    pub demand_gpus: f64,
    pub free_gpus: f64,
    /// Free GPUs that no pending job can use (too few on the node, or the wrong model).
    pub fragmented_gpus: f64,
    pub pending_jobs: u64,
    pub running_jobs: u64,
}

/// Mean and percentiles of a set of durations in seconds (nearest rank).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dist {
    pub count: u64,
    pub mean_s: f64,
    pub p50_s: u64,
    pub p99_s: u64,
}

impl Dist {
    pub fn of(values: &mut [u32]) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        values.sort_unstable();
        let rank =
            |p: f64| values[(((p * values.len() as f64).ceil() as usize).max(1) - 1).min(values.len() - 1)] as u64;
        let sum: u64 = values.iter().map(|v| *v as u64).sum();
        Dist {
            count: values.len() as u64,
            mean_s: round2(sum as f64 / values.len() as f64),
            p50_s: rank(0.5),
            p99_s: rank(0.99),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn usd(m: Money) -> f64 {
    round2(m.micros() as f64 / 1e6)
}

/// Allocation ratio (allocated / capacity) in one band of demand (arrived demand / capacity).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemandBand {
    pub demand_share_from: f64,
    /// Upper end of the band; `None` for the last band (2.0 and above).
    pub demand_share_to: Option<f64>,
    pub samples: u64,
    pub mean_allocation_ratio: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Allocation {
    /// Time-averaged allocated / capacity over the samples.
    pub mean_ratio: f64,
    pub vs_demand: Vec<DemandBand>,
    pub series: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fragmentation {
    pub mean_fragmented_gpus: f64,
    /// Fragmented GPUs as a share of free GPUs, averaged over samples with free GPUs.
    pub mean_share_of_free: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContractCost {
    pub provider: String,
    /// What the contract costs in the run: its commitment, or its rate for every node-hour
    /// delivered when it names none (take-or-pay either way).
    pub committed_usd: f64,
    /// Contract rate × node-hours actually used.
    pub consumed_usd: f64,
    pub utilisation: f64,
    /// Paid for and not used.
    pub shortfall_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    /// Contracts (committed) plus on-demand and spot (used).
    pub total_usd: f64,
    pub by_provider: BTreeMap<String, f64>,
    pub by_capacity: BTreeMap<String, f64>,
    pub by_contract: BTreeMap<String, ContractCost>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BurnPoint {
    pub t_s: u64,
    pub consumed_usd: f64,
    pub scheduled_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Inference {
    pub jobs: u64,
    pub slo_s: u64,
    /// Share of inference jobs that started within `slo_s` of arriving.
    pub slo_attainment: f64,
    /// Share of demanded replica-seconds (within the horizon) that were served.
    pub served_share: f64,
    /// Inference demand that expired while waiting.
    pub expired: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Failures {
    pub outages: u64,
    /// Attempts cut short by a failure; each was re-queued.
    pub attempts_failed: u64,
    pub gpu_hours_lost: f64,
    /// GPU-hours lost to preemption (work since the last checkpoint).
    pub gpu_hours_lost_to_preemption: f64,
}

/// The fill-up experiment's curve (runs without retries): GPU allocation against the GPU request
/// arrived so far, in steps of 1 % of the fleet's GPUs, as the fragmentation papers plot it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FillUp {
    pub capacity_gpus: f64,
    /// Entry `b`: GPUs allocated, in % of capacity, right after the job whose arrival first took
    /// the GPU request arrived so far to `b` % of capacity.
    pub allocation_percent: Vec<f64>,
    /// Jobs that could not be placed when they arrived (they failed: no retries), and the GPUs
    /// they asked for; they stay in every count of arrived work.
    pub failed_jobs: u64,
    pub failed_gpus: f64,
}

impl FillUp {
    /// Allocation (% of capacity) when the arrived GPU request reached `percent` % of capacity.
    pub fn at(&self, percent: usize) -> Option<f64> {
        self.allocation_percent.get(percent).copied()
    }
}

/// One job's life in a run (kept when the scenario asks for job rows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobRow {
    /// The job's number in arrival order.
    pub job: u64,
    pub arrival_s: u64,
    /// First start, if it ever started.
    pub start_s: Option<u64>,
    /// When it finished (or failed to be placed).
    pub end_s: Option<u64>,
    /// GPU model of its last attempt.
    pub gpu: Option<String>,
    /// GPUs it asks for in all.
    pub gpus: f64,
    pub attempts: u32,
    pub migrations: u32,
    /// `finished`, `failed` (could not be placed, no retries), `running` or `pending` at the end.
    pub outcome: &'static str,
}

/// One policy's results.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub jobs: u64,
    pub finished: u64,
    /// Arrived but not finished at the end (pending or running).
    pub unfinished: u64,
    pub still_running: u64,
    pub simulated_s: u64,
    pub scheduling_passes: u64,
    pub jct_s: BTreeMap<String, Dist>,
    pub queueing_delay_s: BTreeMap<String, Dist>,
    pub gpu_allocation: Allocation,
    pub fragmentation: Fragmentation,
    pub gpu_hours_by_model: BTreeMap<String, f64>,
    pub cost: Cost,
    pub burn_down: BTreeMap<String, Vec<BurnPoint>>,
    pub inference: Inference,
    pub preemptions: u64,
    pub failures: Failures,
    /// Reasons of the jobs left pending by the last scheduling pass.
    pub pending_reasons_at_end: BTreeMap<String, u64>,
    /// Jobs that failed because a pass could not place them and the scenario allows no retries.
    pub failed_to_place: u64,
    /// Present for runs without retries (fill-up experiments).
    pub fill_up: Option<FillUp>,
    /// One row per job when the scenario asks for them (not part of the JSON report; `cumulo
    /// simulate --jobs-csv` writes them).
    #[serde(skip)]
    pub job_rows: Vec<JobRow>,
    /// Per contract over its term, when the fleet came from a portfolio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<crate::term::TermReport>,
}

/// The cost books of one pool at the end of a run.
pub struct PoolBooks {
    pub provider: String,
    pub capacity: CapacityKind,
    pub contract: Option<usize>,
    pub cost: Money,
    pub contract_rate: Money,
    pub used_node_hours: f64,
    pub delivered_node_hours: f64,
}

const KINDS: [JobKind; 4] = [JobKind::Training, JobKind::Inference, JobKind::Batch, JobKind::Sandbox];

fn kind_index(kind: JobKind) -> usize {
    KINDS.iter().position(|k| *k == kind).expect("every kind is listed")
}

/// Accumulates a run's measurements as it goes.
pub struct Collector {
    pub jobs: u64,
    pub finished: u64,
    pub passes: u64,
    pub preemptions: u64,
    pub outages: u64,
    pub last_pending: BTreeMap<String, u64>,
    jct: [Vec<u32>; 4],
    delay: [Vec<u32>; 4],
    inference_jobs: u64,
    inference_on_time: u64,
    inference_expired: u64,
    inference_demand_s: u128,
    inference_served_s: u128,
    attempts_failed: u64,
    lost_failure_milli_s: u128,
    lost_preemption_milli_s: u128,
    gpu_milli_s_by_model: BTreeMap<GpuModel, u128>,
    series: Vec<Sample>,
    burn: Vec<Vec<BurnPoint>>,
    slo_s: u64,
    horizon_s: Option<u64>,
    fill_percent: Vec<f64>,
    fill_capacity_milli: u64,
    failed_jobs: u64,
    failed_gpu_milli: u64,
    pub job_rows: Option<Vec<JobRow>>,
}

fn secs(d: u64) -> u32 {
    d.min(u32::MAX as u64) as u32
}

impl Collector {
    pub fn new(input: &RunInput<'_>) -> Collector {
        Collector {
            jobs: 0,
            finished: 0,
            passes: 0,
            preemptions: 0,
            outages: 0,
            last_pending: BTreeMap::new(),
            jct: Default::default(),
            delay: Default::default(),
            inference_jobs: 0,
            inference_on_time: 0,
            inference_expired: 0,
            inference_demand_s: 0,
            inference_served_s: 0,
            attempts_failed: 0,
            lost_failure_milli_s: 0,
            lost_preemption_milli_s: 0,
            gpu_milli_s_by_model: BTreeMap::new(),
            series: Vec::new(),
            burn: vec![Vec::new(); input.fleet.contracts.len()],
            slo_s: input.settings.inference_slo_s,
            horizon_s: input.horizon_s,
            fill_percent: Vec::new(),
            fill_capacity_milli: 0,
            failed_jobs: 0,
            failed_gpu_milli: 0,
            job_rows: input.settings.job_rows.then(Vec::new),
        }
    }

    /// Keeps a job's row, when the run keeps them.
    pub fn job_row(&mut self, row: impl FnOnce() -> JobRow) {
        if let Some(rows) = &mut self.job_rows {
            rows.push(row());
        }
    }

    /// A job failed: it could not be placed when tried, and it is not retried.
    pub fn unplaced(&mut self, job: &TraceJob) {
        self.failed_jobs += 1;
        self.failed_gpu_milli += job.total_gpus_milli();
    }

    /// After a decision in a fill-up run: GPU thousandths requested by all arrived work,
    /// allocated now, and the fleet's capacity.
    pub fn fill_point(&mut self, arrived_milli: u64, allocated_milli: u64, capacity_milli: u64) {
        if capacity_milli == 0 {
            return;
        }
        self.fill_capacity_milli = capacity_milli;
        let reached = (u128::from(arrived_milli) * 100 / u128::from(capacity_milli)) as usize;
        let allocated = round2(allocated_milli as f64 * 100.0 / capacity_milli as f64);
        while self.fill_percent.len() <= reached {
            self.fill_percent.push(allocated);
        }
    }

    pub fn arrived(&mut self, job: &TraceJob) {
        if job.kind == JobKind::Inference {
            self.inference_jobs += 1;
            let until = self.horizon_s.unwrap_or(u64::MAX).saturating_sub(job.arrival_s);
            self.inference_demand_s += job.work_s.min(until).min(u32::MAX as u64) as u128;
        }
    }

    pub fn started(&mut self, job: &TraceJob, now: u64) {
        let wait = now.saturating_sub(job.arrival_s);
        self.delay[kind_index(job.kind)].push(secs(wait));
        if job.kind == JobKind::Inference && wait <= self.slo_s {
            self.inference_on_time += 1;
        }
    }

    pub fn finished(&mut self, job: &TraceJob, now: u64) {
        self.finished += 1;
        self.jct[kind_index(job.kind)].push(secs(now.saturating_sub(job.arrival_s)));
    }

    /// A run ended (done, preempted or failed) after holding `gpu_milli` for `seconds`.
    pub fn held(&mut self, job: &TraceJob, model: Option<GpuModel>, gpu_milli: u64, seconds: u64) {
        if let Some(m) = model {
            *self.gpu_milli_s_by_model.entry(m).or_default() += gpu_milli as u128 * seconds as u128;
        }
        if job.kind == JobKind::Inference {
            self.inference_served_s += seconds as u128;
        }
    }

    pub fn inference_expired(&mut self, _job: &TraceJob) {
        self.inference_expired += 1;
    }

    pub fn stopped(&mut self, failed: bool, lost_gpu_milli_s: u128) {
        if failed {
            self.attempts_failed += 1;
            self.lost_failure_milli_s += lost_gpu_milli_s;
        } else {
            self.lost_preemption_milli_s += lost_gpu_milli_s;
        }
    }

    pub fn sample(&mut self, sample: Sample, consumed: &[Money], scheduled: &[Money]) {
        for (c, burn) in self.burn.iter_mut().enumerate() {
            burn.push(BurnPoint { t_s: sample.t_s, consumed_usd: usd(consumed[c]), scheduled_usd: usd(scheduled[c]) });
        }
        self.series.push(sample);
    }

    pub fn report(
        mut self,
        input: &RunInput<'_>,
        now: u64,
        unfinished: u64,
        still_running: u64,
        pools: &[PoolBooks],
    ) -> PolicyReport {
        let mut jct = BTreeMap::new();
        let mut delay = BTreeMap::new();
        for (i, kind) in KINDS.iter().enumerate() {
            if !self.delay[i].is_empty() || !self.jct[i].is_empty() {
                jct.insert(kind.as_str().to_string(), Dist::of(&mut self.jct[i]));
                delay.insert(kind.as_str().to_string(), Dist::of(&mut self.delay[i]));
            }
        }
        let all_jct: Vec<u32> = self.jct.iter().flatten().copied().collect();
        let all_delay: Vec<u32> = self.delay.iter().flatten().copied().collect();
        jct.insert("all".to_string(), Dist::of(&mut all_jct.clone()));
        delay.insert("all".to_string(), Dist::of(&mut all_delay.clone()));

        let with_capacity: Vec<&Sample> = self.series.iter().filter(|s| s.capacity_gpus > 0.0).collect();
        let mean_ratio = if with_capacity.is_empty() {
            0.0
        } else {
            with_capacity.iter().map(|s| s.allocated_gpus / s.capacity_gpus).sum::<f64>() / with_capacity.len() as f64
        };
        let mut bands: BTreeMap<u32, (u64, f64)> = BTreeMap::new();
        for s in &with_capacity {
            let band = ((s.demand_gpus / s.capacity_gpus) * 10.0).floor().min(20.0) as u32;
            let e = bands.entry(band).or_default();
            e.0 += 1;
            e.1 += s.allocated_gpus / s.capacity_gpus;
        }
        let vs_demand = bands
            .into_iter()
            .map(|(b, (n, sum))| DemandBand {
                demand_share_from: b as f64 / 10.0,
                demand_share_to: if b == 20 { None } else { Some((b + 1) as f64 / 10.0) },
                samples: n,
                mean_allocation_ratio: round4(sum / n as f64),
            })
            .collect();
        let with_free: Vec<&Sample> = self.series.iter().filter(|s| s.free_gpus > 0.0).collect();
        let fragmentation = Fragmentation {
            mean_fragmented_gpus: round2(if self.series.is_empty() {
                0.0
            } else {
                self.series.iter().map(|s| s.fragmented_gpus).sum::<f64>() / self.series.len() as f64
            }),
            mean_share_of_free: round4(if with_free.is_empty() {
                0.0
            } else {
                with_free.iter().map(|s| s.fragmented_gpus / s.free_gpus).sum::<f64>() / with_free.len() as f64
            }),
        };

        let mut by_provider: BTreeMap<String, Money> = BTreeMap::new();
        let mut by_capacity: BTreeMap<String, Money> = BTreeMap::new();
        let mut contract_paid = vec![Money::ZERO; input.fleet.contracts.len()];
        let mut contract_consumed = vec![Money::ZERO; input.fleet.contracts.len()];
        for p in pools {
            let paid = match (p.capacity, p.contract) {
                (CapacityKind::Contract, Some(c)) => {
                    contract_consumed[c] += p.cost;
                    let take_or_pay = p.contract_rate.mul_div((p.delivered_node_hours * 1000.0).round() as i64, 1000);
                    contract_paid[c] += take_or_pay;
                    take_or_pay
                }
                _ => p.cost,
            };
            *by_provider.entry(p.provider.clone()).or_default() += paid;
            *by_capacity.entry(p.capacity.as_str().to_string()).or_default() += paid;
        }
        let mut by_contract = BTreeMap::new();
        for (c, contract) in input.fleet.contracts.iter().enumerate() {
            // a portfolio contract owes what its own schedule puts in the simulated span
            let committed = match &contract.schedule {
                Some(schedule) => Some(schedule.scheduled(now)),
                None => contract.committed,
            };
            if let Some(committed) = committed {
                // a stated commitment replaces the take-or-pay estimate in the totals
                let diff = committed - contract_paid[c];
                *by_provider.entry(contract.provider.clone()).or_default() += diff;
                *by_capacity.entry("contract".to_string()).or_default() += diff;
                contract_paid[c] = committed;
            }
            let paid = contract_paid[c];
            by_contract.insert(
                contract.name.clone(),
                ContractCost {
                    provider: contract.provider.clone(),
                    committed_usd: usd(paid),
                    consumed_usd: usd(contract_consumed[c]),
                    utilisation: round4(if paid.micros() > 0 {
                        contract_consumed[c].micros() as f64 / paid.micros() as f64
                    } else {
                        0.0
                    }),
                    shortfall_usd: usd(if paid > contract_consumed[c] {
                        paid - contract_consumed[c]
                    } else {
                        Money::ZERO
                    }),
                },
            );
        }
        let total: Money = by_provider.values().copied().sum();
        let burn_down = input
            .fleet
            .contracts
            .iter()
            .zip(std::mem::take(&mut self.burn))
            .map(|(c, b)| (c.name.clone(), b))
            .collect();
        PolicyReport {
            policy: input.policy.as_str().to_string(),
            jobs: self.jobs,
            finished: self.finished,
            unfinished,
            still_running,
            simulated_s: now,
            scheduling_passes: self.passes,
            jct_s: jct,
            queueing_delay_s: delay,
            gpu_allocation: Allocation {
                mean_ratio: round4(mean_ratio),
                vs_demand,
                series: std::mem::take(&mut self.series),
            },
            fragmentation,
            gpu_hours_by_model: self
                .gpu_milli_s_by_model
                .iter()
                .map(|(m, v)| (m.name().to_string(), round2(*v as f64 / 1000.0 / 3600.0)))
                .collect(),
            cost: Cost {
                total_usd: usd(total),
                by_provider: by_provider.into_iter().map(|(k, v)| (k, usd(v))).collect(),
                by_capacity: by_capacity.into_iter().map(|(k, v)| (k, usd(v))).collect(),
                by_contract,
            },
            burn_down,
            inference: Inference {
                jobs: self.inference_jobs,
                slo_s: self.slo_s,
                slo_attainment: round4(if self.inference_jobs > 0 {
                    self.inference_on_time as f64 / self.inference_jobs as f64
                } else {
                    1.0
                }),
                served_share: round4(if self.inference_demand_s > 0 {
                    self.inference_served_s as f64 / self.inference_demand_s as f64
                } else {
                    1.0
                }),
                expired: self.inference_expired,
            },
            preemptions: self.preemptions,
            failures: Failures {
                outages: self.outages,
                attempts_failed: self.attempts_failed,
                gpu_hours_lost: round2(self.lost_failure_milli_s as f64 / 1000.0 / 3600.0),
                gpu_hours_lost_to_preemption: round2(self.lost_preemption_milli_s as f64 / 1000.0 / 3600.0),
            },
            pending_reasons_at_end: std::mem::take(&mut self.last_pending),
            failed_to_place: self.failed_jobs,
            fill_up: (!input.settings.retries).then(|| FillUp {
                capacity_gpus: self.fill_capacity_milli as f64 / 1000.0,
                allocation_percent: std::mem::take(&mut self.fill_percent),
                failed_jobs: self.failed_jobs,
                failed_gpus: round2(self.failed_gpu_milli as f64 / 1000.0),
            }),
            job_rows: {
                let mut rows = self.job_rows.take().unwrap_or_default();
                rows.sort_by_key(|r| r.job);
                rows
            },
            term: None,
        }
    }
}
