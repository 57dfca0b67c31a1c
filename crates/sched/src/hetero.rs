//! Heterogeneity-aware rounds (after Gavel, OSDI'20): which GPU model each job should hold for
//! the next round, and the order in which waiting work goes to the pass.
//!
//! A pure function of the jobs (their speed on each GPU model, their GPU count, the model they
//! hold now, whether they may move) and the GPUs of each model. The order:
//! - **JCT order within the round:** shortest remaining time first (remaining work over the
//!   job's best speed) where every job's remaining work is known, else least attained service
//!   (GPU-seconds held so far). Ties go to the earlier arrival, then the lower id. Work that may
//!   not move (non-preemptible, not checkpointing) keeps what it holds and is served first.
//!
//! The allocation, where every job's remaining work is known and the round length
//! ([`RoundConfig::round_s`]) is set: **time-slicing by completion rate.** Each round is sliced
//! anew; a job's priority on a model is the share of its remaining work one round there
//! completes, per GPU (a running job's round elsewhere loses the migration cost), and the round's
//! GPUs go to the highest (job, model) pairs. So while work waits, the short jobs hold the fast
//! models (shortest remaining time on the fastest model, with each job's own speeds), a job
//! rotates to a faster model as its end nears or one frees, and a long job yields to a short
//! arrival. When nobody waits, the models are re-chosen to finish the jobs soonest in sum: jobs
//! pick in decreasing order of what losing their best model costs them per GPU, then a local
//! search moves and swaps jobs while that lowers the summed finish time (moves costed). A job
//! that keeps its model between rounds keeps its GPUs and pays nothing.
//!
//! Otherwise (some remaining work unknown, as live work without a duration): **allocation by
//! relative speed-up.** The jobs the order admits (their GPU counts fit the fleet's total) pick
//! GPU models in decreasing order of their speed-up (speed on their fastest usable model over
//! their slowest), each the fastest model with room left; so the fast types go to the jobs that
//! gain most from them. A running job stays where it is unless the move gains at least
//! [`RoundConfig::min_gain`] (a migration costs a checkpoint and a restart).
//!
//! The simulator (`sim.rounds`) and the live reconcile loop (`control`, the fleet file's
//! `rounds:`) call [`plan_round`] at each round boundary with the same helpers: [`capacity_of`]
//! the pools, [`speeds_of`] a job's `speedups`, [`RoundPlan::moves`] for the running jobs whose
//! model changes. The caller applies the plan: the simulator stops every move (a job told to wait
//! too) and charges its migration cost; the live loop preempts a running attempt only to move it
//! to another model (its driver sends SIGTERM, then SIGKILL after a grace period), and re-places
//! it with [`options_on_model`]; waiting work goes first to its assigned model ([`prefer_model`]).

use std::collections::BTreeMap;

use cumulo_types::{GpuModel, JobId, ResourceOption, Speed};

use crate::model::Pool;

/// One job as a round sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundJob {
    pub id: JobId,
    /// GPUs the job needs (all of one model).
    pub gpus: u32,
    /// Speed on each model it can use (relative to any fixed reference; > 0).
    pub speeds: Vec<(GpuModel, f32)>,
    /// The model it runs on now, if running.
    pub current: Option<GpuModel>,
    /// Whether it may be stopped and moved at this round (preemptible or checkpointing).
    pub movable: bool,
    /// GPU-seconds held so far (least attained service).
    pub attained_gpu_s: f64,
    /// Work left in reference seconds (seconds at speed 1.0), when known.
    pub remaining_s: Option<f64>,
    pub arrival_s: u64,
}

impl RoundJob {
    fn speed_on(&self, model: GpuModel) -> f32 {
        self.speeds.iter().find(|(m, _)| *m == model).map_or(0.0, |(_, s)| *s)
    }

    fn best_speed(&self) -> f32 {
        self.speeds.iter().map(|(_, s)| *s).fold(0.0, f32::max)
    }

    /// Fastest over slowest usable model (1.0 for a job with one model).
    fn speedup(&self) -> f32 {
        let slowest = self.speeds.iter().map(|(_, s)| *s).fold(f32::INFINITY, f32::min);
        if slowest > 0.0 && slowest.is_finite() { self.best_speed() / slowest } else { 1.0 }
    }
}

