//! Step 2 of a pass: discover capacity, schedule the pending queue on it, and commit the plan.
//!
//! [`Controller::plan`] runs its steps in order, each with a named result: the inputs read now
//! ([`replan::PlanInputs`], which may show the last plan still holds), the decision
//! ([`Decision`]: pricing, clauses, budgets, the scheduler and the plan check), and the commit
//! assembled from it (launches, victims, one pending reason per waiting job).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use cumulo_driver::Capacity;
use cumulo_portfolio::clauses::{ActiveClauses, ClauseNotes};
use cumulo_sched::budget::{HeldJob, NarrowingAt};
use cumulo_sched::needs::{self, Site};
use cumulo_sched::{PendingReason, Plan, QueuedJob, RunningAlloc, Snapshot};
use cumulo_store::{ActiveAttempt, NewAttempt, PlanCommit};
use cumulo_types::{AttemptId, JobId, Money};

use crate::check::Refused;
use crate::{
    ClusterInfo, Controller, Error, Fleet, Queue, Report, commit_in_chunks, contracts, elapsed, links, placement_of,
    replan, rounds,
};

/// What one pass decided, and what the commit needs to turn it into attempts and reasons.
struct Decision {
    infos: Vec<ClusterInfo>,
    fleet: Fleet,
    snapshot: Snapshot,
    /// The attempt running each job replica (to stop the scheduler's victims).
    attempt_of_replica: HashMap<(JobId, u32), AttemptId>,
    /// The queue's side tables (its entries went to the scheduler).
    queue: Queue,
    round: rounds::RoundPass,
    sites: Vec<Site>,
    /// Jobs kept off clusters reserved for other tenants, with those clusters' names.
    closed: HashMap<JobId, Vec<String>>,
    over_budget: Vec<HeldJob>,
    /// The words of the contract clause behind each waiting (job, replica) a clause held back or
    /// kept from some providers, with its wait.
    clause_words: HashMap<(JobId, u32), String>,
    plan: Plan,
    /// Placements the plan check refused.
    refused: Vec<Refused>,
    /// Job groups that wait this pass, with why (a group is placed whole or not at all).
    blocked: BTreeMap<String, String>,
    /// How long the scheduler took.
    decision_micros: u64,
}

impl Decision {
    /// Why `job` is held back with its group, when a member of the group waits.
    fn held_back(&self, job: &JobId) -> Option<&String> {
        self.queue.group_of.get(job).and_then(|group| self.blocked.get(group))
    }

    /// The attempts to stop: the scheduler's victims (unless the job they make room for is held
    /// back with its group) and the round's moves, each once.
    fn victims(&self) -> Vec<AttemptId> {
        let mut victims = Vec::new();
        let preempted = self
            .plan
            .preemptions
            .iter()
            .filter(|p| self.held_back(&p.for_job).is_none())
            .filter_map(|p| self.attempt_of_replica.get(&(p.victim, p.victim_replica)).copied());
        for attempt in preempted.chain(self.round.stops.iter().map(|stop| stop.attempt)) {
            if !victims.contains(&attempt) {
                victims.push(attempt);
            }
        }
        victims
    }
}

impl Controller {
    /// Step 2: discover capacity, schedule the pending queue on it, and commit the plan. Returns
    /// after the commit: the new attempts are durable (state `planned`) and not yet dispatched.
    pub async fn plan(&self, report: &mut Report) -> Result<(), Error> {
        let now = self.now();
        let settled = self.lock().settled.take();
        let inputs = self.plan_inputs(now).await?;
        if let Some(pending) = settled.as_ref().and_then(|s| s.pending_if_unchanged(&inputs)) {
            report.plan_skipped = true;
            report.pending = pending;
            self.lock().settled = settled;
            return Ok(());
        }
        let decision = self.decide(&inputs, now).await?;
        report.decision_micros = decision.decision_micros;
        report.round = decision.round.held;
        report.refused = decision.refused.len();
        report.moved = decision.round.stops.iter().map(|s| s.attempt).collect();

        let mut commit = PlanCommit::default();
        for refused in &decision.refused {
            tracing::error!(job = %refused.job, replica = refused.replica, reason = %refused.reason,
                "the plan check refused a placement; the job stays pending");
            let reason = format!("placement refused by the plan check: {}", refused.reason);
            commit.pending_reasons.push((refused.job, reason));
        }
        commit.pending_reasons.extend(decision.queue.held.iter().cloned());
        self.add_launches(&decision, &mut commit);
        let victims = decision.victims();
        commit.preemptions = victims.clone();
        commit.preemption_reasons = decision.round.stops.clone();
        report.pending = self.add_waiting_reasons(&decision, &mut commit);

        let applied = commit_in_chunks(self.options.store.as_ref(), commit).await?;
        report.planned = applied.attempts;
        // Jobs that can never run (a job they wait for failed or was cancelled) end here.
        for (job, reason) in &decision.queue.doomed {
            self.options.store.cancel_pending(*job, reason).await?;
        }
        // The plan is durable; stop the victims now. A crash before this is harmless: the victims
        // are stored as preempt-requested, and `observe` stops them on every pass until their
        // cluster confirms.
        self.stop_victims(&inputs.active, &victims).await;
        let outcome = replan::PlanOutcome {
            launches: report.planned.len(),
            preemptions: victims.len(),
            refused: report.refused,
            doomed: decision.queue.doomed.len(),
            skipped_at_commit: applied.skipped.len(),
            held_behind_others: decision.queue.held.len(),
            portfolio: self.options.portfolio.is_some(),
            running_with_end: decision.snapshot.running.iter().filter(|a| a.expected_end.is_some()).count(),
            rounds: self.rounds_on_the_clock(&inputs.active, &decision.queue.speedups),
        };
        report.preempted = victims;
        if replan::why_plan_again(&outcome).is_none() {
            self.lock().settled = Some(replan::Settled { inputs, pending: report.pending });
        }
        Ok(())
    }

