//! The target workload that fragmentation-aware placement keeps room for: classes of single-node
//! GPU work (GPU share or count per node, vCPUs, memory, accepted GPU models), each weighted by how
//! often it came. Built over a whole workload (the FGD baseline's prior knowledge, as the paper
//! evaluates it) or over a sliding window of recent arrivals (Cumulo's, learned as work arrives).
//! vCPUs round up to whole vCPUs and memory to whole GiB, so that near-identical requests share
//! a class; the heaviest 64 classes are kept (ties by class, so the result is deterministic).

use std::collections::VecDeque;

use cumulo_sched::TargetClass;
use rustc_hash::FxHashMap;

use crate::speed::ModelSet;
use crate::workload::TraceJob;

/// Classes past this many (the lightest) are left out.
const MAX_CLASSES: usize = 64;

/// (GPU thousandths per node, vCPU thousandths, memory MiB, accepted models).
type ClassKey = (u32, u32, u64, ModelSet);

fn key_of(job: &TraceJob) -> Option<ClassKey> {
    if job.gpus_per_node.is_zero() || job.num_nodes != 1 {
        return None;
    }
    Some((job.gpus_per_node.0, job.cpus_milli.div_ceil(1000) * 1000, job.memory_mib.div_ceil(1024) * 1024, job.models))
}

fn classes(counts: &FxHashMap<ClassKey, u32>) -> Vec<TargetClass> {
    let mut all: Vec<(&ClassKey, &u32)> = counts.iter().filter(|(_, n)| **n > 0).collect();
    all.sort_by(|a, b| b.1.cmp(a.1).then((a.0.0, a.0.1, a.0.2, a.0.3.0).cmp(&(b.0.0, b.0.1, b.0.2, b.0.3.0))));
    all.into_iter()
        .take(MAX_CLASSES)
        .map(|(&(gpu_milli, cpus_milli, memory_mib, models), &weight)| TargetClass {
            gpu_milli,
            cpus_milli,
            memory_mib,
            models: models.models(),
            weight,
        })
        .collect()
}

/// The classes of a whole workload.
pub fn of_workload<'a>(jobs: impl IntoIterator<Item = &'a TraceJob>) -> Vec<TargetClass> {
    let mut counts: FxHashMap<ClassKey, u32> = FxHashMap::default();
    for key in jobs.into_iter().filter_map(key_of) {
        *counts.entry(key).or_default() += 1;
    }
    classes(&counts)
}

/// The classes of the last `capacity` GPU jobs to arrive.
pub struct Window {
    recent: VecDeque<ClassKey>,
    counts: FxHashMap<ClassKey, u32>,
    capacity: usize,
    /// Arrivals since `take_if_due` last returned classes.
    since: u32,
    every: u32,
}

impl Window {
    /// A window of `capacity` arrivals whose classes are due every `every` GPU arrivals.
    pub fn new(capacity: usize, every: u32) -> Window {
        Window { recent: VecDeque::new(), counts: FxHashMap::default(), capacity: capacity.max(1), since: 0, every }
    }

    pub fn arrived(&mut self, job: &TraceJob) {
        let Some(key) = key_of(job) else { return };
        self.recent.push_back(key);
        *self.counts.entry(key).or_default() += 1;
        if self.recent.len() > self.capacity
            && let Some(old) = self.recent.pop_front()
            && let Some(n) = self.counts.get_mut(&old)
        {
            *n -= 1;
        }
        self.since += 1;
    }

    /// The window's classes when `every` GPU jobs arrived since they were last taken (the first
    /// GPU job makes them due at once), else `None`.
    pub fn take_if_due(&mut self) -> Option<Vec<TargetClass>> {
        let first = self.since > 0 && self.recent.len() == self.since as usize;
        if self.since >= self.every || (first && self.since == 1) {
            self.since = 0;
            return Some(classes(&self.counts));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};

    fn job(gpu_milli: u32, cpus_milli: u32, models: &[GpuModel]) -> TraceJob {
        TraceJob {
            needs: crate::workload::NO_NEEDS,
            arrival_s: 0,
            kind: JobKind::Training,
            tenant: 0,
            priority: Priority::NORMAL,
            preemptible: false,
            num_nodes: 1,
            topology: TopologyNeed::Any,
            gpus_per_node: MilliGpu(gpu_milli),
            cpus_milli,
            memory_mib: 1000,
            models: ModelSet::of(models),
            job_type: 0,
            work_s: 10,
        }
    }

    #[test]
    fn classes_are_weighted_by_count_heaviest_first_and_skip_cpu_work() {
        let jobs = [job(500, 1500, &[]), job(500, 2000, &[]), job(1000, 4000, &[GpuModel::T4]), job(0, 4000, &[])];
        let c = of_workload(&jobs);
        assert_eq!(c.len(), 2, "CPU-only work has no GPU to fragment: {c:?}");
        assert_eq!(
            (c[0].gpu_milli, c[0].cpus_milli, c[0].memory_mib, c[0].weight),
            (500, 2000, 1024, 2),
            "1.5 and 2 vCPUs share a class"
        );
        assert_eq!(c[1].models, vec![GpuModel::T4], "the class keeps its GPU-type constraint");
    }

    #[test]
    fn a_window_forgets_old_arrivals_and_is_due_periodically() {
        let mut w = Window::new(2, 2);
        w.arrived(&job(500, 1000, &[]));
        assert_eq!(w.take_if_due().map(|c| c.len()), Some(1), "the first GPU job makes a target at once");
        w.arrived(&job(1000, 1000, &[]));
        assert!(w.take_if_due().is_none(), "not due after one more");
        w.arrived(&job(2000, 1000, &[]));
        let c = w.take_if_due().expect("due after two");
        let mut gpus: Vec<u32> = c.iter().map(|c| c.gpu_milli).collect();
        gpus.sort();
        assert_eq!(gpus, vec![1000, 2000], "the oldest arrival left the window");
    }
}
