//! The scheduler: indexes built once from a snapshot and then kept up to date, and the pass that
//! places jobs one by one in priority order, tenants interleaved by weighted dominant resource
//! fairness.
//!
//! Per job the cost is a hash lookup of its request shape (whose feasible pools are computed once
//! and kept sorted by price until a price or a node's schedulability changes), then a few bucket
//! lookups per pool tried. A shape that failed stays failed for the rest of the pass until
//! capacity is freed (by preemption), so a long pending tail costs nanoseconds per job.
//!
//! The state lives on between passes: a pass commits its plan (placements become running work,
//! preempted work is gone), and the caller reports what else changed (`release`,
//! `set_schedulable`, `set_price`). A scheduler so kept equals one built afresh from the
//! equivalent snapshot (see [`Scheduler::differences`]) and decides the same plans, because no
//! decision depends on the order changes came in (buckets are sorted by id, victims by value).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use cumulo_types::{CapacityKind, Constraints, JobId, Money, Priority, ResourceOption, SpreadPolicy, TopologyNeed};
// FxHash: fast and deterministic (no random seed); no iteration order ever leaks out.
use rustc_hash::{FxHashMap as FxMap, FxHasher};

use crate::fragment::{Draw, NodeView, Target};
use crate::model::{
    Backfill, Config, NodeAlloc, Pending, PendingReason, Placement, PlacementRule, Plan, Pool, PoolId, Preemption,
    QueueOrder, QueuedJob, QuotaResource, RunningAlloc, Snapshot, TargetClass, Timestamp,
};
use crate::narrow::{self, Narrowed, Narrowing, Unnarrowed};
use crate::pool::{Need, PoolState};

mod fairness;
mod placement;
mod preempt;
mod reserve;
mod shapes;
mod spread;

use fairness::*;
use placement::*;
use preempt::*;
use reserve::*;
use shapes::*;
use spread::*;

/// A running allocation (a slot of `Scheduler::running`; `alive` is false for a free slot).
#[derive(Clone, Debug)]
struct Running {
    job: JobId,
    replica: u32,
    priority: Priority,
    preemptible: bool,
    started_at: Timestamp,
    /// When the allocation is expected to end; `None`: unknown (never, for backfill).
    expected_end: Option<Timestamp>,
    pool: u32,
    tenant: u32,
    alive: bool,
    gpu_milli: u64,
    cpu_milli: u64,
    nodes: Held,
    /// The next slot running the same job, or `NO_SLOT`.
    next_of_job: u32,
    /// Where the slot sits in its pool's `Victims::slots` (preemptible allocations only).
    victim_at: u32,
}

const NO_SLOT: u32 = u32::MAX;

/// The nodes a running allocation holds: one inline (most work), or a gang.
#[derive(Clone, Debug)]
enum Held {
    One(NodeAlloc),
    Gang(Box<[NodeAlloc]>),
}

impl Held {
    fn of(nodes: &[NodeAlloc]) -> Held {
        match nodes {
            [one] => Held::One(*one),
            _ => Held::Gang(nodes.into()),
        }
    }

    fn as_slice(&self) -> &[NodeAlloc] {
        match self {
            Held::One(one) => std::slice::from_ref(one),
            Held::Gang(nodes) => nodes,
        }
    }
}

impl Running {
    fn of(alloc: &RunningAlloc, pool: u32, tenant: u32) -> Running {
        Running {
            job: alloc.job,
            replica: alloc.replica,
            priority: alloc.priority,
            preemptible: alloc.preemptible,
            started_at: alloc.started_at,
            expected_end: alloc.expected_end,
            pool,
            tenant,
            alive: true,
            gpu_milli: alloc.nodes.iter().map(|a| a.gpus.milli()).sum(),
            cpu_milli: alloc.nodes.iter().map(|a| u64::from(a.cpus_milli)).sum(),
            nodes: Held::of(&alloc.nodes),
            next_of_job: NO_SLOT,
            victim_at: 0,
        }
    }

