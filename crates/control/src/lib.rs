//! The reconcile loop: the leader observes what runs, schedules what waits, persists the plan and
//! only then dispatches it.
//!
//! One pass ([`Controller::reconcile_once`]) is three steps, each safe to cut short by a crash:
//! 1. [`Controller::observe`]: ask each cluster's driver about every active attempt, write what
//!    changed (running, exited, lost after `lost_after` without an answer) and stop attempts whose
//!    job asked to be cancelled.
//! 2. [`Controller::plan`]: build a snapshot (discovered nodes, active attempts), call
//!    `cumulo_sched::schedule`, re-check the plan against the snapshot with
//!    `cumulo_sched::verify_plan` ([`check`]: placements that break it are refused and stay
//!    pending), and commit the plan with its new attempt ids (`Store::commit_plan`, in chunks of
//!    [`LAUNCHES_PER_COMMIT`] launches, each one transaction, so submits waiting for the store's
//!    writer wait for one chunk, not a whole large plan). Preempted attempts are stopped after the
//!    commit.
//!    A pass whose inputs (capacities offered, active attempts, tenants, budgets, the pending
//!    window by key) equal those of the last plan, when that plan changed nothing and read no
//!    clock, keeps that plan instead of scheduling again (`replan` states the rule); a pass that
//!    plans reads only the window's jobs new since the last read, the others' parsed specs kept.
//!    Before the state changes are written, every node's reported start/stop (or heartbeat)
//!    becomes usage records rated at the price of the attempt's pool (`metering`), appended with
//!    `Store::append_usage`; re-observing bills nothing (ledger and store both refuse it).
//! 3. [`Controller::dispatch`]: launch every attempt still `planned`, from this pass or an earlier
//!    one that crashed, through its cluster's driver; a launched attempt becomes `launching`.
//!
//! Level-triggered: a pass looks only at stored state and drivers' answers, never at what an
//! earlier pass meant to do. Attempt ids are durable before dispatch and drivers are idempotent on
//! them, so a crash between any two steps converges on the next pass with nothing lost and nothing
//! launched twice (tests in `tests/reconcile.rs`).
//!
//! Replicas: each replica of a job with `replicas > 1` (inference) is its own attempt, with its own
//! attempt id. The queue holds one entry per replica still to place, for
//! pending jobs and for running jobs missing some (a replica lost with its cluster is re-placed while
//! the others keep running), and running replicas feed the scheduler's spread tally, so
//! `spread: providers` keeps holding after a re-placement when capacity allows. `max_attempts` counts
//! per replica; the store derives the job's state from all its replicas (`cumulo_store`).
//!
//! Lost attempts are asked to stop on their engine on every pass until the driver accepts (the
//! store keeps the list, so a restart keeps asking).
//!
//! Known limits: lost-timeout clocks live in memory, so a restart delays loss detection by up
//! to `lost_after`; the lease (`lease_ttl_s`, 15 s) must outlast a pass, else two servers may plan at
//! once (the store still refuses to place a job twice, drivers still refuse to launch an id twice,
//! but two plans may over-commit a node). Metering keeps one ledger per active attempt in memory;
//! after a restart it rebuilds them with one `usage_between` read from the oldest active attempt's
//! start, which reads every tenant's usage since then once.

mod budgets;
pub mod check;
mod contracts;
mod fleet;
mod links;
mod metering;
mod plan;
mod replan;
mod rounds;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cumulo_driver::{AttemptState as DriverState, Capacity, Driver, LaunchRequest, NodeAssignment, SecretEnv};
use cumulo_sched::needs::{Abilities, Needs, Site};
use cumulo_sched::{QueuedJob, TenantPolicy};
use cumulo_store::{ActiveAttempt, AttemptState, AttemptUpdate, PendingKey, PlanApplied, PlanCommit, Store};
use cumulo_types::{AttemptId, JobId, JobSpec, Money};
use serde::Serialize;

pub use contracts::{ClusterDelivery, Contracts};
pub use fleet::{ClusterInfo, Fleet, PlacedNode, PoolOffer, StoredPlacement};
pub use rounds::Rounds;

/// A cluster as a site of `cumulo_sched::needs`: what its driver can do for a job (`caps`) and
/// whether the fleet file says its nodes mount buckets. The reconcile loop judges each pass's
/// clusters with it; `cumulo offers --fleet` judges the fleet file's clusters with it.
pub fn site(info: &ClusterInfo, caps: &cumulo_driver::Capabilities) -> Site {
    Site {
        name: info.name.clone(),
        provider: info.provider.clone(),
        region: info.region.clone(),
        abilities: Abilities {
            container_images: caps.container_images,
            uploads: caps.uploads,
            bucket_mounts: info.bucket_mounts,
        },
    }
}

