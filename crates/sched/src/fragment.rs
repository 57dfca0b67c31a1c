//! Fragmentation-aware placement, after Weng et al., "Beware of Fragmentation: Scheduling
//! GPU-Sharing Workloads with Fragmentation Gradient Descent" (USENIX ATC'23).
//!
//! A node's fragmentation for one class of expected work is the free GPU capacity that class could
//! not use there: all of it when the class cannot run on the node at all (a GPU model it does not
//! accept, too few free vCPUs or memory, too few whole free GPUs), otherwise the GPUs with less
//! free than the class needs of one GPU. The node's expected fragmentation is the weighted sum over
//! the target workload's classes. A placement is scored by how much it grows the expected
//! fragmentation of the node it lands on (its "gradient"); all arithmetic is in integers, so
//! scores and ties are exact and the same on every machine.

use crate::model::{Pool, TargetClass};
use crate::pool::{Need, PoolState};

/// At most this many classes are kept (the heaviest first is the caller's business).
pub(crate) const MAX_CLASSES: usize = 64;

/// The target workload, compiled against the fleet's pools.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Target {
    classes: Vec<Class>,
    /// Per pool: bit `k` set when class `k` accepts the pool's GPU model and fits its node type.
    accepts: Vec<u64>,
    /// The classes as given, for comparing two schedulers.
    pub(crate) given: Vec<TargetClass>,
    /// The sum of the classes' weights.
    weight_total: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Class {
    gpus: u32,
    fraction: u16,
    cpus_milli: u32,
    memory_mib: u64,
    weight: i64,
}

impl Target {
    /// Compiles `given` (GPU classes with a positive weight, the first `MAX_CLASSES`) for `pools`.
    pub(crate) fn new(given: &[TargetClass], pools: &[Pool]) -> Target {
        let kept: Vec<&TargetClass> =
            given.iter().filter(|c| c.gpu_milli > 0 && c.weight > 0).take(MAX_CLASSES).collect();
        let classes: Vec<Class> = kept
            .iter()
            .map(|c| Class {
                gpus: if c.gpu_milli >= 1000 { c.gpu_milli / 1000 } else { 0 },
                fraction: if c.gpu_milli < 1000 { c.gpu_milli as u16 } else { 0 },
                cpus_milli: c.cpus_milli,
                memory_mib: c.memory_mib,
                weight: i64::from(c.weight),
            })
            .collect();
        let weight_total = classes.iter().map(|c| c.weight).sum();
        let accepts = pools
            .iter()
            .map(|p| {
                let nt = &p.node_type;
                let mut mask = 0u64;
                for (k, c) in kept.iter().enumerate() {
                    let model_ok = nt.gpu.is_some_and(|g| c.models.is_empty() || c.models.contains(&g));
                    if nt.gpus > 0 && model_ok && c.gpu_milli.div_ceil(1000) <= nt.gpus {
                        mask |= 1u64 << k;
                    }
                }
                mask
            })
            .collect();
        Target { classes, accepts, given: given.to_vec(), weight_total }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    pub(crate) fn accepts(&self, pool: u32) -> u64 {
        self.accepts.get(pool as usize).copied().unwrap_or(0)
    }

    /// The sum of the classes' weights, the denominator of [`NodeView::stranded`].
    pub(crate) fn weight_total(&self) -> i64 {
        self.weight_total
    }
}

/// Which classes a node's fragmentation sums over.
#[derive(Clone, Copy)]
enum Classes {
    /// Every class (FGD: capacity a class may not use at all counts as fragmented for it).
    All,
    /// Only the classes that accept the node's GPU model and fit its node type: the capacity
    /// that work which could have used it no longer can.
    Accepting,
}

/// The free capacity of one node, copied so that a placement can be tried on it.
#[derive(Clone, Copy)]
pub(crate) struct NodeView {
    free: [u16; 64],
    gpus: usize,
    pub(crate) cpus_milli: u32,
    memory_mib: u64,
}

impl NodeView {
    pub(crate) fn of(pool: &PoolState, n: u32) -> NodeView {
        let used = pool.gpu_used(n);
        let mut free = [0u16; 64];
        for (f, u) in free.iter_mut().zip(used) {
            *f = 1000 - *u;
        }
        NodeView {
            free,
            gpus: used.len(),
            cpus_milli: pool.free_cpu[n as usize],
            memory_mib: pool.free_mem[n as usize],
        }
    }