    fn victim_key(&self, slot: u32) -> VictimKey {
        (self.priority, Reverse(self.started_at), self.gpu_milli, self.cpu_milli, self.job, self.replica, slot)
    }
}

/// What [`Scheduler::schedule_observed`] reports as it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Tenants and request shapes are interned and the queue is in decision order.
    Ordered,
    /// The job at this index of the queue has been placed or left pending.
    Decided(usize),
}

/// The scheduling core's state: the fleet's free capacity and indexes, what runs, and the tenants.
/// `new` builds it from a snapshot (checking that the snapshot is consistent); `schedule` places
/// a queue and commits the plan (its placements run from then on, as preemption victims in later
/// passes when preemptible; its preempted allocations are gone). Between passes the caller reports
/// changes with [`Scheduler::release`], [`Scheduler::set_schedulable`] and
/// [`Scheduler::set_price`]; the state then equals a fresh build from the equivalent snapshot.
pub struct Scheduler {
    config: Config,
    /// The snapshot's pools without their node lists (those live in `pools`, as indexes), with
    /// the prices in force.
    meta: Vec<Pool>,
    pool_index: FxMap<PoolId, u32>,
    pools: Vec<PoolState>,
    /// Running allocations in slots; `free_slots` are reused.
    running: Vec<Running>,
    free_slots: Vec<u32>,
    /// Per job, the first slot of the list of its running allocations (all replicas), linked by
    /// `Running::next_of_job`.
    running_of: FxMap<JobId, u32>,
    /// Per pool, preemptible running allocations.
    victims: Vec<Victims>,
    tenants: Vec<Tenant>,
    tenant_ids: FxMap<String, u32>,
    total_gpu_milli: u64,
    total_cpu_milli: u64,
    shapes: Vec<Shape>,
    shape_ids: FxMap<u64, Vec<u32>>,
    /// The [`Narrowing::key`] the shapes were narrowed by.
    narrowing_key: u64,
    /// Bumped whenever capacity is freed and at every pass; invalidates cursors and failure marks.
    generation: u64,
    /// Per pass: spread tallies, built the first time a pass meets a spread job.
    spread: Option<Spread>,
    /// Per pass: (queue index, tenant) of each placement so far, in plan order.
    pass_placed: Vec<(u32, u32)>,
    /// The expected workload that fragmentation-aware placement keeps room for.
    target: Target,
    /// Running allocations with a known expected end (none: no reservation can be computed).
    running_with_end: usize,
    /// Per pass: the reserve stage's state (the reservation for the first waiting gang).
    backfill: BackfillPass,
}

