//! A seeded synthetic workload, generated lazily in arrival order so that a simulated year of
//! millions of jobs never sits in memory at once.
//!
//! Distributions, as stated: arrivals are a Poisson process (exponential inter-arrival times with
//! mean `horizon / jobs`); each job picks a class with probability proportional to its weight;
//! its GPU count is a power of two drawn uniformly between the class's bounds (log-uniform); its
//! run time on an H100 is log-normal with the class's median and σ; its tenant is uniform over
//! the class's tenants. Speeds on other GPUs follow [`crate::speed::SpeedRow::by_flops`] with the
//! class's `alpha`.
//!
//! With `follow_commitments` the arrival rate is not constant: it is sized, step by step, so that
//! the GPUs the work holds track the portfolio's commitments ([`ArrivalRate`], computed in
//! [`crate::term::arrival_rate`]); arrivals are then a Poisson process with that piecewise
//! constant rate (exponential gaps in cumulative intensity, mapped back to time).

use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::Error;
use crate::speed::{ModelSet, SpeedRow};
use crate::workload::TraceJob;

/// A generator as written in a scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Jobs over the horizon (constant rate); 0 with `follow_commitments`, which sizes the rate.
    #[serde(default)]
    pub jobs: u64,
    pub horizon_days: f64,
    /// Size arrivals over time to the portfolio's commitment schedule instead of `jobs`.
    #[serde(default)]
    pub follow_commitments: Option<FollowCommitments>,
    /// Defaults to the scenario's seed.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default = "default_classes")]
    pub classes: Vec<JobClass>,
}

/// Demand that grows toward the commitments: at time `t` the work arriving is sized so that the
/// GPUs it holds are `share(t)` times the GPUs that, used at contract rates, burn every
/// commitment exactly on its schedule; `share` runs linearly from `share_from` at the start to
/// `share_to` at the generator's horizon, in steps of `step_days`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowCommitments {
    #[serde(default = "one")]
    pub share_from: f64,
    #[serde(default = "one")]
    pub share_to: f64,
    #[serde(default = "one")]
    pub step_days: f64,
}

/// A piecewise constant arrival rate: `jobs_per_s` within `[from_s, to_s)`, segments in order.
#[derive(Clone, Debug, PartialEq)]
pub struct ArrivalRate {
    pub segments: Vec<RateSegment>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSegment {
    pub from_s: u64,
    pub to_s: u64,
    pub jobs_per_s: f64,
}

impl ArrivalRate {
    /// Expected arrivals within `[from_s, to_s)`.
    pub fn expected(&self, from_s: u64, to_s: u64) -> f64 {
        self.segments
            .iter()
            .map(|s| {
                let (a, b) = (s.from_s.max(from_s), s.to_s.min(to_s));
                if b > a { (b - a) as f64 * s.jobs_per_s } else { 0.0 }
            })
            .sum()
    }
}

/// One class of generated jobs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobClass {
    pub name: String,
    pub kind: JobKind,
    pub weight: f64,
    /// GPUs per job (0 for CPU-only), drawn log-uniformly over powers of two.
    #[serde(default)]
    pub gpus_min: u32,
    #[serde(default)]
    pub gpus_max: u32,
    /// At most this many GPUs per node; bigger jobs are gangs of such nodes.
    #[serde(default = "eight")]
    pub gpus_per_node: u32,
    /// vCPUs per job for CPU-only classes (drawn uniformly between 1 and this), per GPU otherwise.
    #[serde(default = "eight")]
    pub vcpus: u32,
    pub median_hours: f64,
    #[serde(default = "one")]
    pub sigma: f64,
    #[serde(default = "normal")]
    pub priority: Priority,
    #[serde(default)]
    pub preemptible: bool,
    /// Acceptable GPU models; empty is any.
    #[serde(default)]
    pub models: Vec<GpuModel>,
    #[serde(default)]
    pub topology: TopologyNeed,
    /// Sensitivity of speed to FLOPS (0: none, 1: proportional).
    #[serde(default = "half")]
    pub alpha: f64,
    #[serde(default = "one_u32")]
    pub tenants: u32,
}

fn eight() -> u32 {
    8
}
fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn half() -> f64 {
    0.5
}
fn normal() -> Priority {
    Priority::NORMAL
}

