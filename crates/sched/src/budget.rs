//! The budget gate: which queued jobs a tenant's hard monthly budget holds back, before a pass.
//!
//! One rule, called by every decision path that knows budgets (the server's reconcile loop today;
//! `cumulo offers` and the simulator have no tenants' budgets). A job's estimated cost is its
//! cheapest feasible shape: over its resource options and the snapshot's pools that could hold
//! one of its nodes (GPU model and count, vCPUs, memory, `infra`, `deny`, spot, instance type),
//! the smallest price of one node-hour of that shape (the pool's node price times the largest
//! share of the node the shape takes, as placement prices it) times `num_nodes`, times the job's
//! `duration` when it gives one, else one hour. A tenant's jobs are taken by priority, then age;
//! each is admitted while the month's spend so far plus the estimates admitted in this pass plus
//! its own stays within the budget, else it is held with a reason naming the budget. A job with
//! no feasible pool passes (the scheduler says why it waits).

use std::collections::{BTreeMap, HashMap};

use cumulo_types::{JobId, Money, ResourceOption};

use crate::model::{Pool, QueuedJob, Timestamp};
use crate::narrow::{self, Narrowed, Narrowing, Unnarrowed};

/// Without a `duration`, a job is estimated at this many seconds.
pub const DEFAULT_ESTIMATE_SECONDS: u64 = 3600;

/// A tenant's hard monthly budget and what it has spent so far this month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendCap {
    pub tenant: String,
    pub budget: Money,
    /// Money spent this month so far (metered usage at the price paid).
    pub spent: Money,
}

/// A job the gate holds back, with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldJob {
    pub job: JobId,
    pub reason: String,
}

/// The queue the scheduler may place from, and the jobs held back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetGate {
    pub queue: Vec<QueuedJob>,
    pub held: Vec<HeldJob>,
}

/// The cheapest feasible cost of one queue entry (one replica) per hour, `None` when no pool
/// could hold one of its nodes.
pub fn hourly_estimate(pools: &[Pool], job: &QueuedJob) -> Option<Money> {
    hourly_estimate_on(pools, job, &job.resources)
}

/// [`hourly_estimate`] of `job` on `options` (its own, or what a narrowing left of them).
fn hourly_estimate_on(pools: &[Pool], job: &QueuedJob, options: &[ResourceOption]) -> Option<Money> {
    let mut best: Option<Money> = None;
    for option in options {
        let per_node = option.accelerators.as_ref().map_or(0, |d| u64::from(d.per_node.0));
        for pool in pools.iter().filter(|p| !p.nodes.is_empty()) {
            let nt = &pool.node_type;
            let model_ok = match (&option.accelerators, nt.gpu) {
                (Some(d), Some(m)) => nt.gpus > 0 && d.selector.accepts(m),
                (None, _) => true,
                _ => false,
            };
            let size_ok = per_node <= u64::from(nt.gpus) * 1000
                && u64::from(option.cpus_milli) <= u64::from(nt.vcpus) * 1000
                && option.memory_mib <= u64::from(nt.memory_gb) * 1024;
            let placeable = option.infra.as_ref().is_none_or(|i| pool.matches(i))
                && !job.constraints.deny.iter().any(|d| pool.matches(d))
                && option.use_spot == (pool.capacity == cumulo_types::CapacityKind::Spot)
                && option.instance_type.as_ref().is_none_or(|t| *t == nt.name);
            if !(model_ok && size_ok && placeable) {
                continue;
            }
            let price = pool.price_per_node_hour;
            let mut node = Money::ZERO;
            if nt.gpus > 0 {
                node = node.max(price.mul_div(per_node as i64, i64::from(nt.gpus) * 1000));
            }
            if nt.vcpus > 0 {
                node = node.max(price.mul_div(i64::from(option.cpus_milli), i64::from(nt.vcpus) * 1000));
            }
            if nt.memory_gb > 0 {
                node = node.max(price.mul_div(option.memory_mib as i64, i64::from(nt.memory_gb) * 1024));
            }
            let cost = node.saturating_mul(i64::from(job.num_nodes.max(1)));
            best = Some(best.map_or(cost, |b| b.min(cost)));
        }
    }
    best
}