    /// The node after taking `need` (`gpu`: the shared GPU of a fraction), as `PoolState::take`
    /// would: whole GPUs are the lowest fully free ones.
    pub(crate) fn with(&self, need: &Need, gpu: Option<u8>) -> NodeView {
        let mut after = *self;
        if need.fraction > 0 {
            let g = usize::from(gpu.expect("a fraction names its GPU"));
            after.free[g] -= need.fraction;
        } else {
            let mut left = need.gpus;
            for f in after.free[..after.gpus].iter_mut() {
                if left == 0 {
                    break;
                }
                if *f == 1000 {
                    *f = 0;
                    left -= 1;
                }
            }
        }
        after.cpus_milli -= need.cpus_milli;
        after.memory_mib -= need.memory_mib;
        after
    }

    /// Free thousandths of GPUs on the node.
    pub(crate) fn free_gpu_milli(&self) -> u32 {
        self.free[..self.gpus].iter().map(|f| u32::from(*f)).sum()
    }

    /// The GPUs a fraction could share: one per distinct amount free (GPUs with the same amount
    /// free give the same node up to renaming), the lowest index of each.
    pub(crate) fn fraction_choices(&self, fraction: u16, out: &mut Vec<u8>) {
        out.clear();
        let mut seen: Vec<u16> = Vec::with_capacity(self.gpus);
        for (g, f) in self.free[..self.gpus].iter().enumerate() {
            if *f >= fraction && !seen.contains(f) {
                seen.push(*f);
                out.push(g as u8);
            }
        }
    }

    /// Expected fragmentation (weighted thousandths of a GPU) for the target's classes, `accepts`
    /// naming those that may use this node's GPUs at all.
    pub(crate) fn fragmentation(&self, target: &Target, accepts: u64) -> i64 {
        self.weighed(target, accepts, Classes::All)
    }

    /// Stranded capacity: the fragmentation of the classes that accept this node only (a class
    /// that may never use the node loses nothing when it fills up). Divided by
    /// `Target::weight_total` it is the thousandths of a GPU the next arrival is expected to find
    /// here and be unable to use.
    pub(crate) fn stranded(&self, target: &Target, accepts: u64) -> i64 {
        self.weighed(target, accepts, Classes::Accepting)
    }