/// GPUs of one model in the fleet (schedulable now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelCapacity {
    pub model: GpuModel,
    pub gpus: u32,
}

/// Settings of the rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundConfig {
    /// A running job whose remaining work is unknown moves only when the new model is at least
    /// this much faster for it.
    pub min_gain: f32,
    /// Seconds a moved job loses (checkpoint, restart): a running job with known remaining work
    /// moves only when the move saves more than this over that work.
    pub migration_s: f64,
    /// Seconds between rounds. 0 (unknown) keeps the allocation by speed-up even where every
    /// job's remaining work is known (see the module doc).
    pub round_s: f64,
}

impl Default for RoundConfig {
    fn default() -> Self {
        RoundConfig { min_gain: 1.3, migration_s: 0.0, round_s: 0.0 }
    }
}

/// The model a job should hold in the next round (`None`: it waits this round).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub job: JobId,
    pub model: Option<GpuModel>,
}

/// What a round decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundPlan {
    /// Every job, in the order the pass should consider them (JCT order, pinned work first).
    pub order: Vec<JobId>,
    /// Each job's model for the round, in `order`.
    pub assignments: Vec<Assignment>,
}

impl RoundPlan {
    /// The assigned model of a job, if the plan gives it one.
    pub fn model_of(&self, job: JobId) -> Option<GpuModel> {
        self.assignments.iter().find(|a| a.job == job).and_then(|a| a.model)
    }
}

/// A running job whose model the plan changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Move {
    pub job: JobId,
    pub from: GpuModel,
    /// `None`: the job waits this round (the simulator stops it; the live loop leaves it running).
    pub to: Option<GpuModel>,
    /// The job's speed on `to` over its speed on `from` (0 when it waits).
    pub gain: f32,
}

impl RoundPlan {
    /// The running, movable jobs of `jobs` whose assigned model differs from the one they hold.
    pub fn moves(&self, jobs: &[RoundJob]) -> Vec<Move> {
        let mut out = Vec::new();
        for job in jobs {
            let (Some(from), true) = (job.current, job.movable) else { continue };
            let to = self.model_of(job.id);
            if to == Some(from) {
                continue;
            }
            let gain = to.map_or(0.0, |m| job.speed_on(m) / job.speed_on(from).max(f32::MIN_POSITIVE));
            out.push(Move { job: job.id, from, to, gain });
        }
        out
    }
}

/// GPUs per model on the schedulable nodes of `pools`, in the order models first appear.
pub fn capacity_of(pools: &[Pool]) -> Vec<ModelCapacity> {
    let mut out: Vec<ModelCapacity> = Vec::new();
    for p in pools {
        let Some(model) = p.node_type.gpu else { continue };
        let gpus = p.nodes.iter().filter(|n| n.schedulable).count() as u32 * p.node_type.gpus;
        match out.iter_mut().find(|c| c.model == model) {
            Some(c) => c.gpus += gpus,
            None => out.push(ModelCapacity { model, gpus }),
        }
    }
    out
}

/// Whether any resource option of a job accepts GPUs of `model`.
pub fn selects(options: &[ResourceOption], model: GpuModel) -> bool {
    options.iter().any(|o| o.accelerators.as_ref().is_some_and(|a| a.selector.accepts(model)))
}

/// A live job's speeds for a round: each model of `present` its resource options select, at its
/// stated `speedups` (`JobSpec::speedups`; 1.0 for a usable model it does not list).
pub fn speeds_of(
    options: &[ResourceOption],
    speedups: &BTreeMap<GpuModel, Speed>,
    present: &[GpuModel],
) -> Vec<(GpuModel, f32)> {
    present
        .iter()
        .filter(|m| selects(options, **m))
        .map(|m| (*m, speedups.get(m).map_or(1.0, |s| s.as_f64() as f32)))
        .collect()
}

/// A job's options narrowed to one model, with the index in the job's own list each came from.
#[derive(Clone, Debug, PartialEq)]
pub struct OnModel {
    pub options: Vec<ResourceOption>,
    pub origins: Vec<u32>,
}

