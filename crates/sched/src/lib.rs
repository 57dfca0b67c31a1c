//! Cumulo's scheduling core: a pure function from a fleet snapshot and a queue to a plan.
//!
//! No I/O, no clock, no randomness: `now` comes in as an argument and every tie is broken by ids,
//! so the same input always gives the same plan. The live server and the simulator both call
//! [`schedule`]; nothing else in this crate is needed to use it.
//!
//! How a pass works: [`Scheduler::new`] turns each pool into free-capacity indexes (nodes bucketed
//! by free GPUs or vCPUs, each bucket a bitmap read from the highest node id down, with a bitmask
//! of non-empty buckets; NVLink domains and blocks bucketed by their count of fully free nodes;
//! partly used GPUs bucketed by free thousandths). Each job's request shape is interned with its
//! eligible (pool, option) pairs sorted by price per node-hour (an input on each pool), and kept
//! until a price or a node's schedulability changes. Jobs go in priority order, tenants interleaved by
//! weighted dominant share; a job takes the cheapest pool with room, best fit inside it (partly
//! used nodes, domains and blocks first, so whole NVL72 racks and blocks stay free for gangs),
//! else preempts lower-priority preemptible work, else waits with a [`PendingReason`].
//! Replicas of a job with a spread policy (`providers` or `regions`) are tallied per job in the
//! pass, counting those already running: once one provider (region) holds all of them, the next
//! goes only elsewhere (or waits with `spread_unsatisfiable`); after that each prefers the
//! cheapest pool outside the providers holding the most, falling back to any.
//! The first gang of the pass's order left waiting for capacity reserves the nodes it would get at
//! the earliest time `T` the expected ends of running work free them (EASY backfill, see
//! `engine/reserve.rs`); later jobs of the pass use those nodes only if their `duration_s` ends
//! by `T`, else they backfill elsewhere or wait with `held_for_reservation`.
//! A caller's [`Narrowing`] (a portfolio's contract clauses) narrows each job's options by its
//! wait, once per (shape, regime) while the queue is interned ([`schedule_narrowed`]).
//! [`verify_plan`] re-checks any plan from scratch, sharing no code with the indexes.
//!
//! The same [`Scheduler`] can live on: [`Scheduler::schedule`] commits its plan (placements run,
//! preempted work is gone) and the caller reports the rest ([`Scheduler::release`],
//! [`Scheduler::set_schedulable`], [`Scheduler::set_price`]). The simulator keeps one for a whole
//! run; [`schedule_with`] (the server's call) builds one per pass. Both decide the same on the
//! same state: no decision depends on the order in which changes came (index buckets ordered by
//! id, victims by value), and [`Scheduler::differences`] compares a kept scheduler with a fresh
//! build, as the tests do after random passes, releases, cordons and price changes.

pub mod budget;
mod engine;
mod explain;
mod fragment;
pub mod hetero;
mod index;
mod model;
pub mod narrow;
pub mod needs;
mod pool;
mod verify;

pub use engine::{Progress, Scheduler};
pub use model::{
    Backfill, Config, GpuAlloc, NodeAlloc, NodeState, Pending, PendingReason, Placement, PlacementRule, Plan, Pool,
    PoolId, Preemption, QueueOrder, QueuedJob, Quota, QuotaResource, RunningAlloc, Snapshot, TargetClass, TenantPolicy,
    Timestamp,
};
pub use narrow::{Narrowed, Narrowing};
pub use verify::verify_plan;

/// A snapshot that cannot be scheduled on: it contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("duplicate pool id {0}: pool ids must be unique in a snapshot")]
    DuplicatePool(PoolId),
    #[error("pool {pool}: node type `{node_type}` has {gpus} GPUs per node, expected at most 64")]
    TooManyGpus { pool: PoolId, node_type: String, gpus: u32 },
    #[error("running job {job}: pool {pool} is not in the snapshot")]
    UnknownPool { job: cumulo_types::JobId, pool: PoolId },
    #[error("running job {job}: node {node} is out of range for pool {pool} ({nodes} nodes)")]
    NodeOutOfRange { job: cumulo_types::JobId, pool: PoolId, node: u32, nodes: usize },
    #[error("running job {job}: pool {pool} node {node} is over-committed on {resource}")]
    OverCommitted { job: cumulo_types::JobId, pool: PoolId, node: u32, resource: &'static str },
    #[error("pool {0} is not in the scheduler's fleet")]
    NoSuchPool(PoolId),
    #[error("node {node} is out of range for pool {pool} ({nodes} nodes)")]
    NoSuchNode { pool: PoolId, node: u32, nodes: usize },
    #[error("plan violates {rule}: {detail}")]
    PlanViolation { rule: &'static str, detail: String },
}

/// Decides placements, preemptions and pending reasons for `queue` on `snapshot` at `now`, with
/// the default [`Config`].
pub fn schedule(snapshot: &Snapshot, queue: &[QueuedJob], now: Timestamp) -> Result<Plan, Error> {
    schedule_with(snapshot, queue, now, &Config::default())
}

/// [`schedule`] with explicit settings.
pub fn schedule_with(snapshot: &Snapshot, queue: &[QueuedJob], now: Timestamp, config: &Config) -> Result<Plan, Error> {
    Ok(Scheduler::new(snapshot, *config)?.schedule_once(queue, now))
}

/// [`schedule_with`], with each job's options narrowed by `narrowing` for its wait (a
/// portfolio's clauses; see [`narrow`]): the server's call when it holds contracts.
pub fn schedule_narrowed(
    snapshot: &Snapshot,
    queue: &[QueuedJob],
    now: Timestamp,
    config: &Config,
    narrowing: &dyn Narrowing,
) -> Result<Plan, Error> {
    Ok(Scheduler::new(snapshot, *config)?.schedule_once_narrowed(queue, now, narrowing))
}
