//! The discrete-event simulation: a virtual clock, the simulated fleet and driver, and the real
//! scheduling core (`cumulo_sched::Scheduler`, the code behind the server's `schedule_with`)
//! deciding every placement.
//!
//! Time advances from event to event (arrivals, completions, outages, deliveries, price changes,
//! samples). Scheduling passes run on multiples of `tick_s` after something changed. The
//! scheduler is built once and kept for the whole run: each pass commits its plan, and the
//! simulator reports what else changed (work that ends, nodes cordoned or delivered, prices).
//! Beside it the simulator keeps the equivalent snapshot; debug builds of small fleets check, at
//! every pass, that a scheduler built afresh from it decides the same plan (the server's path).
//! A policy is only a different input to the same core: different pool prices, resource options,
//! priorities or settings.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use cumulo_portfolio::Status;
use cumulo_portfolio::pricing::PricingConfig;
use cumulo_sched::hetero::{ModelCapacity, RoundConfig, RoundJob, capacity_of, plan_round, prefer_model, selects};
use cumulo_sched::{
    Config, NodeAlloc, Placement, PlacementRule, QueueOrder, QueuedJob, RunningAlloc, Scheduler, Snapshot, TargetClass,
};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, GpuModel, GpuSelector, JobId, JobKind, Money, Priority, ResourceOption,
};
// FxHash for the maps of integer keys (job ids, small tuples): fast, deterministic; no map's
// iteration order reaches the report unsorted.
use rustc_hash::{FxHashMap, FxHashSet};

use crate::Error;
use crate::fleet::Fleet;
use crate::report::{Collector, PolicyReport};
use crate::scenario::{EventSpec, PolicyName, RoundSettings, SimSettings, days_to_s};
use crate::speed::{ModelSet, SpeedRow, model_index};
use crate::target::Window;
use crate::workload::TraceJob;

/// Progress, reported now and then: simulated seconds and jobs finished so far.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub now_s: u64,
    pub arrived: u64,
    pub finished: u64,
}

/// Everything one run needs besides the workload stream.
pub struct RunInput<'a> {
    pub fleet: &'a Fleet,
    pub speeds: &'a [SpeedRow],
    pub tenants: &'a [String],
    pub events: &'a [EventSpec],
    pub settings: &'a SimSettings,
    pub policy: PolicyName,
    /// Stop at this time; `None` runs until the workload drains.
    pub horizon_s: Option<u64>,
    /// Seconds between samples.
    pub sample_s: u64,
    /// The simulated span the run expects (the horizon, or the workload's last arrival plus a
    /// margin): commitments are spread over it.
    pub span_s: u64,
    /// The scenario's seed (the `random` and `fgd` policies draw their ties from it).
    pub seed: u64,
    /// The whole workload's classes, when known in advance: the `fgd` policy's target workload
    /// (Cumulo's policy learns its own from recent arrivals).
    pub target: Option<&'a [TargetClass]>,
    /// What jobs need of their site (`Workload::needs`, indexed by `TraceJob::needs` - 1): each
    /// such job is denied the locations whose pools cannot give it (`Needs::denials`, the rule
    /// the server's reconcile loop keeps jobs off clusters with).
    pub needs: &'a [cumulo_sched::needs::Needs],
}

/// Cumulo's policy learns its target workload from this many recent GPU arrivals ...
const TARGET_WINDOW: usize = 2_000;
/// ... and refreshes it every this many.
const TARGET_EVERY: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Job id and attempt: stale when the job has moved on to a later attempt.
    Complete(u64, u32),
    Delivery(u32, u32),
    OutageStart(u32),
    OutageEnd(u32),
    PriceChange(u32),
    /// Record every pool's books for the term report (index into the marks).
    Mark(u32),
    /// A portfolio contract's term ends: its capacity goes away (index into the contracts).
    TermEnd(u32),
    /// A heterogeneity round boundary (`sim.rounds`).
    Round,
}

struct Run {
    start_s: u64,
    end_s: u64,
    pool: u32,
    model: Option<GpuModel>,
    gpu_milli: u64,
    /// Sum over the job's nodes of its dominant share of each node, in thousandths of a node.
    node_share_milli: u64,
    nodes: Vec<NodeAlloc>,
    /// Seconds at the start of this run spent restarting after a migration (no progress).
    penalty_s: u64,
}

struct Active {
    job: TraceJob,
    /// The job's number in arrival order.
    id: u64,
    attempt: u32,
    /// Moves to another GPU type at a round boundary.
    migrations: u32,
    /// GPU model of the last attempt that started.
    last_model: Option<GpuModel>,
    /// Work left in reference seconds.
    remaining: f64,
    /// GPU-seconds held so far (least attained service).
    attained_gpu_s: f64,
    /// Restart cost owed by the next run (a migration's checkpoint and restart).
    penalty_s: u64,
    first_start: Option<u64>,
    run: Option<Run>,
}

/// Why a running job stops before it is done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Preempted,
    Failed,
    /// Its contract's term ended.
    Withdrawn,
    /// Moved at a round boundary: it saved its state in the grace period, so nothing is lost,
    /// and its next run first pays the migration cost.
    Migrated,
}

struct PoolRt {
    delivered: u32,
    down: u32,
    price_factor: f64,
    /// Thousandths of a node busy right now (dominant share) and since when it has been accrued.
    busy_milli: u64,
    accrued_at: u64,
    /// Thousandth-node-seconds used, accrued at the list price in force (on-demand, spot) or the
    /// contract rate (contract).
    cost: Money,
    used_milli_s: u128,
    delivered_node_s: u128,
    gpu_used_milli: Vec<u32>,
    /// Thousandths of a GPU held right now, and thousandth-GPU-seconds held so far.
    busy_gpu_milli: u64,
    gpu_milli_s: u128,
}

/// What a job's resource options depend on: job type, accepted models, GPUs per node, spot.
type OptionKey = (u16, ModelSet, u32, bool);

/// What a job's options with its own CPUs and memory depend on: the option key, CPU
/// thousandths and memory MiB.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct JobOptionKey {
    options: OptionKey,
    cpus_milli: u32,
    memory_mib: u64,
}

/// At most this many shared option lists are kept (traces with many CPU and memory sizes
/// start over rather than grow without bound).
const JOB_OPTION_CACHE_MAX: usize = 1 << 16;