/// The options of a job narrowed to `model`: those that accept it, each asking for `model` only.
/// `None` when no option accepts it (the job is left as it is).
pub fn options_on_model(options: &[ResourceOption], model: GpuModel) -> Option<OnModel> {
    let mut out = OnModel { options: Vec::new(), origins: Vec::new() };
    for (i, o) in options.iter().enumerate() {
        let Some(demand) = o.accelerators.as_ref().filter(|a| a.selector.accepts(model)) else { continue };
        let mut o = o.clone();
        o.accelerators =
            Some(cumulo_types::AcceleratorDemand::new(cumulo_types::GpuSelector::Models(vec![model]), demand.per_node));
        out.options.push(o);
        out.origins.push(i as u32);
    }
    (!out.options.is_empty()).then_some(out)
}

/// Puts the first option that accepts `model` first, the others keeping their order; returns
/// the index it had, if one did (the caller then marks the options as ordered).
pub fn prefer_model(options: &mut [ResourceOption], model: GpuModel) -> Option<usize> {
    let k = options.iter().position(|o| o.accelerators.as_ref().is_some_and(|a| a.selector.accepts(model)))?;
    options[..=k].rotate_right(1);
    Some(k)
}

/// The original index of each option after [`prefer_model`] moved option `k` of `n` first.
pub fn preferred_origins(k: usize, n: usize) -> Vec<u32> {
    std::iter::once(k).chain((0..n).filter(|i| *i != k)).map(|i| i as u32).collect()
}

/// Which JCT rule ordered the round.
fn order_key(job: &RoundJob, all_known: bool) -> f64 {
    match (all_known, job.remaining_s) {
        (true, Some(r)) => r / f64::from(job.best_speed().max(1e-9)),
        _ => job.attained_gpu_s,
    }
}

/// Plans one round: the JCT order and a GPU model per job (see the module doc).
pub fn plan_round(jobs: &[RoundJob], capacity: &[ModelCapacity], config: &RoundConfig) -> RoundPlan {
    let all_known = jobs.iter().all(|j| j.remaining_s.is_some());
    let mut idx: Vec<usize> = (0..jobs.len()).collect();
    idx.sort_by(|&a, &b| {
        let (ja, jb) = (&jobs[a], &jobs[b]);
        // Pinned work (running and not movable) sorts first: `false` before `true`.
        let free_to_order = |j: &RoundJob| j.current.is_none() || j.movable;
        free_to_order(ja)
            .cmp(&free_to_order(jb))
            .then(order_key(ja, all_known).total_cmp(&order_key(jb, all_known)))
            .then(ja.arrival_s.cmp(&jb.arrival_s))
            .then(ja.id.cmp(&jb.id))
    });
    let assigned = if all_known && config.round_s > 0.0 {
        assign_by_rate(jobs, &idx, capacity, config)
    } else {
        assign_by_speedup(jobs, &idx, capacity, config)
    };
    let assignments = idx.iter().map(|&i| Assignment { job: jobs[i].id, model: assigned[i] }).collect();
    RoundPlan { order: idx.iter().map(|&i| jobs[i].id).collect(), assignments }
}

/// Pinned work keeps its model and its GPUs (booked in `free`); returns each job's model so far.
fn book_pinned(jobs: &[RoundJob], free: &mut [ModelCapacity]) -> Vec<Option<GpuModel>> {
    let mut assigned: Vec<Option<GpuModel>> = vec![None; jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        if let (Some(m), false) = (j.current, j.movable) {
            if let Some(c) = free.iter_mut().find(|c| c.model == m) {
                c.gpus = c.gpus.saturating_sub(j.gpus);
            }
            assigned[i] = Some(m);
        }
    }
    assigned
}

