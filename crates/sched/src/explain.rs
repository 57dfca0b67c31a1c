//! Human explanations of a plan, for the CLI and the demo.

use std::collections::HashMap;

use cumulo_types::TopologyNeed;

use crate::model::{GpuAlloc, Plan, Pool, PoolId, QueuedJob, Snapshot};

fn node_list(pool: &Pool, nodes: &[u32]) -> String {
    let name = |n: &u32| pool.nodes.get(*n as usize).map_or_else(|| format!("#{n}"), |s| s.name.clone());
    match nodes {
        [] => String::new(),
        [one] => name(one),
        [first, .., last] if nodes.len() > 3 => format!("{} … {}", name(first), name(last)),
        _ => nodes.iter().map(name).collect::<Vec<_>>().join(", "),
    }
}

fn request(job: &QueuedJob) -> String {
    let options: Vec<String> = job
        .resources
        .iter()
        .map(|r| {
            let gpu = r.accelerators.as_ref().map(|d| format!("{d} + ")).unwrap_or_default();
            format!("{gpu}{} vCPU", r.cpus_milli as f64 / 1000.0)
        })
        .collect();
    let topology = match job.topology {
        TopologyNeed::Any => String::new(),
        t => format!(", {t}"),
    };
    format!("{} × {}{topology}", job.num_nodes, options.join(" | "))
}

impl Plan {
    /// One line per decision: where each job went and why, or why it waits.
    pub fn explain(&self, snapshot: &Snapshot, queue: &[QueuedJob]) -> Vec<String> {
        let pools: HashMap<PoolId, &Pool> = snapshot.pools.iter().map(|p| (p.id, p)).collect();
        let jobs: HashMap<(u64, u32), &QueuedJob> = queue.iter().map(|j| ((j.id.0, j.replica), j)).collect();
        let mut lines = Vec::with_capacity(self.placements.len() + self.preemptions.len() + self.pending.len());
        for p in &self.placements {
            let job = jobs.get(&(p.job.0, p.replica));
            let Some(pool) = pools.get(&p.pool) else {
                lines.push(format!("job {} → unknown pool {}", p.job, p.pool));
                continue;
            };
            let gpus: u64 = p.nodes.iter().map(|a| a.gpus.milli()).sum();
            let model = pool.node_type.gpu.map(|m| m.name()).unwrap_or("CPU");
            let shared = p.nodes.iter().any(|a| matches!(a.gpus, GpuAlloc::Fraction { .. }));
            let what = if gpus > 0 {
                let amount = cumulo_types::MilliGpu(gpus.min(u64::from(u32::MAX)) as u32);
                format!("{amount} × {model}{}", if shared { " (shared GPU)" } else { "" })
            } else {
                format!("{} vCPU", p.nodes.iter().map(|a| a.cpus_milli as f64 / 1000.0).sum::<f64>())
            };
            let nodes: Vec<u32> = p.nodes.iter().map(|a| a.node).collect();
            let victims: Vec<String> =
                self.preemptions.iter().filter(|v| v.for_job == p.job).map(|v| v.victim.to_string()).collect();
            let why = match job {
                _ if !victims.is_empty() => {
                    format!("no pool had room; preempts lower-priority job {}", victims.join(", "))
                }
                Some(j) if j.ordered => "first preferred option with room".to_string(),
                _ => "cheapest eligible pool with room".to_string(),
            };
            let topology = job.map(|j| j.topology).filter(|t| *t != TopologyNeed::Any && p.nodes.len() > 1);
            let within = topology.map(|t| format!(" in one {t}")).unwrap_or_default();
            lines.push(format!(
                "job {} → {} on {} node(s){within} [{}], {what}, {}/h: {why}",
                p.job,
                pool.name,
                p.nodes.len(),
                node_list(pool, &nodes),
                p.price_per_hour
            ));
        }
        for pre in &self.preemptions {
            let pool = pools.get(&pre.pool).map_or_else(|| pre.pool.to_string(), |p| p.name.clone());
            lines.push(format!("job {} preempted on {pool} to make room for job {}", pre.victim, pre.for_job));
        }
        for w in &self.pending {
            let wants = jobs.get(&(w.job.0, w.replica)).map(|j| format!(" (wants {})", request(j))).unwrap_or_default();
            lines.push(format!("job {} pending: {}{wants}", w.job, w.reason));
        }
        lines
    }
}
