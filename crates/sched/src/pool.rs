//! Free capacity of one pool and the indexes over it: nodes bucketed by free units, NVLink
//! domains and blocks bucketed by their count of fully free nodes, shared GPUs by free
//! thousandths. Every change of a node goes through `take`/`give` (or `set_schedulable`) so the
//! indexes never drift; a pool state built afresh from the same free capacity is equal to one kept
//! up to date (`PartialEq` compares indexes too, whose buckets are sorted).

use crate::index::{BitBuckets, Buckets};
use crate::model::{GpuAlloc, NodeAlloc, Pool};

/// What one node of a gang needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Need {
    /// Whole GPUs (0 for a fraction or CPU-only work).
    pub gpus: u32,
    /// Thousandths of one shared GPU (0 unless a fraction).
    pub fraction: u16,
    pub cpus_milli: u32,
    pub memory_mib: u64,
}

impl Need {
    pub(crate) fn gpu_milli(&self) -> u64 {
        u64::from(self.gpus) * 1000 + u64::from(self.fraction)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PoolState {
    pub gpus: u32,
    pub full_mask: u64,
    pub cpu_cap: u32,
    pub mem_cap: u64,
    pub free_cpu: Vec<u32>,
    pub free_mem: Vec<u64>,
    pub free_mask: Vec<u64>,
    /// Thousandths used of each GPU (`node * gpus + gpu`).
    used_milli: Vec<u16>,
    pub schedulable: Vec<bool>,
    held: Vec<bool>,
    pub domain_of: Vec<u32>,
    pub block_of: Vec<u32>,
    pub domain_nodes: Vec<Vec<u32>>,
    pub block_nodes: Vec<Vec<u32>>,
    block_domains: Vec<Vec<u32>>,
    domain_free: Vec<u32>,
    block_free: Vec<u32>,
    pub pool_free: u32,
    /// Largest count of schedulable nodes in one domain / block, and in the pool; recounted by
    /// `refresh_groups` after `set_schedulable` changed a node (`groups_stale`).
    pub largest_domain: u32,
    pub largest_block: u32,
    pub schedulable_nodes: u32,
    groups_stale: bool,
    /// Nodes whose GPUs are all free but which are not fully free (CPU or memory in use).
    dirty: u32,
    nodes_ix: BitBuckets,
    domains_ix: Option<Buckets>,
    blocks_ix: Buckets,
    /// Made when a GPU of the pool is first shared (most pools never share one).
    shared_ix: SharedIndex,
}

/// The index of partly used GPUs, made on first use; an empty one equals none.
#[derive(Clone, Debug)]
struct SharedIndex(Option<Buckets>);

impl PartialEq for SharedIndex {
    fn eq(&self, other: &SharedIndex) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => a == b,
            (Some(x), None) | (None, Some(x)) => x.is_empty(),
            (None, None) => true,
        }
    }
}

impl Eq for SharedIndex {}

/// The range `lo..hi` when `nodes` (ascending) are exactly the ids in it.
fn consecutive(nodes: &[u32]) -> Option<(u32, u32)> {
    let (&lo, &last) = (nodes.first()?, nodes.last()?);
    (last - lo + 1 == nodes.len() as u32).then_some((lo, last + 1))
}

fn dense_ids(raw: impl Iterator<Item = u32>) -> (Vec<u32>, usize) {
    let raw: Vec<u32> = raw.collect();
    let mut sorted = raw.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let dense = raw.iter().map(|r| sorted.binary_search(r).expect("present") as u32).collect();
    (dense, sorted.len())
}

