//! Stage 2 of a pass, fairness and quota: the decision order (priority, then tenants interleaved
//! by weighted dominant share) and each tenant's quota. The stage's result is [`DecisionOrder`]:
//! queue indexes in priority groups.

use super::*;

/// The fairness stage's result: queue indexes in decision order, cut into runs of one priority
/// (highest first); inside a run tenants are interleaved as the run is decided.
pub(super) struct DecisionOrder {
    pub(super) order: Vec<u32>,
    pub(super) groups: Vec<std::ops::Range<usize>>,
}

pub(super) struct Tenant {
    pub(super) name: String,
    pub(super) weight: u64,
    pub(super) quota_gpu: Option<u64>,
    pub(super) quota_cpu: Option<u64>,
    pub(super) used_gpu: u64,
    pub(super) used_cpu: u64,
    pub(super) rank: u32,
}

impl Scheduler {
    /// Ranks tenants by name and orders the queue (see `queue_order`), cut into priority groups.
    pub(super) fn decision_order(&mut self, queue: &[QueuedJob], interned: &Interned) -> DecisionOrder {
        let mut by_name: Vec<u32> = (0..self.tenants.len() as u32).collect();
        by_name.sort_by(|&a, &b| self.tenants[a as usize].name.cmp(&self.tenants[b as usize].name));
        for (rank, &t) in by_name.iter().enumerate() {
            self.tenants[t as usize].rank = rank as u32;
        }
        let order = self.queue_order(queue, &interned.tenant_of);
        let mut groups = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let priority = queue[order[start] as usize].priority;
            let mut end = start;
            while end < order.len() && queue[order[end] as usize].priority == priority {
                end += 1;
            }
            groups.push(start..end);
            start = end;
        }
        DecisionOrder { order, groups }
    }

    pub(super) fn tenant_id(&mut self, name: &str) -> u32 {
        if let Some(&t) = self.tenant_ids.get(name) {
            return t;
        }
        let t = self.tenants.len() as u32;
        self.tenants.push(Tenant {
            name: name.to_string(),
            weight: 1,
            quota_gpu: None,
            quota_cpu: None,
            used_gpu: 0,
            used_cpu: 0,
            rank: 0,
        });
        self.tenant_ids.insert(name.to_string(), t);
        t
    }

    /// Queue indexes by priority (highest first), tenant (by name), then submission time, id and
    /// replica. A counting sort into (priority, tenant) groups keeps queue order, so a queue that
    /// arrives in submission order needs no comparison sort at all.
    pub(super) fn queue_order(&self, queue: &[QueuedJob], tenant_of: &[u32]) -> Vec<u32> {
        let mut group_ids: FxMap<(i32, u32), u32> = FxMap::default();
        let mut groups: Vec<(Reverse<Priority>, u32, u32)> = Vec::new();
        let mut group_of: Vec<u32> = Vec::with_capacity(queue.len());
        let mut last: Option<((i32, u32), u32)> = None;
        for (j, &t) in queue.iter().zip(tenant_of) {
            let key = (j.priority.0, t);
            let g = match last {
                Some((k, g)) if k == key => g,
                _ => *group_ids.entry(key).or_insert_with(|| {
                    groups.push((Reverse(j.priority), self.tenants[t as usize].rank, 0));
                    groups.len() as u32 - 1
                }),
            };
            last = Some((key, g));
            groups[g as usize].2 += 1;
            group_of.push(g);
        }
        let mut sorted_groups: Vec<u32> = (0..groups.len() as u32).collect();
        sorted_groups.sort_unstable_by_key(|&g| (groups[g as usize].0, groups[g as usize].1));
        let mut offset = vec![0usize; groups.len()];
        let mut at = 0;
        for &g in &sorted_groups {
            offset[g as usize] = at;
            at += groups[g as usize].2 as usize;
        }
        let starts = offset.clone();
        let mut order = vec![0u32; queue.len()];
        for (i, &g) in group_of.iter().enumerate() {
            order[offset[g as usize]] = i as u32;
            offset[g as usize] += 1;
        }
        let as_given = self.config.queue_order == QueueOrder::AsGiven;
        let key = |i: &u32| {
            let j = &queue[*i as usize];
            if as_given { (0, JobId(0), 0, *i) } else { (j.submitted_at, j.id, j.replica, *i) }
        };
        for g in 0..groups.len() {
            let slice = &mut order[starts[g]..offset[g]];
            if !slice.is_sorted_by_key(key) {
                slice.sort_unstable_by_key(key);
            }
        }
        order
    }

    /// Jobs of one priority, tenants interleaved by weighted dominant share (lowest first).
    pub(super) fn schedule_priority_group(
        &mut self,
        queue: &[QueuedJob],
        interned: &Interned,
        group: &[u32],
        plan: &mut Plan,
        after_each: &mut impl FnMut(usize),
    ) {
        // Runs of one tenant, in rank order (the group is sorted by tenant rank).
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        for (i, &j) in group.iter().enumerate() {
            let t = interned.tenant_of[j as usize];
            match runs.last_mut() {
                Some((last, _, end)) if *last == t => *end = i + 1,
                _ => runs.push((t, i, i + 1)),
            }
        }
        if runs.len() == 1 {
            for &j in group {
                self.decide(
                    queue,
                    j as usize,
                    interned.tenant_of[j as usize],
                    interned.shape_of[j as usize] as usize,
                    plan,
                );
                after_each(j as usize);
            }
            return;
        }
        let mut heap: BinaryHeap<Reverse<(u128, u32, usize)>> = BinaryHeap::with_capacity(runs.len());
        let mut cursor: Vec<usize> = runs.iter().map(|r| r.1).collect();
        for (k, r) in runs.iter().enumerate() {
            heap.push(Reverse((self.weighted_share(r.0), self.tenants[r.0 as usize].rank, k)));
        }
        while let Some(Reverse((_, _, k))) = heap.pop() {
            let (t, _, end) = runs[k];
            let j = group[cursor[k]] as usize;
            self.decide(queue, j, t, interned.shape_of[j] as usize, plan);
            after_each(j);
            cursor[k] += 1;
            if cursor[k] < end {
                heap.push(Reverse((self.weighted_share(t), self.tenants[t as usize].rank, k)));
            }
        }
    }

    /// The tenant's dominant share (GPUs or vCPUs of the fleet), divided by its weight.
    pub(super) fn weighted_share(&self, t: u32) -> u128 {
        let tenant = &self.tenants[t as usize];
        const SCALE: u128 = 1_000_000_000_000;
        let gpu = u128::from(tenant.used_gpu) * SCALE / u128::from(self.total_gpu_milli);
        let cpu = u128::from(tenant.used_cpu) * SCALE / u128::from(self.total_cpu_milli);
        gpu.max(cpu) / u128::from(tenant.weight)
    }

    /// The quota the tenant would break by taking `gpu`/`cpu` more thousandths, if any.
    pub(super) fn quota_break(&self, t: u32, gpu: u64, cpu: u64) -> Option<PendingReason> {
        let tenant = &self.tenants[t as usize];
        if let Some(limit) = tenant.quota_gpu
            && tenant.used_gpu + gpu > limit
            && gpu > 0
        {
            return Some(PendingReason::Quota {
                tenant: tenant.name.clone(),
                resource: QuotaResource::GpusMilli,
                limit,
                used: tenant.used_gpu,
                wanted: gpu,
            });
        }
        if let Some(limit) = tenant.quota_cpu
            && tenant.used_cpu + cpu > limit
            && cpu > 0
        {
            return Some(PendingReason::Quota {
                tenant: tenant.name.clone(),
                resource: QuotaResource::CpusMilli,
                limit,
                used: tenant.used_cpu,
                wanted: cpu,
            });
        }
        None
    }

    pub(super) fn usage(need: &Need, nodes: u32) -> (u64, u64) {
        (need.gpu_milli() * u64::from(nodes), u64::from(need.cpus_milli) * u64::from(nodes))
    }

    pub(super) fn has_quota(&self, t: u32) -> bool {
        let tenant = &self.tenants[t as usize];
        tenant.quota_gpu.is_some() || tenant.quota_cpu.is_some()
    }
}
