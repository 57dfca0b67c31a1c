//! Stage 1 of a pass, shapes: each queued job's request shape interned once, with its eligible
//! (pool, option) candidates sorted by price and the static reason when none can ever hold it.
//! The stage's result is [`Interned`]: per queue index, the job's tenant and shape.

use std::sync::Arc;

use super::*;

/// The shapes stage's result: per queue index, the job's tenant and request shape (ids into the
/// scheduler's tenants and shapes).
pub(super) struct Interned {
    pub(super) tenant_of: Vec<u32>,
    pub(super) shape_of: Vec<u32>,
}

/// A (pool, resource option) pair a shape may use, with what one node of it costs per hour there.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candidate {
    pub(super) pool: u32,
    pub(super) option: u32,
    pub(super) node_cost: Money,
}

/// The jobs' own options of a narrowed shape, and the index among them of each option left.
pub(super) struct NarrowedFrom {
    own: Arc<[ResourceOption]>,
    origins: Arc<[u32]>,
}

/// Everything about a request shape that does not depend on the job's tenant or priority.
pub(super) struct Shape {
    /// The narrowing's regime the shape was narrowed in (0 without a narrowing).
    pub(super) regime: u64,
    /// The options placed on: the jobs' own, or what a narrowing left of them.
    pub(super) resources: Arc<[ResourceOption]>,
    /// Where a narrowing changed the options: the jobs' own (the interning key) and where each
    /// of `resources` came from. `None` (most shapes) where `resources` are the jobs' own.
    pub(super) narrowed_from: Option<Box<NarrowedFrom>>,
    pub(super) ordered: bool,
    pub(super) num_nodes: u32,
    pub(super) topology: TopologyNeed,
    pub(super) constraints: Constraints,
    pub(super) needs: Vec<Need>,
    pub(super) candidates: Vec<Candidate>,
    pub(super) static_reason: Option<PendingReason>,
    /// `candidates[..cursor]` are known full for this shape while `cursor_generation` holds.
    pub(super) cursor: usize,
    pub(super) cursor_generation: u64,
    /// The cursor moved while reserved nodes were cordoned: it holds only while they are.
    pub(super) cursor_hiding: bool,
    /// The shape failed (preemption included) at this generation for jobs of this priority.
    pub(super) failed_generation: u64,
    pub(super) failed_priority: Priority,
    /// The failure came while reserved nodes were cordoned: it holds only while they are.
    pub(super) failed_hiding: bool,
}

impl Shape {
    /// The shape of `job` on `options`, with no candidates yet.
    fn unbuilt(job: &QueuedJob, options: Arc<[ResourceOption]>) -> Shape {
        Shape {
            regime: 0,
            resources: options,
            narrowed_from: None,
            ordered: job.ordered,
            num_nodes: job.num_nodes,
            topology: job.topology,
            constraints: job.constraints.clone(),
            needs: Vec::new(),
            candidates: Vec::new(),
            static_reason: None,
            cursor: 0,
            cursor_generation: 0,
            cursor_hiding: false,
            failed_generation: NEVER,
            failed_priority: Priority(i32::MIN),
            failed_hiding: false,
        }
    }

    /// The jobs' own options (the interning key, with `regime`).
    fn own(&self) -> &Arc<[ResourceOption]> {
        self.narrowed_from.as_ref().map_or(&self.resources, |n| &n.own)
    }

    /// The job's own index of `option` (an index into `resources`).
    pub(super) fn own_option(&self, option: u32) -> u32 {
        self.narrowed_from.as_ref().and_then(|n| n.origins.get(option as usize).copied()).unwrap_or(option)
    }
}

/// How long a job has waited, and the narrowing's regime for that wait.
#[derive(Clone, Copy)]
struct Wait {
    waited_s: u64,
    regime: u64,
}

pub(super) const NEVER: u64 = u64::MAX;

/// Shapes kept between passes; past this many the cache starts afresh at the next pass.
pub(super) const SHAPE_CACHE_LIMIT: usize = 1 << 16;