/// What can stop a pass. A failed pass changes nothing beyond what its finished store calls
/// committed; the next pass starts over from stored state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] cumulo_store::Error),
    #[error("scheduler: {0}")]
    Sched(#[from] cumulo_sched::Error),
    #[error("metering: {0}")]
    Ledger(#[from] cumulo_ledger::Error),
    #[error("invalid database `{value}`: expected {expected}")]
    InvalidDatabase { value: String, expected: &'static str },
}

/// Launches per `Store::commit_plan` call. A pass placing thousands of jobs commits them in several
/// short transactions: SQLite has one writer, and a submit waits for the transaction holding it.
/// Each chunk is all-or-nothing per job as the store guarantees; a failure after some chunks leaves
/// their attempts `planned` (dispatched by the next pass, as after a crash between plan and
/// dispatch) and the other jobs pending.
pub const LAUNCHES_PER_COMMIT: usize = 256;

/// Commits `plan` in chunks of [`LAUNCHES_PER_COMMIT`] launches; the first chunk also carries the
/// plan's pending reasons and preemptions.
async fn commit_in_chunks(store: &dyn Store, plan: PlanCommit) -> Result<PlanApplied, cumulo_store::Error> {
    let PlanCommit { launches, pending_reasons, preemptions, preemption_reasons } = plan;
    let mut launches = launches.into_iter().peekable();
    let mut chunk = PlanCommit {
        launches: launches.by_ref().take(LAUNCHES_PER_COMMIT).collect(),
        pending_reasons,
        preemptions,
        preemption_reasons,
    };
    let mut applied = PlanApplied::default();
    loop {
        let part = store.commit_plan(chunk).await?;
        applied.attempts.extend(part.attempts);
        applied.skipped.extend(part.skipped);
        if launches.peek().is_none() {
            return Ok(applied);
        }
        chunk = PlanCommit { launches: launches.by_ref().take(LAUNCHES_PER_COMMIT).collect(), ..PlanCommit::default() };
    }
}

/// Where the loop reads the time; tests pass a manual clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One execution endpoint: where it is, what it costs, and its driver.
#[derive(Clone)]
pub struct Cluster {
    pub info: ClusterInfo,
    pub driver: Arc<dyn Driver>,
}

/// Settings of a controller.
#[derive(Clone)]
pub struct Options {
    pub store: Arc<dyn Store>,
    pub clusters: Vec<Cluster>,
    /// This server's name in the leadership lease: unique per process start ([`instance_id`]).
    pub holder: String,
    /// Time between passes in [`Controller::run`].
    pub interval: Duration,
    /// The lease lasts this long; passes must come more often.
    pub lease_ttl_s: u32,
    /// An active attempt its driver has no record of, or whose cluster does not answer, for this
    /// long is marked lost (and its job requeued).
    pub lost_after: Duration,
    /// The most pending jobs one pass schedules.
    pub queue_limit: u32,
    pub sched: cumulo_sched::Config,
    pub tenants: Vec<TenantPolicy>,
    pub clock: Clock,
    /// Cluster name → the contract id its capacity is held under, for clusters whose capacity is
    /// `contract`. A contract cluster missing here is metered under its own name as contract id.
    pub contracts: BTreeMap<String, String>,
    /// The portfolio every pass decides with: live prices, ramps and clauses (see `contracts`).
    /// Without one, pools keep their configured prices and no clause binds.
    pub portfolio: Option<Contracts>,
    /// The fleet file's monthly budgets by tenant; a budget stored over the API overrides one.
    pub budgets: BTreeMap<String, cumulo_store::budget::Budget>,
    /// The server's key for the jobs' sealed secrets; a job with secrets fails to launch without it.
    pub secret_key: Option<Arc<cumulo_store::secrets::SecretKey>>,
    /// Heterogeneity rounds ([`rounds`]): on by default, every 5 minutes while some job states
    /// `speedups`.
    pub rounds: Rounds,
}

impl Options {
    pub fn new(store: Arc<dyn Store>, clusters: Vec<Cluster>) -> Options {
        Options {
            store,
            clusters,
            holder: instance_id(),
            interval: Duration::from_secs(1),
            lease_ttl_s: 15,
            lost_after: Duration::from_secs(60),
            queue_limit: 10_000,
            sched: cumulo_sched::Config::default(),
            tenants: Vec::new(),
            clock: Arc::new(Utc::now),
            contracts: BTreeMap::new(),
            portfolio: None,
            budgets: BTreeMap::new(),
            secret_key: None,
            rounds: Rounds::default(),
        }
    }
}

/// A name for this process in the leadership lease, unique per start: the host name (for people
/// reading the lease row), the PID, and 64 random bits. The PID alone is not an identity: two
/// servers in two containers are often both PID 1, and both then renewed "their" lease and led
/// together (issue 12, finding 5). The host name is not one either (containers may share it).
pub fn instance_id() -> String {
    use rand::RngCore;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}/pid-{}/{:016x}", std::process::id(), rand::rngs::OsRng.next_u64())
}

/// What one pass did, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// False when another server holds the lease; nothing else was done.
    pub leading: bool,
    /// Attempt state changes written from drivers' answers.
    pub observed: usize,
    /// Attempts marked lost in this pass.
    pub lost: Vec<AttemptId>,
    /// Attempts created by this pass's plan.
    pub planned: Vec<AttemptId>,
    pub preempted: Vec<AttemptId>,
    /// Attempts a heterogeneity round stopped to move their jobs to a faster GPU model (also in
    /// `preempted`).
    pub moved: Vec<AttemptId>,
    /// Whether this pass held a heterogeneity round.
    pub round: bool,
    /// Jobs the plan left pending.
    pub pending: usize,
    /// Attempts launched (or found already launched) by drivers in this pass.
    pub launched: Vec<AttemptId>,
    /// Launches that failed and will be retried with the same attempt id.
    pub launch_retries: usize,
    /// Usage records appended by metering in this pass.
    pub metered: u64,
    /// Time spent in `cumulo_sched::schedule`, in microseconds.
    pub decision_micros: u64,
    /// Placements the plan check (`check::check_plan`) refused in this pass; 0 unless the
    /// engine has a bug.
    pub refused: usize,
    /// The pass kept the last plan's decision: nothing it decides from had changed (see
    /// `replan`), so it neither read the pending jobs' specs nor scheduled them.
    pub plan_skipped: bool,
}