/// The default mix: sandboxes and batch by count, large training (256 to 1,024 GPUs on GB200/GB300
/// racks, within one network block) by GPU-hours; about two thirds of a 500,000-GPU fleet over a
/// year at 10 million jobs (see [`Generator::offered_gpu_hours`]).
pub fn default_classes() -> Vec<JobClass> {
    let class = |name: &str, kind, weight, gpus: (u32, u32), median_hours, sigma| JobClass {
        name: name.to_string(),
        kind,
        weight,
        gpus_min: gpus.0,
        gpus_max: gpus.1,
        gpus_per_node: 8,
        vcpus: 8,
        median_hours,
        sigma,
        priority: Priority::NORMAL,
        preemptible: false,
        models: Vec::new(),
        topology: TopologyNeed::Any,
        alpha: 0.5,
        tenants: 8,
    };
    vec![
        JobClass {
            vcpus: 4,
            preemptible: true,
            priority: Priority::LOW,
            ..class("sandbox", JobKind::Sandbox, 0.5, (0, 0), 0.1, 1.0)
        },
        JobClass { preemptible: true, alpha: 0.4, ..class("batch", JobKind::Batch, 0.3, (1, 8), 1.0, 1.0) },
        JobClass {
            priority: Priority::HIGH,
            alpha: 0.6,
            ..class("inference", JobKind::Inference, 0.158, (8, 8), 6.0, 1.0)
        },
        JobClass {
            topology: TopologyNeed::Block,
            preemptible: true,
            alpha: 0.7,
            ..class("training-medium", JobKind::Training, 0.04, (16, 256), 8.0, 1.0)
        },
        JobClass {
            topology: TopologyNeed::Block,
            priority: Priority::HIGH,
            alpha: 0.8,
            gpus_per_node: 4,
            models: vec![GpuModel::GB200, GpuModel::GB300],
            tenants: 2,
            ..class("training-large", JobKind::Training, 0.006, (256, 1024), 48.0, 0.8)
        },
    ]
}