pub(super) fn need_of(option: &ResourceOption) -> Result<Need, String> {
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
pub(super) fn node_cost(pool: &Pool, need: &Need) -> Money {
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

pub(super) fn describe_options(resources: &[ResourceOption]) -> String {
    let parts: Vec<String> = resources
        .iter()
        .map(|r| match &r.accelerators {
            Some(d) => format!("GPU {d}"),
            None => "CPU-only nodes".to_string(),
        })
        .collect();
    parts.join(" or ")
}

pub(super) fn describe_need(resources: &[ResourceOption]) -> String {
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
    /// One sequential pass over the queue interns tenants and request shapes, so that the
    /// decisions (made in priority order) read compact arrays, not scattered jobs.
    pub(super) fn intern(&mut self, queue: &[QueuedJob], now: Timestamp, narrowing: &dyn Narrowing) -> Interned {
        let mut tenant_of: Vec<u32> = Vec::with_capacity(queue.len());
        let mut shape_of: Vec<u32> = Vec::with_capacity(queue.len());
        let mut last: Option<(&str, u32)> = None;
        let binds = narrowing.key() != narrow::NOTHING_BINDS;
        for j in queue {
            let t = match last {
                Some((name, t)) if name == j.tenant => t,
                _ => self.tenant_id(&j.tenant),
            };
            last = Some((j.tenant.as_str(), t));
            tenant_of.push(t);
            let waited_s = narrow::waited_s(now, j.submitted_at);
            let wait = Wait { waited_s, regime: if binds { narrowing.regime(waited_s) } else { 0 } };
            shape_of.push(self.shape_of(j, wait, narrowing) as u32);
        }
        Interned { tenant_of, shape_of }
    }

    fn shape_of(&mut self, job: &QueuedJob, wait: Wait, narrowing: &dyn Narrowing) -> usize {
        let mut h = FxHasher::default();
        job.resources.hash(&mut h);
        job.ordered.hash(&mut h);
        job.num_nodes.hash(&mut h);
        job.topology.hash(&mut h);
        job.constraints.hash(&mut h);
        wait.regime.hash(&mut h);
        let key = h.finish();
        if let Some(ids) = self.shape_ids.get(&key) {
            for &id in ids {
                let s = &self.shapes[id as usize];
                if s.num_nodes == job.num_nodes
                    && s.topology == job.topology
                    && s.ordered == job.ordered
                    && s.regime == wait.regime
                    && *s.own() == job.resources
                    && s.constraints == job.constraints
                {
                    return id as usize;
                }
            }
        }
        let mut shape = match narrowing.narrow(&job.resources, wait.waited_s) {
            Narrowed::Untouched => self.build_shape(job, Arc::clone(&job.resources)),
            Narrowed::To { options, origins } => {
                let mut shape = self.build_shape(job, options);
                shape.narrowed_from = Some(Box::new(NarrowedFrom { own: Arc::clone(&job.resources), origins }));
                shape
            }
            Narrowed::Nowhere => {
                let mut shape = Shape::unbuilt(job, Arc::from([]));
                let origins = Arc::from([]);
                shape.narrowed_from = Some(Box::new(NarrowedFrom { own: Arc::clone(&job.resources), origins }));
                shape.static_reason = Some(PendingReason::ContractClause);
                shape
            }
        };
        shape.regime = wait.regime;
        let id = self.shapes.len();
        self.shapes.push(shape);
        self.shape_ids.entry(key).or_default().push(id as u32);
        id
    }

    /// Works out, once per shape, which (pool, option) pairs of `options` (the job's own, or
    /// what a narrowing left of them) could ever hold it, cheapest first, or the reason none can.
    fn build_shape(&self, job: &QueuedJob, options: Arc<[ResourceOption]>) -> Shape {
        let mut shape = Shape::unbuilt(job, options);
        let options = Arc::clone(&shape.resources);
        let invalid = |detail: String| Some(PendingReason::InvalidRequest { detail });
        if options.is_empty() {
            shape.static_reason = invalid("resources: expected at least one resource option".into());
            return shape;
        }
        if job.num_nodes == 0 {
            shape.static_reason = invalid("num_nodes 0: expected at least 1".into());
            return shape;
        }
        for option in options.iter() {
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
        for (oi, option) in options.iter().enumerate() {
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
                0 => PendingReason::NoSuchGpuModel { wanted: describe_options(&options) },
                1 => PendingReason::NoNodeLargeEnough { wanted: describe_need(&options) },
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

    pub(super) fn insufficient(&self, s: usize) -> PendingReason {
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
}
