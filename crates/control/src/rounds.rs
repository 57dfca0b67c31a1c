//! Heterogeneity rounds in the live loop: at every round boundary ([`Rounds::every`]) the pass
//! asks `cumulo_sched::hetero::plan_round` (the simulator's rule, unchanged) which GPU model each
//! GPU job should hold, from the speeds its job file states (`speedups: {V100: 3.0, K80: 1.0}`).
//!
//! What the live loop does with the plan:
//! - A running attempt whose job may move (preemptible, or with a `checkpoint`) and whose model
//!   the plan changes is preempted: the plan's commit marks it (its `attempt_preempting` event says
//!   from which model to which, the gain and the stated migration cost) and its driver stops it
//!   (the local driver: SIGTERM to every rank, SIGKILL after the grace; Slurm: `scancel`; Ray: the
//!   job's stop). A move is applied only when the new model has room for it now (free GPUs, or
//!   GPUs that other moves of the round vacate), so a job never leaves its GPUs to wait for
//!   others that are held.
//! - Until it is placed again its queue entry asks only for the new model
//!   (`hetero::options_on_model`); the next round re-plans a moved job still waiting.
//! - Waiting work tries its assigned model first (`hetero::prefer_model`) in the round's pass.
//! - A job the plan tells to wait keeps running (the simulator stops it): live rounds do not
//!   time-slice.
//!
//! What a job "moving" to means lives in memory: after a restart a moved job still waiting is
//! placed by the ordinary rule, and the next round may move it again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cumulo_sched::hetero::{self, ModelCapacity, Move, RoundConfig, RoundJob};
use cumulo_sched::{Pool, QueuedJob};
use cumulo_store::{ActiveAttempt, AttemptState, PreemptionReason};
use cumulo_types::{AttemptId, GpuModel, JobId, Speed};

use crate::fleet::StoredPlacement;

/// Settings of the live rounds (the fleet file's `rounds:`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rounds {
    /// Time between round boundaries; zero turns rounds off. A round is held only while some
    /// queued or running job states `speedups`.
    pub every: Duration,
    /// A running job moves only to a model at least this much faster for it.
    pub min_gain: f32,
    /// The stated cost of one move in seconds: the job's checkpoint after SIGTERM (within its
    /// driver's grace) and its restart. Told in the move's event; `min_gain` decides.
    pub migration_s: u64,
}

impl Default for Rounds {
    fn default() -> Self {
        Rounds { every: Duration::from_secs(300), min_gain: RoundConfig::default().min_gain, migration_s: 60 }
    }
}

/// A job a round moved: its attempt on `from` is stopped, and it is placed again on `to` only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Moving {
    pub attempt: AttemptId,
    pub from: GpuModel,
    pub to: GpuModel,
}

/// What the round part of one pass decided and did to the queue.
#[derive(Debug, Default)]
pub(crate) struct RoundPass {
    /// Whether a round was held in this pass.
    pub held: bool,
    /// Attempts to stop for a move, with why.
    pub stops: Vec<PreemptionReason>,
    /// Queue entries (job, replica) whose options were narrowed or reordered: for each option
    /// now, its index in the job's own list.
    pub origins: HashMap<(JobId, u32), Vec<u32>>,
}

impl RoundPass {
    /// The job's own index of the option a placement used (`option` indexes its queued options).
    pub fn original_option(&self, job: JobId, replica: u32, option: u32) -> u32 {
        self.origins.get(&(job, replica)).and_then(|o| o.get(option as usize).copied()).unwrap_or(option)
    }
}

/// What one pass gives the rounds.
pub(crate) struct RoundInput<'a> {
    pub rounds: &'a Rounds,
    /// Whether a round boundary has come (the caller keeps the clock).
    pub due: bool,
    pub pools: &'a [Pool],
    pub active: &'a [ActiveAttempt],
    /// The stated speed-ups of queued jobs that have some.
    pub speedups: &'a HashMap<JobId, BTreeMap<GpuModel, Speed>>,
    /// Queued jobs with several replicas: left out of rounds (one model per job).
    pub replicated: &'a HashSet<JobId>,
    pub now: DateTime<Utc>,
}

/// Whether any queued or running job states speed-ups (no round is worth holding otherwise).
pub(crate) fn anyone_states_speedups(input: &RoundInput<'_>) -> bool {
    !input.speedups.is_empty() || input.active.iter().any(|a| !a.spec.speedups.is_empty())
}