impl Scheduler {
    pub fn new(snapshot: &Snapshot, config: Config) -> Result<Scheduler, crate::Error> {
        let mut pool_index: FxMap<PoolId, u32> = FxMap::default();
        pool_index.reserve(snapshot.pools.len());
        let mut pools = Vec::with_capacity(snapshot.pools.len());
        let mut meta = Vec::with_capacity(snapshot.pools.len());
        let (mut total_gpu_milli, mut total_cpu_milli) = (0u64, 0u64);
        for (i, pool) in snapshot.pools.iter().enumerate() {
            if pool_index.insert(pool.id, i as u32).is_some() {
                return Err(crate::Error::DuplicatePool(pool.id));
            }
            if pool.node_type.gpus > 64 {
                return Err(crate::Error::TooManyGpus {
                    pool: pool.id,
                    node_type: pool.node_type.name.clone(),
                    gpus: pool.node_type.gpus,
                });
            }
            let nodes = pool.nodes.len() as u64;
            total_gpu_milli += nodes * u64::from(pool.node_type.gpus) * 1000;
            total_cpu_milli += nodes * u64::from(pool.node_type.vcpus) * 1000;
            pools.push(PoolState::unindexed(pool));
            meta.push(Pool {
                id: pool.id,
                name: pool.name.clone(),
                provider: pool.provider.clone(),
                region: pool.region.clone(),
                zone: pool.zone.clone(),
                capacity: pool.capacity,
                node_type: pool.node_type.clone(),
                price_per_node_hour: pool.price_per_node_hour,
                nodes: Vec::new(),
            });
        }
        let mut scheduler = Scheduler {
            config,
            meta,
            pool_index,
            pools,
            running: Vec::with_capacity(snapshot.running.len()),
            free_slots: Vec::new(),
            running_of: FxMap::default(),
            victims: vec![Victims::default(); snapshot.pools.len()],
            tenants: Vec::new(),
            tenant_ids: FxMap::default(),
            total_gpu_milli: total_gpu_milli.max(1),
            total_cpu_milli: total_cpu_milli.max(1),
            shapes: Vec::new(),
            shape_ids: FxMap::default(),
            narrowing_key: Unnarrowed.key(),
            generation: 0,
            spread: None,
            pass_placed: Vec::new(),
            target: Target::default(),
            running_with_end: 0,
            backfill: BackfillPass::default(),
        };
        for policy in &snapshot.tenants {
            let t = scheduler.tenant_id(&policy.name);
            let tenant = &mut scheduler.tenants[t as usize];
            tenant.weight = u64::from(policy.weight.max(1));
            tenant.quota_gpu = policy.quota.gpus_milli;
            tenant.quota_cpu = policy.quota.cpus_milli;
        }
        for alloc in &snapshot.running {
            let pool = *scheduler
                .pool_index
                .get(&alloc.pool)
                .ok_or(crate::Error::UnknownPool { job: alloc.job, pool: alloc.pool })?;
            let state = &mut scheduler.pools[pool as usize];
            for a in &alloc.nodes {
                if a.node as usize >= state.node_count() {
                    return Err(crate::Error::NodeOutOfRange {
                        job: alloc.job,
                        pool: alloc.pool,
                        node: a.node,
                        nodes: state.node_count(),
                    });
                }
                if !state.take_exact_unindexed(a) {
                    return Err(crate::Error::OverCommitted {
                        job: alloc.job,
                        pool: alloc.pool,
                        node: a.node,
                        resource: "gpus, cpus or memory",
                    });
                }
            }
            let tenant = scheduler.tenant_id(&alloc.tenant);
            let run = Running::of(alloc, pool, tenant);
            let t = &mut scheduler.tenants[tenant as usize];
            t.used_gpu += run.gpu_milli;
            t.used_cpu += run.cpu_milli;
            scheduler.add_running(run);
        }
        for state in &mut scheduler.pools {
            state.build_indexes();
        }
        Ok(scheduler)
    }

