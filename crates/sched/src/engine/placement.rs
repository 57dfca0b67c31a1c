//! Deciding one job: its candidates cheapest first (or by the configured placement rule), then
//! preemption; the result is a [`Found`] placement or the [`PendingReason`] it waits with.

use super::*;

/// A job placed: the pool and resource option (indexes), its nodes, and what one node costs per
/// hour there.
pub(super) struct Found {
    pub(super) pool: u32,
    pub(super) option: u32,
    pub(super) nodes: Vec<NodeAlloc>,
    pub(super) node_cost: Money,
}

/// A node chosen by a placement rule: the candidate (index into the shape's), the node, the
/// shared GPU for a fraction.
#[derive(Clone, Copy)]
pub(super) struct Choice {
    pub(super) candidate: usize,
    pub(super) node: u32,
    pub(super) gpu: Option<u8>,
}

/// What a placement rule minimises for one (node, GPU) choice; ties compare equal.
pub(super) type ChoiceKey = (i64, i64, u64, u64, u64);

/// How many hundredths of its price a GPU stranded by a placement of whole GPUs (or of CPU work)
/// costs under `CostThenFragmentation` (capacity stranded now tends to stay stranded for several
/// arrivals): 4 times. Chosen on the openb fill-up traces multigpu40/50, default, gpushare40/100
/// among 1 to 10 (`examples/openb/RESULTS.md`).
pub(super) const STRANDED_WEIGHT_PERCENT: i128 = 400;

/// The same for a placement of a GPU share (a fraction of one GPU): half its price. What a share
/// strands is at most the rest of the one GPU it lands on, and the next-arrival measure counts
/// that rest as lost to every class larger than it, although smaller shares arriving later fill
/// it; at 4 times the rule paid too much to avoid such rests. Chosen on the openb fill-up traces
/// among 0 to 4 times (`examples/openb/RESULTS.md`).
pub(super) const STRANDED_WEIGHT_SHARED_PERCENT: i128 = 50;

/// Placement rules weigh every node of a job's candidate pools, up to this many in all.
pub(super) const RULE_SCAN_LIMIT: usize = 20_000;

impl Scheduler {
    pub(super) fn decide(&mut self, queue: &[QueuedJob], j: usize, t: u32, s: usize, plan: &mut Plan) {
        let job = &queue[j];
        self.backfill_mode(job, s);
        let placed = if job.spread == SpreadPolicy::None {
            self.try_place(job, t, s, plan, None, true)
        } else {
            self.place_spread(job, t, s, plan)
        };
        match placed {
            Ok(Found { pool, option, nodes, node_cost }) => {
                let need = self.shapes[s].needs[option as usize];
                let (gpu, cpu) = Self::usage(&need, job.num_nodes);
                let tenant = &mut self.tenants[t as usize];
                tenant.used_gpu += gpu;
                tenant.used_cpu += cpu;
                self.pass_placed.push((j as u32, t));
                self.backfill.placed_with_end += usize::from(job.duration_s.is_some());
                plan.placements.push(Placement {
                    job: job.id,
                    replica: job.replica,
                    pool: self.meta[pool as usize].id,
                    option: self.shapes[s].own_option(option),
                    price_per_hour: node_cost.saturating_mul(i64::from(job.num_nodes)),
                    nodes,
                });
            }
            Err(reason) => {
                let reason = self.after_waiting(queue, j, s, reason, plan);
                plan.pending.push(Pending { job: job.id, replica: job.replica, reason });
            }
        }
    }