impl Generator {
    pub fn check(&self) -> Result<(), Error> {
        match &self.follow_commitments {
            None if self.jobs == 0 => {
                return Err(Error::invalid("generator.jobs", 0, "a positive number of jobs"));
            }
            Some(_) if self.jobs != 0 => {
                return Err(Error::invalid(
                    "generator.jobs",
                    self.jobs,
                    "no `jobs` with `follow_commitments`, which sizes the arrivals",
                ));
            }
            Some(f) => {
                for (field, v) in [("share_from", f.share_from), ("share_to", f.share_to)] {
                    if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                        return Err(Error::invalid(
                            &format!("generator.follow_commitments.{field}"),
                            v,
                            "a share of the commitment schedule from 0 to 100 (1 = on schedule)",
                        ));
                    }
                }
                if !(f.step_days.is_finite() && f.step_days >= 1.0 / 24.0) {
                    return Err(Error::invalid(
                        "generator.follow_commitments.step_days",
                        f.step_days,
                        "at least 1/24 of a day",
                    ));
                }
            }
            None => {}
        }
        if !(self.horizon_days.is_finite() && self.horizon_days > 0.0) {
            return Err(Error::invalid("generator.horizon_days", self.horizon_days, "a positive number of days"));
        }
        if self.classes.is_empty() || self.classes.iter().all(|c| c.weight <= 0.0) {
            return Err(Error::invalid("generator.classes", "[]", "at least one class with a positive weight"));
        }
        for c in &self.classes {
            let field = |f: &str| format!("generator.classes.{}.{f}", c.name);
            if !(c.weight.is_finite() && c.weight >= 0.0) {
                return Err(Error::invalid(&field("weight"), c.weight, "a non-negative weight"));
            }
            if c.gpus_min > c.gpus_max || (c.gpus_max > 0 && c.gpus_min == 0) {
                return Err(Error::invalid(
                    &field("gpus_min"),
                    format!("{}..{}", c.gpus_min, c.gpus_max),
                    "0..0 for CPU-only work or 1 <= gpus_min <= gpus_max",
                ));
            }
            if c.gpus_per_node == 0 || c.gpus_per_node > 64 || c.vcpus == 0 {
                return Err(Error::invalid(&field("gpus_per_node"), c.gpus_per_node, "1 to 64, with vcpus >= 1"));
            }
            if !(c.median_hours.is_finite() && c.median_hours > 0.0 && c.sigma.is_finite() && c.sigma >= 0.0) {
                return Err(Error::invalid(&field("median_hours"), c.median_hours, "a positive median and sigma >= 0"));
            }
        }
        Ok(())
    }

    /// One speed row per class, in class order (the jobs' `job_type`).
    pub fn speeds(&self) -> Vec<SpeedRow> {
        self.classes.iter().map(|c| SpeedRow::by_flops(&c.name, GpuModel::H100, c.alpha.clamp(0.0, 1.0))).collect()
    }

    /// Tenant names, `<class>-<i>`, in the order their indices are drawn.
    pub fn tenants(&self) -> Vec<String> {
        self.classes.iter().flat_map(|c| (0..c.tenants.max(1)).map(move |i| format!("{}-{i}", c.name))).collect()
    }

    /// Expected GPU-hours of the whole workload (on H100s), from the distributions' means.
    pub fn offered_gpu_hours(&self) -> f64 {
        self.jobs as f64 * self.mean_gpu_hours_per_job(|_| 1.0)
    }

    /// Expected GPU-hours one job holds: over the class mix, mean GPUs × mean reference hours ×
    /// `held_per_reference_hour(class)` (1 on the reference GPU; less on faster ones).
    pub fn mean_gpu_hours_per_job(&self, held_per_reference_hour: impl Fn(&JobClass) -> f64) -> f64 {
        let total: f64 = self.classes.iter().map(|c| c.weight.max(0.0)).sum();
        self.classes
            .iter()
            .map(|c| {
                let powers = gpu_powers(c);
                let mean_gpus =
                    if powers.is_empty() { 0.0 } else { powers.iter().sum::<u32>() as f64 / powers.len() as f64 };
                let mean_hours = c.median_hours * (c.sigma * c.sigma / 2.0).exp();
                c.weight.max(0.0) / total * mean_gpus * mean_hours * held_per_reference_hour(c)
            })
            .sum()
    }

    /// The jobs, lazily, in arrival order, at the constant rate of `jobs` over the horizon.
    pub fn stream(&self, scenario_seed: u64) -> JobStream {
        let mean_gap_s = self.horizon_days * 86_400.0 / self.jobs as f64;
        self.stream_with(scenario_seed, Arrivals::Count { mean_gap_s, left: self.jobs })
    }

    /// The jobs, lazily, in arrival order, arriving at a piecewise constant rate (Poisson).
    pub fn stream_at(&self, scenario_seed: u64, rate: ArrivalRate) -> JobStream {
        self.stream_with(scenario_seed, Arrivals::Rate { rate, segment: 0 })
    }

    fn stream_with(&self, scenario_seed: u64, arrivals: Arrivals) -> JobStream {
        let total: f64 = self.classes.iter().map(|c| c.weight.max(0.0)).sum();
        let mut acc = 0.0;
        let cumulative = self
            .classes
            .iter()
            .map(|c| {
                acc += c.weight.max(0.0) / total;
                acc
            })
            .collect();
        let mut tenant_base = Vec::new();
        let mut base = 0;
        for c in &self.classes {
            tenant_base.push(base);
            base += c.tenants.max(1);
        }
        JobStream {
            rng: ChaCha8Rng::seed_from_u64(self.seed.unwrap_or(scenario_seed)),
            classes: self.classes.clone(),
            cumulative,
            tenant_base,
            powers: self.classes.iter().map(gpu_powers).collect(),
            arrivals,
            clock_s: 0.0,
        }
    }
}

fn gpu_powers(c: &JobClass) -> Vec<u32> {
    if c.gpus_max == 0 {
        return Vec::new();
    }
    let mut v = Vec::new();
    let mut g = c.gpus_min.next_power_of_two();
    while g <= c.gpus_max {
        v.push(g);
        g *= 2;
    }
    if v.is_empty() {
        v.push(c.gpus_min);
    }
    v
}

/// The generator's jobs, one at a time.
pub struct JobStream {
    rng: ChaCha8Rng,
    classes: Vec<JobClass>,
    cumulative: Vec<f64>,
    tenant_base: Vec<u32>,
    powers: Vec<Vec<u32>>,
    arrivals: Arrivals,
    clock_s: f64,
}

/// How arrival times are drawn.
enum Arrivals {
    /// `left` more jobs, exponential gaps of this mean (the `jobs` form, exactly as before).
    Count { mean_gap_s: f64, left: u64 },
    /// A non-homogeneous Poisson process; `segment` is where the clock is.
    Rate { rate: ArrivalRate, segment: usize },
}