    /// What a plan decides from, read now: if it equals the last settled plan's, that plan holds.
    async fn plan_inputs(&self, now: DateTime<Utc>) -> Result<replan::PlanInputs, Error> {
        let capacities = self.offered_capacities(now).await;
        Ok(replan::PlanInputs {
            active: self.options.store.active_attempts().await?,
            tenants: self.tenant_policies().await,
            caps: self.spend_caps(now).await?,
            window: self.options.store.pending_keys(self.options.queue_limit).await?,
            capacities,
        })
    }

    /// Discovers every cluster's capacity (a cluster whose discovery fails keeps its last
    /// picture) and returns what each offers now: nothing from a cluster unreachable (observe or
    /// discovery failing) for `lost_after`, whose attempts are being marked lost and must be
    /// re-placed elsewhere, not on its last picture.
    async fn offered_capacities(&self, now: DateTime<Utc>) -> Vec<Option<Capacity>> {
        for (index, cluster) in self.options.clusters.iter().enumerate() {
            match cluster.driver.discover().await {
                Ok(capacity) => {
                    let mut memory = self.lock();
                    memory.capacities[index] = Some(capacity);
                    memory.undiscoverable_since.remove(&index);
                }
                Err(err) => {
                    tracing::warn!(cluster = %cluster.info.name, error = %err, "discovery failed, using the last picture");
                    self.lock().undiscoverable_since.entry(index).or_insert(now);
                }
            }
        }
        let memory = self.lock();
        memory
            .capacities
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let down = [memory.unreachable_since.get(&i), memory.undiscoverable_since.get(&i)]
                    .into_iter()
                    .flatten()
                    .any(|since| elapsed(*since, now) >= self.options.lost_after);
                if down { None } else { c.clone() }
            })
            .collect()
    }

    /// Builds the scheduler's picture and queue from `inputs`, prices the pools and binds the
    /// portfolio's clauses (the same functions `offers` and the simulator call), gates budgets,
    /// schedules, and checks the plan.
    async fn decide(&self, inputs: &replan::PlanInputs, now: DateTime<Utc>) -> Result<Decision, Error> {
        let active = &inputs.active;
        let infos: Vec<ClusterInfo> = self.options.clusters.iter().map(|c| c.info.clone()).collect();
        let mut fleet = Fleet::build(&infos, &inputs.capacities);
        if let Some(contracts) = &self.options.portfolio {
            let deliveries =
                contracts::gate_deliveries(&mut fleet, &infos, &self.options.contracts, &contracts.portfolio, now);
            self.lock().deliveries = deliveries;
        }
        let RunningWork { running, attempt_of_replica } = running_work(&fleet, active);
        let mut snapshot = Snapshot { pools: fleet.pools.clone(), running, tenants: inputs.tenants.clone() };
        let mut queue = self.queue(active, &inputs.window).await?;
        let mut jobs = std::mem::take(&mut queue.jobs);
        let round = self.round_pass(&snapshot.pools, active, &queue.speedups, &queue.replicated, &mut jobs, now);
        // A job in a container image goes only to clusters whose driver runs images, a job with
        // an upload only to clusters whose driver unpacks it, a job with bucket file_mounts only
        // to clusters whose nodes the fleet file says mount them (`cumulo_sched::needs`).
        let sites = self.sites(&infos);
        for queued in jobs.iter_mut() {
            if let Some(job_needs) = queue.needs.get(&queued.id) {
                queued.constraints.deny.extend(job_needs.denials(&sites));
            }
        }
        let closed = fleet.keep_tenants_off_reserved_clusters(&infos, &mut jobs);
        // Metering rates new seconds at the price paid now, before the pass reprices the pools.
        self.lock().pool_prices =
            snapshot.pools.iter().map(|pool| (pool.name.clone(), pool.price_per_node_hour)).collect();
        let now_ts = now.timestamp().max(0) as u64;
        let portfolio = self.options.portfolio.as_ref().map(|contracts| contracts.portfolio.as_ref());
        let clauses = ActiveClauses::at(portfolio, now);
        if let Some(contracts) = &self.options.portfolio {
            let consumed = self.consumed().await?;
            let terms = contracts::pool_terms(&fleet, &infos, &self.options.contracts);
            contracts::price(&mut snapshot, &terms, contracts, &consumed, now);
        }
        let narrowing = NarrowingAt { narrowing: &clauses, now: now_ts };
        let gated =
            cumulo_sched::budget::gate_narrowed(&snapshot.pools, jobs, &queue.durations, &inputs.caps, &narrowing);
        let jobs = gated.queue;
        let started = Instant::now();
        let plan = cumulo_sched::schedule_narrowed(&snapshot, &jobs, now_ts, &self.options.sched, &clauses)?;
        let decision_micros = started.elapsed().as_micros() as u64;
        let checked = crate::check::check_plan(&snapshot, &jobs, plan);
        let clause_words = clause_words(&clauses, now_ts, &jobs, &checked.plan);
        // A job group is placed whole in one pass: a member left waiting holds the others back.
        let waiting_members = checked
            .plan
            .pending
            .iter()
            .map(|p| (p.job, p.reason.to_string()))
            .chain(queue.held.iter().cloned())
            .collect::<Vec<_>>();
        let blocked = links::blocked_groups(&queue.group_of, waiting_members.iter().map(|(j, r)| (*j, r.as_str())));
        Ok(Decision {
            infos,
            fleet,
            snapshot,
            attempt_of_replica,
            queue,
            round,
            sites,
            closed,
            over_budget: gated.held,
            clause_words,
            plan: checked.plan,
            refused: checked.refused,
            blocked,
            decision_micros,
        })
    }

    /// Turns the plan's placements into new attempts. A placement whose cluster lacks what the
    /// job needs of its site, or whose job group waits, becomes a pending reason instead.
    fn add_launches(&self, decision: &Decision, commit: &mut PlanCommit) {
        let Decision { infos, fleet, snapshot, queue, sites, round, .. } = decision;
        for placement in &decision.plan.placements {
            let mut placement = placement.clone();
            placement.option = round.original_option(placement.job, placement.replica, placement.option);
            // Denials are by provider and region; a cluster sharing both with one that can is
            // caught here.
            let unmet = fleet.cluster_of(placement.pool).and_then(|c| {
                let job_needs = queue.needs.get(&placement.job)?;
                let need = job_needs.unmet(&sites[c].abilities)?;
                Some(job_needs.reason(need, &needs::lacking_names(sites, need)))
            });
            if let Some(reason) = unmet {
                commit.pending_reasons.push((placement.job, reason));
                continue;
            }
            if let Some(reason) = decision.held_back(&placement.job) {
                if !commit.pending_reasons.iter().any(|(j, _)| *j == placement.job) {
                    commit.pending_reasons.push((placement.job, reason.clone()));
                }
                continue;
            }
            let contract = fleet
                .cluster_of(placement.pool)
                .and_then(|c| self.options.contracts.get(&infos[c].name))
                .map(String::as_str);
            let chosen_at = snapshot.pools.get(placement.pool.0 as usize).map_or(Money(0), |p| p.price_per_node_hour);
            match fleet.store_placement(infos, &placement, contract, chosen_at) {
                Some(stored) => commit.launches.push(NewAttempt {
                    job: placement.job,
                    replica: placement.replica,
                    placement: serde_json::to_value(&stored).expect("placements serialise"),
                }),
                None => commit.pending_reasons.push((placement.job, "placed on a node that vanished".into())),
            }
        }
    }

    /// One pending reason per waiting job: its first waiting replica's (naming the replica when
    /// there are several) with what else keeps it (site needs, reserved clusters, a clause, a
    /// move under way), then the jobs a budget held back. Returns how many wait.
    fn add_waiting_reasons(&self, decision: &Decision, commit: &mut PlanCommit) -> usize {
        let mut waiting = HashSet::new();
        for pending in &decision.plan.pending {
            if waiting.insert(pending.job) {
                let reason = self.waiting_reason(decision, pending);
                commit.pending_reasons.push((pending.job, reason));
            }
        }
        for held in &decision.over_budget {
            if waiting.insert(held.job) {
                commit.pending_reasons.push((held.job, held.reason.clone()));
            }
        }
        waiting.len()
    }

    fn waiting_reason(&self, decision: &Decision, pending: &cumulo_sched::Pending) -> String {
        let clause = decision.clause_words.get(&(pending.job, pending.replica));
        if let (PendingReason::ContractClause, Some(words)) = (&pending.reason, clause) {
            return words.clone();
        }
        let mut reason = if decision.queue.replicated.contains(&pending.job) {
            format!("replica {} waits: {}", pending.replica, pending.reason)
        } else {
            pending.reason.to_string()
        };
        if let Some(why) = decision.queue.needs.get(&pending.job).and_then(|n| n.reasons(&decision.sites)) {
            reason = format!("{reason}; {why}");
        }
        if let Some(names) = decision.closed.get(&pending.job) {
            reason.push_str(&match names.as_slice() {
                [one] => format!(" (cluster {one} takes only other tenants' jobs)"),
                many => format!(" (clusters {} take only other tenants' jobs)", many.join(", ")),
            });
        }
        if let Some(clause) = clause {
            reason = format!("{reason}; {clause}");
        }
        if let Some(m) = self.lock().moving.get(&pending.job) {
            reason =
                format!("{reason}; moving from {} to {} (heterogeneity round): placed on {} only", m.from, m.to, m.to);
        }
        reason
    }

    /// Asks each victim's cluster to stop it; a failure is logged and retried by `observe`.
    async fn stop_victims(&self, active: &[ActiveAttempt], victims: &[AttemptId]) {
        for victim in victims {
            let Some(attempt) = active.iter().find(|a| a.attempt.id == *victim) else { continue };
            let Some(cluster) = placement_of(attempt).and_then(|p| self.cluster_index(&p.cluster)) else { continue };
            if let Err(err) = self.options.clusters[cluster].driver.cancel(*victim).await {
                tracing::warn!(attempt = %victim, error = %err, "stopping a preempted attempt failed");
            }
        }
    }
}