/// With every job's remaining work known, the round is re-sliced from scratch (jobs rotate over
/// GPU models as their remaining work changes): the round's GPUs go first to the (job, model)
/// pairs of highest priority, where the priority is the share of the job's remaining work one
/// round on that model completes, per GPU (`speed × usable seconds / remaining / GPUs`; a
/// running job's usable seconds on another model lose the migration cost). This completes the
/// most jobs per round: the shortest work takes the fast GPUs while others wait, a job near its
/// end moves to a faster model, and a long job yields its GPUs to a short arrival (SRPT on the
/// fastest model, per job speed). When every job got GPUs (nobody waits), the models are
/// re-chosen to finish the jobs soonest in sum ([`assign_by_regret`], then [`settle`]).
fn assign_by_rate(
    jobs: &[RoundJob],
    idx: &[usize],
    capacity: &[ModelCapacity],
    config: &RoundConfig,
) -> Vec<Option<GpuModel>> {
    let mut free: Vec<ModelCapacity> = capacity.to_vec();
    let mut assigned = book_pinned(jobs, &mut free);
    let mut pairs = rate_pairs(jobs, idx, &assigned, config);
    pairs.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.job.cmp(&b.job)).then(a.model.cmp(&b.model)));
    for p in pairs {
        if assigned[p.job].is_some() {
            continue;
        }
        if let Some(c) = free.iter_mut().find(|c| c.model == p.model && c.gpus >= jobs[p.job].gpus) {
            c.gpus -= jobs[p.job].gpus;
            assigned[p.job] = Some(p.model);
        }
    }
    let everyone = jobs.iter().zip(&assigned).all(|(j, a)| a.is_some() || j.best_speed() <= 0.0);
    if everyone {
        let mut regret_free: Vec<ModelCapacity> = capacity.to_vec();
        let mut by_regret = book_pinned(jobs, &mut regret_free);
        assign_by_regret(jobs, &mut by_regret, &mut regret_free, config);
        // kept only where it places every job the rate placed (a gang may not find room)
        if by_regret.iter().zip(&assigned).all(|(r, a)| r.is_some() == a.is_some()) {
            assigned = by_regret;
            free = regret_free;
        }
        settle(jobs, &mut assigned, &mut free, config);
    }
    assigned
}

/// A job's priority on one model for the round ([`assign_by_rate`]).
struct RatePair {
    rate: f64,
    job: usize,
    model: GpuModel,
}

/// Every free-to-place job's priority on each model it can use.
fn rate_pairs(jobs: &[RoundJob], idx: &[usize], assigned: &[Option<GpuModel>], config: &RoundConfig) -> Vec<RatePair> {
    let mut pairs = Vec::new();
    for &i in idx {
        let j = &jobs[i];
        if assigned[i].is_some() {
            continue;
        }
        let remaining = j.remaining_s.unwrap_or(0.0).max(1.0);
        for (m, speed) in j.speeds.iter().filter(|(_, s)| *s > 0.0) {
            let usable_s = if j.current.is_none_or(|c| c == *m) {
                config.round_s
            } else {
                (config.round_s - config.migration_s).max(0.0)
            };
            let rate = f64::from(*speed) * usable_s / remaining / f64::from(j.gpus.max(1));
            pairs.push(RatePair { rate, job: i, model: *m });
        }
    }
    pairs
}

/// With room for every job: jobs pick their fastest model with room (finish time, move cost
/// included) in decreasing order of what losing it costs them per GPU (the finish time on
/// their second-best model over the best), so a fast model goes to the jobs that would lose
/// most without it, not to short jobs that gain a few seconds. Books the GPUs in `free`.
fn assign_by_regret(
    jobs: &[RoundJob],
    assigned: &mut [Option<GpuModel>],
    free: &mut [ModelCapacity],
    config: &RoundConfig,
) {
    let total: Vec<ModelCapacity> = free.to_vec();
    let mut keyed: Vec<(f64, usize)> = Vec::new();
    for (i, j) in jobs.iter().enumerate() {
        if assigned[i].is_some() || j.best_speed() <= 0.0 {
            continue;
        }
        let mut times: Vec<f64> =
            total.iter().filter(|c| c.gpus >= j.gpus).map(|c| finish_s(j, c.model, config)).collect();
        times.sort_by(f64::total_cmp);
        let regret = match times.as_slice() {
            [a, b, ..] if b.is_finite() => (b - a) / f64::from(j.gpus.max(1)),
            _ => f64::INFINITY,
        };
        keyed.push((regret, i));
    }
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in keyed {
        let j = &jobs[i];
        let best = free
            .iter()
            .filter(|c| c.gpus >= j.gpus)
            .map(|c| (finish_s(j, c.model, config), c.model))
            .filter(|(t, _)| t.is_finite())
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        if let Some((_, m)) = best {
            free.iter_mut().find(|c| c.model == m).expect("a model with room").gpus -= j.gpus;
            assigned[i] = Some(m);
        }
    }
}