    fn weighed(&self, target: &Target, accepts: u64, classes: Classes) -> i64 {
        let free = &self.free[..self.gpus];
        let total: i64 = free.iter().map(|f| i64::from(*f)).sum();
        if total == 0 {
            return 0;
        }
        let whole_free = free.iter().filter(|f| **f == 1000).count() as u32;
        let partial: i64 = free.iter().filter(|f| **f < 1000).map(|f| i64::from(*f)).sum();
        let mut sum = 0i64;
        for (k, c) in target.classes.iter().enumerate() {
            if matches!(classes, Classes::Accepting) && accepts & (1u64 << k) == 0 {
                continue;
            }
            let usable =
                accepts & (1u64 << k) != 0 && self.cpus_milli >= c.cpus_milli && self.memory_mib >= c.memory_mib;
            let frag = if !usable {
                total
            } else if c.fraction > 0 {
                free.iter().filter(|f| **f < c.fraction).map(|f| i64::from(*f)).sum()
            } else if whole_free < c.gpus {
                total
            } else {
                partial
            };
            sum += c.weight * frag;
        }
        sum
    }
}

/// A deterministic stream of numbers from a seed (SplitMix64): the `Random` and `Fragmentation`
/// rules draw ties from it, seeded by the rule's seed and the job, so a decision depends on its
/// inputs only.
pub(crate) struct Draw(u64);

impl Draw {
    pub(crate) fn new(seed: u64, job: u64, replica: u32) -> Draw {
        Draw(seed ^ job.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(replica) << 48))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether an item of `weight` replaces the current pick when `total` (this item included)
    /// has been seen: weighted reservoir sampling, so that each item ends up picked with
    /// probability weight / total.
    pub(crate) fn replaces(&mut self, weight: u64, total: u64) -> bool {
        total > 0 && self.next() % total < weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(free: &[u16], cpus_milli: u32) -> NodeView {
        let mut f = [0u16; 64];
        f[..free.len()].copy_from_slice(free);
        NodeView { free: f, gpus: free.len(), cpus_milli, memory_mib: 1 << 20 }
    }

    fn target(classes: &[(u32, u32)]) -> Target {
        Target {
            classes: classes
                .iter()
                .map(|&(gpu_milli, weight)| Class {
                    gpus: if gpu_milli >= 1000 { gpu_milli / 1000 } else { 0 },
                    fraction: if gpu_milli < 1000 { gpu_milli as u16 } else { 0 },
                    cpus_milli: 1000,
                    memory_mib: 1,
                    weight: i64::from(weight),
                })
                .collect(),
            accepts: vec![u64::MAX],
            given: Vec::new(),
            weight_total: classes.iter().map(|&(_, w)| i64::from(w)).sum(),
        }
    }

    #[test]
    fn free_capacity_a_class_cannot_use_is_fragmented() {
        // two GPUs: one with 300 free (a 500 share cannot use it), one whole
        let v = view(&[300, 1000], 8000);
        let t = target(&[(500, 1)]);
        assert_eq!(v.fragmentation(&t, u64::MAX), 300, "only the 300 left on the shared GPU is too small");
        let t = target(&[(2000, 1)]);
        assert_eq!(v.fragmentation(&t, u64::MAX), 1300, "two whole GPUs never fit: all free is fragmented");
        assert_eq!(v.fragmentation(&t, 0), 1300, "a class that may not use the node sees all free as fragmented");
        let starved = view(&[1000, 1000], 500);
        assert_eq!(starved.fragmentation(&target(&[(1000, 1)]), u64::MAX), 2000, "no vCPUs left: GPUs are stranded");
    }

    #[test]
    fn placing_a_share_on_the_fuller_gpu_grows_fragmentation_least() {
        // half-GPU and whole-GPU work expected alike: breaking the whole GPU strands it for the
        // whole-GPU class, while the 100 left on the shared one is lost to both
        let v = view(&[600, 1000], 8000);
        let t = target(&[(500, 1), (1000, 1)]);
        let need = Need { gpus: 0, fraction: 500, cpus_milli: 0, memory_mib: 0 };
        let before = v.fragmentation(&t, u64::MAX);
        let on_shared = v.with(&need, Some(0)).fragmentation(&t, u64::MAX) - before;
        let on_whole = v.with(&need, Some(1)).fragmentation(&t, u64::MAX) - before;
        assert_eq!((on_shared, on_whole), (-400, 500), "filling the partly used GPU beats breaking a whole one");
        let only_halves = target(&[(500, 1)]);
        let before = v.fragmentation(&only_halves, u64::MAX);
        assert_eq!(
            v.with(&need, Some(1)).fragmentation(&only_halves, u64::MAX) - before,
            0,
            "with only half-GPU work expected, two halves of the whole GPU stay usable"
        );
    }

    #[test]
    fn draws_are_reproducible_and_spread() {
        let mut a = Draw::new(7, 42, 0);
        let mut b = Draw::new(7, 42, 0);
        let picks: Vec<bool> = (1..=50).map(|t| a.replaces(1, t)).collect();
        assert_eq!(picks, (1..=50).map(|t| b.replaces(1, t)).collect::<Vec<_>>(), "same seed, same draws");
        let mut counts = [0u32; 4];
        for job in 0..4000u64 {
            let mut d = Draw::new(1, job, 0);
            let mut pick = 0;
            for (i, total) in (1..=4u64).enumerate() {
                if d.replaces(1, total) {
                    pick = i;
                }
            }
            counts[pick] += 1;
        }
        assert!(
            counts.iter().all(|c| (800..1200).contains(c)),
            "each of four ties is picked about a quarter of the time: {counts:?}"
        );
    }

    #[test]
    fn stranded_capacity_counts_only_the_classes_that_may_use_the_node() {
        let v = view(&[300, 1000], 8000);
        let t = target(&[(500, 1), (2000, 1)]);
        assert_eq!(v.fragmentation(&t, 0b01), 300 + 1300, "FGD counts all free as fragmented for the 2-GPU class");
        assert_eq!(v.stranded(&t, 0b01), 300, "stranded leaves out the class that may not use the node");
        assert_eq!(t.weight_total(), 2);
    }
}