/// The round part of a pass: forgets moves that are done, holds a round when one is due, and
/// narrows or reorders the queue's options.
pub(crate) fn round_pass(
    input: &RoundInput<'_>,
    moving: &mut HashMap<JobId, Moving>,
    queue: &mut [QueuedJob],
) -> RoundPass {
    if !moving.is_empty() {
        let queued: HashSet<JobId> = queue.iter().map(|q| q.id).collect();
        moving.retain(|job, m| {
            queued.contains(job) || input.active.iter().any(|a| a.attempt.id == m.attempt && a.preempt_requested)
        });
    }
    let mut pass = RoundPass::default();
    let mut assigned: HashMap<JobId, GpuModel> = HashMap::new();
    if input.due && anyone_states_speedups(input) {
        pass.held = true;
        let RoundJobs { jobs, capacity, attempts } = round_jobs(input, queue);
        let config = RoundConfig {
            min_gain: input.rounds.min_gain,
            migration_s: input.rounds.migration_s as f64,
            round_s: input.rounds.every.as_secs_f64(),
        };
        let plan = hetero::plan_round(&jobs, &capacity, &config);
        for job in jobs.iter().filter(|j| j.current.is_none()) {
            match plan.model_of(job.id) {
                Some(model) => {
                    assigned.insert(job.id, model);
                    if let Some(m) = moving.get_mut(&job.id) {
                        m.to = model;
                    }
                }
                None => {
                    moving.remove(&job.id);
                }
            }
        }
        for moved in applicable_moves(&plan.moves(&jobs), &jobs, input) {
            let Some(to) = moved.to else { continue };
            let attempt = attempts[&moved.job];
            moving.insert(moved.job, Moving { attempt, from: moved.from, to });
            pass.stops.push(PreemptionReason { attempt, reason: move_reason(&moved, to, input.rounds) });
        }
    }
    if moving.is_empty() && assigned.is_empty() {
        return pass;
    }
    for q in queue.iter_mut() {
        if let Some(m) = moving.get(&q.id) {
            if let Some(on) = hetero::options_on_model(&q.resources, m.to) {
                q.resources = on.options.into();
                pass.origins.insert((q.id, q.replica), on.origins);
            }
        } else if let Some(model) = assigned.get(&q.id)
            && let Some(k) = hetero::prefer_model(q.options_mut(), *model)
        {
            q.ordered = true;
            pass.origins.insert((q.id, q.replica), hetero::preferred_origins(k, q.resources.len()));
        }
    }
    pass
}

/// The event text of a move (after "attempt 3.1 ").
fn move_reason(moved: &Move, to: GpuModel, rounds: &Rounds) -> String {
    let why = if moved.gain >= rounds.min_gain {
        format!("{:.2}x faster there (a move needs {:.2}x)", moved.gain, rounds.min_gain)
    } else {
        format!("{:.2}x as fast there, leaving {} to a job that gains more from it", moved.gain, moved.from)
    };
    format!(
        "moves from {} to {to} at a heterogeneity round: {why}; stated migration cost {} s (a checkpoint after \
         SIGTERM, within the driver's grace before SIGKILL, and a restart)",
        moved.from, rounds.migration_s
    )
}

/// The GPUs an attempt holds.
#[derive(Clone, Copy)]
struct Held {
    model: GpuModel,
    gpus: u32,
}

/// The GPUs an attempt holds and their model, from its stored placement (`None`: no GPU).
fn held(attempt: &ActiveAttempt) -> Option<Held> {
    let placement: StoredPlacement = serde_json::from_value(attempt.attempt.placement.clone()).ok()?;
    let model = placement.offer.as_ref().and_then(|o| o.gpu)?;
    let gpus: usize = placement.nodes.iter().map(|n| n.gpus.len()).sum();
    (gpus > 0).then_some(Held { model, gpus: gpus as u32 })
}

/// What a round plans with.
struct RoundJobs {
    /// Running GPU attempts, then queued GPU jobs.
    jobs: Vec<RoundJob>,
    /// GPUs per model the jobs may share (less what work left out of rounds holds).
    capacity: Vec<ModelCapacity>,
    /// The attempt of each running job.
    attempts: HashMap<JobId, AttemptId>,
}