/// Seconds job `j` needs to finish on `m` from now, a move's cost included.
fn finish_s(j: &RoundJob, m: GpuModel, config: &RoundConfig) -> f64 {
    let speed = f64::from(j.speed_on(m));
    if speed <= 0.0 {
        return f64::INFINITY;
    }
    let cost = if j.current.is_some_and(|c| c != m) { config.migration_s } else { 0.0 };
    j.remaining_s.unwrap_or(0.0) / speed + cost
}

/// Local search on the placed jobs' models that lowers their summed finish time: a job moves
/// to a model with room where it finishes sooner, two jobs of one GPU count swap models where
/// that finishes them sooner together (a few sweeps, until nothing improves).
fn settle(jobs: &[RoundJob], assigned: &mut [Option<GpuModel>], free: &mut [ModelCapacity], config: &RoundConfig) {
    let placed: Vec<usize> =
        (0..jobs.len()).filter(|&i| assigned[i].is_some() && (jobs[i].movable || jobs[i].current.is_none())).collect();
    for _ in 0..SETTLE_SWEEPS {
        let moved = move_to_room(jobs, &placed, assigned, free, config);
        let swapped = swap_models(jobs, &placed, assigned, config);
        if !moved && !swapped {
            break;
        }
    }
}

/// Sweeps of [`settle`] at most (each is quadratic in the placed jobs).
const SETTLE_SWEEPS: usize = 8;

/// One sweep of moves to a model with room where the job finishes sooner; whether any moved.
fn move_to_room(
    jobs: &[RoundJob],
    placed: &[usize],
    assigned: &mut [Option<GpuModel>],
    free: &mut [ModelCapacity],
    config: &RoundConfig,
) -> bool {
    let mut any = false;
    for &a in placed {
        let Some(here_model) = assigned[a] else { continue };
        let here = finish_s(&jobs[a], here_model, config);
        let best = free
            .iter()
            .filter(|c| c.model != here_model && c.gpus >= jobs[a].gpus)
            .map(|c| (finish_s(&jobs[a], c.model, config), c.model))
            .filter(|(t, _)| *t + 1e-6 < here)
            .min_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        if let Some((_, m)) = best {
            free.iter_mut().find(|c| c.model == m).expect("a model with room").gpus -= jobs[a].gpus;
            if let Some(c) = free.iter_mut().find(|c| c.model == here_model) {
                c.gpus += jobs[a].gpus;
            }
            assigned[a] = Some(m);
            any = true;
        }
    }
    any
}

/// One sweep of pairwise swaps between jobs of one GPU count; whether any swapped.
fn swap_models(jobs: &[RoundJob], placed: &[usize], assigned: &mut [Option<GpuModel>], config: &RoundConfig) -> bool {
    let mut any = false;
    for x in 0..placed.len() {
        for &b in &placed[x + 1..] {
            let a = placed[x];
            let (Some(ma), Some(mb)) = (assigned[a], assigned[b]) else { continue };
            if ma == mb || jobs[a].gpus != jobs[b].gpus {
                continue;
            }
            let now = finish_s(&jobs[a], ma, config) + finish_s(&jobs[b], mb, config);
            let swapped = finish_s(&jobs[a], mb, config) + finish_s(&jobs[b], ma, config);
            if swapped + 1e-6 < now {
                assigned[a] = Some(mb);
                assigned[b] = Some(ma);
                any = true;
            }
        }
    }
    any
}

