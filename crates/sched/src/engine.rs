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
use crate::model::{QueueOrder, 
    Config, NodeAlloc, Pending, PendingReason, Placement, PlacementRule, Plan, Pool, PoolId, Preemption, QueuedJob,
    QuotaResource, RunningAlloc, Snapshot, TargetClass, Timestamp,
};
use crate::pool::{Need, PoolState};

/// A (pool, resource option) pair a shape may use, with what one node of it costs per hour there.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    pool: u32,
    option: u32,
    node_cost: Money,
}

/// Everything about a request shape that does not depend on the job's tenant or priority.
struct Shape {
    resources: Vec<ResourceOption>,
    ordered: bool,
    num_nodes: u32,
    topology: TopologyNeed,
    constraints: Constraints,
    needs: Vec<Need>,
    candidates: Vec<Candidate>,
    static_reason: Option<PendingReason>,
    /// `candidates[..cursor]` are known full for this shape while `cursor_generation` holds.
    cursor: usize,
    cursor_generation: u64,
    /// The shape failed (preemption included) at this generation for jobs of this priority.
    failed_generation: u64,
    failed_priority: Priority,
}

const NEVER: u64 = u64::MAX;

/// A running allocation (a slot of `Scheduler::running`; `alive` is false for a free slot).
#[derive(Clone, Debug)]
struct Running {
    job: JobId,
    replica: u32,
    priority: Priority,
    preemptible: bool,
    started_at: Timestamp,
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

/// The order in which victims are chosen, least valuable first: lowest priority, newest, smallest,
/// then by id; the slot last only so that two allocations of one job replica are ordered too.
type VictimKey = (Priority, Reverse<Timestamp>, u64, u64, JobId, u32, u32);

/// A pool's preemptible running allocations. Kept unordered (O(1) to add and remove, which
/// happens at every placement and release); put in victim order only when a preemption is tried
/// in the pool, and kept so until the set changes.
#[derive(Clone, Debug, Default)]
struct Victims {
    slots: Vec<u32>,
    sorted: Option<Vec<VictimKey>>,
}

impl Running {
    fn of(alloc: &RunningAlloc, pool: u32, tenant: u32) -> Running {
        Running {
            job: alloc.job,
            replica: alloc.replica,
            priority: alloc.priority,
            preemptible: alloc.preemptible,
            started_at: alloc.started_at,
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

/// Shapes kept between passes; past this many the cache starts afresh at the next pass.
const SHAPE_CACHE_LIMIT: usize = 1 << 16;

struct Tenant {
    name: String,
    weight: u64,
    quota_gpu: Option<u64>,
    quota_cpu: Option<u64>,
    used_gpu: u64,
    used_cpu: u64,
    rank: u32,
}

/// Where a job's replicas are, for jobs with a spread policy: built the first time a pass meets
/// such a job, so passes without one pay nothing.
struct Spread {
    /// Per pool, its provider's id and its (provider, region)'s id.
    provider_of: Vec<u32>,
    region_of: Vec<u32>,
    provider_names: Vec<String>,
    region_names: Vec<String>,
    /// Per (job, policy): replicas per provider (region) id, running and placed in this pass.
    tallies: FxMap<(JobId, SpreadPolicy), Tally>,
}

#[derive(Default)]
struct Tally {
    counts: Vec<(u32, u32)>,
    /// Replicas placed in this pass: while non-zero the job's running replicas are not preempted,
    /// so what the placements were spread against stays.
    placed: u32,
}

/// Spread keys a replica must (`hard`) or would rather (soft) not use.
struct Avoid {
    by_region: bool,
    keys: Vec<u32>,
    hard: bool,
}

impl Spread {
    fn new(pools: &[Pool]) -> Spread {
        let mut provider_ids: HashMap<&str, u32> = HashMap::new();
        let mut region_ids: HashMap<(&str, &str), u32> = HashMap::new();
        let mut spread = Spread {
            provider_of: Vec::with_capacity(pools.len()),
            region_of: Vec::with_capacity(pools.len()),
            provider_names: Vec::new(),
            region_names: Vec::new(),
            tallies: FxMap::default(),
        };
        for pool in pools {
            let next = provider_ids.len() as u32;
            let p = *provider_ids.entry(pool.provider.as_str()).or_insert_with(|| {
                spread.provider_names.push(pool.provider.clone());
                next
            });
            let next = region_ids.len() as u32;
            let r = *region_ids.entry((pool.provider.as_str(), pool.region.as_str())).or_insert_with(|| {
                spread.region_names.push(format!("{}/{}", pool.provider, pool.region));
                next
            });
            spread.provider_of.push(p);
            spread.region_of.push(r);
        }
        spread
    }

    fn key(&self, policy: SpreadPolicy, pool: u32) -> u32 {
        match policy {
            SpreadPolicy::Regions => self.region_of[pool as usize],
            _ => self.provider_of[pool as usize],
        }
    }
}

impl Avoid {
    fn excludes(&self, spread: &Spread, pool: u32) -> bool {
        let key = if self.by_region { spread.region_of[pool as usize] } else { spread.provider_of[pool as usize] };
        self.keys.contains(&key)
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
    /// Bumped whenever capacity is freed and at every pass; invalidates cursors and failure marks.
    generation: u64,
    /// Per pass: spread tallies, built the first time a pass meets a spread job.
    spread: Option<Spread>,
    /// Per pass: (queue index, tenant) of each placement so far, in plan order.
    pass_placed: Vec<(u32, u32)>,
    /// The expected workload that fragmentation-aware placement keeps room for.
    target: Target,
}

/// A node chosen by a placement rule: the candidate (index into the shape's), the node, the
/// shared GPU for a fraction.
#[derive(Clone, Copy)]
struct Choice {
    candidate: usize,
    node: u32,
    gpu: Option<u8>,
}

/// What a placement rule minimises for one (node, GPU) choice; ties compare equal.
type ChoiceKey = (i64, u64, u64, u64);

/// Placement rules weigh every node of a job's candidate pools, up to this many in all.
const RULE_SCAN_LIMIT: usize = 20_000;

fn need_of(option: &ResourceOption) -> Result<Need, String> {
    let (gpus, fraction) = match &option.accelerators {
        None => (0, 0),
        Some(d) => {
            let m = d.per_node.0;
            if m == 0 {
                return Err(format!("accelerators {d}: expected a positive GPU count"));
            } else if m < 1000 {
                (0, m as u16)
            } else if m % 1000 != 0 {
                return Err(format!("accelerators {d}: a count above one GPU must be whole"));
            } else {
                (m / 1000, 0)
            }
        }
    };
    Ok(Need { gpus, fraction, cpus_milli: option.cpus_milli, memory_mib: option.memory_mib })
}

/// What one node of `need` costs per hour in `pool`: the pool's node price times the largest share
/// of the node (GPUs, vCPUs or memory) the need takes.
fn node_cost(pool: &Pool, need: &Need) -> Money {
    let price = pool.price_per_node_hour;
    let nt = &pool.node_type;
    let mut cost = Money::ZERO;
    if nt.gpus > 0 {
        cost = cost.max(price.mul_div(need.gpu_milli() as i64, i64::from(nt.gpus) * 1000));
    }
    if nt.vcpus > 0 {
        cost = cost.max(price.mul_div(i64::from(need.cpus_milli), i64::from(nt.vcpus) * 1000));
    }
    if nt.memory_gb > 0 {
        cost = cost.max(price.mul_div(need.memory_mib as i64, i64::from(nt.memory_gb) * 1024));
    }
    cost
}

fn describe_options(resources: &[ResourceOption]) -> String {
    let parts: Vec<String> = resources
        .iter()
        .map(|r| match &r.accelerators {
            Some(d) => format!("GPU {d}"),
            None => "CPU-only nodes".to_string(),
        })
        .collect();
    parts.join(" or ")
}

fn describe_need(resources: &[ResourceOption]) -> String {
    let parts: Vec<String> = resources
        .iter()
        .map(|r| {
            let gpu = r.accelerators.as_ref().map(|d| format!("{d}, ")).unwrap_or_default();
            format!("{gpu}{} vCPUs, {} MiB per node", r.cpus_milli as f64 / 1000.0, r.memory_mib)
        })
        .collect();
    parts.join(" or ")
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
            generation: 0,
            spread: None,
            pass_placed: Vec::new(),
            target: Target::default(),
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

    fn tenant_id(&mut self, name: &str) -> u32 {
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

    /// Places `queue`, commits the plan (see [`Scheduler`]) and returns it.
    pub fn schedule(&mut self, queue: &[QueuedJob], now: Timestamp) -> Plan {
        self.schedule_observed(queue, now, |_| {})
    }

    /// [`Scheduler::schedule`], reporting progress to `observe`: `Progress::Ordered` once the queue
    /// is interned and ordered, then `Progress::Decided(queue_index)` after every decision, so
    /// that a benchmark can time decisions without the core reading a clock.
    pub fn schedule_observed(&mut self, queue: &[QueuedJob], now: Timestamp, observe: impl FnMut(Progress)) -> Plan {
        self.pass(queue, now, observe, true)
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
        self.pass(queue, now, observe, false)
    }

    fn pass(&mut self, queue: &[QueuedJob], now: Timestamp, mut observe: impl FnMut(Progress), commit: bool) -> Plan {
        let mut plan = Plan { at: now, ..Plan::default() };
        for state in &mut self.pools {
            state.refresh_groups();
        }
        if self.shapes.len() > SHAPE_CACHE_LIMIT {
            self.forget_shapes();
        }
        self.generation += 1;
        self.spread = None;
        self.pass_placed.clear();
        // One sequential pass over the queue interns tenants and request shapes, so that the
        // decisions below (made in priority order) read compact arrays, not scattered jobs.
        let mut tenant_of: Vec<u32> = Vec::with_capacity(queue.len());
        let mut shape_of: Vec<u32> = Vec::with_capacity(queue.len());
        let mut last: Option<(&str, u32)> = None;
        for j in queue {
            let t = match last {
                Some((name, t)) if name == j.tenant => t,
                _ => self.tenant_id(&j.tenant),
            };
            last = Some((j.tenant.as_str(), t));
            tenant_of.push(t);
            shape_of.push(self.shape_of(j) as u32);
        }
        plan.placements.reserve(queue.len().min(1 << 20));
        let mut by_name: Vec<u32> = (0..self.tenants.len() as u32).collect();
        by_name.sort_by(|&a, &b| self.tenants[a as usize].name.cmp(&self.tenants[b as usize].name));
        for (rank, &t) in by_name.iter().enumerate() {
            self.tenants[t as usize].rank = rank as u32;
        }
        let order = self.queue_order(queue, &tenant_of);
        observe(Progress::Ordered);
        let mut after_each = |i: usize| observe(Progress::Decided(i));
        let mut start = 0;
        while start < order.len() {
            let priority = queue[order[start] as usize].priority;
            let mut end = start;
            while end < order.len() && queue[order[end] as usize].priority == priority {
                end += 1;
            }
            self.schedule_priority_group(queue, &tenant_of, &shape_of, &order[start..end], &mut plan, &mut after_each);
            start = end;
        }
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

    /// Queue indexes by priority (highest first), tenant (by name), then submission time, id and
    /// replica. A counting sort into (priority, tenant) groups keeps queue order, so a queue that
    /// arrives in submission order needs no comparison sort at all.
    fn queue_order(&self, queue: &[QueuedJob], tenant_of: &[u32]) -> Vec<u32> {
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
    fn schedule_priority_group(
        &mut self,
        queue: &[QueuedJob],
        tenant_of: &[u32],
        shape_of: &[u32],
        group: &[u32],
        plan: &mut Plan,
        after_each: &mut impl FnMut(usize),
    ) {
        // Runs of one tenant, in rank order (the group is sorted by tenant rank).
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        for (i, &j) in group.iter().enumerate() {
            let t = tenant_of[j as usize];
            match runs.last_mut() {
                Some((last, _, end)) if *last == t => *end = i + 1,
                _ => runs.push((t, i, i + 1)),
            }
        }
        if runs.len() == 1 {
            for &j in group {
                self.decide(queue, j as usize, tenant_of[j as usize], shape_of[j as usize] as usize, plan);
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
            self.decide(queue, j, t, shape_of[j] as usize, plan);
            after_each(j);
            cursor[k] += 1;
            if cursor[k] < end {
                heap.push(Reverse((self.weighted_share(t), self.tenants[t as usize].rank, k)));
            }
        }
    }

    /// The tenant's dominant share (GPUs or vCPUs of the fleet), divided by its weight.
    fn weighted_share(&self, t: u32) -> u128 {
        let tenant = &self.tenants[t as usize];
        const SCALE: u128 = 1_000_000_000_000;
        let gpu = u128::from(tenant.used_gpu) * SCALE / u128::from(self.total_gpu_milli);
        let cpu = u128::from(tenant.used_cpu) * SCALE / u128::from(self.total_cpu_milli);
        gpu.max(cpu) / u128::from(tenant.weight)
    }

    fn shape_of(&mut self, job: &QueuedJob) -> usize {
        let mut h = FxHasher::default();
        job.resources.hash(&mut h);
        job.ordered.hash(&mut h);
        job.num_nodes.hash(&mut h);
        job.topology.hash(&mut h);
        job.constraints.hash(&mut h);
        let key = h.finish();
        if let Some(ids) = self.shape_ids.get(&key) {
            for &id in ids {
                let s = &self.shapes[id as usize];
                if s.num_nodes == job.num_nodes
                    && s.topology == job.topology
                    && s.ordered == job.ordered
                    && s.resources == job.resources
                    && s.constraints == job.constraints
                {
                    return id as usize;
                }
            }
        }
        let shape = self.build_shape(job);
        let id = self.shapes.len();
        self.shapes.push(shape);
        self.shape_ids.entry(key).or_default().push(id as u32);
        id
    }

    /// Works out, once per shape, which (pool, option) pairs could ever hold it, cheapest first,
    /// or the reason none can.
    fn build_shape(&self, job: &QueuedJob) -> Shape {
        let mut shape = Shape {
            resources: job.resources.clone(),
            ordered: job.ordered,
            num_nodes: job.num_nodes,
            topology: job.topology,
            constraints: job.constraints.clone(),
            needs: Vec::new(),
            candidates: Vec::new(),
            static_reason: None,
            cursor: 0,
            cursor_generation: 0,
            failed_generation: NEVER,
            failed_priority: Priority(i32::MIN),
        };
        let invalid = |detail: String| Some(PendingReason::InvalidRequest { detail });
        if job.resources.is_empty() {
            shape.static_reason = invalid("resources: expected at least one resource option".into());
            return shape;
        }
        if job.num_nodes == 0 {
            shape.static_reason = invalid("num_nodes 0: expected at least 1".into());
            return shape;
        }
        for option in &job.resources {
            match need_of(option) {
                Ok(need) => shape.needs.push(need),
                Err(detail) => {
                    shape.static_reason = invalid(detail);
                    return shape;
                }
            }
        }
        // How far the best (pool, option) pair got: 0 model, 1 size, 2 constraints, 3 topology.
        let mut stage = 0;
        let mut details: BTreeSet<String> = BTreeSet::new();
        let mut largest_group = 0;
        let n = job.num_nodes;
        for (oi, option) in job.resources.iter().enumerate() {
            let need = &shape.needs[oi];
            for (pi, pool) in self.meta.iter().enumerate() {
                let nt = &pool.node_type;
                let model_ok = match (&option.accelerators, nt.gpu) {
                    (Some(d), Some(m)) => nt.gpus > 0 && d.selector.accepts(m),
                    (None, _) => nt.gpus == 0 || self.config.cpu_work_on_gpu_nodes,
                    _ => false,
                };
                if !model_ok {
                    continue;
                }
                stage = stage.max(1);
                let size_ok = need.gpus <= nt.gpus
                    && (need.fraction == 0 || nt.gpus > 0)
                    && u64::from(need.cpus_milli) <= u64::from(nt.vcpus) * 1000
                    && need.memory_mib <= u64::from(nt.memory_gb) * 1024;
                if !size_ok {
                    continue;
                }
                stage = stage.max(2);
                let cost = node_cost(pool, need);
                let failed_constraint = || -> Option<String> {
                    if let Some(infra) = option.infra.as_ref().filter(|i| !pool.matches(i)) {
                        return Some(format!("infra {infra}"));
                    }
                    if let Some(deny) = job.constraints.deny.iter().find(|d| pool.matches(d)) {
                        return Some(format!("deny {deny}"));
                    }
                    if option.use_spot != (pool.capacity == CapacityKind::Spot) {
                        return Some(format!("use_spot {}", option.use_spot));
                    }
                    if let Some(t) = option.instance_type.as_ref().filter(|t| **t != nt.name) {
                        return Some(format!("instance_type {t}"));
                    }
                    let max = job.constraints.max_price_per_hour?;
                    (cost.saturating_mul(i64::from(n)) > max).then(|| format!("max_price_per_hour {max}"))
                };
                if let Some(detail) = failed_constraint() {
                    if details.len() < 4 {
                        details.insert(detail);
                    }
                    continue;
                }
                stage = stage.max(3);
                let state = &self.pools[pi];
                let group = match (n, job.topology) {
                    (1, _) => state.schedulable_nodes.min(1),
                    (_, TopologyNeed::NvlinkDomain) => state.largest_domain,
                    (_, TopologyNeed::Block) => state.largest_block,
                    (_, TopologyNeed::Zone | TopologyNeed::Any) => state.schedulable_nodes,
                };
                largest_group = largest_group.max(group);
                if group < n {
                    continue;
                }
                shape.candidates.push(Candidate { pool: pi as u32, option: oi as u32, node_cost: cost });
            }
        }
        if shape.candidates.is_empty() {
            shape.static_reason = Some(match stage {
                0 => PendingReason::NoSuchGpuModel { wanted: describe_options(&job.resources) },
                1 => PendingReason::NoNodeLargeEnough { wanted: describe_need(&job.resources) },
                2 => PendingReason::ConstraintExcludesAllPools {
                    detail: details.into_iter().collect::<Vec<_>>().join(", "),
                },
                _ => PendingReason::TopologyUnsatisfiable { nodes: n, topology: job.topology, largest_group },
            });
        }
        let pools = &self.meta;
        if job.ordered {
            shape.candidates.sort_by_key(|c| (c.option, c.node_cost, pools[c.pool as usize].id));
        } else {
            shape.candidates.sort_by_key(|c| (c.node_cost, pools[c.pool as usize].id, c.option));
        }
        shape
    }

    /// The quota the tenant would break by taking `gpu`/`cpu` more thousandths, if any.
    fn quota_break(&self, t: u32, gpu: u64, cpu: u64) -> Option<PendingReason> {
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

    fn usage(need: &Need, nodes: u32) -> (u64, u64) {
        (need.gpu_milli() * u64::from(nodes), u64::from(need.cpus_milli) * u64::from(nodes))
    }

    fn has_quota(&self, t: u32) -> bool {
        let tenant = &self.tenants[t as usize];
        tenant.quota_gpu.is_some() || tenant.quota_cpu.is_some()
    }

    fn insufficient(&self, s: usize) -> PendingReason {
        let shape = &self.shapes[s];
        let mut pools: Vec<u32> = shape.candidates.iter().map(|c| c.pool).collect();
        pools.sort_unstable();
        pools.dedup();
        PendingReason::InsufficientCapacity {
            nodes: shape.num_nodes,
            topology: shape.topology,
            eligible_pools: pools.len() as u32,
        }
    }

    /// What a replica of a spread job should avoid: nothing before its first replica runs; the
    /// one provider (region) holding all its replicas, strictly; else, as a preference, those
    /// holding the most.
    fn avoid_for(&mut self, job: &QueuedJob) -> Option<Avoid> {
        if job.spread == SpreadPolicy::None {
            return None;
        }
        if self.spread.is_none() {
            self.spread = Some(Spread::new(&self.meta));
        }
        let key = (job.id, job.spread);
        if !self.spread.as_ref().expect("just built").tallies.contains_key(&key) {
            let mut tally = Tally::default();
            let spread = self.spread.as_ref().expect("just built");
            for v in self.slots_of(job.id) {
                let run = &self.running[v as usize];
                if run.alive {
                    tally.add(spread.key(job.spread, run.pool), 1);
                }
            }
            self.spread.as_mut().expect("just built").tallies.insert(key, tally);
        }
        let counts = &self.spread.as_ref().expect("just built").tallies[&key].counts;
        let most = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
        let used: Vec<u32> = counts.iter().filter(|&&(_, n)| n > 0).map(|&(k, _)| k).collect();
        match used.len() {
            0 => None,
            1 => Some(Avoid { by_region: job.spread == SpreadPolicy::Regions, keys: used, hard: true }),
            _ => Some(Avoid {
                by_region: job.spread == SpreadPolicy::Regions,
                keys: counts.iter().filter(|&&(_, n)| n == most).map(|&(k, _)| k).collect(),
                hard: false,
            }),
        }
    }

    /// Places the job, honouring its spread policy: strictly away from the only provider
    /// (region) used so far, or preferably away from the most used ones, falling back to any.
    fn place_spread(
        &mut self,
        job: &QueuedJob,
        t: u32,
        s: usize,
        plan: &mut Plan,
    ) -> Result<(u32, u32, Vec<NodeAlloc>, Money), PendingReason> {
        let placed = match self.avoid_for(job) {
            None => self.try_place(job, t, s, plan, None, true),
            Some(avoid) if avoid.hard => self.try_place(job, t, s, plan, Some(&avoid), true),
            Some(avoid) => self
                .try_place(job, t, s, plan, Some(&avoid), false)
                .or_else(|_| self.try_place(job, t, s, plan, None, true)),
        };
        if let Ok((pool, ..)) = &placed {
            let spread = self.spread.as_mut().expect("built by avoid_for");
            let key = spread.key(job.spread, *pool);
            let tally = spread.tallies.get_mut(&(job.id, job.spread)).expect("built by avoid_for");
            tally.add(key, 1);
            tally.placed += 1;
        }
        placed
    }

    fn decide(&mut self, queue: &[QueuedJob], j: usize, t: u32, s: usize, plan: &mut Plan) {
        let job = &queue[j];
        let placed = if job.spread == SpreadPolicy::None {
            self.try_place(job, t, s, plan, None, true)
        } else {
            self.place_spread(job, t, s, plan)
        };
        match placed {
            Ok((pool, option, nodes, node_cost)) => {
                let need = self.shapes[s].needs[option as usize];
                let (gpu, cpu) = Self::usage(&need, job.num_nodes);
                let tenant = &mut self.tenants[t as usize];
                tenant.used_gpu += gpu;
                tenant.used_cpu += cpu;
                self.pass_placed.push((j as u32, t));
                plan.placements.push(Placement {
                    job: job.id,
                    replica: job.replica,
                    pool: self.meta[pool as usize].id,
                    option,
                    price_per_hour: node_cost.saturating_mul(i64::from(job.num_nodes)),
                    nodes,
                });
            }
            Err(reason) => plan.pending.push(Pending { job: job.id, replica: job.replica, reason }),
        }
    }

    /// Tries the job's candidates cheapest first, then preemption (when `preempt`). `avoid`
    /// leaves out pools of some providers (regions) for spread jobs. On success returns the pool,
    /// the option used, the node allocations and the cost of one node.
    fn try_place(
        &mut self,
        job: &QueuedJob,
        t: u32,
        s: usize,
        plan: &mut Plan,
        avoid: Option<&Avoid>,
        preempt: bool,
    ) -> Result<(u32, u32, Vec<NodeAlloc>, Money), PendingReason> {
        if let Some(reason) = &self.shapes[s].static_reason {
            return Err(reason.clone());
        }
        let with_quota = self.has_quota(t);
        if with_quota {
            let mut first_break = None;
            let mut any_ok = false;
            for need in &self.shapes[s].needs {
                let (gpu, cpu) = Self::usage(need, job.num_nodes);
                match self.quota_break(t, gpu, cpu) {
                    None => any_ok = true,
                    Some(r) => {
                        first_break.get_or_insert(r);
                    }
                }
            }
            if !any_ok {
                return Err(first_break.expect("some option broke the quota"));
            }
        }
        let generation = self.generation;
        let shape = &self.shapes[s];
        if shape.failed_generation == generation && job.priority <= shape.failed_priority {
            return Err(self.insufficient(s));
        }
        if shape.cursor_generation != generation {
            let shape = &mut self.shapes[s];
            shape.cursor = 0;
            shape.cursor_generation = generation;
        }
        let mut quota_skipped = false;
        let mut spread_skipped = false;
        let by_rule = job.num_nodes == 1 && avoid.is_none() && self.rule_applies(s);
        if by_rule {
            if let Some(found) = self.place_by_rule(job, t, s) {
                return Ok(found);
            }
            quota_skipped = with_quota;
        }
        let mut i = if by_rule { self.shapes[s].candidates.len() } else { self.shapes[s].cursor };
        while i < self.shapes[s].candidates.len() {
            let c = self.shapes[s].candidates[i];
            let need = self.shapes[s].needs[c.option as usize];
            if let (Some(a), Some(spread)) = (avoid, &self.spread)
                && a.excludes(spread, c.pool)
            {
                spread_skipped = true;
                i += 1;
                continue;
            }
            if with_quota {
                let (gpu, cpu) = Self::usage(&need, job.num_nodes);
                if self.quota_break(t, gpu, cpu).is_some() {
                    quota_skipped = true;
                    i += 1;
                    continue;
                }
            }
            if let Some(nodes) = self.pools[c.pool as usize].place(&need, job.num_nodes, job.topology) {
                return Ok((c.pool, c.option, nodes, c.node_cost));
            }
            if !quota_skipped && !spread_skipped {
                self.shapes[s].cursor = i + 1;
            }
            i += 1;
        }
        if preempt
            && self.config.preemption
            && let Some(found) = self.try_preempt(job, s, t, plan, avoid)
        {
            return Ok(found);
        }
        let spread_reason = |this: &Self| match avoid {
            Some(a) if a.hard => {
                let spread = this.spread.as_ref().expect("avoid comes with spread state");
                let names = if a.by_region { &spread.region_names } else { &spread.provider_names };
                PendingReason::SpreadUnsatisfiable {
                    policy: job.spread,
                    used: a.keys.iter().map(|&k| names[k as usize].clone()).collect(),
                }
            }
            _ => this.insufficient(s),
        };
        if !quota_skipped {
            if avoid.is_none() && preempt {
                let shape = &mut self.shapes[s];
                shape.failed_generation = self.generation;
                shape.failed_priority = job.priority;
            }
            return Err(spread_reason(self));
        }
        let mut first_break = None;
        for need in &self.shapes[s].needs {
            let (gpu, cpu) = Self::usage(need, job.num_nodes);
            if let Some(r) = self.quota_break(t, gpu, cpu) {
                first_break = Some(r);
                break;
            }
        }
        Err(first_break.unwrap_or_else(|| spread_reason(self)))
    }

    /// Whether the configured placement rule decides for shape `s` (else the cheapest pool, best
    /// fit in it): not for the default rule, nor for `CostThenFragmentation` without a target
    /// workload, nor where the candidate pools hold more than `RULE_SCAN_LIMIT` nodes (a rule
    /// weighs every node; past that the indexed best fit keeps passes fast).
    fn rule_applies(&self, s: usize) -> bool {
        let wanted = match self.config.placement {
            PlacementRule::CheapestBestFit => false,
            PlacementRule::CostThenFragmentation => !self.target.is_empty(),
            PlacementRule::BestFit | PlacementRule::Random { .. } | PlacementRule::Fragmentation { .. } => true,
        };
        wanted && {
            let mut nodes = 0usize;
            for c in &self.shapes[s].candidates {
                nodes += self.pools[c.pool as usize].node_count();
            }
            nodes <= RULE_SCAN_LIMIT
        }
    }

    /// The candidates a placement rule weighs: every one, or for `CostThenFragmentation` the
    /// cheapest tier with room (the first option with room when the job orders its options, else
    /// the candidates at the lowest price with room).
    fn rule_candidates(&self, t: u32, s: usize, job: &QueuedJob) -> std::ops::Range<usize> {
        let shape = &self.shapes[s];
        let all = 0..shape.candidates.len();
        if self.config.placement != PlacementRule::CostThenFragmentation {
            return all;
        }
        let with_quota = self.has_quota(t);
        let room = |c: &Candidate| {
            let need = &shape.needs[c.option as usize];
            let quota_ok = !with_quota || {
                let (gpu, cpu) = Self::usage(need, job.num_nodes);
                self.quota_break(t, gpu, cpu).is_none()
            };
            quota_ok && self.pools[c.pool as usize].find_one(need).is_some()
        };
        let Some(first) = shape.candidates.iter().position(room) else { return 0..0 };
        let head = shape.candidates[first];
        let same_tier = |c: &Candidate| c.option == head.option && c.node_cost == head.node_cost;
        let end = first + shape.candidates[first..].iter().take_while(|c| same_tier(c)).count();
        first..end
    }

    /// Places a single-node job by the configured [`PlacementRule`] over its candidates: every
    /// fitting node of every candidate pool is weighed (one fully free node per pool stands for
    /// all of them, as they are alike), and the best is taken. `None` when nothing fits.
    fn place_by_rule(&mut self, job: &QueuedJob, t: u32, s: usize) -> Option<(u32, u32, Vec<NodeAlloc>, Money)> {
        let rule = self.config.placement;
        let seed = match rule {
            PlacementRule::Random { seed } | PlacementRule::Fragmentation { seed } => seed,
            _ => 0,
        };
        let draws_ties = matches!(rule, PlacementRule::Random { .. } | PlacementRule::Fragmentation { .. });
        let mut draw = Draw::new(seed, job.id.0, job.replica);
        let with_quota = self.has_quota(t);
        let range = self.rule_candidates(t, s, job);
        let shape = &self.shapes[s];
        let mut best: Option<(ChoiceKey, Choice)> = None;
        let mut tied_weight = 0u64;
        let mut gpus: Vec<u8> = Vec::new();
        for ci in range {
            let c = shape.candidates[ci];
            let need = shape.needs[c.option as usize];
            if with_quota {
                let (gpu, cpu) = Self::usage(&need, job.num_nodes);
                if self.quota_break(t, gpu, cpu).is_some() {
                    continue;
                }
            }
            let pool = &self.pools[c.pool as usize];
            let accepts = self.target.accepts(c.pool);
            let cpu_on_gpu_node = u64::from(need.gpu_milli() == 0 && pool.gpus > 0);
            let mut free_node_seen = false;
            for n in 0..pool.node_count() as u32 {
                if !pool.fits(n, &need) {
                    continue;
                }
                let weight = if pool.is_fully_free(n) {
                    if free_node_seen {
                        continue;
                    }
                    free_node_seen = true;
                    u64::from(pool.pool_free.max(1))
                } else {
                    1
                };
                let view = NodeView::of(pool, n);
                let before = match rule {
                    PlacementRule::Fragmentation { .. } | PlacementRule::CostThenFragmentation => {
                        view.fragmentation(&self.target, accepts)
                    }
                    _ => 0,
                };
                gpus.clear();
                if need.fraction > 0 {
                    view.fraction_choices(need.fraction, &mut gpus);
                }
                let choices = if gpus.is_empty() { 1 } else { gpus.len() };
                for k in 0..choices {
                    let gpu = gpus.get(k).copied();
                    let after = view.with(&need, gpu);
                    let key: ChoiceKey = match rule {
                        PlacementRule::CheapestBestFit | PlacementRule::Random { .. } => (0, 0, 0, 0),
                        PlacementRule::BestFit => {
                            (i64::from(after.free_gpu_milli()), u64::from(after.cpus_milli), 0, 0)
                        }
                        PlacementRule::Fragmentation { .. } => {
                            (after.fragmentation(&self.target, accepts) - before, 0, 0, 0)
                        }
                        PlacementRule::CostThenFragmentation => (
                            after.fragmentation(&self.target, accepts) - before,
                            cpu_on_gpu_node,
                            u64::from(after.free_gpu_milli()),
                            u64::from(after.cpus_milli),
                        ),
                    };
                    let choice = Choice { candidate: ci, node: n, gpu };
                    match &best {
                        Some((k0, _)) if key > *k0 => {}
                        Some((k0, _)) if key == *k0 => {
                            if draws_ties {
                                tied_weight += weight;
                                if draw.replaces(weight, tied_weight) {
                                    best = Some((key, choice));
                                }
                            }
                        }
                        _ => {
                            best = Some((key, choice));
                            tied_weight = weight;
                        }
                    }
                }
            }
        }
        let (_, choice) = best?;
        let c = self.shapes[s].candidates[choice.candidate];
        let need = self.shapes[s].needs[c.option as usize];
        let alloc = self.pools[c.pool as usize].take(choice.node, &need, choice.gpu);
        Some((c.pool, c.option, vec![alloc], c.node_cost))
    }

    /// Whether running allocation `v` is a replica of a spread job that got placements in this
    /// pass (they were spread counting it, so it stays).
    fn spread_protected(&self, v: u32) -> bool {
        let Some(spread) = &self.spread else { return false };
        let job = self.running[v as usize].job;
        [SpreadPolicy::Providers, SpreadPolicy::Regions]
            .iter()
            .any(|&p| spread.tallies.get(&(job, p)).is_some_and(|t| t.placed > 0))
    }

    fn free_running(&mut self, v: u32) {
        let alloc = &self.running[v as usize];
        let pool = &mut self.pools[alloc.pool as usize];
        for a in alloc.nodes.as_slice() {
            pool.give(a);
        }
    }

    fn restore_running(&mut self, v: u32) -> bool {
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
    fn try_preempt(
        &mut self,
        job: &QueuedJob,
        s: usize,
        t: u32,
        plan: &mut Plan,
        avoid: Option<&Avoid>,
    ) -> Option<(u32, u32, Vec<NodeAlloc>, Money)> {
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
                    return Some((c.pool, c.option, nodes, c.node_cost));
                }
            }
        }
        None
    }
}

impl Tally {
    fn add(&mut self, key: u32, delta: i32) {
        match self.counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n = n.saturating_add_signed(delta),
            None if delta > 0 => self.counts.push((key, delta as u32)),
            None => {}
        }
    }
}