/// A cluster's nodes as last discovered, for the API's clusters and nodes views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    pub info: ClusterInfo,
    pub kind: String,
    pub simulated: bool,
    /// `None` until the first successful discovery.
    pub capacity: Option<Capacity>,
    /// Set while the cluster does not answer.
    pub unreachable_since: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Memory {
    capacities: Vec<Option<Capacity>>,
    unreachable_since: HashMap<usize, DateTime<Utc>>,
    /// Clusters whose discovery has failed since then (cleared by a successful discovery).
    undiscoverable_since: HashMap<usize, DateTime<Utc>>,
    unknown_since: HashMap<AttemptId, DateTime<Utc>>,
    last_report: Option<Report>,
    /// Ledgers of active attempts (metering); missing ones are rebuilt from the store.
    ledgers: metering::Ledgers,
    /// Each pool's price of a whole node per hour in the latest pass's snapshot, by pool name:
    /// metering rates an attempt's new seconds at its pool's price now.
    pool_prices: HashMap<String, Money>,
    /// Money metered so far per contract (live prices read it); `None` until read from the store,
    /// and again after a failed append.
    consumed: Option<BTreeMap<String, cumulo_types::Money>>,
    /// Contract clusters' deliveries as the last pass saw them.
    deliveries: Vec<ClusterDelivery>,
    /// Money spent per tenant in the current month (budgets read it); `None` until read from the
    /// store, and again after a failed append.
    month_spend: Option<budgets::MonthSpend>,
    /// Tenants already warned of passing their soft budget, with the month (warned once a month).
    soft_warned: HashSet<(String, DateTime<Utc>)>,
    /// The last full plan while later passes may keep it (`replan`).
    settled: Option<replan::Settled>,
    /// The pending window's jobs as last read, by id: a pass reads only the jobs new to it.
    window_jobs: HashMap<JobId, Arc<cumulo_store::JobRecord>>,
    /// When the last heterogeneity round was held.
    last_round: Option<DateTime<Utc>>,
    /// Jobs a round moved, until they are placed again.
    moving: HashMap<JobId, rounds::Moving>,
}

/// The reconcile loop. Only soft state (discovered capacity, lost-timeout clocks) lives in memory.
pub struct Controller {
    options: Options,
    memory: Mutex<Memory>,
    /// Lost attempts whose cancel is in flight in the background (see `stop_lost_attempts`).
    stopping: Arc<Mutex<HashSet<AttemptId>>>,
}

impl Controller {
    pub fn new(options: Options) -> Controller {
        let memory = Memory { capacities: vec![None; options.clusters.len()], ..Memory::default() };
        Controller { options, memory: Mutex::new(memory), stopping: Arc::default() }
    }