impl PoolState {
    /// A pool with every node free; add running work with `take_exact_unindexed`, then call
    /// `build_indexes` once (building indexes from the final free capacity in one sweep is what
    /// keeps a fresh build linear in the pool's size).
    pub(crate) fn unindexed(pool: &Pool) -> PoolState {
        let nt = &pool.node_type;
        let n = pool.nodes.len();
        let gpus = nt.gpus;
        let full_mask = if gpus >= 64 { u64::MAX } else { (1u64 << gpus) - 1 };
        let cpu_cap = nt.vcpus.saturating_mul(1000);
        let mem_cap = u64::from(nt.memory_gb) * 1024;
        let (domain_of, domains) = dense_ids(pool.nodes.iter().map(|s| s.nvlink_domain));
        let (block_of, blocks) = dense_ids(pool.nodes.iter().map(|s| s.block));
        let mut domain_nodes = vec![Vec::new(); domains];
        let mut block_nodes = vec![Vec::new(); blocks];
        let mut block_domains: Vec<Vec<u32>> = vec![Vec::new(); blocks];
        for i in 0..n {
            domain_nodes[domain_of[i] as usize].push(i as u32);
            block_nodes[block_of[i] as usize].push(i as u32);
        }
        for (d, nodes) in domain_nodes.iter().enumerate() {
            for &node in nodes {
                let b = block_of[node as usize] as usize;
                if !block_domains[b].contains(&(d as u32)) {
                    block_domains[b].push(d as u32);
                }
            }
        }
        let units_max = if gpus > 0 { gpus } else { nt.vcpus };
        let max_domain_size = domain_nodes.iter().map(Vec::len).max().unwrap_or(0);
        let max_block_size = block_nodes.iter().map(Vec::len).max().unwrap_or(0);
        PoolState {
            gpus,
            full_mask,
            cpu_cap,
            mem_cap,
            free_cpu: vec![cpu_cap; n],
            free_mem: vec![mem_cap; n],
            free_mask: vec![full_mask; n],
            used_milli: vec![0; n * gpus as usize],
            domain_free: vec![0; domains],
            block_free: vec![0; blocks],
            schedulable: pool.nodes.iter().map(|s| s.schedulable).collect(),
            held: vec![false; n],
            domain_of,
            block_of,
            domain_nodes,
            block_nodes,
            block_domains,
            pool_free: 0,
            largest_domain: 0,
            largest_block: 0,
            schedulable_nodes: 0,
            groups_stale: true,
            dirty: 0,
            nodes_ix: BitBuckets::new(n, (units_max as usize + 1) * 4),
            domains_ix: (max_domain_size > 1).then(|| Buckets::new(domains, (max_domain_size + 1) * 2)),
            blocks_ix: Buckets::new(blocks, max_block_size + 1),
            shared_ix: SharedIndex(None),
        }
    }

    /// Counts and indexes from the free capacity, in one sweep (items go in by increasing id, so
    /// every bucket insert is an append).
    pub(crate) fn build_indexes(&mut self) {
        let n = self.node_count() as u32;
        self.domain_free.iter_mut().for_each(|c| *c = 0);
        self.block_free.iter_mut().for_each(|c| *c = 0);
        self.pool_free = 0;
        self.dirty = 0;
        for i in 0..n {
            if self.is_fully_free(i) {
                self.domain_free[self.domain_of[i as usize] as usize] += 1;
                self.block_free[self.block_of[i as usize] as usize] += 1;
                self.pool_free += 1;
            }
            if self.is_dirty(i) {
                self.dirty += 1;
            }
        }
        self.refresh_groups();
        for i in 0..n {
            self.rekey_node(i);
        }
        for d in 0..self.domain_free.len() as u32 {
            self.rekey_domain(d);
        }
        for b in 0..self.block_free.len() as u32 {
            self.blocks_ix.set(b, self.block_free[b as usize]);
        }
        // only partly used GPUs are indexed
        for slot in 0..self.used_milli.len() {
            if !self.used_milli[slot].is_multiple_of(1000) {
                self.set_shared(slot);
            }
        }
    }

