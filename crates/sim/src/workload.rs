//! Work as the simulator sees it: jobs with an arrival time, a shape and an amount of work,
//! whatever trace or generator they came from.

use cumulo_sched::needs::Needs;
use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};

use crate::speed::{ModelSet, SpeedRow};

/// One job of a workload. Compact on purpose: a simulated year holds millions of them.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceJob {
    /// Seconds from the start of the simulation.
    pub arrival_s: u64,
    pub kind: JobKind,
    /// Index into [`Workload::tenants`].
    pub tenant: u32,
    pub priority: Priority,
    pub preemptible: bool,
    pub num_nodes: u32,
    /// Where the gang's nodes must sit relative to each other.
    pub topology: TopologyNeed,
    /// GPUs per node; zero for CPU-only work.
    pub gpus_per_node: MilliGpu,
    pub cpus_milli: u32,
    pub memory_mib: u64,
    /// Acceptable GPU models; empty means any.
    pub models: ModelSet,
    /// Row of [`Workload::speeds`].
    pub job_type: u16,
    /// Run time in seconds on the job type's reference GPU (speed 1.0). `u64::MAX` never ends
    /// (fill-up mode).
    pub work_s: u64,
    /// What the job needs of its site beyond resources: [`NO_NEEDS`], or one more than its row of
    /// [`Workload::needs`] (jobs from job files with a container image, an upload or buckets).
    pub needs: u16,
}

/// [`TraceJob::needs`] of a job that needs nothing of its site beyond resources (every trace's).
pub const NO_NEEDS: u16 = 0;

impl TraceJob {
    /// Whole GPUs the job holds in all (fractions round up to one GPU per node).
    pub fn total_gpus_milli(&self) -> u64 {
        self.gpus_per_node.0 as u64 * self.num_nodes as u64
    }

    /// Seconds the job runs on `model` given its speed row; `None` when it cannot run there.
    pub fn run_time_on(&self, speeds: &[SpeedRow], model: Option<GpuModel>) -> Option<u64> {
        if self.work_s == u64::MAX {
            return Some(u64::MAX);
        }
        let Some(model) = model else { return Some(self.work_s.max(1)) };
        let speed = speeds.get(self.job_type as usize).map_or(1.0, |row| row.on(model));
        if speed <= 0.0 {
            return None;
        }
        Some(((self.work_s as f64 / speed as f64).ceil() as u64).max(1))
    }
}

/// A row the importer skipped, with where it was.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedRow {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for SkippedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// Jobs sorted by arrival, the speed table they index, tenant names, and the rows skipped.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub jobs: Vec<TraceJob>,
    pub speeds: Vec<SpeedRow>,
    pub tenants: Vec<String>,
    pub skipped: Vec<SkippedRow>,
    /// What jobs need of their site (`cumulo_sched::needs`), indexed by [`TraceJob::needs`] - 1.
    pub needs: Vec<Needs>,
}

impl Workload {
    /// Sorts jobs by arrival time, keeping the trace's order among equal times.
    pub fn sort_by_arrival(&mut self) {
        self.jobs.sort_by_key(|j| j.arrival_s);
    }

    /// The [`TraceJob::needs`] value for `needs`: [`NO_NEEDS`] when empty, else its row (added).
    pub fn needs_index(&mut self, needs: Needs) -> u16 {
        if needs.is_empty() {
            return NO_NEEDS;
        }
        let row = match self.needs.iter().position(|n| *n == needs) {
            Some(i) => i,
            None => {
                self.needs.push(needs);
                self.needs.len() - 1
            }
        };
        u16::try_from(row + 1).unwrap_or(u16::MAX)
    }

    /// Index of a tenant by name, adding it when new.
    pub fn tenant(&mut self, name: &str) -> u32 {
        match self.tenants.iter().position(|t| t == name) {
            Some(i) => i as u32,
            None => {
                self.tenants.push(name.to_string());
                (self.tenants.len() - 1) as u32
            }
        }
    }

    /// Total GPU-seconds of work on reference GPUs (finite jobs only).
    pub fn gpu_seconds(&self) -> f64 {
        self.jobs
            .iter()
            .filter(|j| j.work_s != u64::MAX)
            .map(|j| j.total_gpus_milli() as f64 / 1000.0 * j.work_s as f64)
            .sum()
    }
}