/// The words of the clause behind each (job, replica) `plan` leaves waiting, where a clause held
/// it back or kept it from some providers.
fn clause_words(
    clauses: &ActiveClauses<'_>,
    now: u64,
    queue: &[QueuedJob],
    plan: &Plan,
) -> HashMap<(JobId, u32), String> {
    if clauses.is_empty() || plan.pending.is_empty() {
        return HashMap::new();
    }
    let waiting: HashSet<(JobId, u32)> = plan.pending.iter().map(|p| (p.job, p.replica)).collect();
    let mut notes = ClauseNotes::new(clauses, now);
    queue
        .iter()
        .filter(|q| waiting.contains(&(q.id, q.replica)))
        .filter_map(|q| Some(((q.id, q.replica), notes.words(q)?.to_string())))
        .collect()
}

/// The work the plan must keep: each active attempt's allocation, and the attempt running each
/// job replica.
struct RunningWork {
    running: Vec<RunningAlloc>,
    attempt_of_replica: HashMap<(JobId, u32), AttemptId>,
}

/// What the active attempts hold in `fleet`. An attempt being preempted no longer holds capacity
/// in the plan: its replacement was placed in its room by the pass that preempted it.
fn running_work(fleet: &Fleet, active: &[ActiveAttempt]) -> RunningWork {
    let mut work = RunningWork { running: Vec::new(), attempt_of_replica: HashMap::new() };
    for attempt in active.iter().filter(|a| !a.preempt_requested) {
        work.attempt_of_replica.insert((attempt.attempt.id.job, attempt.attempt.replica), attempt.attempt.id);
        let Some(placement) = placement_of(attempt) else { continue };
        let started = attempt.attempt.created_at.timestamp().max(0) as u64;
        if let Some(mut alloc) = fleet.running_alloc(&placement, &attempt.spec, started) {
            alloc.job = attempt.attempt.id.job;
            // The scheduler's spread tally counts the job's running replicas by this.
            alloc.replica = attempt.attempt.replica;
            work.running.push(alloc);
        }
    }
    work
}