fn round_jobs(input: &RoundInput<'_>, queue: &[QueuedJob]) -> RoundJobs {
    let mut capacity = hetero::capacity_of(input.pools);
    let present: Vec<GpuModel> = capacity.iter().map(|c| c.model).collect();
    let mut jobs = Vec::new();
    let mut attempts = HashMap::new();
    for a in input.active.iter().filter(|a| !a.cancel_requested && !a.preempt_requested) {
        let Some(Held { model, gpus }) = held(a) else { continue };
        let speeds = hetero::speeds_of(&a.spec.resources, &a.spec.speedups, &present);
        if a.spec.replicas > 1 || !speeds.iter().any(|(m, _)| *m == model) {
            if let Some(c) = capacity.iter_mut().find(|c| c.model == model) {
                c.gpus = c.gpus.saturating_sub(gpus);
            }
            continue;
        }
        let elapsed_s = (input.now - a.attempt.created_at).num_seconds().max(0) as u64;
        attempts.insert(a.attempt.id.job, a.attempt.id);
        jobs.push(RoundJob {
            id: a.attempt.id.job,
            gpus,
            speeds,
            current: Some(model),
            movable: a.attempt.state == AttemptState::Running && (a.spec.preemptible || a.spec.checkpoint.is_some()),
            attained_gpu_s: elapsed_s as f64 * f64::from(gpus),
            remaining_s: a.spec.duration_s.map(|d| d.saturating_sub(elapsed_s) as f64),
            arrival_s: a.attempt.created_at.timestamp().max(0) as u64,
        });
    }
    let none = BTreeMap::new();
    for q in queue.iter().filter(|q| q.replica == 0 && !input.replicated.contains(&q.id)) {
        let Some(per_node) = q.resources.iter().find_map(|o| o.accelerators.as_ref().map(|a| a.per_node)) else {
            continue;
        };
        let speedups = input.speedups.get(&q.id).unwrap_or(&none);
        jobs.push(RoundJob {
            id: q.id,
            gpus: per_node.0.div_ceil(1000) * q.num_nodes,
            speeds: hetero::speeds_of(&q.resources, speedups, &present),
            current: None,
            movable: true,
            attained_gpu_s: 0.0,
            remaining_s: q.duration_s.map(|d| d as f64),
            arrival_s: q.submitted_at,
        });
    }
    RoundJobs { jobs, capacity, attempts }
}