struct Sim<'a> {
    input: &'a RunInput<'a>,
    config: Config,
    /// What the scheduler sees, kept as a snapshot (the server's input) ...
    snapshot: Snapshot,
    /// ... and as the scheduler's own state, kept up to date beside it.
    sched: Scheduler,
    /// Debug builds of small fleets check every pass against a fresh build from `snapshot`.
    check_fresh: bool,
    pools: Vec<PoolRt>,
    /// Jobs arrived and not finished (nor dropped), by id.
    active: FxHashMap<u64, Active>,
    /// Jobs running now.
    running_jobs: u64,
    queue: Vec<QueuedJob>,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    now: u64,
    dirty: bool,
    pass_at: u64,
    price_epoch: u64,
    options_epoch: u64,
    option_cache: FxHashMap<OptionKey, (Vec<ResourceOption>, bool)>,
    /// The same options with a job's CPUs and memory filled in, shared by every job that asks
    /// alike (one reference count per queued job instead of fresh allocations).
    job_option_cache: FxHashMap<JobOptionKey, (Arc<[ResourceOption]>, bool)>,
    /// The earliest window end of a queued inference job (`u64::MAX`: none queued).
    inference_expiry_at: u64,
    /// Per row of [`RunInput::needs`]: the locations its jobs are denied (`Needs::denials` over
    /// the fleet's pools as sites).
    denials: Vec<Vec<cumulo_types::InfraSelector>>,
    models_present: Vec<GpuModel>,
    /// Per pool: a contract behind its schedule (its capacity is paid for anyway).
    sunk: Vec<bool>,
    allocated_gpu_milli: u64,
    /// GPU thousandths requested by every job arrived so far (fill-up experiments).
    arrived_gpu_milli: u64,
    /// Recent GPU arrivals, from which Cumulo's policy learns its target workload.
    window: Window,
    /// The target workload given to the scheduler (kept for the fresh-build check).
    target: Vec<TargetClass>,
    /// The term report's books: every pool's at each mark, and jobs moved at each term end.
    books: Vec<crate::term::Books>,
    moved_at_term_end: Vec<u64>,
    /// Whether a round boundary is queued (`sim.rounds` under Cumulo's policy).
    round_pending: bool,
    /// The GPU model the last round assigned to each queued job (kept to re-apply when the
    /// options are rebuilt).
    round_models: FxHashMap<u64, GpuModel>,
    pub collect: Collector,
}

/// Runs one policy over a workload stream and returns its part of the report.
pub fn run(
    input: &RunInput<'_>,
    workload: &mut dyn Iterator<Item = TraceJob>,
    progress: &mut dyn FnMut(Progress),
) -> Result<PolicyReport, Error> {
    let mut sim = Sim::new(input)?;
    sim.run(workload, progress)?;
    Ok(sim.finish())
}

/// The rounds this run plays: `sim.rounds`, under Cumulo's policy only.
fn rounds_of(input: &RunInput<'_>) -> Option<RoundSettings> {
    input.settings.rounds.filter(|_| input.policy == PolicyName::Cumulo)
}

fn ceil_to(t: u64, step: u64) -> u64 {
    t.div_ceil(step) * step
}