/// Admission in JCT order while the fleet's total has room, then models by decreasing speed-up.
fn assign_by_speedup(
    jobs: &[RoundJob],
    idx: &[usize],
    capacity: &[ModelCapacity],
    config: &RoundConfig,
) -> Vec<Option<GpuModel>> {
    let mut free: Vec<ModelCapacity> = capacity.to_vec();
    let mut assigned: Vec<Option<GpuModel>> = vec![None; jobs.len()];
    // pinned work keeps its model; then admit in JCT order while the fleet's total has room
    let mut total: u64 = capacity.iter().map(|c| u64::from(c.gpus)).sum();
    let mut admitted: Vec<usize> = Vec::new();
    for &i in idx {
        let j = &jobs[i];
        if let (Some(m), false) = (j.current, j.movable) {
            if let Some(c) = free.iter_mut().find(|c| c.model == m) {
                c.gpus = c.gpus.saturating_sub(j.gpus);
            }
            total = total.saturating_sub(u64::from(j.gpus));
            assigned[i] = Some(m);
        } else if u64::from(j.gpus) <= total && j.best_speed() > 0.0 {
            total -= u64::from(j.gpus);
            admitted.push(i);
        }
    }
    // the admitted pick models by decreasing speed-up, each the fastest with room
    let mut by_gain = admitted.clone();
    by_gain.sort_by(|&a, &b| jobs[b].speedup().total_cmp(&jobs[a].speedup()).then(a.cmp(&b)));
    for &i in &by_gain {
        assigned[i] = pick_model(&jobs[i], &mut free, config);
    }
    assigned
}

/// Whether moving a running job from `stay` to `best` pays: with its remaining work known, the
/// time saved over that work exceeds the migration cost; else `best` is `min_gain` faster.
fn move_pays(job: &RoundJob, stay: GpuModel, best: GpuModel, config: &RoundConfig) -> bool {
    let (slow, fast) = (f64::from(job.speed_on(stay)), f64::from(job.speed_on(best)));
    match job.remaining_s {
        Some(r) if slow > 0.0 && fast > slow => r / slow - r / fast > config.migration_s,
        Some(_) => false,
        None => job.speed_on(best) >= job.speed_on(stay) * config.min_gain,
    }
}