    /// Tries the job's candidates cheapest first, then preemption (when `preempt`). `avoid`
    /// leaves out pools of some providers (regions) for spread jobs. On success returns the pool,
    /// the option used, the node allocations and the cost of one node.
    pub(super) fn try_place(
        &mut self,
        job: &QueuedJob,
        t: u32,
        s: usize,
        plan: &mut Plan,
        avoid: Option<&Avoid>,
        preempt: bool,
    ) -> Result<Found, PendingReason> {
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
        // what was learnt while reserved nodes were cordoned holds only while they are
        let hiding = self.hiding_reserved();
        let shape = &self.shapes[s];
        if shape.failed_generation == generation
            && (hiding || !shape.failed_hiding)
            && job.priority <= shape.failed_priority
        {
            return Err(self.insufficient(s));
        }
        if shape.cursor_generation != generation || (shape.cursor_hiding && !hiding) {
            let shape = &mut self.shapes[s];
            shape.cursor = 0;
            shape.cursor_generation = generation;
            shape.cursor_hiding = false;
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
                return Ok(Found { pool: c.pool, option: c.option, nodes, node_cost: c.node_cost });
            }
            if !quota_skipped && !spread_skipped {
                self.shapes[s].cursor = i + 1;
                self.shapes[s].cursor_hiding |= hiding;
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
                shape.failed_hiding = hiding;
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
    pub(super) fn rule_applies(&self, s: usize) -> bool {
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

    /// The candidates a placement rule weighs: every one, or for `CostThenFragmentation` when
    /// the job orders its options, those of the first option with room (its pools at every price).
    pub(super) fn rule_candidates(&self, t: u32, s: usize, job: &QueuedJob) -> std::ops::Range<usize> {
        let shape = &self.shapes[s];
        let all = 0..shape.candidates.len();
        if self.config.placement != PlacementRule::CostThenFragmentation || !shape.ordered {
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
        let option = shape.candidates[first].option;
        let end = first + shape.candidates[first..].iter().take_while(|c| c.option == option).count();
        first..end
    }

    /// What a placement costs under `CostThenFragmentation`, in micro-dollars per hour: the share
    /// of the node it takes (`node_cost`) plus the price of the GPU capacity it strands, that is
    /// the growth of the node's capacity that the next arrival is expected to be unable to use
    /// (`stranded_growth` over `Target::weight_total`, see [`NodeView::stranded`]) at the node's
    /// price per GPU, times `weight_percent` hundredths ([`STRANDED_WEIGHT_PERCENT`] or
    /// [`STRANDED_WEIGHT_SHARED_PERCENT`]). Negative growth (work that takes capacity others could
    /// not use) lowers the cost.
    pub(super) fn effective_cost(
        &self,
        pool: u32,
        node_cost: Money,
        stranded_growth: i64,
        weight_percent: i128,
    ) -> i64 {
        let gpus = i128::from(self.pools[pool as usize].gpus);
        let weights = i128::from(self.target.weight_total());
        if gpus == 0 || weights == 0 {
            return node_cost.micros();
        }
        let price = i128::from(self.meta[pool as usize].price_per_node_hour.micros());
        let stranded = (price * i128::from(stranded_growth) * weight_percent).div_euclid(weights * gpus * 1000 * 100);
        node_cost.micros().saturating_add(stranded.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// Places a single-node job by the configured [`PlacementRule`] over its candidates: every
    /// fitting node of every candidate pool is weighed (one fully free node per pool stands for
    /// all of them, as they are alike), and the best is taken. `None` when nothing fits.
    pub(super) fn place_by_rule(&mut self, job: &QueuedJob, t: u32, s: usize) -> Option<Found> {
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
            let stranded_weight =
                if need.fraction > 0 { STRANDED_WEIGHT_SHARED_PERCENT } else { STRANDED_WEIGHT_PERCENT };
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
                let stranded_before = match rule {
                    PlacementRule::CostThenFragmentation => view.stranded(&self.target, accepts),
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
                        PlacementRule::CheapestBestFit | PlacementRule::Random { .. } => (0, 0, 0, 0, 0),
                        PlacementRule::BestFit => {
                            (i64::from(after.free_gpu_milli()), i64::from(after.cpus_milli), 0, 0, 0)
                        }
                        PlacementRule::Fragmentation { .. } => {
                            (after.fragmentation(&self.target, accepts) - before, 0, 0, 0, 0)
                        }
                        PlacementRule::CostThenFragmentation => (
                            self.effective_cost(
                                c.pool,
                                c.node_cost,
                                after.stranded(&self.target, accepts) - stranded_before,
                                stranded_weight,
                            ),
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
        Some(Found { pool: c.pool, option: c.option, nodes: vec![alloc], node_cost: c.node_cost })
    }
}