    /// The fleet file's tenants and, after them, those created over the API (stored). A store
    /// that cannot list tenants leaves the fleet file's: a pass never fails for it.
    async fn tenant_policies(&self) -> Vec<TenantPolicy> {
        let mut tenants = self.options.tenants.clone();
        match self.options.store.tenants().await {
            Ok(stored) => {
                for t in stored {
                    if !tenants.iter().any(|f| f.name == t.name) {
                        let quota = cumulo_sched::Quota { gpus_milli: t.gpus_milli, cpus_milli: t.cpus_milli };
                        tenants.push(TenantPolicy { name: t.name, weight: t.weight.max(1), quota });
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "stored tenants not read; using the fleet file's"),
        }
        tenants
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The last pass's report.
    pub fn last_report(&self) -> Option<Report> {
        self.lock().last_report.clone()
    }

    /// Each contract cluster's delivery (ramp against discovered nodes) as the last pass saw it.
    pub fn deliveries(&self) -> Vec<ClusterDelivery> {
        self.lock().deliveries.clone()
    }

    /// Every cluster with its last discovered capacity.
    pub fn clusters(&self) -> Vec<ClusterView> {
        let memory = self.lock();
        self.options
            .clusters
            .iter()
            .enumerate()
            .map(|(i, cluster)| {
                let caps = cluster.driver.capabilities();
                ClusterView {
                    info: cluster.info.clone(),
                    kind: caps.kind,
                    simulated: caps.simulated,
                    capacity: memory.capacities.get(i).cloned().flatten(),
                    unreachable_since: memory.unreachable_since.get(&i).copied(),
                }
            })
            .collect()
    }

    /// Runs passes every `interval` until `shutdown` completes. A failed pass is logged and the
    /// next one starts from stored state.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {
                    match self.reconcile_once().await {
                        Ok(report) if report.leading => tracing::debug!(
                            planned = report.planned.len(),
                            launched = report.launched.len(),
                            lost = report.lost.len(),
                            pending = report.pending,
                            "reconcile pass"
                        ),
                        Ok(_) => tracing::debug!(holder = %self.options.holder, "not the leader"),
                        Err(err) => tracing::warn!(error = %err, "reconcile pass failed"),
                    }
                }
            }
        }
    }

    /// One full pass: lead, observe, plan, dispatch.
    pub async fn reconcile_once(&self) -> Result<Report, Error> {
        let mut report = Report::default();
        if !self.options.store.try_lead(&self.options.holder, self.options.lease_ttl_s).await? {
            self.lock().last_report = Some(report.clone());
            return Ok(report);
        }
        report.leading = true;
        self.observe(&mut report).await?;
        self.plan(&mut report).await?;
        self.dispatch(&mut report).await?;
        self.lock().last_report = Some(report.clone());
        Ok(report)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().expect("controller memory poisoned")
    }

    fn now(&self) -> DateTime<Utc> {
        (self.options.clock)()
    }

    fn cluster_index(&self, name: &str) -> Option<usize> {
        self.options.clusters.iter().position(|c| c.info.name == name)
    }

    /// Step 1: drivers' answers for every active attempt become store updates; cancel requests
    /// are passed on; attempts unheard of for `lost_after` are marked lost.
    pub async fn observe(&self, report: &mut Report) -> Result<(), Error> {
        let now = self.now();
        let active = self.options.store.active_attempts().await?;
        let mut by_cluster: BTreeMap<usize, Vec<&ActiveAttempt>> = BTreeMap::new();
        let mut updates = Vec::new();
        let mut node_reports = Vec::new();
        for attempt in &active {
            match placement_of(attempt).and_then(|p| self.cluster_index(&p.cluster)) {
                Some(cluster) => by_cluster.entry(cluster).or_default().push(attempt),
                None => updates.push(AttemptUpdate {
                    id: attempt.attempt.id,
                    state: AttemptState::Lost,
                    message: Some("its cluster is no longer configured".into()),
                }),
            }
        }
        // A cluster without active attempts has nothing to lose: whether it offers capacity is up
        // to discovery alone.
        self.lock().unreachable_since.retain(|cluster, _| by_cluster.contains_key(cluster));
        for (cluster, attempts) in by_cluster {
            let driver = &self.options.clusters[cluster].driver;
            let ids: Vec<AttemptId> = attempts.iter().map(|a| a.attempt.id).collect();
            let observations = match driver.observe(&ids).await {
                Ok(observations) if observations.len() == ids.len() => {
                    self.lock().unreachable_since.remove(&cluster);
                    observations
                }
                answer => {
                    let reason = match answer {
                        Err(err) => err.to_string(),
                        Ok(_) => "the driver answered for the wrong number of attempts".to_string(),
                    };
                    let since = *self.lock().unreachable_since.entry(cluster).or_insert(now);
                    tracing::warn!(cluster = %self.options.clusters[cluster].info.name, %reason, "cannot observe attempts");
                    if elapsed(since, now) >= self.options.lost_after {
                        for attempt in attempts.iter().filter(|a| a.attempt.state != AttemptState::Planned) {
                            updates.push(AttemptUpdate {
                                id: attempt.attempt.id,
                                state: AttemptState::Lost,
                                message: Some(format!("cluster unreachable since {}: {reason}", since.to_rfc3339())),
                            });
                        }
                    }
                    continue;
                }
            };
            for (attempt, observation) in attempts.into_iter().zip(observations) {
                if let Some(placement) = placement_of(attempt) {
                    let info = &self.options.clusters[cluster].info;
                    let contract = self.options.contracts.get(&info.name).map(String::as_str);
                    let pool_price_now = self.lock().pool_prices.get(&placement.pool).copied();
                    node_reports.extend(metering::NodeReport::new(
                        attempt,
                        &placement,
                        info,
                        contract,
                        &observation.nodes,
                        observation.observed_at,
                        pool_price_now,
                    ));
                }
                let stored = attempt.attempt.state;
                let engine_terminal = observation.state.is_terminal();
                let (state, message) = match observation.state {
                    // Never launched (or forgotten before it was marked launching): dispatch will
                    // launch it, or nothing must run when its job was cancelled.
                    DriverState::Unknown if stored == AttemptState::Planned => {
                        if attempt.preempt_requested {
                            (AttemptState::Preempted, Some("preempted before launch".to_string()))
                        } else if attempt.cancel_requested {
                            (AttemptState::Cancelled, Some("cancelled before launch".to_string()))
                        } else {
                            continue;
                        }
                    }
                    DriverState::Unknown => {
                        let since = *self.lock().unknown_since.entry(attempt.attempt.id).or_insert(now);
                        if elapsed(since, now) < self.options.lost_after {
                            continue;
                        }
                        (AttemptState::Lost, Some("the cluster has no record of it".to_string()))
                    }
                    DriverState::Pending => (AttemptState::Launching, None),
                    DriverState::Running { .. } => (AttemptState::Running, None),
                    DriverState::Exited { code: 0, .. } => (AttemptState::Succeeded, Some("exit code 0".to_string())),
                    DriverState::Exited { code, .. } => (AttemptState::Failed, Some(format!("exit code {code}"))),
                    DriverState::Failed { reason } => (AttemptState::Failed, Some(reason)),
                    DriverState::Cancelled if attempt.preempt_requested => {
                        (AttemptState::Preempted, Some(self.preempted_message(attempt.attempt.id)))
                    }
                    DriverState::Cancelled => (AttemptState::Cancelled, None),
                    DriverState::Lost { reason } => (AttemptState::Lost, Some(reason)),
                };
                self.lock().unknown_since.remove(&attempt.attempt.id);
                if (attempt.cancel_requested || attempt.preempt_requested)
                    && !engine_terminal
                    && let Err(err) = driver.cancel(attempt.attempt.id).await
                {
                    tracing::warn!(attempt = %attempt.attempt.id, error = %err, "cancel failed, will retry");
                }
                if state != stored {
                    updates.push(AttemptUpdate { id: attempt.attempt.id, state, message });
                }
            }
        }
        report.lost = updates.iter().filter(|u| u.state == AttemptState::Lost).map(|u| u.id).collect();
        report.observed = updates.len();
        // Usage first: once an attempt is terminal it is no longer observed, so its last node-time
        // must be durable before its final state is.
        report.metered = self.meter(node_reports).await?;
        self.options.store.update_attempts(updates.clone()).await?;
        self.stop_lost_attempts().await?;
        let mut memory = self.lock();
        let active_ids: std::collections::HashSet<AttemptId> = active.iter().map(|a| a.attempt.id).collect();
        for update in &updates {
            if update.state.is_terminal() {
                memory.unknown_since.remove(&update.id);
                memory.ledgers.remove(&update.id);
            }
        }
        memory.ledgers.retain(|id, _| active_ids.contains(id));
        Ok(())
    }

    /// A lost attempt may still run on its engine (a stopped controller, a silent node): the store
    /// keeps it in `attempts_to_stop_on_engine` until its driver accepts the cancel (or says it
    /// does not know the attempt), and every pass asks again. The cancels run in the background,
    /// one at a time per attempt, since an unreachable engine can take its full timeout to refuse;
    /// a replacement never waits for them. An attempt whose cluster is no longer configured, or
    /// whose driver cannot cancel at all, has nobody to ask and leaves the list at once.
    async fn stop_lost_attempts(&self) -> Result<(), Error> {
        let lost = self.options.store.attempts_to_stop_on_engine().await?;
        let mut nobody_to_ask = Vec::new();
        for attempt in lost {
            let id = attempt.id;
            let cluster = serde_json::from_value::<StoredPlacement>(attempt.placement)
                .ok()
                .and_then(|p| self.cluster_index(&p.cluster));
            let Some(cluster) = cluster else {
                nobody_to_ask.push(id);
                continue;
            };
            if !self.stopping.lock().expect("stopping set poisoned").insert(id) {
                continue; // the previous pass's cancel is still waiting for an answer
            }
            let driver = self.options.clusters[cluster].driver.clone();
            let store = self.options.store.clone();
            let stopping = self.stopping.clone();
            tokio::spawn(async move {
                let confirmed = match driver.cancel(id).await {
                    Ok(()) => true,
                    Err(err @ cumulo_driver::Error::Unsupported { .. }) => {
                        tracing::warn!(attempt = %id, error = %err, "cannot cancel a lost attempt on its cluster");
                        true
                    }
                    Err(err) => {
                        tracing::warn!(attempt = %id, error = %err, "cannot cancel a lost attempt on its cluster yet, will retry");
                        false
                    }
                };
                if confirmed && let Err(err) = store.stopped_on_engine(vec![id]).await {
                    tracing::warn!(attempt = %id, error = %err, "cannot record that a lost attempt stopped, will ask again");
                }
                stopping.lock().expect("stopping set poisoned").remove(&id);
            });
        }
        self.options.store.stopped_on_engine(nobody_to_ask).await?;
        Ok(())
    }

    /// Meters the node reports of one pass and appends the new records in one store call; returns
    /// how many were stored. A report that cannot be metered (bad provider name) is logged and
    /// skipped; a failed append forgets the involved ledgers (rebuilt from the store next pass) and
    /// fails the pass before any state change is written.
    async fn meter(&self, reports: Vec<metering::NodeReport>) -> Result<u64, Error> {
        if reports.is_empty() {
            return Ok(0);
        }
        let mut observed = Vec::with_capacity(reports.len());
        for report in &reports {
            match report.observations().and_then(|obs| Ok((obs, report.prices()?))) {
                Ok((obs, prices)) if !obs.is_empty() => observed.push((report.attempt, obs, prices)),
                Ok(_) => {}
                Err(err) => tracing::warn!(attempt = %report.attempt, error = %err, "cannot meter attempt"),
            }
        }
        let missing: Vec<AttemptId> = {
            let memory = self.lock();
            observed.iter().map(|(id, _, _)| *id).filter(|id| !memory.ledgers.contains_key(id)).collect()
        };
        if !missing.is_empty() {
            let since = observed
                .iter()
                .filter(|(id, _, _)| missing.contains(id))
                .flat_map(|(_, obs, _)| obs.iter().map(|o| o.start))
                .min();
            let records = self.options.store.usage_between(since, None).await?;
            let rebuilt = metering::ledgers_from_records(&missing, records)?;
            self.lock().ledgers.extend(rebuilt);
        }
        let mut new_records = Vec::new();
        let mut new_spend = Vec::new();
        {
            let mut memory = self.lock();
            for (id, obs, prices) in &observed {
                let Some(ledger) = memory.ledgers.get_mut(id) else { continue };
                for o in obs {
                    match ledger.meter(o, prices) {
                        Ok((ingested, records)) => {
                            if let Some(record) = records.first() {
                                new_spend.push((record.tenant.clone(), o.stop, ingested.cost));
                            }
                            new_records.extend(records)
                        }
                        Err(err) => {
                            tracing::warn!(attempt = %id, node_rank = o.node_rank, error = %err, "cannot meter node")
                        }
                    }
                }
            }
        }
        if new_records.is_empty() {
            return Ok(0);
        }
        let spent = contracts::consumed_by_contract(&new_records);
        match self.options.store.append_usage(new_records).await {
            Ok(stored) => {
                let mut memory = self.lock();
                if let Some(consumed) = memory.consumed.as_mut() {
                    for (contract, cost) in spent {
                        *consumed.entry(contract).or_default() += cost;
                    }
                }
                if let Some(month) = memory.month_spend.as_mut() {
                    for (tenant, at, cost) in new_spend {
                        month.add(&tenant, at, cost);
                    }
                }
                Ok(stored)
            }
            Err(err) => {
                let mut memory = self.lock();
                memory.consumed = None;
                memory.month_spend = None;
                for (id, _, _) in &observed {
                    memory.ledgers.remove(id);
                }
                Err(err.into())
            }
        }
    }

    /// The round part of a pass ([`rounds`]): holds a round when one is due and narrows or
    /// reorders the queue's options for the jobs it moved or assigned.
    fn round_pass(
        &self,
        pools: &[cumulo_sched::Pool],
        active: &[ActiveAttempt],
        speedups: &HashMap<JobId, std::collections::BTreeMap<cumulo_types::GpuModel, cumulo_types::Speed>>,
        replicated: &HashSet<JobId>,
        queue: &mut [QueuedJob],
        now: DateTime<Utc>,
    ) -> rounds::RoundPass {
        let settings = &self.options.rounds;
        let mut memory = self.lock();
        let due =
            !settings.every.is_zero() && memory.last_round.is_none_or(|last| elapsed(last, now) >= settings.every);
        let input = rounds::RoundInput { rounds: settings, due, pools, active, speedups, replicated, now };
        let pass = rounds::round_pass(&input, &mut memory.moving, queue);
        if pass.held {
            memory.last_round = Some(now);
            for stop in &pass.stops {
                tracing::info!(attempt = %stop.attempt, reason = %stop.reason, "heterogeneity round moves a job");
            }
        }
        pass
    }

    /// Whether rounds are on and a queued or running job states speed-ups, or a move is under way:
    /// then a round may fall due on any pass, so the plan is not kept (`replan`).
    fn rounds_on_the_clock(
        &self,
        active: &[ActiveAttempt],
        speedups: &HashMap<JobId, std::collections::BTreeMap<cumulo_types::GpuModel, cumulo_types::Speed>>,
    ) -> bool {
        let states_speedups = !speedups.is_empty() || active.iter().any(|a| !a.spec.speedups.is_empty());
        !self.options.rounds.every.is_zero() && (states_speedups || !self.lock().moving.is_empty())
    }

    /// The message of an attempt preempted on request: a round's move, or the scheduler's room.
    fn preempted_message(&self, attempt: AttemptId) -> String {
        match self.lock().moving.values().find(|m| m.attempt == attempt) {
            Some(m) => format!("stopped to move from {} to {} (heterogeneity round)", m.from, m.to),
            None => "preempted by the scheduler".to_string(),
        }
    }

    /// Money metered so far per contract: read from the store's usage records once, then kept up
    /// to date by metering.
    async fn consumed(&self) -> Result<BTreeMap<String, cumulo_types::Money>, Error> {
        if let Some(consumed) = self.lock().consumed.clone() {
            return Ok(consumed);
        }
        let records = self.options.store.usage_between(None, None).await?;
        let consumed = contracts::consumed_by_contract(&records);
        self.lock().consumed = Some(consumed.clone());
        Ok(consumed)
    }

    /// The scheduler's queue: one entry per replica to place, for pending jobs (up to
    /// `queue_limit`) and for launching or running jobs with several replicas that miss some (a
    /// replica lost, failed or preempted while the others run; see `cumulo_store::replicas_to_place`
    /// for which are placed again). Also returns the queued jobs that have several replicas.
    async fn queue(&self, active: &[ActiveAttempt], window: &[PendingKey]) -> Result<Queue, Error> {
        let pending = self.window_jobs(window).await?;
        let mut queue = Vec::with_capacity(pending.len());
        let mut replicated = HashSet::new();
        let mut held = Vec::new();
        let mut doomed = Vec::new();
        let mut group_of = HashMap::new();
        let mut needs = HashMap::new();
        let mut durations = HashMap::new();
        let mut speedups = HashMap::new();
        let mut seen = HashMap::new();
        let mut push = |job: &cumulo_store::JobRecord, replicas: &[u32]| {
            if job.spec.replicas > 1 {
                replicated.insert(job.id);
            }
            let submitted = job.submitted_at.timestamp().max(0) as u64;
            queue.extend(
                QueuedJob::from_spec(job.id, &job.spec, submitted)
                    .into_iter()
                    .filter(|q| replicas.contains(&q.replica)),
            );
        };
        for job in pending.iter().map(Arc::as_ref) {
            if let Some(group) = &job.spec.group {
                group_of.insert(job.id, group.clone());
            }
            let job_needs = Needs::of(&job.spec);
            if !job_needs.is_empty() {
                needs.insert(job.id, job_needs);
            }
            if let Some(duration) = job.spec.duration_s {
                durations.insert(job.id, duration);
            }
            if !job.spec.speedups.is_empty() {
                speedups.insert(job.id, job.spec.speedups.clone());
            }
            if !job.spec.after.is_empty() {
                match links::gate(self.options.store.as_ref(), &job.spec, &mut seen).await? {
                    links::Gate::Ready => {}
                    links::Gate::Wait(reason) => {
                        held.push((job.id, reason));
                        continue;
                    }
                    links::Gate::Never(reason) => {
                        doomed.push((job.id, reason));
                        continue;
                    }
                }
            }
            if job.spec.replicas <= 1 || job.attempt_count == 0 {
                push(job, &(0..job.spec.replicas.max(1)).collect::<Vec<_>>());
            } else {
                // Requeued after every replica ended: those that succeeded stay done.
                let job = self.options.store.get_job(job.id).await?;
                push(&job, &cumulo_store::replicas_to_place(&job));
            }
        }
        // Active attempts per job with several replicas, and how many replicas it has.
        let mut active_replicas: BTreeMap<JobId, (u32, u32)> = BTreeMap::new();
        for attempt in active.iter().filter(|a| a.spec.replicas > 1 && !a.cancel_requested) {
            active_replicas.entry(attempt.attempt.id.job).or_insert((0, attempt.spec.replicas)).0 += 1;
        }
        for (id, (count, replicas)) in active_replicas {
            if count < replicas {
                let job = self.options.store.get_job(id).await?;
                push(&job, &cumulo_store::replicas_to_place(&job));
            }
        }
        // Jobs with several replicas running short: their needs too.
        for q in &queue {
            if !needs.contains_key(&q.id)
                && let Some(active) = active.iter().find(|a| a.attempt.id.job == q.id)
            {
                let of_active = Needs::of(&active.spec);
                if !of_active.is_empty() {
                    needs.insert(q.id, of_active);
                }
            }
        }
        Ok(Queue { jobs: queue, replicated, held, doomed, group_of, needs, durations, speedups })
    }

    /// The jobs of the pending window, in its order. Only jobs new to the window (or requeued since
    /// last read, a new `attempt_count`) are read and parsed; the others come from the last read,
    /// since a job's spec, priority and submit time never change. A job read here that is no longer
    /// pending or is cancel-requested (changed since the window was read) is left out, as a fresh
    /// read of the pending jobs would leave it out. The kept jobs are the window's only.
    async fn window_jobs(&self, window: &[PendingKey]) -> Result<Vec<Arc<cumulo_store::JobRecord>>, Error> {
        let missing: Vec<JobId> = {
            let memory = self.lock();
            let known = |key: &&PendingKey| {
                memory.window_jobs.get(&key.id).is_some_and(|j| j.attempt_count == key.attempt_count)
            };
            window.iter().filter(|key| !known(key)).map(|key| key.id).collect()
        };
        let read = self.options.store.jobs_by_ids(missing).await?;
        let mut memory = self.lock();
        for job in read {
            memory.window_jobs.insert(job.id, Arc::new(job));
        }
        let jobs: Vec<Arc<cumulo_store::JobRecord>> = window
            .iter()
            .filter_map(|key| memory.window_jobs.get(&key.id).cloned())
            .filter(|job| job.state == cumulo_types::JobState::Pending && !job.cancel_requested)
            .collect();
        let in_window: HashSet<JobId> = window.iter().map(|key| key.id).collect();
        memory.window_jobs.retain(|id, _| in_window.contains(id));
        Ok(jobs)
    }

    /// Each cluster (in the order of `infos`) as a site: what its driver can do for a job and
    /// whether the fleet file says its nodes mount buckets.
    fn sites(&self, infos: &[ClusterInfo]) -> Vec<Site> {
        infos
            .iter()
            .zip(&self.options.clusters)
            .map(|(info, cluster)| site(info, &cluster.driver.capabilities()))
            .collect()
    }

    /// The clear values of a job's secrets for one launch, opened with the server's key.
    fn open_secrets(&self, spec: &JobSpec) -> Result<SecretEnv, cumulo_store::secrets::SecretError> {
        if spec.secrets.is_empty() {
            return Ok(SecretEnv::default());
        }
        let Some(key) = &self.options.secret_key else {
            return Err(cumulo_store::secrets::SecretError::Key {
                path: "(none)".into(),
                reason: "this controller was started without the server's secret key".into(),
            });
        };
        key.open_spec(spec).map(SecretEnv)
    }

    /// Step 3: launch every `planned` attempt through its cluster's driver, with the same attempt
    /// id however often it is tried; a launched attempt becomes `launching`.
    pub async fn dispatch(&self, report: &mut Report) -> Result<(), Error> {
        let active = self.options.store.active_attempts().await?;
        let mut updates = Vec::new();
        let launchable = |a: &&ActiveAttempt| {
            a.attempt.state == AttemptState::Planned && !a.cancel_requested && !a.preempt_requested
        };
        for attempt in active.iter().filter(launchable) {
            let id = attempt.attempt.id;
            let Some(placement) = placement_of(attempt) else {
                updates.push(AttemptUpdate {
                    id,
                    state: AttemptState::Failed,
                    message: Some("unreadable placement".into()),
                });
                continue;
            };
            let Some(cluster) = self.cluster_index(&placement.cluster) else { continue };
            let secrets = match self.open_secrets(&attempt.spec) {
                Ok(secrets) => secrets,
                Err(err) => {
                    updates.push(AttemptUpdate { id, state: AttemptState::Failed, message: Some(err.to_string()) });
                    continue;
                }
            };
            let request = LaunchRequest {
                attempt: id,
                job: attempt.spec.clone(),
                nodes: placement.nodes.iter().map(|n| NodeAssignment::new(&n.node, n.gpus.iter().copied())).collect(),
                checkpoint_dir: attempt.spec.checkpoint.as_ref().map(|c| c.dir.clone()),
                replica: attempt.attempt.replica,
                env: BTreeMap::new(),
                secrets,
            };
            match self.options.clusters[cluster].driver.launch(&request).await {
                Ok(outcome) => {
                    if !outcome.newly_started {
                        tracing::info!(attempt = %id, engine_id = %outcome.engine_id, "attempt was already launched");
                    }
                    report.launched.push(id);
                    updates.push(AttemptUpdate { id, state: AttemptState::Launching, message: None });
                }
                Err(err) if err.is_transient() => {
                    tracing::warn!(attempt = %id, error = %err, "launch failed, will retry with the same attempt id");
                    report.launch_retries += 1;
                }
                Err(err) => {
                    updates.push(AttemptUpdate { id, state: AttemptState::Failed, message: Some(err.to_string()) });
                }
            }
        }
        self.options.store.update_attempts(updates).await?;
        Ok(())
    }
}

