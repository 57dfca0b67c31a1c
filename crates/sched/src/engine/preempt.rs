//! The preemption stage: lower-priority preemptible work, least valuable first, freed until a job
//! fits, sparing every victim the placement left untouched. The stage's result is a [`Found`]
//! placement with the victims booked in the plan.

use super::*;

/// The order in which victims are chosen, least valuable first: lowest priority, newest, smallest,
/// then by id; the slot last only so that two allocations of one job replica are ordered too.
pub(super) type VictimKey = (Priority, Reverse<Timestamp>, u64, u64, JobId, u32, u32);

/// A pool's preemptible running allocations. Kept unordered (O(1) to add and remove, which
/// happens at every placement and release); put in victim order only when a preemption is tried
/// in the pool, and kept so until the set changes.
#[derive(Clone, Debug, Default)]
pub(super) struct Victims {
    pub(super) slots: Vec<u32>,
    pub(super) sorted: Option<Vec<VictimKey>>,
}

impl Scheduler {
    pub(super) fn free_running(&mut self, v: u32) {
        let alloc = &self.running[v as usize];
        let pool = &mut self.pools[alloc.pool as usize];
        for a in alloc.nodes.as_slice() {
            pool.give(a);
        }
    }

    pub(super) fn restore_running(&mut self, v: u32) -> bool {
        let alloc = &self.running[v as usize];
        let pool = &mut self.pools[alloc.pool as usize];
        if !alloc.nodes.as_slice().iter().all(|a| pool.can_take_exact(a)) {
            return false;
        }
        for a in alloc.nodes.as_slice() {
            let ok = pool.take_exact(a);
            debug_assert!(ok, "restoring a victim on its own free resources");
        }
        true
    }

    /// Preempts lower-priority preemptible work to place `job`: per candidate pool, frees victims
    /// one at a time, least valuable first (lowest priority, then newest, then smallest), until the
    /// job fits, then spares every victim whose resources the placement left free.
    pub(super) fn try_preempt(
        &mut self,
        job: &QueuedJob,
        s: usize,
        t: u32,
        plan: &mut Plan,
        avoid: Option<&Avoid>,
    ) -> Option<Found> {
        let with_quota = self.has_quota(t);
        for i in 0..self.shapes[s].candidates.len() {
            let c = self.shapes[s].candidates[i];
            let need = self.shapes[s].needs[c.option as usize];
            if let (Some(a), Some(spread)) = (avoid, &self.spread)
                && a.excludes(spread, c.pool)
            {
                continue;
            }
            if with_quota {
                let (gpu, cpu) = Self::usage(&need, job.num_nodes);
                if self.quota_break(t, gpu, cpu).is_some() {
                    continue;
                }
            }
            let victims = &mut self.victims[c.pool as usize];
            if victims.sorted.is_none() {
                let mut keys: Vec<VictimKey> =
                    victims.slots.iter().map(|&v| self.running[v as usize].victim_key(v)).collect();
                keys.sort_unstable();
                victims.sorted = Some(keys);
            }
            let eligible: Vec<u32> = self.victims[c.pool as usize]
                .sorted
                .iter()
                .flatten()
                .take_while(|key| key.0 < job.priority)
                .map(|key| key.6)
                .filter(|&v| !self.spread_protected(v))
                .take(self.config.max_victims_per_job as usize)
                .collect();
            if eligible.is_empty() {
                continue;
            }
            let mut freed = 0;
            let mut placed = None;
            while freed < eligible.len() {
                self.free_running(eligible[freed]);
                freed += 1;
                if let Some(nodes) = self.pools[c.pool as usize].place(&need, job.num_nodes, job.topology) {
                    placed = Some(nodes);
                    break;
                }
            }
            match placed {
                None => {
                    for &v in eligible[..freed].iter().rev() {
                        let ok = self.restore_running(v);
                        debug_assert!(ok, "restoring victims after a failed preemption");
                    }
                }
                Some(nodes) => {
                    let mut preempted = Vec::new();
                    for &v in eligible[..freed].iter().rev() {
                        if !self.restore_running(v) {
                            preempted.push(v);
                        }
                    }
                    preempted.reverse();
                    for v in preempted {
                        let r = &self.running[v as usize];
                        plan.preemptions.push(Preemption {
                            victim: r.job,
                            victim_replica: r.replica,
                            pool: self.meta[r.pool as usize].id,
                            for_job: job.id,
                        });
                        self.remove_running(v);
                    }
                    self.generation += 1;
                    return Some(Found { pool: c.pool, option: c.option, nodes, node_cost: c.node_cost });
                }
            }
        }
        None
    }
}
