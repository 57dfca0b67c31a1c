//! When a pass plans again, and when it may keep the last plan's decision (issue 12, finding 10).
//!
//! A plan is a pure function of what the pass reads: each cluster's capacity as offered, the
//! active attempts, the tenants, the hard budgets with this month's spend, the pending window (the
//! `queue_limit` first pending jobs, by key: a job's spec, priority and submit time never change)
//! and, for some inputs, the clock. Over a backlog that waits on a full fleet, pass after pass reads
//! the same inputs and decides the same thing: nothing placed, the same reasons. So a pass skips
//! its plan when, and only when, all of these hold for the last pass that planned:
//!
//! 1. **It changed nothing that feeds back.** It committed no launch, preempted nothing, refused
//!    nothing at the plan check, ended no job whose dependency failed, and no launch of it was
//!    skipped at commit. (Pending reasons it wrote are not inputs: a repeated plan writes the same
//!    ones, which the store leaves alone.)
//! 2. **It held no job behind another** (`after`): whether such a job may run depends on the state
//!    of the job it waits for, which may be pending outside the window and cancelled there.
//! 3. **Its decision did not read the clock.** A portfolio reads it (live prices, ramps, contract
//!    terms, first-refusal waits that expire), and so does a running allocation with a known end
//!    (reservations and backfill compare ends with now), and so do heterogeneity rounds while a job
//!    states speed-ups or is moving. The rest of the clock's uses are inputs
//!    below: a cluster counts as down once `lost_after` has passed (its offered capacity becomes
//!    none), and the budget month's spend is read per month.
//! 4. **Its inputs equal the ones read now** ([`PlanInputs`], compared whole).
//!
//! Everything else a plan reads is fixed for the controller's life (clusters, their drivers'
//! capabilities, the scheduler's settings, the fleet file's tenants and budgets). A pass that skips
//! its plan still observes and dispatches, and still reads the inputs: the saving is reading and
//! parsing the window's specs and scheduling them. New jobs of the same priority as a backlog's
//! land behind the window and change nothing in it.
//!
//! `tests/replan.rs` changes each input in turn and checks the next pass plans again, and that a
//! fresh controller (which never skips) decides nothing new wherever one was skipped.

use cumulo_driver::Capacity;
use cumulo_sched::TenantPolicy;
use cumulo_sched::budget::SpendCap;
use cumulo_store::{ActiveAttempt, PendingKey};

/// What a plan is decided from that can change while the controller runs, as one pass read it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlanInputs {
    /// Each cluster's capacity as the plan offers it: none for one down for `lost_after`.
    pub capacities: Vec<Option<Capacity>>,
    /// Active attempts with their state, placement, spec and cancel and preempt requests.
    pub active: Vec<ActiveAttempt>,
    /// The fleet file's tenants and the stored ones.
    pub tenants: Vec<TenantPolicy>,
    /// Hard budgets with what each tenant spent this month.
    pub caps: Vec<SpendCap>,
    /// The pending window, in queue order.
    pub window: Vec<PendingKey>,
}

/// What a full plan did, as far as rules 1 to 3 ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PlanOutcome {
    pub launches: usize,
    pub preemptions: usize,
    pub refused: usize,
    pub doomed: usize,
    pub skipped_at_commit: usize,
    pub held_behind_others: usize,
    /// The plan read a portfolio.
    pub portfolio: bool,
    /// Running allocations with a known end in the snapshot.
    pub running_with_end: usize,
    /// Heterogeneity rounds are on and some job states speed-ups or is moving: rounds fall due by
    /// the clock.
    pub rounds: bool,
}

/// Why a plan with this outcome must not be kept for later passes; `None`: it may be (rules 1-3).
pub(crate) fn why_plan_again(outcome: &PlanOutcome) -> Option<&'static str> {
    let reasons = [
        (outcome.launches > 0, "it placed jobs"),
        (outcome.preemptions > 0, "it preempted attempts"),
        (outcome.refused > 0, "the plan check refused placements"),
        (outcome.doomed > 0, "it ended jobs whose dependency failed"),
        (outcome.skipped_at_commit > 0, "launches were skipped at commit"),
        (outcome.held_behind_others > 0, "jobs wait for others, which may change outside the window"),
        (outcome.portfolio, "a portfolio's prices, ramps and clauses move with the clock"),
        (outcome.running_with_end > 0, "running work with a known end makes reservations move with the clock"),
        (outcome.rounds, "heterogeneity rounds fall due with the clock"),
    ];
    reasons.into_iter().find_map(|(holds, reason)| holds.then_some(reason))
}

/// The last full plan, kept while it may stand for later passes.
#[derive(Clone, Debug)]
pub(crate) struct Settled {
    pub inputs: PlanInputs,
    /// Jobs it left pending (reported again by the passes that keep it).
    pub pending: usize,
}

impl Settled {
    /// The kept plan's pending count when `inputs` are the ones it was decided from (rule 4).
    pub fn pending_if_unchanged(&self, inputs: &PlanInputs) -> Option<usize> {
        (self.inputs == *inputs).then_some(self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_quiet_clock_free_plan_may_stand() {
        assert_eq!(why_plan_again(&PlanOutcome::default()), None);
        let each: [fn(&mut PlanOutcome); 8] = [
            |o| o.launches = 1,
            |o| o.preemptions = 1,
            |o| o.refused = 1,
            |o| o.doomed = 1,
            |o| o.skipped_at_commit = 1,
            |o| o.held_behind_others = 1,
            |o| o.portfolio = true,
            |o| o.running_with_end = 1,
        ];
        for (i, set) in each.iter().enumerate() {
            let mut outcome = PlanOutcome::default();
            set(&mut outcome);
            assert!(why_plan_again(&outcome).is_some(), "change {i} must make the next pass plan: {outcome:?}");
        }
    }
}