impl JobStream {
    /// The next arrival time, or `None` when the stream is done.
    fn next_arrival(&mut self) -> Option<f64> {
        if let Arrivals::Count { left: 0, .. } = self.arrivals {
            return None;
        }
        let u = 1.0 - self.rng.r#gen::<f64>();
        match &mut self.arrivals {
            Arrivals::Count { mean_gap_s, left } => {
                *left -= 1;
                self.clock_s += -*mean_gap_s * u.ln();
                Some(self.clock_s)
            }
            Arrivals::Rate { rate, segment } => {
                // an exponential(1) amount of cumulative intensity, spent segment by segment
                let mut need = -u.ln();
                while let Some(s) = rate.segments.get(*segment) {
                    let from = self.clock_s.max(s.from_s as f64);
                    let available = (s.to_s as f64 - from).max(0.0) * s.jobs_per_s;
                    if s.jobs_per_s > 0.0 && need <= available {
                        self.clock_s = from + need / s.jobs_per_s;
                        return Some(self.clock_s);
                    }
                    need -= available;
                    self.clock_s = s.to_s as f64;
                    *segment += 1;
                }
                None
            }
        }
    }
}

impl Iterator for JobStream {
    type Item = TraceJob;

    fn next(&mut self) -> Option<TraceJob> {
        let arrival_s = self.next_arrival()?;
        let rng = &mut self.rng;
        let pick: f64 = rng.r#gen();
        let ci = self.cumulative.iter().position(|c| pick < *c).unwrap_or(self.classes.len() - 1);
        let c = &self.classes[ci];
        let powers = &self.powers[ci];
        let gpus = if powers.is_empty() { 0 } else { powers[rng.gen_range(0..powers.len())] };
        let (num_nodes, per_node) = if gpus == 0 {
            (1, 0)
        } else if gpus <= c.gpus_per_node {
            (1, gpus)
        } else {
            (gpus.div_ceil(c.gpus_per_node), c.gpus_per_node)
        };
        // Box-Muller for a standard normal
        let (u1, u2): (f64, f64) = (1.0 - rng.r#gen::<f64>(), rng.r#gen());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let hours = c.median_hours * (c.sigma * z).exp();
        let cpus = if gpus == 0 { rng.gen_range(1..=c.vcpus) } else { c.vcpus * per_node };
        let tenant = self.tenant_base[ci] + rng.gen_range(0..c.tenants.max(1));
        Some(TraceJob {
            needs: crate::workload::NO_NEEDS,
            arrival_s: arrival_s as u64,
            kind: c.kind,
            tenant,
            priority: c.priority,
            preemptible: c.preemptible,
            num_nodes,
            topology: if num_nodes > 1 { c.topology } else { TopologyNeed::Any },
            gpus_per_node: MilliGpu::whole(per_node),
            cpus_milli: cpus * 1000,
            memory_mib: cpus as u64 * 8 * 1024,
            models: ModelSet::of(&c.models),
            job_type: ci as u16,
            work_s: ((hours * 3600.0).round() as u64).max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_seeded_sorted_and_follows_the_mix() {
        let g = Generator {
            jobs: 20_000,
            horizon_days: 10.0,
            follow_commitments: None,
            seed: Some(3),
            classes: default_classes(),
        };
        g.check().unwrap();
        let a: Vec<TraceJob> = g.stream(0).collect();
        let b: Vec<TraceJob> = g.stream(0).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_000);
        assert!(a.windows(2).all(|p| p[0].arrival_s <= p[1].arrival_s));
        let sandboxes = a.iter().filter(|j| j.kind == JobKind::Sandbox).count() as f64 / 20_000.0;
        assert!((sandboxes - 0.5).abs() < 0.02, "{sandboxes}");
        let last = a.last().unwrap().arrival_s as f64 / 86_400.0;
        assert!((last - 10.0).abs() < 0.5, "{last}");
        assert!(
            a.iter()
                .filter(|j| j.kind == JobKind::Training && j.num_nodes > 1)
                .all(|j| j.topology == TopologyNeed::Block)
        );
    }

    #[test]
    fn default_mix_offers_about_two_thirds_of_500k_gpus_for_a_year() {
        let g = Generator {
            jobs: 10_000_000,
            horizon_days: 365.0,
            follow_commitments: None,
            seed: None,
            classes: default_classes(),
        };
        let share = g.offered_gpu_hours() / (500_000.0 * 8760.0);
        assert!((0.6..0.85).contains(&share), "{share}");
    }

    #[test]
    fn bad_class_names_the_field() {
        let mut classes = default_classes();
        classes[1].gpus_min = 9;
        let g = Generator { jobs: 1, horizon_days: 1.0, follow_commitments: None, seed: None, classes };
        assert_eq!(
            g.check().unwrap_err().to_string(),
            "invalid generator.classes.batch.gpus_min `9..8`: expected 0..0 for CPU-only work or 1 <= gpus_min <= gpus_max"
        );
    }
}