impl<'a> Sim<'a> {
    fn new(input: &'a RunInput<'a>) -> Result<Sim<'a>, Error> {
        let placement = match input.policy {
            PolicyName::Cumulo => PlacementRule::CostThenFragmentation,
            PolicyName::BestFit => PlacementRule::BestFit,
            PolicyName::Random => PlacementRule::Random { seed: input.seed },
            PolicyName::Fgd => PlacementRule::Fragmentation { seed: input.seed },
            PolicyName::FifoFirstFit | PolicyName::CheapestFirst => PlacementRule::CheapestBestFit,
        };
        let config = Config {
            preemption: input.settings.preemption && input.policy != PolicyName::FifoFirstFit,
            placement,
            cpu_work_on_gpu_nodes: input.settings.cpu_work_on_gpu_nodes,
            queue_order: if rounds_of(input).is_some() { QueueOrder::AsGiven } else { QueueOrder::Submitted },
            backfill: input.settings.backfill,
            ..Config::default()
        };
        let snapshot = Snapshot {
            pools: input.fleet.pools.iter().map(|p| p.pool.clone()).collect(),
            running: Vec::new(),
            tenants: Vec::new(),
        };
        let pools = input
            .fleet
            .pools
            .iter()
            .map(|p| PoolRt {
                delivered: p.initial_nodes,
                down: 0,
                price_factor: 1.0,
                busy_milli: 0,
                accrued_at: 0,
                cost: Money::ZERO,
                used_milli_s: 0,
                delivered_node_s: 0,
                gpu_used_milli: vec![0; p.pool.nodes.len()],
                busy_gpu_milli: 0,
                gpu_milli_s: 0,
            })
            .collect();
        let refused =
            |e: cumulo_sched::Error| Error::Scenario(format!("the scheduler refused the simulated fleet: {e}"));
        let mut sched = Scheduler::new(&snapshot, config).map_err(refused)?;
        let target = match (input.policy, input.target) {
            (PolicyName::Fgd, Some(t)) => t.to_vec(),
            _ => Vec::new(),
        };
        sched.set_target(&target);
        let nodes: usize = snapshot.pools.iter().map(|p| p.nodes.len()).sum();
        let sites = input.fleet.sites();
        let denials = input.needs.iter().map(|n| n.denials(&sites)).collect();
        let mut sim = Sim {
            input,
            denials,
            config,
            snapshot,
            sched,
            check_fresh: cfg!(debug_assertions) && nodes <= 2_000,
            pools,
            active: FxHashMap::default(),
            running_jobs: 0,
            queue: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0,
            dirty: false,
            pass_at: 0,
            price_epoch: 0,
            options_epoch: u64::MAX,
            option_cache: FxHashMap::default(),
            job_option_cache: FxHashMap::default(),
            inference_expiry_at: u64::MAX,
            models_present: input.fleet.models(),
            sunk: vec![false; input.fleet.pools.len()],
            allocated_gpu_milli: 0,
            arrived_gpu_milli: 0,
            window: Window::new(TARGET_WINDOW, TARGET_EVERY),
            target,
            books: Vec::new(),
            moved_at_term_end: vec![0; input.fleet.contracts.len()],
            round_pending: false,
            round_models: FxHashMap::default(),
            collect: Collector::new(input),
        };
        let end_s = input.horizon_s.unwrap_or(input.span_s);
        for (i, t) in crate::term::marks(input.fleet, end_s).into_iter().enumerate() {
            sim.push(t, Ev::Mark(i as u32));
        }
        for (c, contract) in input.fleet.contracts.iter().enumerate() {
            if let (Some(schedule), Some(origin)) = (&contract.schedule, input.fleet.calendar_start) {
                let end = (schedule.contract.term_end() - origin).num_seconds();
                if end > 0 && end as u64 <= end_s {
                    sim.push(end as u64, Ev::TermEnd(c as u32));
                }
            }
        }
        for (i, p) in input.fleet.pools.iter().enumerate() {
            for (at, nodes) in &p.deliveries {
                sim.push(*at, Ev::Delivery(i as u32, *nodes));
            }
        }
        for (i, e) in input.events.iter().enumerate() {
            match e {
                EventSpec::Outage { at_days, for_hours, .. } => {
                    let at = days_to_s("outage.at_days", *at_days)?;
                    sim.push(at, Ev::OutageStart(i as u32));
                    sim.push(at + days_to_s("outage.for_hours", for_hours / 24.0)?, Ev::OutageEnd(i as u32));
                }
                EventSpec::PriceChange { at_days, .. } => {
                    sim.push(days_to_s("price_change.at_days", *at_days)?, Ev::PriceChange(i as u32));
                }
                EventSpec::DeliveryDelay { .. } => {} // applied when the fleet was built
            }
        }
        Ok(sim)
    }

    /// Marks node `n` of pool `pool` schedulable or not, in the snapshot and the scheduler.
    fn set_schedulable(&mut self, pool: usize, n: usize, schedulable: bool) {
        let node = &mut self.snapshot.pools[pool].nodes[n];
        if node.schedulable != schedulable {
            node.schedulable = schedulable;
            let id = self.snapshot.pools[pool].id;
            let changed = self.sched.set_schedulable(id, n as u32, schedulable).expect("the scheduler has every pool");
            debug_assert!(changed, "the scheduler's nodes follow the snapshot's");
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, ev)));
    }

    fn mark_dirty(&mut self) {
        if !self.dirty {
            self.dirty = true;
            self.pass_at = ceil_to(self.now, self.input.settings.tick_s);
        }
    }

    fn run(
        &mut self,
        workload: &mut dyn Iterator<Item = TraceJob>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), Error> {
        let mut next_job = workload.next();
        let mut next_id: u64 = 0;
        let mut next_sample = 0u64;
        let mut last_progress_day = u64::MAX;
        let horizon = self.input.horizon_s.unwrap_or(u64::MAX);
        loop {
            let t_heap = self.heap.peek().map(|Reverse((t, _, _))| *t);
            let t_arrival = next_job.as_ref().map(|j| j.arrival_s);
            let t_pass = (self.dirty && !self.queue.is_empty()).then_some(self.pass_at);
            let Some(t_work) = [t_heap, t_arrival, t_pass].into_iter().flatten().min() else { break };
            if t_work > horizon {
                break;
            }
            let t = if next_sample <= t_work { next_sample } else { t_work };
            self.advance(t);
            if t == next_sample {
                self.sample();
                next_sample += self.input.sample_s;
                if t < t_work {
                    continue;
                }
            }
            self.handle_due(t);
            while next_job.as_ref().is_some_and(|j| j.arrival_s == t) {
                let job = next_job.take().expect("checked");
                self.arrive(next_id, job);
                next_id += 1;
                next_job = workload.next();
            }
            // a round that the arrivals made due now plans before the pass places them
            self.handle_due(t);
            if self.dirty && !self.queue.is_empty() && self.pass_at == t {
                self.pass()?;
            } else if self.dirty && self.queue.is_empty() {
                self.dirty = false;
            }
            let day = t / 86_400;
            if day != last_progress_day {
                last_progress_day = day;
                progress(Progress { now_s: t, arrived: next_id, finished: self.collect.finished });
            }
        }
        let end = match self.input.horizon_s {
            Some(h) => h,
            None => self.now,
        };
        self.advance(end.max(self.now));
        if next_sample <= self.now {
            self.sample();
        }
        self.collect.jobs = next_id;
        progress(Progress { now_s: self.now, arrived: next_id, finished: self.collect.finished });
        Ok(())
    }

    /// Handles the events due at `t`.
    fn handle_due(&mut self, t: u64) {
        while let Some(Reverse((at, _, ev))) = self.heap.peek().copied() {
            if at != t {
                break;
            }
            self.heap.pop();
            self.handle(ev);
        }
    }

    /// Moves the clock. Costs accrue lazily, per pool, whenever a pool's books change.
    fn advance(&mut self, t: u64) {
        if t > self.now {
            self.now = t;
        }
    }

    fn accrue_all(&mut self) {
        for i in 0..self.pools.len() {
            self.accrue(i, self.now);
        }
    }

    fn accrue(&mut self, i: usize, t: u64) {
        let sp = &self.input.fleet.pools[i];
        let rt = &mut self.pools[i];
        if t <= rt.accrued_at {
            return;
        }
        let dt = (t - rt.accrued_at) as u128;
        rt.accrued_at = t;
        let used = rt.busy_milli as u128 * dt;
        rt.used_milli_s += used;
        rt.gpu_milli_s += rt.busy_gpu_milli as u128 * dt;
        rt.delivered_node_s += rt.delivered as u128 * dt;
        let price = match sp.pool.capacity {
            CapacityKind::Contract => sp.contract_rate.micros() as f64,
            _ => sp.list_price.micros() as f64 * rt.price_factor,
        };
        // thousandth-node-seconds × µ$/node-hour
        let micros = (used as f64 * price / 3_600_000.0).round() as i64;
        rt.cost += Money::from_micros(micros);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Complete(id, attempt) => {
                if self.active.get(&id).is_some_and(|a| a.attempt == attempt && a.run.is_some()) {
                    self.complete(id);
                }
            }
            Ev::Delivery(pool, nodes) => {
                self.accrue(pool as usize, self.now);
                let rt = &mut self.pools[pool as usize];
                let from = rt.delivered;
                rt.delivered = (rt.delivered + nodes).min(self.snapshot.pools[pool as usize].nodes.len() as u32);
                if rt.down == 0 {
                    for n in from..rt.delivered {
                        self.set_schedulable(pool as usize, n as usize, true);
                    }
                }
                self.mark_dirty();
            }
            Ev::OutageStart(e) => {
                let affected = self.event_pools(e);
                let mut victims = Vec::new();
                for &p in &affected {
                    self.pools[p].down += 1;
                    for n in 0..self.snapshot.pools[p].nodes.len() {
                        self.set_schedulable(p, n, false);
                    }
                    victims.extend(
                        self.active
                            .iter()
                            .filter(|(_, a)| a.run.as_ref().is_some_and(|r| r.pool as usize == p))
                            .map(|(id, _)| *id),
                    );
                }
                victims.sort_unstable();
                self.collect.outages += 1;
                for v in victims {
                    self.stop(v, Stop::Failed);
                }
                self.mark_dirty();
            }
            Ev::OutageEnd(e) => {
                for p in self.event_pools(e) {
                    let rt = &mut self.pools[p];
                    rt.down = rt.down.saturating_sub(1);
                    if rt.down == 0 {
                        for n in 0..rt.delivered as usize {
                            self.set_schedulable(p, n, true);
                        }
                    }
                }
                self.mark_dirty();
            }
            Ev::Mark(_) => {
                self.accrue_all();
                self.books.push(crate::term::Books {
                    t_s: self.now,
                    cost: self.pools.iter().map(|p| p.cost).collect(),
                    gpu_milli_s: self.pools.iter().map(|p| p.gpu_milli_s).collect(),
                });
            }
            Ev::TermEnd(c) => self.end_term(c as usize),
            Ev::Round => self.round(),
            Ev::PriceChange(e) => {
                if let EventSpec::PriceChange { factor, .. } = &self.input.events[e as usize] {
                    for p in self.event_pools(e) {
                        self.accrue(p, self.now);
                        self.pools[p].price_factor *= factor;
                    }
                }
                self.price_epoch += 1;
                self.mark_dirty();
            }
        }
    }

    /// A round boundary: plans each job's GPU model with sched's heterogeneity rule, moves the
    /// running jobs whose model changes (or that wait this round), and orders the queue by the
    /// plan, each queued job's assigned model first.
    fn round(&mut self) {
        self.round_pending = false;
        let Some(settings) = rounds_of(self.input) else { return };
        if self.active.is_empty() {
            return;
        }
        let mut ids: Vec<u64> = self.active.keys().copied().collect();
        ids.sort_unstable();
        let jobs: Vec<RoundJob> = ids.iter().filter_map(|id| self.round_job(&self.active[id])).collect();
        let config = RoundConfig {
            min_gain: settings.min_gain,
            migration_s: settings.migration_s as f64,
            round_s: settings.every_s as f64,
        };
        let plan = plan_round(&jobs, &self.round_capacity(), &config);
        for moved in plan.moves(&jobs) {
            if moved.to.is_some() {
                self.active.get_mut(&moved.job.0).expect("planned jobs are active").migrations += 1;
            }
            self.collect.preemptions += u64::from(moved.to.is_none());
            self.stop(moved.job.0, Stop::Migrated);
        }
        let rank: FxHashMap<u64, usize> = plan.order.iter().enumerate().map(|(i, id)| (id.0, i)).collect();
        self.round_models.clear();
        for q in &mut self.queue {
            // the assigned model's option first, the rest in the policy's order
            if let Some(m) = plan.model_of(q.id) {
                self.round_models.insert(q.id.0, m);
            }
            if let Some(m) = plan.model_of(q.id)
                && selects(&q.resources, m)
            {
                q.ordered |= prefer_model(q.options_mut(), m).is_some();
            }
        }
        self.queue.sort_by_key(|q| (rank.get(&q.id.0).copied().unwrap_or(usize::MAX), q.submitted_at, q.id));
        self.mark_dirty();
        self.round_pending = true;
        self.push(self.now + settings.every_s, Ev::Round);
    }

    /// A job as the round sees it (`None` for work the rounds leave alone: CPU-only, inference,
    /// open-ended).
    fn round_job(&self, a: &Active) -> Option<RoundJob> {
        if a.job.gpus_per_node.is_zero() || a.job.kind == JobKind::Inference || !a.remaining.is_finite() {
            return None;
        }
        let row = self.input.speeds.get(a.job.job_type as usize);
        let speeds: Vec<(GpuModel, f32)> = self
            .models_present
            .iter()
            .filter(|m| a.job.models.contains(**m))
            .map(|m| (*m, row.map_or(1.0, |r| r.on(*m))))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        let (current, remaining) = match &a.run {
            Some(r) => {
                let speed = r.model.map_or(1.0, |m| row.map_or(1.0, |x| x.on(m)));
                let worked = self.now.saturating_sub(r.start_s).saturating_sub(r.penalty_s);
                (r.model, (a.remaining - worked as f64 * speed as f64).max(0.0))
            }
            None => (None, a.remaining),
        };
        let gpus = a.job.total_gpus_milli().div_ceil(1000) as u32;
        Some(RoundJob {
            id: JobId(a.id),
            gpus,
            speeds,
            current,
            movable: a.job.preemptible || a.job.kind == JobKind::Training,
            attained_gpu_s: a.attained_gpu_s,
            remaining_s: Some(remaining),
            arrival_s: a.job.arrival_s,
        })
    }

    /// GPUs per model on schedulable nodes.
    fn round_capacity(&self) -> Vec<ModelCapacity> {
        capacity_of(&self.snapshot.pools)
    }

    /// A contract's term ends: its pools are cordoned for good and what runs there is stopped
    /// and re-queued.
    fn end_term(&mut self, c: usize) {
        let pools: Vec<usize> =
            (0..self.pools.len()).filter(|p| self.input.fleet.pools[*p].contract == Some(c)).collect();
        let mut victims = Vec::new();
        for &p in &pools {
            self.pools[p].down += 1;
            for n in 0..self.snapshot.pools[p].nodes.len() {
                self.set_schedulable(p, n, false);
            }
            victims.extend(
                self.active
                    .iter()
                    .filter(|(_, a)| a.run.as_ref().is_some_and(|r| r.pool as usize == p))
                    .map(|(id, _)| *id),
            );
        }
        victims.sort_unstable();
        self.moved_at_term_end[c] += victims.len() as u64;
        for v in victims {
            self.stop(v, Stop::Withdrawn);
        }
        self.mark_dirty();
    }

    fn event_pools(&self, e: u32) -> Vec<usize> {
        let (provider, region, capacity) = match &self.input.events[e as usize] {
            EventSpec::Outage { provider, region, .. } => (provider, region.as_ref(), None),
            EventSpec::PriceChange { provider, capacity, .. } => (provider, None, *capacity),
            EventSpec::DeliveryDelay { provider, region, .. } => (provider, region.as_ref(), None),
        };
        self.snapshot
            .pools
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                &p.provider == provider
                    && region.is_none_or(|r| r == &p.region)
                    && capacity.is_none_or(|c| c == p.capacity)
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn arrive(&mut self, id: u64, job: TraceJob) {
        self.collect.arrived(&job);
        self.arrived_gpu_milli += job.total_gpus_milli();
        if self.learns_target() {
            self.window.arrived(&job);
        }
        let remaining = job.work_s as f64;
        let queued = self.queued(id, &job);
        self.enqueue(queued, &job);
        self.active.insert(
            id,
            Active {
                job,
                id,
                attempt: 1,
                migrations: 0,
                last_model: None,
                remaining,
                attained_gpu_s: 0.0,
                penalty_s: 0,
                first_start: None,
                run: None,
            },
        );
        if let Some(r) = rounds_of(self.input)
            && !self.round_pending
        {
            self.round_pending = true;
            self.push(ceil_to(self.now, r.every_s), Ev::Round);
        }
        self.mark_dirty();
    }

    /// Whether this run's policy learns its target workload from arrivals: Cumulo's, and FGD's
    /// when the workload was not known in advance.
    fn learns_target(&self) -> bool {
        match self.input.policy {
            PolicyName::Cumulo => true,
            PolicyName::Fgd => self.input.target.is_none(),
            _ => false,
        }
    }

    /// The job as this policy presents it to the scheduler.
    fn queued(&mut self, id: u64, job: &TraceJob) -> QueuedJob {
        let (resources, ordered) = self.options_for(job);
        let (tenant, priority, preemptible) = match self.input.policy {
            PolicyName::FifoFirstFit => ("fifo".to_string(), Priority::NORMAL, false),
            _ => (
                self.input.tenants.get(job.tenant as usize).cloned().unwrap_or_else(|| format!("t{}", job.tenant)),
                job.priority,
                job.preemptible,
            ),
        };
        QueuedJob {
            id: JobId(id),
            replica: 0,
            tenant,
            priority,
            preemptible,
            resources,
            ordered,
            num_nodes: job.num_nodes,
            topology: job.topology,
            constraints: cumulo_types::Constraints {
                deny: match job.needs.checked_sub(1) {
                    Some(row) => self.denials.get(usize::from(row)).cloned().unwrap_or_default(),
                    None => Vec::new(),
                },
                max_price_per_hour: None,
            },
            submitted_at: job.arrival_s,
            spread: Default::default(),
            duration_s: expected_run_s(job),
        }
    }

    /// Resource options. Baselines: one option over every acceptable model (and the same on spot
    /// for preemptible work), unordered, so the scheduler takes the cheapest pool at the prices
    /// the policy wrote. Cumulo: one option per (model, spot or not), ordered by effective price
    /// per unit of work (price per GPU-hour / the job type's speed on the model).
    fn options_for(&mut self, job: &TraceJob) -> (Arc<[ResourceOption]>, bool) {
        let key = (job.job_type, job.models, job.gpus_per_node.0, job.preemptible);
        let job_key = JobOptionKey { options: key, cpus_milli: job.cpus_milli, memory_mib: job.memory_mib };
        if let Some((options, ordered)) = self.job_option_cache.get(&job_key) {
            return (options.clone(), *ordered);
        }
        let (base, ordered) = self.base_options(key, job);
        let options: Arc<[ResourceOption]> = base.iter().map(|o| with_job(o, job)).collect();
        if self.job_option_cache.len() >= JOB_OPTION_CACHE_MAX {
            self.job_option_cache.clear();
        }
        self.job_option_cache.insert(job_key, (options.clone(), ordered));
        (options, ordered)
    }

    /// A job's options before its CPUs and memory are filled in (cached per option key).
    fn base_options(&mut self, key: OptionKey, job: &TraceJob) -> (&[ResourceOption], bool) {
        if self.option_cache.contains_key(&key) {
            let hit = &self.option_cache[&key];
            return (&hit.0, hit.1);
        }
        let spot_choices: &[bool] = if job.preemptible { &[false, true] } else { &[false] };
        let built: (Vec<ResourceOption>, bool) = if job.gpus_per_node.is_zero() {
            (spot_choices.iter().map(|s| ResourceOption { use_spot: *s, ..ResourceOption::default() }).collect(), false)
        } else {
            let speed_row = self.input.speeds.get(job.job_type as usize);
            let usable: Vec<GpuModel> = self
                .models_present
                .iter()
                .copied()
                .filter(|m| job.models.contains(*m) && speed_row.is_none_or(|r| r.on(*m) > 0.0))
                .collect();
            let option = |selector, use_spot| ResourceOption {
                accelerators: Some(AcceleratorDemand { selector, per_node: job.gpus_per_node, names: Vec::new() }),
                use_spot,
                ..ResourceOption::default()
            };
            if usable.is_empty() {
                let wanted = job.models.models();
                let selector =
                    if wanted.is_empty() { GpuSelector::MinMemoryGb(0) } else { GpuSelector::Models(wanted) };
                (vec![option(selector, false)], false)
            } else if self.input.policy == PolicyName::Cumulo {
                // sunk capacity (contracts behind schedule) first, fastest first; then the rest by
                // effective price per unit of work
                let mut scored: Vec<(bool, f64, usize, bool, GpuModel)> = Vec::new();
                for m in &usable {
                    for &spot in spot_choices {
                        let (price, sunk) = self.cheapest_gpu_hour(*m, spot);
                        if price.is_finite() {
                            let speed = speed_row.map_or(1.0, |r| r.on(*m) as f64).max(1e-9);
                            let score = if sunk { -speed } else { price / speed };
                            scored.push((!sunk, score, model_index(*m), spot, *m));
                        }
                    }
                }
                scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.3.cmp(&b.3)).then(a.2.cmp(&b.2)));
                // Sunk models as fast as each other are one option: paid for alike, so which
                // one a job lands on is placement's choice (fragmentation), not the model's
                // position in the enum.
                let mut options: Vec<ResourceOption> = Vec::new();
                let mut group: Vec<GpuModel> = Vec::new();
                for (k, &(not_sunk, score, _, spot, m)) in scored.iter().enumerate() {
                    group.push(m);
                    let joins_next =
                        scored.get(k + 1).is_some_and(|n| !not_sunk && !n.0 && n.1 == score && n.3 == spot);
                    if !joins_next {
                        options.push(option(GpuSelector::Models(std::mem::take(&mut group)), spot));
                    }
                }
                (options, true)
            } else {
                let selector = if job.models.is_any() && usable.len() == self.models_present.len() {
                    GpuSelector::MinMemoryGb(0)
                } else {
                    GpuSelector::Models(usable)
                };
                (spot_choices.iter().map(|s| option(selector.clone(), *s)).collect(), false)
            }
        };
        let hit = self.option_cache.entry(key).or_insert(built);
        (&hit.0, hit.1)
    }

    /// The lowest price per GPU-hour, as this policy sees it, among pools of a model (spot or
    /// not), and whether some pool of it is sunk (a contract behind its schedule).
    fn cheapest_gpu_hour(&self, model: GpuModel, spot: bool) -> (f64, bool) {
        let mut best = (f64::INFINITY, false);
        for (i, p) in self.snapshot.pools.iter().enumerate() {
            if p.node_type.gpu != Some(model) || p.node_type.gpus == 0 || (p.capacity == CapacityKind::Spot) != spot {
                continue;
            }
            best.0 = best.0.min(p.price_per_node_hour.micros() as f64 / p.node_type.gpus as f64);
            best.1 |= self.sunk[i];
        }
        best
    }

    /// Writes this policy's prices into the snapshot's pools.
    fn reprice(&mut self) {
        let fleet = self.input.fleet;
        let mut changed = false;
        if self.input.policy == PolicyName::Cumulo {
            self.accrue_all();
        }
        let consumed = self.pools_consumed();
        let scheduled = self.contract_schedule();
        // The server's pricing rules (cumulo_portfolio), on the simulator's contracts.
        let pricing = PricingConfig {
            spot_premium_bps: (self.input.settings.spot_risk_premium * 10_000.0).round() as u32,
            ..PricingConfig::default()
        };
        for (i, sp) in fleet.pools.iter().enumerate() {
            let rt = &self.pools[i];
            let list = Money::from_micros((sp.list_price.micros() as f64 * rt.price_factor).round() as i64);
            let price = match self.input.policy {
                // baselines see list prices (price-blind rules ignore them)
                PolicyName::FifoFirstFit
                | PolicyName::CheapestFirst
                | PolicyName::BestFit
                | PolicyName::Random
                | PolicyName::Fgd => list,
                PolicyName::Cumulo => match sp.pool.capacity {
                    CapacityKind::Contract => {
                        let status = match sp.contract {
                            Some(c) => Status::against(consumed[c], scheduled[c]),
                            None => Status::OnSchedule,
                        };
                        // a pure take-or-pay contract (no stated commitment: every delivered
                        // node-hour is owed) is paid for whether used or not
                        let take_or_pay = sp.contract.is_some_and(|c| {
                            fleet.contracts[c].committed.is_none() && fleet.contracts[c].schedule.is_none()
                        });
                        self.sunk[i] = take_or_pay || matches!(status, Status::Behind { .. });
                        pricing.committed_price(sp.contract_rate, status).unwrap_or(sp.contract_rate)
                    }
                    CapacityKind::OnDemand => list,
                    CapacityKind::Spot => list + pricing.spot_premium(list),
                },
            };
            if self.snapshot.pools[i].price_per_node_hour != price {
                self.snapshot.pools[i].price_per_node_hour = price;
                self.sched.set_price(self.snapshot.pools[i].id, price).expect("the scheduler has every pool");
                changed = true;
            }
        }
        if changed {
            self.price_epoch += 1;
        }
    }

    /// Contract value consumed so far per contract (contract rate × used node-hours).
    fn pools_consumed(&self) -> Vec<Money> {
        let mut consumed = vec![Money::ZERO; self.input.fleet.contracts.len()];
        for (i, sp) in self.input.fleet.pools.iter().enumerate() {
            if let Some(c) = sp.contract {
                consumed[c] += self.pools[i].cost;
            }
        }
        consumed
    }

    /// What each contract should have consumed by now: a portfolio contract's own schedule since
    /// the start, else its committed spend spread evenly over the run's span, or (without a
    /// commitment) its rate for every node-hour delivered so far.
    fn contract_schedule(&self) -> Vec<Money> {
        let fleet = self.input.fleet;
        let mut scheduled = vec![Money::ZERO; fleet.contracts.len()];
        for (i, sp) in fleet.pools.iter().enumerate() {
            if let Some(c) = sp.contract
                && fleet.contracts[c].committed.is_none()
            {
                let node_s = self.pools[i].delivered_node_s.min(i64::MAX as u128) as i64;
                scheduled[c] += sp.contract_rate.mul_div(node_s, 3600);
            }
        }
        for (c, contract) in fleet.contracts.iter().enumerate() {
            if let Some(schedule) = &contract.schedule {
                scheduled[c] = schedule.scheduled(self.now);
            } else if let Some(committed) = contract.committed {
                let span = self.input.span_s.max(1);
                scheduled[c] = committed.mul_div(self.now.min(span) as i64, span as i64);
            }
        }
        scheduled
    }

    fn pass(&mut self) -> Result<(), Error> {
        self.dirty = false;
        self.reprice();
        if self.input.policy == PolicyName::Cumulo && self.options_epoch != self.price_epoch {
            self.options_epoch = self.price_epoch;
            self.option_cache.clear();
            self.job_option_cache.clear();
            let mut queue = std::mem::take(&mut self.queue);
            for q in &mut queue {
                if let Some(a) = self.active.get(&q.id.0) {
                    let job = a.job.clone();
                    let (resources, ordered) = self.options_for(&job);
                    q.resources = resources;
                    q.ordered = ordered;
                    // the round's assigned model stays first
                    if let Some(m) = self.round_models.get(&q.id.0)
                        && selects(&q.resources, *m)
                    {
                        q.ordered |= prefer_model(q.options_mut(), *m).is_some();
                    }
                }
            }
            self.queue = queue;
        }
        self.expire_inference();
        if let Some(target) = self.window.take_if_due() {
            self.sched.set_target(&target);
            self.target = target;
        }
        // A portfolio's exclusive and first-refusal clauses bind every policy, as in the server.
        let clauses = self.input.fleet.clauses_at(self.now);
        let cap = self.input.settings.max_queue_per_pass.max(1);
        let slice_len = self.queue.len().min(cap);
        let queue = &self.queue[..slice_len];
        let fresh_plan = if self.check_fresh {
            let refused =
                |e: cumulo_sched::Error| Error::Scenario(format!("the scheduler refused the simulated snapshot: {e}"));
            let mut fresh = Scheduler::new(&self.snapshot, self.config).map_err(refused)?;
            fresh.set_target(&self.target);
            if let Some(diff) = self.sched.differences(&fresh) {
                panic!("the kept scheduler differs from a fresh build at {}: {diff}", self.now);
            }
            Some(fresh.schedule_once_narrowed(queue, self.now, &clauses))
        } else {
            None
        };
        let plan = self.sched.schedule_narrowed(queue, self.now, &clauses);
        if let Some(fresh_plan) = fresh_plan {
            assert!(plan == fresh_plan, "the kept scheduler planned differently from a fresh build at {}", self.now);
        }
        self.collect.passes += 1;
        // the scheduler has already stopped its victims and booked its placements
        for p in &plan.preemptions {
            if self.active.get(&p.victim.0).is_some_and(|a| a.run.is_some()) {
                self.collect.preemptions += 1;
                self.stop(p.victim.0, Stop::Preempted);
            }
        }
        let mut placed: FxHashSet<u64> = FxHashSet::with_capacity_and_hasher(plan.placements.len(), Default::default());
        for p in plan.placements {
            placed.insert(p.job.0);
            self.start(p);
        }
        if !placed.is_empty() {
            self.queue.retain(|q| !placed.contains(&q.id.0));
            if slice_len == cap {
                self.mark_dirty();
                self.pass_at = self.now + self.input.settings.tick_s;
            }
        }
        let mut by_code: BTreeMap<&'static str, u64> = BTreeMap::new();
        for p in &plan.pending {
            *by_code.entry(p.reason.code()).or_insert(0) += 1;
        }
        self.collect.last_pending = by_code.into_iter().map(|(code, n)| (code.to_string(), n)).collect();
        if !self.input.settings.retries {
            self.fail_unplaced(&plan.pending);
            self.collect.fill_point(
                self.arrived_gpu_milli,
                self.allocated_gpu_milli,
                self.input.fleet.total_gpus() * 1000,
            );
        }
        Ok(())
    }

    /// Without retries, work a pass could not place fails there and then (never silently: each
    /// is counted with the GPUs it asked for).
    fn fail_unplaced(&mut self, pending: &[cumulo_sched::Pending]) {
        if pending.is_empty() {
            return;
        }
        let failed: FxHashSet<u64> = pending.iter().map(|p| p.job.0).collect();
        self.queue.retain(|q| !failed.contains(&q.id.0));
        let mut ids: Vec<u64> = failed.into_iter().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(a) = self.active.remove(&id) {
                self.collect.unplaced(&a.job);
                let now = self.now;
                self.collect.job_row(|| row_of(&a, Some(now), "failed"));
            }
        }
    }

    /// Inference demand whose window has passed while it waited is dropped (unserved).
    /// Only passes at or after the earliest window end of a queued inference job look at the
    /// queue (a backlog of other work is not walked every pass).
    fn expire_inference(&mut self) {
        let now = self.now;
        if now < self.inference_expiry_at {
            return;
        }
        let active = &mut self.active;
        let collect = &mut self.collect;
        let mut next = u64::MAX;
        self.queue.retain(|q| {
            let a = &active[&q.id.0];
            if a.job.kind != JobKind::Inference || a.run.is_some() {
                return true;
            }
            let ends = a.job.arrival_s.saturating_add(a.job.work_s);
            if ends <= now {
                collect.inference_expired(&a.job);
                active.remove(&q.id.0);
                false
            } else {
                next = next.min(ends);
                true
            }
        });
        self.inference_expiry_at = next;
    }

    /// Queues a job (arrived or stopped), noting when an inference job's window ends.
    fn enqueue(&mut self, q: QueuedJob, job: &TraceJob) {
        if job.kind == JobKind::Inference {
            self.inference_expiry_at = self.inference_expiry_at.min(job.arrival_s.saturating_add(job.work_s));
        }
        self.queue.push(q);
    }

    fn start(&mut self, p: Placement) {
        let id = p.job.0;
        let pool_i = p.pool.0 as usize;
        let sp = &self.input.fleet.pools[pool_i];
        let nt = &sp.pool.node_type;
        let model = nt.gpu;
        let a = self.active.get_mut(&id).expect("placed jobs are active");
        let now = self.now;
        let run_s = if a.job.kind == JobKind::Inference {
            a.job.arrival_s.saturating_add(a.job.work_s).saturating_sub(now).max(1)
        } else if a.remaining.is_infinite() || a.job.work_s == u64::MAX {
            u64::MAX - now
        } else {
            let speed = self.input.speeds.get(a.job.job_type as usize).map_or(1.0, |r| model.map_or(1.0, |m| r.on(m)));
            ((a.remaining / speed.max(1e-9) as f64).ceil() as u64).max(1).saturating_add(a.penalty_s)
        };
        let penalty_s = std::mem::take(&mut a.penalty_s);
        let gpu_milli: u64 = p.nodes.iter().map(|n| n.gpus.milli()).sum();
        let share: u64 = p.nodes.iter().map(|n| node_share_milli(n, nt)).sum();
        let first = a.first_start.is_none();
        a.first_start.get_or_insert(now);
        a.last_model = model;
        a.run = Some(Run {
            start_s: now,
            end_s: now.saturating_add(run_s),
            pool: p.pool.0,
            model,
            gpu_milli,
            node_share_milli: share,
            nodes: p.nodes,
            penalty_s,
        });
        let attempt = a.attempt;
        let (priority, preemptible) = (a.job.priority, a.job.preemptible);
        if first {
            self.collect.started(&a.job, now);
        }
        self.accrue(pool_i, now);
        self.pools[pool_i].busy_milli += share;
        self.pools[pool_i].busy_gpu_milli += gpu_milli;
        let a = &self.active[&id];
        let nodes = &a.run.as_ref().expect("just set").nodes;
        for n in nodes {
            self.pools[pool_i].gpu_used_milli[n.node as usize] += n.gpus.milli() as u32;
        }
        self.allocated_gpu_milli += gpu_milli;
        self.running_jobs += 1;
        if self.check_fresh {
            // the snapshot the server would see (only kept where a fresh build checks each pass)
            let alloc = RunningAlloc {
                job: p.job,
                replica: 0,
                tenant: self.queue_tenant(&a.job),
                priority: if self.input.policy == PolicyName::FifoFirstFit { Priority::NORMAL } else { priority },
                preemptible: self.input.policy != PolicyName::FifoFirstFit && preemptible,
                pool: p.pool,
                nodes: nodes.clone(),
                started_at: now,
                expected_end: expected_run_s(&a.job).map(|d| now.saturating_add(d)),
            };
            self.snapshot.running.push(alloc);
        }
        if run_s < u64::MAX - now {
            self.push(now + run_s, Ev::Complete(id, attempt));
        }
    }

    fn queue_tenant(&self, job: &TraceJob) -> String {
        match self.input.policy {
            PolicyName::FifoFirstFit => "fifo".to_string(),
            _ => self.input.tenants.get(job.tenant as usize).cloned().unwrap_or_else(|| format!("t{}", job.tenant)),
        }
    }

    /// Takes a job's allocation out of the snapshot, the scheduler (unless the scheduler stopped
    /// it itself: a preemption) and the pool's books.
    fn release(&mut self, id: u64, why: Option<Stop>) -> Option<Run> {
        let run = self.active.get_mut(&id)?.run.take()?;
        if why != Some(Stop::Preempted) {
            let released = self.sched.release(JobId(id), 0);
            debug_assert!(released, "the scheduler runs what the simulator runs");
        }
        if self.check_fresh {
            let i = self.snapshot.running.iter().position(|r| r.job.0 == id).expect("running jobs are in the snapshot");
            self.snapshot.running.swap_remove(i);
        }
        self.running_jobs -= 1;
        let pool_i = run.pool as usize;
        self.accrue(pool_i, self.now);
        self.pools[pool_i].busy_milli -= run.node_share_milli;
        self.pools[pool_i].busy_gpu_milli -= run.gpu_milli;
        for n in &run.nodes {
            self.pools[pool_i].gpu_used_milli[n.node as usize] -= n.gpus.milli() as u32;
        }
        self.allocated_gpu_milli -= run.gpu_milli;
        let held_s = self.now - run.start_s;
        let a = self.active.get_mut(&id).expect("released jobs are active");
        a.attained_gpu_s += run.gpu_milli as f64 / 1000.0 * held_s as f64;
        self.collect.held(&a.job, run.model, run.gpu_milli, held_s);
        self.mark_dirty();
        Some(run)
    }

    fn complete(&mut self, id: u64) {
        if let Some(run) = self.release(id, None) {
            let a = self.active.remove(&id).expect("released jobs are active");
            debug_assert!(a.first_start.is_some_and(|s| s <= run.start_s));
            self.collect.finished(&a.job, self.now);
            let now = self.now;
            self.collect.job_row(|| row_of(&a, Some(now), "finished"));
        }
    }

    /// Stops a running job (preempted or failed) and puts it back in the queue.
    fn stop(&mut self, id: u64, why: Stop) {
        let Some(run) = self.release(id, Some(why)) else { return };
        let now = self.now;
        let checkpoint_s = self.input.settings.checkpoint_s.max(1);
        let a = self.active.get_mut(&id).expect("released jobs are active");
        let elapsed = now - run.start_s;
        let working_s = elapsed.saturating_sub(run.penalty_s);
        let speed = self.input.speeds.get(a.job.job_type as usize).map_or(1.0, |r| run.model.map_or(1.0, |m| r.on(m)));
        let kept_s = match a.job.kind {
            _ if why == Stop::Migrated => working_s,
            JobKind::Training => working_s / checkpoint_s * checkpoint_s,
            JobKind::Inference => elapsed,
            JobKind::Batch | JobKind::Sandbox => 0,
        };
        if a.job.kind != JobKind::Inference && a.remaining.is_finite() && a.job.work_s != u64::MAX {
            a.remaining = (a.remaining - kept_s as f64 * speed as f64).max(1.0);
        }
        let lost_gpu_s = (working_s - kept_s.min(working_s)) as u128 * run.gpu_milli as u128;
        a.attempt += 1;
        if why == Stop::Migrated {
            a.penalty_s = rounds_of(self.input).map_or(0, |r| r.migration_s);
        } else if why != Stop::Withdrawn {
            self.collect.stopped(why == Stop::Failed, lost_gpu_s);
        }
        let job = a.job.clone();
        let mut q = self.queued(id, &job);
        q.submitted_at = job.arrival_s;
        self.enqueue(q, &job);
    }

    fn sample(&mut self) {
        self.accrue_all();
        let mut capacity = 0u64;
        let mut fragmented = 0u64;
        let mut free = 0u64;
        // the smallest per-node GPU need of a pending job, per model
        let mut smallest: Vec<u32> = vec![u32::MAX; crate::speed::MODELS];
        let mut any_pending_gpu = false;
        for q in &self.queue {
            let Some(a) = self.active.get(&q.id.0) else { continue };
            let need = a.job.gpus_per_node.0;
            if need == 0 {
                continue;
            }
            any_pending_gpu = true;
            for m in &self.models_present {
                if a.job.models.contains(*m) {
                    let s = &mut smallest[model_index(*m)];
                    *s = (*s).min(need);
                }
            }
        }
        for (i, sp) in self.input.fleet.pools.iter().enumerate() {
            let Some(model) = sp.gpu() else { continue };
            let rt = &self.pools[i];
            if rt.down > 0 {
                continue;
            }
            let per_node = sp.gpus_per_node() * 1000;
            capacity += rt.delivered as u64 * per_node as u64;
            let threshold = smallest[model_index(model)];
            for used in &rt.gpu_used_milli[..rt.delivered as usize] {
                let f = per_node - used;
                free += f as u64;
                if any_pending_gpu && f > 0 && f < threshold {
                    fragmented += f as u64;
                }
            }
        }
        let consumed = self.pools_consumed();
        let scheduled = self.contract_schedule();
        self.collect.sample(
            crate::report::Sample {
                t_s: self.now,
                capacity_gpus: capacity as f64 / 1000.0,
                allocated_gpus: self.allocated_gpu_milli as f64 / 1000.0,
                demand_gpus: (self.allocated_gpu_milli
                    + self
                        .queue
                        .iter()
                        .filter_map(|q| self.active.get(&q.id.0))
                        .map(|a| a.job.total_gpus_milli())
                        .sum::<u64>()) as f64
                    / 1000.0,
                free_gpus: free as f64 / 1000.0,
                fragmented_gpus: fragmented as f64 / 1000.0,
                pending_jobs: self.queue.len() as u64,
                running_jobs: self.running_jobs,
            },
            &consumed,
            &scheduled,
        );
    }

    fn finish(mut self) -> PolicyReport {
        let now = self.now;
        self.accrue_all();
        let mut running: Vec<(u64, u64)> =
            self.active.iter().filter_map(|(id, a)| a.run.as_ref().map(|r| (*id, r.end_s))).collect();
        running.sort_unstable();
        for (id, _) in &running {
            let a = &self.active[id];
            let r = a.run.as_ref().expect("filtered on run");
            self.collect.held(&a.job, r.model, r.gpu_milli, now.saturating_sub(r.start_s));
        }
        let unfinished = self.active.len() as u64;
        if self.collect.job_rows.is_some() {
            for a in self.active.values() {
                let outcome = if a.run.is_some() { "running" } else { "pending" };
                self.collect.job_row(|| row_of(a, None, outcome));
            }
        }
        let still_running = running.len() as u64;
        let pools: Vec<crate::report::PoolBooks> = self
            .input
            .fleet
            .pools
            .iter()
            .zip(&self.pools)
            .map(|(sp, rt)| crate::report::PoolBooks {
                provider: sp.pool.provider.clone(),
                capacity: sp.pool.capacity,
                contract: sp.contract,
                cost: rt.cost,
                contract_rate: sp.contract_rate,
                used_node_hours: rt.used_milli_s as f64 / 1000.0 / 3600.0,
                delivered_node_hours: rt.delivered_node_s as f64 / 3600.0,
            })
            .collect();
        let mut report = self.collect.report(self.input, now, unfinished, still_running, &pools);
        report.term = crate::term::report(&crate::term::TermInput {
            fleet: self.input.fleet,
            books: &self.books,
            moved_at_term_end: &self.moved_at_term_end,
        });
        report
    }
}