/// What the scheduler is given this pass, and the pending jobs it is not.
struct Queue {
    /// One entry per replica to place.
    jobs: Vec<QueuedJob>,
    /// The queued jobs that have several replicas.
    replicated: HashSet<JobId>,
    /// Jobs waiting for others to succeed, with why.
    held: Vec<(JobId, String)>,
    /// Jobs that never can run (a job they wait for failed), with why.
    doomed: Vec<(JobId, String)>,
    /// The group of each pending job in one.
    group_of: HashMap<JobId, String>,
    /// The `duration` in seconds of each queued job that gives one (budget estimates).
    durations: HashMap<JobId, u64>,
    /// What each queued job that needs something of its site beyond resources needs (a container
    /// image, an upload, bucket mounts: `cumulo_sched::needs`).
    needs: HashMap<JobId, Needs>,
    /// The stated speed-ups of each queued job that has some (heterogeneity rounds).
    speedups: HashMap<JobId, std::collections::BTreeMap<cumulo_types::GpuModel, cumulo_types::Speed>>,
}

fn placement_of(attempt: &ActiveAttempt) -> Option<StoredPlacement> {
    serde_json::from_value(attempt.attempt.placement.clone()).ok()
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}

/// Opens the store a `--db` value names: `postgres://...` or `postgresql://...` for PostgreSQL,
/// `sqlite://PATH` or a plain file path for SQLite. Migrations are applied.
pub async fn open_store(db: &str) -> Result<Arc<dyn Store>, Error> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let store = cumulo_store_postgres::PostgresStore::open(cumulo_store_postgres::Options::new(db)).await?;
        return Ok(Arc::new(store));
    }
    let path = db.strip_prefix("sqlite://").unwrap_or(db);
    if path.is_empty() || path.contains("://") {
        return Err(Error::InvalidDatabase {
            value: db.to_string(),
            expected: "postgres://user@host:port/db, sqlite://PATH or a file path",
        });
    }
    let store = cumulo_store_sqlite::SqliteStore::open(cumulo_store_sqlite::Options::new(path)).await?;
    Ok(Arc::new(store))
}

#[cfg(test)]
mod instance_tests {
    #[test]
    fn two_instances_of_one_process_get_different_lease_identities() {
        let (a, b) = (super::instance_id(), super::instance_id());
        assert_ne!(a, b, "same PID and host must still give two identities");
        assert!(a.contains(&format!("/pid-{}/", std::process::id())), "{a}");
    }
}