    /// Sets the used thousandths of every GPU in `mask` on node `i` (whole GPUs taken or given).
    fn set_whole_gpus(&mut self, i: usize, mask: u64, milli: u16) {
        let mut m = mask;
        while m != 0 {
            let g = m.trailing_zeros() as usize;
            self.used_milli[i * self.gpus as usize + g] = milli;
            m &= m - 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn new(pool: &Pool) -> PoolState {
        let mut state = PoolState::unindexed(pool);
        state.build_indexes();
        state
    }

    /// Recounts the largest groups of schedulable nodes after `set_schedulable` changed some.
    pub(crate) fn refresh_groups(&mut self) {
        if !self.groups_stale {
            return;
        }
        let schedulable = &self.schedulable;
        let count_sched = |nodes: &Vec<u32>| nodes.iter().filter(|&&i| schedulable[i as usize]).count() as u32;
        self.largest_domain = self.domain_nodes.iter().map(count_sched).max().unwrap_or(0);
        self.largest_block = self.block_nodes.iter().map(count_sched).max().unwrap_or(0);
        self.schedulable_nodes = schedulable.iter().filter(|s| **s).count() as u32;
        self.groups_stale = false;
    }

    /// Cordons (`false`) or opens (`true`) a node; what runs on it is not touched. Returns whether
    /// anything changed. Call `refresh_groups` before the next placement.
    pub(crate) fn set_schedulable(&mut self, n: u32, schedulable: bool) -> bool {
        if self.schedulable[n as usize] == schedulable {
            return false;
        }
        let (was_free, was_dirty) = (self.is_fully_free(n), self.is_dirty(n));
        self.schedulable[n as usize] = schedulable;
        self.groups_stale = true;
        self.after_change(n, was_free, was_dirty);
        true
    }

    /// Takes exactly this allocation on the free-capacity arrays only (before `build_indexes`).
    /// Returns false, changing nothing, when it does not fit.
    pub(crate) fn take_exact_unindexed(&mut self, a: &NodeAlloc) -> bool {
        if a.node as usize >= self.node_count() || !self.can_take_exact(a) {
            return false;
        }
        self.take_exact_arrays(a);
        true
    }

    fn take_exact_arrays(&mut self, a: &NodeAlloc) {
        let i = a.node as usize;
        match a.gpus {
            GpuAlloc::None => {}
            GpuAlloc::Whole { mask } => {
                self.free_mask[i] &= !mask;
                self.set_whole_gpus(i, mask, 1000);
            }
            GpuAlloc::Fraction { gpu, milli } => {
                let slot = i * self.gpus as usize + gpu as usize;
                self.used_milli[slot] += milli;
                self.free_mask[i] &= !(1u64 << gpu);
            }
        }
        self.free_cpu[i] -= a.cpus_milli;
        self.free_mem[i] -= a.memory_mib;
    }

    pub(crate) fn node_count(&self) -> usize {
        self.free_cpu.len()
    }

    /// Thousandths used of each GPU of node `n`.
    pub(crate) fn gpu_used(&self, n: u32) -> &[u16] {
        let base = n as usize * self.gpus as usize;
        &self.used_milli[base..base + self.gpus as usize]
    }

    pub(crate) fn is_fully_free(&self, n: u32) -> bool {
        let i = n as usize;
        self.schedulable[i]
            && self.free_mask[i] == self.full_mask
            && self.free_cpu[i] == self.cpu_cap
            && self.free_mem[i] == self.mem_cap
    }

    fn is_dirty(&self, n: u32) -> bool {
        let i = n as usize;
        self.gpus > 0 && self.schedulable[i] && self.free_mask[i] == self.full_mask && !self.is_fully_free(n)
    }

    fn domain_pristine(&self, d: u32) -> bool {
        self.domain_free[d as usize] as usize == self.domain_nodes[d as usize].len()
    }

    fn block_pristine(&self, b: u32) -> bool {
        self.block_free[b as usize] as usize == self.block_nodes[b as usize].len()
    }

    /// Free units of a node: whole free GPUs on a GPU node; whole free vCPUs on a CPU node.
    fn units(&self, n: u32) -> u32 {
        let i = n as usize;
        if self.gpus > 0 { self.free_mask[i].count_ones() } else { self.free_cpu[i] / 1000 }
    }

    /// Units a node must have to possibly fit `need` (never more than any fitting node has).
    pub(crate) fn need_units(&self, need: &Need) -> u32 {
        if self.gpus > 0 { if need.fraction > 0 { 1 } else { need.gpus } } else { need.cpus_milli / 1000 }
    }

    /// Bucket of a node: free units first; among equals, nodes in touched blocks and domains first
    /// so that untouched NVLink domains and blocks stay whole for gangs.
    fn node_key(&self, n: u32) -> u32 {
        let d = self.domain_of[n as usize];
        let b = self.block_of[n as usize];
        self.units(n) * 4 + u32::from(self.block_pristine(b)) * 2 + u32::from(self.domain_pristine(d))
    }

    fn rekey_node(&mut self, n: u32) {
        if self.schedulable[n as usize] && !self.held[n as usize] {
            let key = self.node_key(n);
            self.nodes_ix.set(n, key);
        } else if !self.schedulable[n as usize] {
            self.nodes_ix.remove(n);
        }
    }

    fn rekey_domain(&mut self, d: u32) {
        if self.domains_ix.is_some() {
            let b = self.block_of[self.domain_nodes[d as usize][0] as usize];
            let key = self.domain_free[d as usize] * 2 + u32::from(self.block_pristine(b));
            if let Some(ix) = self.domains_ix.as_mut() {
                ix.set(d, key);
            }
        }
    }

    fn set_shared(&mut self, slot: usize) {
        let used = self.used_milli[slot];
        if used > 0 && used < 1000 {
            let slots = self.used_milli.len();
            let ix = self.shared_ix.0.get_or_insert_with(|| Buckets::new(slots, 1001));
            ix.set(slot as u32, u32::from(1000 - used));
        } else if let Some(ix) = self.shared_ix.0.as_mut() {
            ix.remove(slot as u32);
        }
    }

    /// Updates counters and indexes after node `n` changed, given what it was before.
    fn after_change(&mut self, n: u32, was_free: bool, was_dirty: bool) {
        let now_free = self.is_fully_free(n);
        let now_dirty = self.is_dirty(n);
        if was_dirty != now_dirty {
            if now_dirty { self.dirty += 1 } else { self.dirty -= 1 }
        }
        if was_free != now_free {
            let d = self.domain_of[n as usize];
            let b = self.block_of[n as usize];
            let dom_was = self.domain_pristine(d);
            let blk_was = self.block_pristine(b);
            if now_free {
                self.domain_free[d as usize] += 1;
                self.block_free[b as usize] += 1;
                self.pool_free += 1;
            } else {
                self.domain_free[d as usize] -= 1;
                self.block_free[b as usize] -= 1;
                self.pool_free -= 1;
            }
            self.blocks_ix.set(b, self.block_free[b as usize]);
            self.rekey_domain(d);
            // A group turning pristine or not flips one bit of its other nodes' keys (bit 1 for
            // the block, bit 0 for the domain; `n` itself is re-keyed below): a group of
            // consecutive node ids moves bucket by bucket, others node by node.
            if blk_was != self.block_pristine(b) {
                let nodes = &self.block_nodes[b as usize];
                if let Some((lo, hi)) = consecutive(nodes) {
                    self.nodes_ix.toggle_range(lo, hi, 2);
                } else {
                    for k in 0..nodes.len() {
                        let other = self.block_nodes[b as usize][k];
                        self.rekey_node(other);
                    }
                }
                for k in 0..self.block_domains[b as usize].len() {
                    let dd = self.block_domains[b as usize][k];
                    self.rekey_domain(dd);
                }
            }
            if dom_was != self.domain_pristine(d) {
                let nodes = &self.domain_nodes[d as usize];
                if let Some((lo, hi)) = consecutive(nodes) {
                    self.nodes_ix.toggle_range(lo, hi, 1);
                } else {
                    for k in 0..nodes.len() {
                        let other = self.domain_nodes[d as usize][k];
                        self.rekey_node(other);
                    }
                }
            }
        }
        self.rekey_node(n);
    }

    fn cpu_mem_fit(&self, n: u32, need: &Need) -> bool {
        let i = n as usize;
        self.free_cpu[i] >= need.cpus_milli && self.free_mem[i] >= need.memory_mib
    }

    /// The GPU of node `n` a fraction would take: the fullest shared GPU it fits on, else a free one.
    fn fraction_gpu(&self, n: u32, fraction: u16) -> Option<u8> {
        let base = n as usize * self.gpus as usize;
        let mut best: Option<(u16, u8)> = None;
        for g in 0..self.gpus as usize {
            let used = self.used_milli[base + g];
            if used > 0 && used + fraction <= 1000 && best.is_none_or(|(u, _)| used > u) {
                best = Some((used, g as u8));
            }
        }
        if let Some((_, g)) = best {
            return Some(g);
        }
        let free = self.free_mask[n as usize];
        (free != 0).then(|| free.trailing_zeros() as u8)
    }

    pub(crate) fn fits(&self, n: u32, need: &Need) -> bool {
        !self.held[n as usize] && self.resources_fit(n, need)
    }

    /// Whether node `n` has room for `need`, held or not.
    fn resources_fit(&self, n: u32, need: &Need) -> bool {
        let i = n as usize;
        if !self.schedulable[i] || !self.cpu_mem_fit(n, need) {
            return false;
        }
        if need.fraction > 0 {
            self.fraction_gpu(n, need.fraction).is_some()
        } else {
            self.free_mask[i].count_ones() >= need.gpus
        }
    }

    /// Takes `need` on node `n` (which must fit it); `gpu` names the shared GPU for a fraction.
    pub(crate) fn take(&mut self, n: u32, need: &Need, gpu: Option<u8>) -> NodeAlloc {
        debug_assert!(self.resources_fit(n, need), "take on a node that does not fit");
        let i = n as usize;
        let (was_free, was_dirty) = (self.is_fully_free(n), self.is_dirty(n));
        let gpus = if need.fraction > 0 {
            let g = gpu.or_else(|| self.fraction_gpu(n, need.fraction)).expect("fits");
            let slot = i * self.gpus as usize + g as usize;
            self.used_milli[slot] += need.fraction;
            self.free_mask[i] &= !(1u64 << g);
            self.set_shared(slot);
            GpuAlloc::Fraction { gpu: g, milli: need.fraction }
        } else if need.gpus > 0 {
            let mut mask = 0u64;
            let mut free = self.free_mask[i];
            for _ in 0..need.gpus {
                let bit = free & free.wrapping_neg();
                mask |= bit;
                free &= !bit;
            }
            self.free_mask[i] &= !mask;
            let mut m = mask;
            while m != 0 {
                let g = m.trailing_zeros() as usize;
                self.used_milli[i * self.gpus as usize + g] = 1000;
                m &= m - 1;
            }
            GpuAlloc::Whole { mask }
        } else {
            GpuAlloc::None
        };
        self.free_cpu[i] -= need.cpus_milli;
        self.free_mem[i] -= need.memory_mib;
        self.after_change(n, was_free, was_dirty);
        NodeAlloc { node: n, gpus, cpus_milli: need.cpus_milli, memory_mib: need.memory_mib }
    }

    /// Whether exactly this allocation could be taken now (used to restore spared victims).
    pub(crate) fn can_take_exact(&self, a: &NodeAlloc) -> bool {
        let i = a.node as usize;
        if self.free_cpu[i] < a.cpus_milli || self.free_mem[i] < a.memory_mib {
            return false;
        }
        match a.gpus {
            GpuAlloc::None => true,
            GpuAlloc::Whole { mask } => self.free_mask[i] & mask == mask,
            GpuAlloc::Fraction { gpu, milli } => {
                let slot = (gpu as u32) < self.gpus;
                slot && u32::from(self.used_milli[i * self.gpus as usize + gpu as usize]) + u32::from(milli) <= 1000
            }
        }
    }

    /// Takes exactly this allocation (a running one from the snapshot, or a restored victim).
    /// Returns false, changing nothing, when it does not fit.
    pub(crate) fn take_exact(&mut self, a: &NodeAlloc) -> bool {
        if a.node as usize >= self.node_count() || !self.can_take_exact(a) {
            return false;
        }
        let (was_free, was_dirty) = (self.is_fully_free(a.node), self.is_dirty(a.node));
        self.take_exact_arrays(a);
        if let GpuAlloc::Fraction { gpu, .. } = a.gpus {
            self.set_shared(a.node as usize * self.gpus as usize + gpu as usize);
        }
        self.after_change(a.node, was_free, was_dirty);
        true
    }

    /// Gives back an allocation taken before.
    pub(crate) fn give(&mut self, a: &NodeAlloc) {
        let i = a.node as usize;
        let (was_free, was_dirty) = (self.is_fully_free(a.node), self.is_dirty(a.node));
        match a.gpus {
            GpuAlloc::None => {}
            GpuAlloc::Whole { mask } => {
                self.free_mask[i] |= mask;
                self.set_whole_gpus(i, mask, 0);
            }
            GpuAlloc::Fraction { gpu, milli } => {
                let slot = i * self.gpus as usize + gpu as usize;
                self.used_milli[slot] -= milli;
                if self.used_milli[slot] == 0 {
                    self.free_mask[i] |= 1u64 << gpu;
                }
                self.set_shared(slot);
            }
        }
        self.free_cpu[i] += a.cpus_milli;
        self.free_mem[i] += a.memory_mib;
        self.after_change(a.node, was_free, was_dirty);
    }

    fn hold(&mut self, n: u32) {
        self.held[n as usize] = true;
        self.nodes_ix.remove(n);
    }

    fn release(&mut self, n: u32) {
        self.held[n as usize] = false;
        self.rekey_node(n);
    }

    /// The best-fitting single node for `need`, and the shared GPU for a fraction.
    pub(crate) fn find_one(&self, need: &Need) -> Option<(u32, Option<u8>)> {
        if need.fraction > 0
            && let Some(shared) = &self.shared_ix.0
        {
            let mut next = shared.first_at_least(u32::from(need.fraction));
            while let Some(b) = next {
                for &slot in shared.items(b).iter().rev() {
                    let n = slot / self.gpus;
                    if !self.held[n as usize] && self.schedulable[n as usize] && self.cpu_mem_fit(n, need) {
                        return Some((n, Some((slot % self.gpus) as u8)));
                    }
                }
                next = shared.first_at_least(b + 1);
            }
        }
        let mut next = self.nodes_ix.first_at_least(self.need_units(need) * 4);
        while let Some(b) = next {
            for n in self.nodes_ix.items_desc(b) {
                if self.fits(n, need) {
                    return Some((n, None));
                }
            }
            next = self.nodes_ix.first_at_least(b + 1);
        }
        None
    }

    /// A whole-node request whose fitting nodes are exactly the fully free ones.
    fn whole_node_fast_path(&self, need: &Need) -> bool {
        self.gpus > 0 && need.gpus == self.gpus && need.fraction == 0 && self.dirty == 0
    }

    /// Places a gang of `count` nodes with the topology need, all or nothing.
    pub(crate) fn place(
        &mut self,
        need: &Need,
        count: u32,
        topology: cumulo_types::TopologyNeed,
    ) -> Option<Vec<NodeAlloc>> {
        use cumulo_types::TopologyNeed as T;
        if count == 1 {
            let (n, gpu) = self.find_one(need)?;
            return Some(vec![self.take(n, need, gpu)]);
        }
        let group_limit = match topology {
            T::NvlinkDomain => self.largest_domain,
            T::Block => self.largest_block,
            T::Zone | T::Any => self.schedulable_nodes,
        };
        if count > group_limit {
            return None;
        }
        if self.whole_node_fast_path(need) {
            if self.pool_free < count {
                return None;
            }
            let nodes: Vec<u32> = match topology {
                T::NvlinkDomain => {
                    let ix = self.domains_ix.as_ref()?;
                    let d = *ix.items(ix.first_at_least(count * 2)?).last()?;
                    self.domain_nodes[d as usize]
                        .iter()
                        .copied()
                        .filter(|&n| self.is_fully_free(n))
                        .take(count as usize)
                        .collect()
                }
                T::Block => {
                    let b = self.blocks_ix.first_at_least(count)?;
                    let block = *self.blocks_ix.items(b).last()?;
                    let mut domains: Vec<u32> = self.block_domains[block as usize]
                        .iter()
                        .copied()
                        .filter(|&d| self.domain_free[d as usize] > 0)
                        .collect();
                    domains.sort_unstable_by_key(|&d| (self.domain_free[d as usize], d));
                    let mut nodes = Vec::with_capacity(count as usize);
                    'outer: for d in domains {
                        for &n in &self.domain_nodes[d as usize] {
                            if self.block_of[n as usize] == block && self.is_fully_free(n) {
                                nodes.push(n);
                                if nodes.len() == count as usize {
                                    break 'outer;
                                }
                            }
                        }
                    }
                    nodes
                }
                T::Zone | T::Any => return self.place_greedy(need, count),
            };
            if nodes.len() < count as usize {
                debug_assert!(false, "fully free counts disagree with nodes");
                return None;
            }
            return Some(self.take_all(&nodes, need));
        }
        match topology {
            T::Zone | T::Any => {
                if self.nodes_ix.count_at_least(self.need_units(need) * 4) < count as usize {
                    return None;
                }
                self.place_greedy(need, count)
            }
            T::NvlinkDomain | T::Block => self.place_in_group_scan(need, count, topology == T::NvlinkDomain),
        }
    }

    /// Takes best-fitting nodes one at a time (each node at most once), undoing all on failure.
    fn place_greedy(&mut self, need: &Need, count: u32) -> Option<Vec<NodeAlloc>> {
        let mut taken = Vec::with_capacity(count as usize);
        while taken.len() < count as usize {
            match self.find_one(need) {
                Some((n, gpu)) => {
                    let a = self.take(n, need, gpu);
                    self.hold(n);
                    taken.push(a);
                }
                None => break,
            }
        }
        for a in &taken {
            self.release(a.node);
        }
        if taken.len() < count as usize {
            for a in &taken {
                self.give(a);
            }
            return None;
        }
        Some(taken)
    }

    /// The general path for gangs that need one domain or block: counts fitting nodes per group,
    /// takes the group with the fewest that still holds the gang (best fit).
    fn place_in_group_scan(&mut self, need: &Need, count: u32, domain: bool) -> Option<Vec<NodeAlloc>> {
        let groups = if domain { &self.domain_nodes } else { &self.block_nodes };
        let mut best: Option<(usize, usize)> = None;
        for (g, nodes) in groups.iter().enumerate() {
            if nodes.len() < count as usize {
                continue;
            }
            let fitting = nodes.iter().filter(|&&n| self.fits(n, need)).count();
            if fitting >= count as usize && best.is_none_or(|(c, _)| fitting < c) {
                best = Some((fitting, g));
            }
        }
        let (_, g) = best?;
        let groups = if domain { &self.domain_nodes } else { &self.block_nodes };
        let mut nodes: Vec<u32> = groups[g].iter().copied().filter(|&n| self.fits(n, need)).collect();
        nodes.sort_unstable_by_key(|&n| (self.node_key(n), n));
        nodes.truncate(count as usize);
        Some(self.take_all(&nodes, need))
    }

    /// Takes `need` on each of `nodes` (all of which fit). The nodes are held out of the node
    /// index meanwhile, so the re-keying that a domain or block losing its pristine state causes
    /// skips them, and each is re-keyed once at the end.
    fn take_all(&mut self, nodes: &[u32], need: &Need) -> Vec<NodeAlloc> {
        for &n in nodes {
            self.hold(n);
        }
        let allocs = nodes.iter().map(|&n| self.take(n, need, None)).collect();
        for &n in nodes {
            self.release(n);
        }
        allocs
    }

    /// Checks the indexes against a recount (tests and debug builds).
    #[cfg(test)]
    pub(crate) fn check_consistent(&self) {
        let mut pool_free = 0;
        for n in 0..self.node_count() as u32 {
            if self.is_fully_free(n) {
                pool_free += 1;
            }
            if self.schedulable[n as usize] && !self.held[n as usize] {
                assert_eq!(self.nodes_ix.bucket_of(n), Some(self.node_key(n)), "node {n} key");
            }
        }
        assert_eq!(pool_free, self.pool_free);
        for (d, nodes) in self.domain_nodes.iter().enumerate() {
            let free = nodes.iter().filter(|&&n| self.is_fully_free(n)).count() as u32;
            assert_eq!(free, self.domain_free[d], "domain {d}");
        }
        let mut fresh = self.clone();
        fresh.nodes_ix = self.nodes_ix.cleared();
        fresh.domains_ix = self.domains_ix.as_ref().map(Buckets::cleared);
        fresh.blocks_ix = self.blocks_ix.cleared();
        fresh.shared_ix = SharedIndex(None);
        fresh.groups_stale = true;
        fresh.build_indexes();
        let mut kept = self.clone();
        kept.refresh_groups();
        assert!(fresh == kept, "indexes kept up to date differ from indexes built afresh");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeState, PoolId};
    use cumulo_types::{CapacityKind, GpuModel, Money, NodeType, TopologyNeed};

    fn nvl72_pool(racks: u32) -> Pool {
        Pool {
            id: PoolId(0),
            name: "test".into(),
            provider: "aws".into(),
            region: "r".into(),
            zone: "z".into(),
            capacity: CapacityKind::Contract,
            node_type: NodeType {
                name: "gb200".into(),
                gpu: Some(GpuModel::GB200),
                gpus: 4,
                vcpus: 16,
                memory_gb: 64,
                nvlink_domain_nodes: 18,
            },
            price_per_node_hour: Money::from_dollars(1),
            nodes: (0..racks * 18).map(|i| NodeState::new(format!("n{i}"), i / 36, i / 18)).collect(),
        }
    }

    use crate::index::Lcg;

    #[test]
    fn indexes_match_a_recount_after_random_takes_and_gives() {
        let pool = nvl72_pool(4);
        let mut state = PoolState::new(&pool);
        let mut rng = Lcg(7);
        let mut held: Vec<Vec<NodeAlloc>> = Vec::new();
        for step in 0..3000 {
            if rng.next(20) == 0 {
                let node = rng.next(state.node_count() as u64) as u32;
                let open = !state.schedulable[node as usize];
                assert!(state.set_schedulable(node, open));
                state.refresh_groups();
            } else if rng.next(3) > 0 || held.is_empty() {
                let need = match rng.next(4) {
                    0 => Need { gpus: 0, fraction: 250, cpus_milli: 1000, memory_mib: 1024 },
                    1 => Need { gpus: 2, fraction: 0, cpus_milli: 2000, memory_mib: 0 },
                    2 => Need { gpus: 4, fraction: 0, cpus_milli: 0, memory_mib: 0 },
                    _ => Need { gpus: 0, fraction: 0, cpus_milli: 3000, memory_mib: 2048 },
                };
                let topology =
                    [TopologyNeed::Any, TopologyNeed::NvlinkDomain, TopologyNeed::Block][rng.next(3) as usize];
                let count = 1 + rng.next(6) as u32;
                if let Some(allocs) = state.place(&need, count, topology) {
                    assert_eq!(allocs.len(), count as usize, "step {step}");
                    held.push(allocs);
                }
            } else {
                let i = rng.next(held.len() as u64) as usize;
                for a in held.swap_remove(i) {
                    state.give(&a);
                }
            }
            state.check_consistent();
        }
        for allocs in held {
            for a in allocs {
                state.give(&a);
            }
        }
        for node in 0..state.node_count() as u32 {
            state.set_schedulable(node, true);
        }
        state.refresh_groups();
        state.check_consistent();
        assert_eq!(state.pool_free, 72, "everything given back");
    }
}