/// A job's estimated cost: its hourly estimate for `duration_s` seconds, or one hour without one.
pub fn estimate(hourly: Money, duration_s: Option<u64>) -> Money {
    let seconds = duration_s.unwrap_or(DEFAULT_ESTIMATE_SECONDS);
    hourly.mul_div(seconds.min(i64::MAX as u64) as i64, 3600)
}

/// Splits `queue` into what may be placed and what the tenants' hard budgets hold back (see the
/// module doc). `durations` holds each job's `duration` in seconds, where it gives one.
pub fn gate(pools: &[Pool], queue: Vec<QueuedJob>, durations: &HashMap<JobId, u64>, caps: &[SpendCap]) -> BudgetGate {
    gate_narrowed(pools, queue, durations, caps, &NarrowingAt { narrowing: &Unnarrowed, now: 0 })
}

/// A pass's narrowing and its `now` (the scheduler's timestamp), as the budget gate estimates by.
pub struct NarrowingAt<'n> {
    pub narrowing: &'n dyn Narrowing,
    pub now: Timestamp,
}

/// [`gate`], estimating each job on its options as `at` narrows them; a job the narrowing leaves
/// nowhere passes (the scheduler says why it waits).
pub fn gate_narrowed(
    pools: &[Pool],
    queue: Vec<QueuedJob>,
    durations: &HashMap<JobId, u64>,
    caps: &[SpendCap],
    at: &NarrowingAt<'_>,
) -> BudgetGate {
    if caps.is_empty() {
        return BudgetGate { queue, held: Vec::new() };
    }
    let cap_of: HashMap<&str, &SpendCap> = caps.iter().map(|c| (c.tenant.as_str(), c)).collect();
    // Each capped job's estimate, over all its queued replicas.
    let mut jobs: BTreeMap<JobId, (Money, &QueuedJob)> = BTreeMap::new();
    for q in queue.iter().filter(|q| cap_of.contains_key(q.tenant.as_str())) {
        let narrowed = at.narrowing.narrow(&q.resources, narrow::waited_s(at.now, q.submitted_at));
        let hourly = match &narrowed {
            Narrowed::Untouched => hourly_estimate(pools, q),
            Narrowed::To { options, .. } => hourly_estimate_on(pools, q, options),
            Narrowed::Nowhere => None,
        };
        let Some(hourly) = hourly else { continue };
        let entry = jobs.entry(q.id).or_insert((Money::ZERO, q));
        entry.0 += estimate(hourly, durations.get(&q.id).copied());
    }
    let mut order: Vec<(JobId, Money, &QueuedJob)> = jobs.into_iter().map(|(id, (cost, q))| (id, cost, q)).collect();
    order.sort_by_key(|(id, _, q)| (std::cmp::Reverse(q.priority), q.submitted_at, *id));
    let mut admitted: HashMap<&str, Money> = HashMap::new();
    let mut held = Vec::new();
    for (id, cost, q) in order {
        let cap = cap_of[q.tenant.as_str()];
        let so_far = admitted.entry(cap.tenant.as_str()).or_default();
        if cap.spent + *so_far + cost <= cap.budget {
            *so_far += cost;
            continue;
        }
        let earlier = if *so_far > Money::ZERO {
            format!(", {} more admitted in this pass", so_far.usd())
        } else {
            String::new()
        };
        held.push(HeldJob {
            job: id,
            reason: format!(
                "budget: tenant {} would exceed its hard monthly budget of {} (spent {}{earlier}, this job ~{})",
                cap.tenant,
                cap.budget.usd(),
                cap.spent.usd(),
                cost.usd()
            ),
        });
    }
    let held_ids: std::collections::HashSet<JobId> = held.iter().map(|h| h.job).collect();
    let queue = queue.into_iter().filter(|q| !held_ids.contains(&q.id)).collect();
    BudgetGate { queue, held }
}