/// The fastest model with room for the job, keeping a running job where it is unless the move
/// pays ([`move_pays`]); books the GPUs.
fn pick_model(job: &RoundJob, free: &mut [ModelCapacity], config: &RoundConfig) -> Option<GpuModel> {
    let best = free
        .iter()
        .filter(|c| c.gpus >= job.gpus && job.speed_on(c.model) > 0.0)
        .max_by(|a, b| job.speed_on(a.model).total_cmp(&job.speed_on(b.model)).then(b.model.cmp(&a.model)))
        .map(|c| c.model);
    let stay = job.current.filter(|m| free.iter().any(|c| c.model == *m && c.gpus >= job.gpus));
    let choice = match (best, stay) {
        (Some(b), Some(s)) if !move_pays(job, s, b, config) => Some(s),
        (b, _) => b,
    };
    if let Some(m) = choice
        && let Some(c) = free.iter_mut().find(|c| c.model == m)
    {
        c.gpus -= job.gpus;
    }
    choice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, gpus: u32, v100: f32, k80: f32, remaining_s: f64) -> RoundJob {
        RoundJob {
            id: JobId(id),
            gpus,
            speeds: vec![(GpuModel::V100, v100), (GpuModel::K80, k80)],
            current: None,
            movable: true,
            attained_gpu_s: 0.0,
            remaining_s: Some(remaining_s),
            arrival_s: id,
        }
    }

    fn fleet(v100: u32, k80: u32) -> Vec<ModelCapacity> {
        vec![ModelCapacity { model: GpuModel::V100, gpus: v100 }, ModelCapacity { model: GpuModel::K80, gpus: k80 }]
    }

    #[test]
    fn the_fast_type_goes_to_the_job_that_gains_most() {
        // job 1 gains 10x from a V100, job 2 only 1.2x: the one V100 goes to job 1
        let jobs = [job(1, 1, 1.0, 0.1, 1000.0), job(2, 1, 1.0, 0.83, 900.0)];
        let plan = plan_round(&jobs, &fleet(1, 1), &RoundConfig::default());
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::V100), "the 10x job takes the V100");
        assert_eq!(plan.model_of(JobId(2)), Some(GpuModel::K80), "the 1.2x job is nearly as fast on the K80");
    }

    #[test]
    fn shortest_remaining_time_is_admitted_first() {
        let jobs = [job(1, 1, 1.0, 0.5, 50_000.0), job(2, 1, 1.0, 0.5, 100.0)];
        let plan = plan_round(&jobs, &fleet(1, 0), &RoundConfig::default());
        assert_eq!(plan.order, vec![JobId(2), JobId(1)], "the short job goes first");
        assert_eq!(plan.model_of(JobId(2)), Some(GpuModel::V100));
        assert_eq!(plan.model_of(JobId(1)), None, "the long job waits this round");
    }

    #[test]
    fn without_known_work_least_attained_service_goes_first() {
        let mut a = job(1, 1, 1.0, 0.5, 0.0);
        let mut b = job(2, 1, 1.0, 0.5, 0.0);
        a.remaining_s = None;
        b.remaining_s = None;
        a.attained_gpu_s = 5_000.0;
        b.attained_gpu_s = 10.0;
        let plan = plan_round(&[a, b], &fleet(1, 0), &RoundConfig::default());
        assert_eq!(plan.order, vec![JobId(2), JobId(1)], "the job served least goes first");
    }

    #[test]
    fn a_running_job_moves_only_for_a_real_gain_and_pinned_work_stays() {
        let mut small_gain = job(1, 1, 1.0, 0.9, 100.0);
        small_gain.current = Some(GpuModel::K80);
        let mut pinned = job(2, 2, 1.0, 0.1, 1e9);
        pinned.current = Some(GpuModel::K80);
        pinned.movable = false;
        let config = RoundConfig { migration_s: 120.0, ..RoundConfig::default() };
        let plan = plan_round(&[small_gain, pinned], &fleet(1, 3), &config);
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::K80), "saving 11 s does not pay a 120-s migration");
        assert_eq!(plan.model_of(JobId(2)), Some(GpuModel::K80), "work that may not move keeps its GPUs");
        assert_eq!(plan.order[0], JobId(2), "pinned work is served first");
    }

    #[test]
    fn a_move_pays_when_it_saves_more_than_the_migration_over_the_remaining_work() {
        // the same 11% gain over 10,000 s of work saves ~1,111 s: worth a 120-s move
        let mut long = job(1, 1, 1.0, 0.9, 10_000.0);
        long.current = Some(GpuModel::K80);
        let config = RoundConfig { migration_s: 120.0, ..RoundConfig::default() };
        let plan = plan_round(std::slice::from_ref(&long), &fleet(1, 1), &config);
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::V100), "a long job moves for a small gain");
        // remaining work unknown: the ratio rule decides
        long.remaining_s = None;
        let plan = plan_round(&[long], &fleet(1, 1), &config);
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::K80), "without known work an 11% gain is below min_gain");
    }

    #[test]
    fn moves_name_the_running_jobs_whose_model_changes() {
        let mut slow = job(1, 1, 3.0, 1.0, 1000.0);
        slow.current = Some(GpuModel::K80);
        let mut pinned = job(2, 1, 3.0, 1.0, 1000.0);
        pinned.current = Some(GpuModel::K80);
        pinned.movable = false;
        let jobs = [slow, pinned];
        let plan = plan_round(&jobs, &fleet(1, 2), &RoundConfig::default());
        let moves = plan.moves(&jobs);
        assert_eq!(moves, vec![Move { job: JobId(1), from: GpuModel::K80, to: Some(GpuModel::V100), gain: 3.0 }]);
    }

    fn rounds_of_six_minutes() -> RoundConfig {
        RoundConfig { migration_s: 120.0, round_s: 360.0, ..RoundConfig::default() }
    }

    #[test]
    fn while_others_wait_the_short_job_takes_the_fast_model() {
        // two GPUs, three jobs: the long one waits. By speed-up the V100 would go to the medium
        // job (5x) and the short one would run 4x slower on the K80; by the round's rate the
        // short job finishes on the V100 first and the medium one takes it after.
        let short = job(1, 1, 1.0, 0.25, 300.0);
        let medium = job(2, 1, 1.0, 0.2, 5_000.0);
        let long = job(3, 1, 1.0, 0.5, 50_000.0);
        let plan = plan_round(&[short, medium, long], &fleet(1, 1), &rounds_of_six_minutes());
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::V100), "the short job on the fast model");
        assert_eq!(plan.model_of(JobId(2)), Some(GpuModel::K80));
        assert_eq!(plan.model_of(JobId(3)), None, "the long job waits");
    }

    #[test]
    fn with_room_for_every_job_the_fast_model_goes_to_the_job_that_would_lose_most_without_it() {
        // job 1 gains 2x from the V100 over 5,000 s (loses 5,000 s on the K80); job 2 gains 10x
        // but over 100 s (loses 900 s): the V100 goes to job 1
        let jobs = [job(1, 1, 1.0, 0.5, 5_000.0), job(2, 1, 1.0, 0.1, 100.0)];
        let plan = plan_round(&jobs, &fleet(1, 1), &rounds_of_six_minutes());
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::V100));
        assert_eq!(plan.model_of(JobId(2)), Some(GpuModel::K80));
    }

    #[test]
    fn a_job_rotates_to_the_fast_model_when_it_frees_and_stays_when_a_move_does_not_pay() {
        // the V100 is free again: the job on the K80 moves (it saves far more than 120 s) ...
        let mut running = job(1, 1, 1.0, 0.2, 4_000.0);
        running.current = Some(GpuModel::K80);
        let plan = plan_round(std::slice::from_ref(&running), &fleet(1, 1), &rounds_of_six_minutes());
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::V100));
        // ... but not for a gain smaller than the move costs
        running.speeds = vec![(GpuModel::V100, 1.0), (GpuModel::K80, 0.95)];
        running.remaining_s = Some(1_000.0);
        let plan = plan_round(&[running], &fleet(1, 1), &rounds_of_six_minutes());
        assert_eq!(plan.model_of(JobId(1)), Some(GpuModel::K80), "saving ~53 s does not pay a 120-s move");
    }

    fn gpu_option(models: &[GpuModel]) -> ResourceOption {
        ResourceOption {
            accelerators: Some(cumulo_types::AcceleratorDemand::new(
                cumulo_types::GpuSelector::Models(models.to_vec()),
                cumulo_types::MilliGpu(1000),
            )),
            ..ResourceOption::default()
        }
    }

    #[test]
    fn a_moved_job_is_narrowed_to_its_new_model_and_waiting_work_prefers_it() {
        use GpuModel::{A100, K80, V100};
        let options = vec![gpu_option(&[K80]), gpu_option(&[V100, K80]), gpu_option(&[A100])];
        assert_eq!(
            options_on_model(&options, V100),
            Some(OnModel { options: vec![gpu_option(&[V100])], origins: vec![1] }),
            "only V100, only where allowed"
        );
        assert_eq!(options_on_model(&options, GpuModel::H100), None, "no option takes an H100: left as it is");
        let mut preferred = options.clone();
        assert_eq!(prefer_model(&mut preferred, A100), Some(2));
        assert_eq!(preferred, vec![gpu_option(&[A100]), gpu_option(&[K80]), gpu_option(&[V100, K80])]);
        assert_eq!(preferred_origins(2, 3), vec![2, 0, 1]);
        assert_eq!(prefer_model(&mut preferred, GpuModel::H100), None);
    }

    #[test]
    fn a_live_jobs_speeds_come_from_its_speedups_over_the_models_it_selects() {
        let options = [gpu_option(&[GpuModel::V100, GpuModel::K80])];
        let speedups = BTreeMap::from([(GpuModel::V100, Speed::from_f64(3.0).unwrap())]);
        let present = [GpuModel::K80, GpuModel::V100, GpuModel::A100];
        assert_eq!(speeds_of(&options, &speedups, &present), vec![(GpuModel::K80, 1.0), (GpuModel::V100, 3.0)]);
    }
}