    /// Books a running allocation whose capacity and tenant usage are already taken: the job's
    /// slots and the victim order.
    fn add_running(&mut self, run: Running) {
        let job = run.job;
        self.running_with_end += usize::from(run.expected_end.is_some());
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.running[slot as usize] = run;
                slot
            }
            None => {
                self.running.push(run);
                self.running.len() as u32 - 1
            }
        };
        let run = &mut self.running[slot as usize];
        if run.preemptible {
            let victims = &mut self.victims[run.pool as usize];
            run.victim_at = victims.slots.len() as u32;
            victims.slots.push(slot);
            victims.sorted = None;
        }
        let next = self.running_of.insert(job, slot).unwrap_or(NO_SLOT);
        self.running[slot as usize].next_of_job = next;
    }

    /// Unbooks a running allocation (its capacity must be given back already): tenant usage, the
    /// job's slots, the victim order and, during a pass, spread tallies.
    fn remove_running(&mut self, slot: u32) {
        let run = &mut self.running[slot as usize];
        debug_assert!(run.alive, "removing a free slot");
        run.alive = false;
        self.running_with_end -= usize::from(run.expected_end.is_some());
        let (job, pool, tenant, gpu, cpu) = (run.job, run.pool, run.tenant, run.gpu_milli, run.cpu_milli);
        if run.preemptible {
            let at = run.victim_at as usize;
            let victims = &mut self.victims[pool as usize];
            debug_assert_eq!(victims.slots[at], slot);
            victims.slots.swap_remove(at);
            victims.sorted = None;
            if let Some(&moved) = victims.slots.get(at) {
                self.running[moved as usize].victim_at = at as u32;
            }
        }
        let t = &mut self.tenants[tenant as usize];
        t.used_gpu -= gpu;
        t.used_cpu -= cpu;
        let next = self.running[slot as usize].next_of_job;
        let head = self.running_of.get_mut(&job).expect("a running job has a list");
        if *head == slot {
            if next == NO_SLOT {
                self.running_of.remove(&job);
            } else {
                *head = next;
            }
        } else {
            let mut at = *head;
            while self.running[at as usize].next_of_job != slot {
                at = self.running[at as usize].next_of_job;
                debug_assert_ne!(at, NO_SLOT, "slot {slot} is in its job's list");
            }
            self.running[at as usize].next_of_job = next;
        }
        if let Some(spread) = &mut self.spread {
            for policy in [SpreadPolicy::Providers, SpreadPolicy::Regions] {
                let key = spread.key(policy, pool);
                if let Some(tally) = spread.tallies.get_mut(&(job, policy)) {
                    tally.add(key, -1);
                }
            }
        }
        self.running[slot as usize].nodes = Held::Gang(Box::new([]));
        self.free_slots.push(slot);
    }

    /// A running allocation ended (finished, failed, cancelled): its capacity is free from now
    /// on. Returns false, changing nothing, when no allocation of this job replica runs.
    pub fn release(&mut self, job: JobId, replica: u32) -> bool {
        let Some(slot) = self.slots_of(job).find(|&s| self.running[s as usize].replica == replica) else {
            return false;
        };
        self.free_running(slot);
        self.remove_running(slot);
        true
    }

    /// The slots of a job's running allocations.
    fn slots_of(&self, job: JobId) -> impl Iterator<Item = u32> + '_ {
        let first = self.running_of.get(&job).copied().unwrap_or(NO_SLOT);
        std::iter::successors((first != NO_SLOT).then_some(first), |&s| {
            let next = self.running[s as usize].next_of_job;
            (next != NO_SLOT).then_some(next)
        })
    }

    fn pool_of(&self, pool: PoolId) -> Result<u32, crate::Error> {
        self.pool_index.get(&pool).copied().ok_or(crate::Error::NoSuchPool(pool))
    }

    /// Cordons (`false`) or opens (`true`) node `node` of a pool, as the snapshot's
    /// `NodeState::schedulable`; what runs there keeps running. Returns whether it changed.
    pub fn set_schedulable(&mut self, pool: PoolId, node: u32, schedulable: bool) -> Result<bool, crate::Error> {
        let p = self.pool_of(pool)?;
        let state = &mut self.pools[p as usize];
        if node as usize >= state.node_count() {
            return Err(crate::Error::NoSuchNode { pool, node, nodes: state.node_count() });
        }
        let changed = state.set_schedulable(node, schedulable);
        if changed {
            // candidates depend on the largest groups of schedulable nodes
            self.forget_shapes();
        }
        Ok(changed)
    }

    /// Sets a pool's price per node-hour, as the snapshot's `Pool::price_per_node_hour`. Returns
    /// whether it changed.
    pub fn set_price(&mut self, pool: PoolId, price: Money) -> Result<bool, crate::Error> {
        let p = self.pool_of(pool)?;
        let meta = &mut self.meta[p as usize];
        if meta.price_per_node_hour == price {
            return Ok(false);
        }
        meta.price_per_node_hour = price;
        self.forget_shapes();
        Ok(true)
    }

    /// Sets the target workload that fragmentation-aware placement keeps room for (the rules
    /// `Fragmentation` and `CostThenFragmentation`; classes past the first 64 GPU classes are
    /// ignored). Returns whether it changed.
    pub fn set_target(&mut self, classes: &[TargetClass]) -> bool {
        if self.target.given == classes {
            return false;
        }
        self.target = Target::new(classes, &self.meta);
        true
    }

    fn forget_shapes(&mut self) {
        self.shapes.clear();
        self.shape_ids.clear();
    }

    /// How this scheduler's state differs from `other`'s (free capacity and indexes per pool,
    /// pool facts and prices, running allocations, tenant usage and policy), described up to the
    /// first few differences; `None` when they are equal. A scheduler kept up to date with
    /// `schedule`, `release`, `set_schedulable` and `set_price` has none with one built afresh
    /// from the equivalent snapshot.
    pub fn differences(&self, other: &Scheduler) -> Option<String> {
        let mut out = String::new();
        if self.config != other.config {
            out.push_str("config differs; ");
        }
        if self.meta != other.meta {
            out.push_str("pools (ids, facts or prices) differ; ");
        }
        if self.target != other.target {
            out.push_str("target workloads differ; ");
        }
        for (i, (a, b)) in self.pools.iter().zip(&other.pools).enumerate() {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.refresh_groups();
            b.refresh_groups();
            if a != b {
                let _ = write!(out, "free capacity or indexes of pool {} differ; ", self.meta[i].id);
            }
        }
        let describe = |s: &Scheduler| {
            let mut v: Vec<_> = s
                .running
                .iter()
                .filter(|r| r.alive)
                .map(|r| {
                    (
                        r.job,
                        r.replica,
                        s.meta[r.pool as usize].id,
                        r.nodes.as_slice().to_vec(),
                        s.tenants[r.tenant as usize].name.clone(),
                        r.priority,
                        r.preemptible,
                        r.started_at,
                        r.expected_end,
                    )
                })
                .collect();
            v.sort_by(|a, b| (a.0, a.1, a.2, a.7, &a.4).cmp(&(b.0, b.1, b.2, b.7, &b.4)));
            v
        };
        let (mine, theirs) = (describe(self), describe(other));
        if mine != theirs {
            let first = mine.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(mine.len().min(theirs.len()));
            let _ = write!(
                out,
                "running allocations differ ({} vs {}, first at {first}: {:?} vs {:?}); ",
                mine.len(),
                theirs.len(),
                mine.get(first),
                theirs.get(first)
            );
        }
        let tenants = |s: &Scheduler| {
            let mut v: Vec<_> = s
                .tenants
                .iter()
                .filter(|t| {
                    t.used_gpu > 0 || t.used_cpu > 0 || t.weight != 1 || t.quota_gpu.is_some() || t.quota_cpu.is_some()
                })
                .map(|t| (t.name.clone(), t.weight, t.quota_gpu, t.quota_cpu, t.used_gpu, t.used_cpu))
                .collect();
            v.sort();
            v
        };
        if tenants(self) != tenants(other) {
            let _ = write!(out, "tenants differ: {:?} vs {:?}; ", tenants(self), tenants(other));
        }
        if self.total_gpu_milli != other.total_gpu_milli || self.total_cpu_milli != other.total_cpu_milli {
            out.push_str("fleet totals differ; ");
        }
        (!out.is_empty()).then(|| out.trim_end_matches("; ").to_string())
    }

    /// Places `queue`, commits the plan (see [`Scheduler`]) and returns it.
    pub fn schedule(&mut self, queue: &[QueuedJob], now: Timestamp) -> Plan {
        self.schedule_observed(queue, now, |_| {})
    }

    /// [`Scheduler::schedule`], reporting progress to `observe`: `Progress::Ordered` once the queue
    /// is interned and ordered, then `Progress::Decided(queue_index)` after every decision, so
    /// that a benchmark can time decisions without the core reading a clock.
    pub fn schedule_observed(&mut self, queue: &[QueuedJob], now: Timestamp, observe: impl FnMut(Progress)) -> Plan {
        self.pass(queue, now, &Unnarrowed, observe, true)
    }

    /// [`Scheduler::schedule`] with each job's options narrowed by `narrowing` for its wait (see
    /// [`crate::narrow`]). Shapes kept from earlier passes are forgotten when the narrowing's key
    /// differs from theirs.
    pub fn schedule_narrowed(&mut self, queue: &[QueuedJob], now: Timestamp, narrowing: &dyn Narrowing) -> Plan {
        self.pass(queue, now, narrowing, |_| {}, true)
    }

    /// One pass by a scheduler used once (the server's [`crate::schedule_with`], benchmarks of
    /// it): the same decisions as [`Scheduler::schedule`], without booking the placements as
    /// running work, since nothing will read them.
    pub fn schedule_once(self, queue: &[QueuedJob], now: Timestamp) -> Plan {
        self.schedule_once_observed(queue, now, |_| {})
    }

    /// [`Scheduler::schedule_once`], reporting progress as [`Scheduler::schedule_observed`] does.
    pub fn schedule_once_observed(
        mut self,
        queue: &[QueuedJob],
        now: Timestamp,
        observe: impl FnMut(Progress),
    ) -> Plan {
        self.pass(queue, now, &Unnarrowed, observe, false)
    }

    /// [`Scheduler::schedule_once`] with each job's options narrowed by `narrowing` for its wait
    /// (see [`crate::narrow`]): once per distinct (shape, regime), while the queue is interned.
    pub fn schedule_once_narrowed(self, queue: &[QueuedJob], now: Timestamp, narrowing: &dyn Narrowing) -> Plan {
        self.schedule_once_narrowed_observed(queue, now, narrowing, |_| {})
    }

    /// [`Scheduler::schedule_once_narrowed`], reporting progress as
    /// [`Scheduler::schedule_observed`] does.
    pub fn schedule_once_narrowed_observed(
        mut self,
        queue: &[QueuedJob],
        now: Timestamp,
        narrowing: &dyn Narrowing,
        observe: impl FnMut(Progress),
    ) -> Plan {
        self.pass(queue, now, narrowing, observe, false)
    }

    fn pass(
        &mut self,
        queue: &[QueuedJob],
        now: Timestamp,
        narrowing: &dyn Narrowing,
        mut observe: impl FnMut(Progress),
        commit: bool,
    ) -> Plan {
        let mut plan = Plan { at: now, ..Plan::default() };
        for state in &mut self.pools {
            state.refresh_groups();
        }
        if self.shapes.len() > SHAPE_CACHE_LIMIT || self.narrowing_key != narrowing.key() {
            self.forget_shapes();
            self.narrowing_key = narrowing.key();
        }
        self.generation += 1;
        self.spread = None;
        self.pass_placed.clear();
        self.backfill = BackfillPass::start(now, &self.config);
        let interned = self.intern(queue, now, narrowing);
        let order = self.decision_order(queue, &interned);
        observe(Progress::Ordered);
        plan.placements.reserve(queue.len().min(1 << 20));
        let mut after_each = |i: usize| observe(Progress::Decided(i));
        for group in &order.groups {
            let group = &order.order[group.clone()];
            self.schedule_priority_group(queue, &interned, group, &mut plan, &mut after_each);
        }
        self.end_backfill();
        if commit {
            self.commit_placements(queue, &plan, now);
        }
        self.pass_placed.clear();
        self.spread = None;
        plan
    }

    /// The pass's placements run from now on: book them as running allocations (their capacity
    /// and tenant usage were taken as they were placed).
    fn commit_placements(&mut self, queue: &[QueuedJob], plan: &Plan, now: Timestamp) {
        let placed = std::mem::take(&mut self.pass_placed);
        debug_assert_eq!(placed.len(), plan.placements.len());
        for (p, &(j, t)) in plan.placements.iter().zip(&placed) {
            let job = &queue[j as usize];
            let pool = self.pool_index[&p.pool];
            self.add_running(Running {
                job: p.job,
                replica: p.replica,
                priority: job.priority,
                preemptible: job.preemptible,
                started_at: now,
                expected_end: job.duration_s.map(|d| now.saturating_add(d)),
                pool,
                tenant: t,
                alive: true,
                gpu_milli: p.nodes.iter().map(|a| a.gpus.milli()).sum(),
                cpu_milli: p.nodes.iter().map(|a| u64::from(a.cpus_milli)).sum(),
                nodes: Held::of(&p.nodes),
                next_of_job: NO_SLOT,
                victim_at: 0,
            });
        }
        self.pass_placed = placed;
        self.pass_placed.clear();
    }
}