/// The run time a job states to the scheduler (its `duration_s`): its work on the reference GPU,
/// an estimate (slower models run longer, an inference job's run ends sooner); none for work that
/// never ends.
fn expected_run_s(job: &TraceJob) -> Option<u64> {
    (job.work_s != u64::MAX).then_some(job.work_s)
}

fn row_of(a: &Active, end_s: Option<u64>, outcome: &'static str) -> crate::report::JobRow {
    crate::report::JobRow {
        job: a.id,
        arrival_s: a.job.arrival_s,
        start_s: a.first_start,
        end_s,
        gpu: a.last_model.map(|m| m.name().to_string()),
        gpus: a.job.total_gpus_milli() as f64 / 1000.0,
        attempts: a.attempt,
        migrations: a.migrations,
        outcome,
    }
}

fn with_job(option: &ResourceOption, job: &TraceJob) -> ResourceOption {
    ResourceOption { cpus_milli: job.cpus_milli, memory_mib: job.memory_mib, ..option.clone() }
}

/// A job's dominant share of one node, in thousandths of the node.
fn node_share_milli(n: &NodeAlloc, nt: &cumulo_types::NodeType) -> u64 {
    let mut share = 0u64;
    if nt.gpus > 0 {
        share = share.max(n.gpus.milli() / nt.gpus as u64);
    }
    if nt.vcpus > 0 {
        share = share.max(n.cpus_milli as u64 / nt.vcpus as u64);
    }
    if nt.memory_gb > 0 {
        share = share.max(n.memory_mib * 1000 / (nt.memory_gb as u64 * 1024));
    }
    share.min(1000)
}
