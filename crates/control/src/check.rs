//! The leader's safety net: every plan is re-checked with `cumulo_sched::verify_plan` against the
//! snapshot it was made for before it is committed. A plan that fails is not applied whole: its
//! placements are re-admitted one by one, in the plan's order, while the plan with them still
//! verifies; the others are refused (logged, counted, and their jobs left pending with the
//! violation as reason). Preemptions of a failing plan are all dropped, so a placement that needed
//! a victim's room is refused too. A correct engine never gets here; this guards the fleet against
//! an engine bug over-committing nodes or breaking a gang.

use std::collections::{BTreeSet, HashMap};

use cumulo_sched::{Pending, PendingReason, Placement, Plan, QueuedJob, Snapshot, verify_plan};
use cumulo_types::JobId;

/// The most placements a failing plan is re-admitted one by one; past this the whole pass's
/// placements are refused (each re-check recounts the fleet, so re-admission is quadratic).
pub const MAX_READMITTED: usize = 256;

/// A placement the check refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub job: JobId,
    pub replica: u32,
    /// The rule the plan broke with this placement in it, as `verify_plan` words it.
    pub reason: String,
}

/// A plan that verifies, and what was taken out of it to get there.
#[derive(Clone, Debug)]
pub struct CheckedPlan {
    pub plan: Plan,
    pub refused: Vec<Refused>,
}

/// Checks `plan` against `snapshot` and `queue`; returns it unchanged when it verifies, else the
/// largest prefix-greedy subset of its placements that verifies (no preemptions), with the rest
/// refused.
pub fn check_plan(snapshot: &Snapshot, queue: &[QueuedJob], plan: Plan) -> CheckedPlan {
    let first = match verify_plan(snapshot, queue, &plan) {
        Ok(()) => return CheckedPlan { plan, refused: Vec::new() },
        Err(err) => err.to_string(),
    };
    let refuse_all = plan.placements.len() > MAX_READMITTED;
    let reasons: Reasons = plan.pending.iter().map(|p| ((p.job, p.replica), p.reason.clone())).collect();
    let mut kept: Vec<Placement> = Vec::new();
    let mut refused = Vec::new();
    let mut decided = BTreeSet::new();
    for placement in &plan.placements {
        let key = (placement.job, placement.replica);
        let reason = if refuse_all {
            Some(format!("{first} (a plan of {} placements is refused whole)", plan.placements.len()))
        } else if decided.contains(&key) {
            Some(format!("job {} replica {} was placed twice", placement.job, placement.replica))
        } else {
            kept.push(placement.clone());
            let candidate = subset(&plan, queue, &reasons, &kept);
            let verdict = verify_plan(snapshot, queue, &candidate).err().map(|e| e.to_string());
            if verdict.is_some() {
                kept.pop();
            }
            verdict
        };
        match reason {
            Some(reason) => refused.push(Refused { job: placement.job, replica: placement.replica, reason }),
            None => {
                decided.insert(key);
            }
        }
    }
    CheckedPlan { plan: subset(&plan, queue, &reasons, &kept), refused }
}

/// The plan's pending reason of each (job, replica) it left waiting.
type Reasons = HashMap<(JobId, u32), PendingReason>;

/// `plan` with only `placements` and no preemptions; every other queued replica is pending, with
/// the plan's reason when it had one.
fn subset(plan: &Plan, queue: &[QueuedJob], reasons: &Reasons, placements: &[Placement]) -> Plan {
    let placed: BTreeSet<(JobId, u32)> = placements.iter().map(|p| (p.job, p.replica)).collect();
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen = BTreeSet::new();
    for job in queue {
        let key = (job.id, job.replica);
        if placed.contains(&key) || !seen.insert(key) {
            continue;
        }
        let reason = reasons.get(&key).cloned().unwrap_or_else(|| PendingReason::InvalidRequest {
            detail: "its placement was refused by the leader's plan check".to_string(),
        });
        pending.push(Pending { job: job.id, replica: job.replica, reason });
    }
    Plan { at: plan.at, placements: placements.to_vec(), preemptions: Vec::new(), pending }
}