/// The moves to another model whose new model has room now: GPUs free on it, or vacated by
/// another move applied this round.
fn applicable_moves(moves: &[Move], jobs: &[RoundJob], input: &RoundInput<'_>) -> Vec<Move> {
    let mut room: HashMap<GpuModel, i64> =
        hetero::capacity_of(input.pools).into_iter().map(|c| (c.model, i64::from(c.gpus))).collect();
    // An attempt being stopped still holds its GPUs until its grace ends.
    for h in input.active.iter().filter_map(held) {
        *room.entry(h.model).or_default() -= i64::from(h.gpus);
    }
    let gpus_of = |job: JobId| jobs.iter().find(|j| j.id == job).map_or(0, |j| i64::from(j.gpus));
    let mut waiting: Vec<Move> = moves.iter().filter(|m| m.to.is_some()).copied().collect();
    let mut applied = Vec::new();
    loop {
        let before = waiting.len();
        waiting.retain(|m| {
            let to = m.to.expect("only moves to a model wait here");
            let need = gpus_of(m.job);
            if room.get(&to).copied().unwrap_or(0) < need {
                return true;
            }
            *room.entry(to).or_default() -= need;
            *room.entry(m.from).or_default() += need;
            applied.push(*m);
            false
        });
        if waiting.len() == before {
            return applied;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cumulo_sched::{NodeState, PoolId};
    use cumulo_store::AttemptRecord;
    use cumulo_types::{
        AcceleratorDemand, CapacityKind, GpuSelector, JobSpec, MilliGpu, Money, NodeType, ResourceOption,
    };

    fn pool(id: u32, model: GpuModel, nodes: u32) -> Pool {
        Pool {
            id: PoolId(id),
            name: format!("{model}-pool"),
            provider: "local".into(),
            region: "r".into(),
            zone: "z".into(),
            capacity: CapacityKind::OnDemand,
            node_type: NodeType {
                name: format!("{model}x1"),
                gpu: Some(model),
                gpus: 1,
                vcpus: 8,
                memory_gb: 64,
                nvlink_domain_nodes: 1,
            },
            price_per_node_hour: Money::from_dollars(1),
            nodes: (0..nodes)
                .map(|n| NodeState { name: format!("n{n}"), block: 0, nvlink_domain: n, schedulable: true })
                .collect(),
        }
    }

    fn spec(movable: bool, speedups: &[(GpuModel, f64)]) -> JobSpec {
        let mut spec = JobSpec::new("j", "t");
        spec.kind = cumulo_types::JobKind::Training;
        spec.preemptible = movable;
        spec.resources = vec![ResourceOption {
            accelerators: Some(AcceleratorDemand::new(
                GpuSelector::Models(vec![GpuModel::V100, GpuModel::K80]),
                MilliGpu(1000),
            )),
            ..ResourceOption::default()
        }];
        spec.speedups = speedups.iter().map(|(m, s)| (*m, Speed::from_f64(*s).unwrap())).collect();
        spec
    }

    /// A running attempt of job `job` holding one GPU of `model`.
    fn running(job: u64, model: GpuModel, spec: JobSpec) -> ActiveAttempt {
        let at = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let placement = serde_json::json!({
            "cluster": "c", "pool": "p", "option": 0, "price_per_hour": 0,
            "nodes": [{"node": "n0", "gpus": [0], "cpus_milli": 1000, "memory_mib": 0}],
            "offer": {"provider": "local", "region": "r", "capacity": "on-demand", "node_type": "x",
                "gpu": model.name(), "gpus": 1, "price_per_node_hour": 0}
        });
        ActiveAttempt {
            attempt: AttemptRecord {
                id: AttemptId { job: JobId(job), attempt: 1 },
                replica: 0,
                state: AttemptState::Running,
                placement,
                message: None,
                created_at: at,
                updated_at: at,
            },
            spec,
            cancel_requested: false,
            preempt_requested: false,
        }
    }

    /// Holds a round; asserts which jobs move (in order) and returns their stops.
    fn check(pools: &[Pool], active: &[ActiveAttempt], expect_moves: &[u64]) -> Vec<PreemptionReason> {
        let rounds = Rounds::default();
        let none = HashMap::new();
        let input = RoundInput {
            rounds: &rounds,
            due: true,
            pools,
            active,
            speedups: &none,
            replicated: &HashSet::new(),
            now: DateTime::from_timestamp(1_780_000_600, 0).unwrap(),
        };
        let mut moving = HashMap::new();
        let pass = round_pass(&input, &mut moving, &mut []);
        assert!(pass.held);
        let moved: Vec<u64> = pass.stops.iter().map(|s| s.attempt.job.0).collect();
        assert_eq!(moved, expect_moves);
        for stop in &pass.stops {
            assert_eq!(moving[&stop.attempt.job].attempt, stop.attempt, "a moving job remembers its attempt");
        }
        pass.stops
    }

    #[test]
    fn a_job_moves_only_where_the_faster_model_has_room_and_only_if_it_may() {
        let fast = [(GpuModel::V100, 3.0), (GpuModel::K80, 1.0)];
        let pools = [pool(0, GpuModel::K80, 2), pool(1, GpuModel::V100, 1)];
        // the V100 is free: the movable job goes
        let stops = check(&pools, &[running(1, GpuModel::K80, spec(true, &fast))], &[1]);
        assert!(stops[0].reason.starts_with("moves from K80 to V100 at a heterogeneity round: 3.00x faster there"));
        // the same job that may not move (not preemptible, no checkpoint) stays
        check(&pools, &[running(1, GpuModel::K80, spec(false, &fast))], &[]);
        // the V100 is held by work that may not move: nobody leaves a K80 to wait for it
        let pinned = running(2, GpuModel::V100, spec(false, &[]));
        check(&pools, &[running(1, GpuModel::K80, spec(true, &fast)), pinned], &[]);
        // the V100 is held by a movable job gaining nothing there: the two swap (job 2 leaves for a
        // free K80 first, which makes room for job 1)
        let indifferent = running(2, GpuModel::V100, spec(true, &[]));
        let rounds = Rounds::default();
        let reasons = check(&pools, &[running(1, GpuModel::K80, spec(true, &fast)), indifferent], &[2, 1]);
        assert_eq!(
            reasons[0].reason,
            "moves from V100 to K80 at a heterogeneity round: 1.00x as fast there, leaving V100 to a job that gains \
             more from it; stated migration cost 60 s (a checkpoint after SIGTERM, within the driver's grace before \
             SIGKILL, and a restart)"
        );
        assert_eq!(
            reasons[1].reason,
            move_reason(
                &Move { job: JobId(1), from: GpuModel::K80, to: Some(GpuModel::V100), gain: 3.0 },
                GpuModel::V100,
                &rounds
            )
        );
    }
}
