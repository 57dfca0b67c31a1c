//! The reconcile loop against a real SQLite store and simulated clusters with a manual clock:
//! jobs run to completion, failures requeue, cancels stop attempts, and a crash between any two
//! steps of a pass converges with every attempt launched exactly once (counted in the simulated
//! driver's dispatch log, which survives the "restart").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cumulo_control::{Cluster, ClusterInfo, Controller, Options, Report, open_store};
use cumulo_driver::{Capabilities, Capacity, Driver, LaunchOutcome, LaunchRequest, LogChunk, Observation};
use cumulo_driver_sim::{SimClock, SimConfig, SimDriver, read_dispatch_log};
use cumulo_store::{AttemptState, NewJob, Store};
use cumulo_types::{
    AcceleratorDemand, AttemptId, CapacityKind, GpuModel, GpuSelector, JobId, JobSpec, JobState, MilliGpu, Money,
    Priority,
};

struct World {
    dir: PathBuf,
    clock: SimClock,
    store: Arc<dyn Store>,
    sim: SimDriver,
}

fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn sim_config(dir: &Path) -> SimConfig {
    let mut config = SimConfig::uniform("sim-a", 2, Some(GpuModel::H100), 8, 64, 512 * 1024);
    config.dispatch_log = Some(dir.join("dispatch.jsonl"));
    config
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap().keep();
        let clock = SimClock::manual(start_time());
        let store = open_store(dir.join("cumulo.db").to_str().unwrap()).await.unwrap();
        let sim = SimDriver::open(sim_config(&dir), clock.clone()).unwrap();
        World { dir, clock, store, sim }
    }

    /// A controller over this world's store and simulated cluster, whose driver is `driver`.
    fn controller_with(&self, driver: Arc<dyn Driver>) -> Controller {
        self.controller_held(driver, CapacityKind::OnDemand, None)
    }

    /// A controller whose cluster's capacity is held as `capacity` (under `contract`, if given).
    fn controller_held(&self, driver: Arc<dyn Driver>, capacity: CapacityKind, contract: Option<&str>) -> Controller {
        let info = sim_a(capacity);
        self.controller_on(driver, info, contract)
    }

    /// A controller over this world's store and a cluster described by `info`.
    fn controller_on(&self, driver: Arc<dyn Driver>, info: ClusterInfo, contract: Option<&str>) -> Controller {
        let mut options = Options::new(self.store.clone(), vec![Cluster { info, driver }]);
        if let Some(contract) = contract {
            options.contracts.insert("sim-a".into(), contract.into());
        }
        let clock = self.clock.clone();
        options.clock = Arc::new(move || clock.now());
        options.lost_after = Duration::from_secs(30);
        Controller::new(options)
    }

    fn controller(&self) -> Controller {
        self.controller_with(Arc::new(self.sim.clone()))
    }

    /// The process "restarts": the store file and the simulated cluster are reopened from disk.
    async fn restart(&mut self) {
        self.store = open_store(self.dir.join("cumulo.db").to_str().unwrap()).await.unwrap();
        self.sim = SimDriver::open(sim_config(&self.dir), self.clock.clone()).unwrap();
    }

    async fn submit(&self, spec: JobSpec) -> JobId {
        self.store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    async fn state(&self, job: JobId) -> JobState {
        self.store.get_job(job).await.unwrap().state
    }

    /// How often each attempt was dispatched, over every driver instance that used the log.
    fn dispatch_counts(&self) -> BTreeMap<AttemptId, usize> {
        let mut counts = BTreeMap::new();
        for record in read_dispatch_log(&self.dir.join("dispatch.jsonl")).unwrap() {
            *counts.entry(record.attempt).or_insert(0) += 1;
        }
        counts
    }
}

fn gpu_job(name: &str, gpus: u32) -> JobSpec {
    let mut spec = JobSpec::new(name, "research");
    spec.resources[0].accelerators = Some(AcceleratorDemand {
        selector: GpuSelector::Models(vec![GpuModel::H100]),
        per_node: MilliGpu::whole(gpus),
        names: Vec::new(),
    });
    spec.duration_s = Some(100);
    spec
}

#[tokio::test]
async fn jobs_run_to_success_through_the_simulated_cluster() {
    let world = World::new().await;
    let controller = world.controller();
    let jobs = [world.submit(gpu_job("a", 4)).await, world.submit(gpu_job("b", 8)).await];
    let report = controller.reconcile_once().await.unwrap();
    assert!(report.leading);
    assert_eq!(report.planned.len(), 2, "{report:?}");
    assert_eq!(report.launched, report.planned, "planned attempts are dispatched in the same pass");
    for job in jobs {
        assert_eq!(world.state(job).await, JobState::Launching);
    }
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    for job in jobs {
        assert_eq!(world.state(job).await, JobState::Running);
    }
    world.advance(100);
    controller.reconcile_once().await.unwrap();
    for job in jobs {
        let record = world.store.get_job(job).await.unwrap();
        assert_eq!(record.state, JobState::Succeeded);
        assert_eq!(record.attempts.len(), 1);
        assert_eq!(record.attempts[0].state, AttemptState::Succeeded);
        assert_eq!(record.attempts[0].placement["cluster"], "sim-a");
    }
    assert!(world.dispatch_counts().values().all(|n| *n == 1));
}

#[tokio::test]
async fn jobs_that_do_not_fit_wait_with_a_reason() {
    let world = World::new().await;
    let controller = world.controller();
    let big = world.submit(gpu_job("big", 8)).await;
    let bigger = world.submit(gpu_job("bigger", 8)).await;
    let third = world.submit(gpu_job("third", 8)).await;
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.planned.len(), 2, "two nodes of 8 GPUs: {report:?}");
    assert_eq!(report.pending, 1);
    let waiting = [big, bigger, third].into_iter().find(|j| !report.planned.iter().any(|a| a.job == *j)).unwrap();
    let record = world.store.get_job(waiting).await.unwrap();
    assert_eq!(record.state, JobState::Pending);
    assert!(record.pending_reason.as_deref().is_some_and(|r| !r.is_empty()), "{record:?}");
    // When capacity frees up, the waiting job is placed.
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    world.advance(100);
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    assert_ne!(world.state(waiting).await, JobState::Pending);
}

#[tokio::test]
async fn a_crash_between_persist_and_dispatch_launches_exactly_once() {
    let mut world = World::new().await;
    let jobs = [world.submit(gpu_job("a", 8)).await, world.submit(gpu_job("b", 8)).await];
    {
        let controller = world.controller();
        let mut report = Report::default();
        controller.observe(&mut report).await.unwrap();
        controller.plan(&mut report).await.unwrap();
        assert_eq!(report.planned.len(), 2);
        // Crash here: the plan is committed, nothing was dispatched.
    }
    assert!(world.dispatch_counts().is_empty());
    world.restart().await;
    let controller = world.controller();
    let report = controller.reconcile_once().await.unwrap();
    assert!(report.planned.is_empty(), "no new attempts for already planned jobs: {report:?}");
    assert_eq!(report.launched.len(), 2);
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let counts = world.dispatch_counts();
    assert_eq!(counts.len(), 2);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    for job in jobs {
        let record = world.store.get_job(job).await.unwrap();
        assert_eq!(record.state, JobState::Running);
        assert_eq!(record.attempts.len(), 1, "exactly one attempt per job");
    }
}

/// A simulated cluster with injected faults: `launch` starts the attempt and then reports a
/// broken connection (as if the process died before writing `launching`), and `cancel` fails (as if
/// it died before stopping a victim).
struct Faulty {
    sim: SimDriver,
    launch_then_fail: bool,
    cancel_fails: bool,
}

fn broken(reason: &str) -> cumulo_driver::Error {
    cumulo_driver::Error::Unreachable { engine: "simulated", endpoint: "sim-a".into(), reason: reason.into() }
}

#[async_trait]
impl Driver for Faulty {
    fn capabilities(&self) -> Capabilities {
        self.sim.capabilities()
    }
    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        self.sim.discover().await
    }
    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        let outcome = self.sim.launch(request).await?;
        if self.launch_then_fail { Err(broken("connection reset after launch")) } else { Ok(outcome) }
    }
    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        if self.cancel_fails { Err(broken("crashed before cancel")) } else { self.sim.cancel(attempt).await }
    }
    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        self.sim.observe(attempts).await
    }
    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        self.sim.logs(attempt, rank, offset).await
    }
}

#[tokio::test]
async fn a_crash_between_dispatch_and_its_record_does_not_launch_again() {
    let mut world = World::new().await;
    let job = world.submit(gpu_job("a", 8)).await;
    let report = world
        .controller_with(Arc::new(Faulty { sim: world.sim.clone(), launch_then_fail: true, cancel_fails: false }))
        .reconcile_once()
        .await
        .unwrap();
    assert_eq!(report.launch_retries, 1, "{report:?}");
    assert_eq!(world.store.get_job(job).await.unwrap().attempts[0].state, AttemptState::Planned);
    world.restart().await;
    let controller = world.controller();
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(2);
    }
    assert_eq!(world.dispatch_counts().into_values().collect::<Vec<_>>(), vec![1]);
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.attempts.len(), 1);
}

#[tokio::test]
async fn a_lost_node_requeues_the_job_on_another_node() {
    let world = World::new().await;
    let controller = world.controller();
    let job = world.submit(gpu_job("a", 8)).await;
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let first = world.store.get_job(job).await.unwrap();
    let node = first.attempts[0].placement["nodes"][0]["node"].as_str().unwrap().to_string();
    world.sim.lose_node(&node);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost, vec![AttemptId { job, attempt: 1 }]);
    assert_eq!(report.planned, vec![AttemptId { job, attempt: 2 }], "requeued and placed in the same pass");
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.attempts[0].state, AttemptState::Lost);
    assert_ne!(record.attempts[1].placement["nodes"][0]["node"].as_str().unwrap(), node, "not on the lost node");
    assert_eq!(record.state, JobState::Launching);
}

#[tokio::test]
async fn an_unreachable_cluster_loses_its_attempts_only_after_the_timeout() {
    let world = World::new().await;
    let controller = world.controller();
    let job = world.submit(gpu_job("a", 8)).await;
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    world.sim.set_unreachable(true);
    let report = controller.reconcile_once().await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(world.state(job).await, JobState::Running);
    world.advance(31);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost, vec![AttemptId { job, attempt: 1 }]);
    let record = world.store.get_job(job).await.unwrap();
    assert!(record.attempts[0].message.as_deref().unwrap().contains("cluster unreachable since"));
    // Its last picture is not offered: the job waits instead of being placed on it again.
    assert!(report.planned.is_empty(), "re-placed on the unreachable cluster: {report:?}");
    assert_eq!(record.state, JobState::Pending);
    world.sim.set_unreachable(false);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.planned, vec![AttemptId { job, attempt: 2 }], "placed again once it answers");
}

#[tokio::test]
async fn failing_attempts_are_retried_up_to_max_attempts() {
    let world = World::new().await;
    let controller = world.controller();
    let mut spec = gpu_job("flaky", 8);
    spec.max_attempts = 2;
    spec.envs.insert("SIM_EXIT_CODE".into(), "3".into());
    let job = world.submit(spec).await;
    for _ in 0..6 {
        controller.reconcile_once().await.unwrap();
        world.advance(60);
    }
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Failed);
    assert_eq!(record.attempts.len(), 2);
    assert!(record.attempts.iter().all(|a| a.message.as_deref() == Some("exit code 3")), "{record:?}");
}

#[tokio::test]
async fn cancel_stops_a_running_attempt() {
    let world = World::new().await;
    let controller = world.controller();
    let job = world.submit(gpu_job("a", 8)).await;
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    world.store.cancel_job(job).await.unwrap();
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert_eq!(record.attempts[0].state, AttemptState::Cancelled);
}

#[tokio::test]
async fn cancel_before_dispatch_launches_nothing() {
    let world = World::new().await;
    let job = world.submit(gpu_job("a", 8)).await;
    {
        let controller = world.controller();
        let mut report = Report::default();
        controller.plan(&mut report).await.unwrap();
        assert_eq!(report.planned.len(), 1);
    }
    world.store.cancel_job(job).await.unwrap();
    world.controller().reconcile_once().await.unwrap();
    assert_eq!(world.state(job).await, JobState::Cancelled);
    assert!(world.dispatch_counts().is_empty(), "nothing was launched");
}

#[tokio::test]
async fn bad_database_values_name_the_problem() {
    let Err(err) = open_store("mysql://db/x").await else { panic!("mysql must be refused") };
    assert_eq!(
        err.to_string(),
        "invalid database `mysql://db/x`: expected postgres://user@host:port/db, sqlite://PATH or a file path"
    );
}

fn low_priority(name: &str) -> JobSpec {
    let mut spec = gpu_job(name, 8);
    spec.priority = Priority::LOW;
    spec.preemptible = true;
    spec.duration_s = Some(10_000);
    spec
}

fn urgent(name: &str) -> JobSpec {
    let mut spec = gpu_job(name, 8);
    spec.priority = Priority::CRITICAL;
    spec
}

/// Fills both simulated nodes with low-priority preemptible work and submits an urgent job.
async fn full_cluster_and_an_urgent_job(world: &World, controller: &Controller) -> (Vec<JobId>, JobId) {
    let low = vec![world.submit(low_priority("low-1")).await, world.submit(low_priority("low-2")).await];
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    for job in &low {
        assert_eq!(world.state(*job).await, JobState::Running);
    }
    (low, world.submit(urgent("urgent")).await)
}

#[tokio::test]
async fn preemption_stops_the_victim_and_requeues_its_job() {
    let world = World::new().await;
    let controller = world.controller();
    let (low, urgent) = full_cluster_and_an_urgent_job(&world, &controller).await;
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.preempted.len(), 1, "{report:?}");
    assert_eq!(report.planned, vec![AttemptId { job: urgent, attempt: 1 }]);
    let victim = report.preempted[0];
    assert!(low.contains(&victim.job));
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    let record = world.store.get_job(victim.job).await.unwrap();
    assert_eq!(record.attempts[0].state, AttemptState::Preempted);
    assert_eq!(record.state, JobState::Pending, "requeued, waiting for room");
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.state(urgent).await, JobState::Running);
    assert!(world.dispatch_counts().values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_crash_after_a_preempting_plan_still_stops_the_victim() {
    let mut world = World::new().await;
    let (_low, urgent) = {
        let controller = world.controller();
        full_cluster_and_an_urgent_job(&world, &controller).await
    };
    let victim = {
        let faulty = Faulty { sim: world.sim.clone(), launch_then_fail: false, cancel_fails: true };
        let controller = world.controller_with(Arc::new(faulty));
        let mut report = Report::default();
        controller.observe(&mut report).await.unwrap();
        controller.plan(&mut report).await.unwrap();
        assert_eq!(report.preempted.len(), 1);
        report.preempted[0]
        // Crash: the plan is committed, the victim was never stopped, nothing was dispatched.
    };
    world.restart().await;
    let controller = world.controller();
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    let observed = world.sim.observe(&[victim]).await.unwrap();
    assert_eq!(observed[0].state.name(), "cancelled", "the restarted loop stopped the victim");
    assert_eq!(world.store.get_job(victim.job).await.unwrap().attempts[0].state, AttemptState::Preempted);
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.state(urgent).await, JobState::Running);
    assert!(world.dispatch_counts().values().all(|n| *n == 1));
}

/// Sums of a job's stored usage: (node-seconds, cost).
async fn usage_of(world: &World, job: JobId) -> (i64, Money) {
    let records = world.store.usage_between(None, None).await.unwrap();
    let mine: Vec<_> = records.iter().filter(|r| r.attempt.job == job).collect();
    (mine.iter().map(|r| r.seconds()).sum(), mine.iter().map(|r| r.cost).sum())
}

#[tokio::test]
async fn node_time_is_metered_at_the_pool_price_exactly_once() {
    let mut world = World::new().await;
    let mut spec = gpu_job("two-nodes", 8);
    spec.num_nodes = 2;
    let job = world.submit(spec).await;
    let controller = world.controller();
    controller.reconcile_once().await.unwrap();
    world.advance(1); // the simulated start delay: both nodes start now
    let started = world.clock.now();
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.state(job).await, JobState::Running);
    world.advance(40);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.metered, 2, "one heartbeat record per node: {report:?}");
    assert_eq!(usage_of(&world, job).await.0, 2 * 40);
    let opened = world.store.usage_between(None, None).await.unwrap();
    // the same instant observed again bills nothing
    assert_eq!(controller.reconcile_once().await.unwrap().metered, 0);
    // a restarted loop (no ledgers in memory) neither double-bills nor conflicts with stored records
    world.restart().await;
    let controller = world.controller();
    world.advance(30);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.metered, 2, "{report:?}");
    assert_eq!(usage_of(&world, job).await.0, 2 * 70);
    world.advance(100); // past the 100 s run: the attempt exits at started + 100
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.state(job).await, JobState::Succeeded);
    let records = world.store.usage_between(None, None).await.unwrap();
    assert!(records.iter().all(|r| r.node_type == "H100x8" && r.gpus == 8 && r.tenant == "research"));
    assert!(records.iter().all(|r| r.capacity == CapacityKind::OnDemand && r.contract.is_none()));
    assert!(records.iter().all(|r| r.rate == Money::from_dollars(10) && r.provider.as_str() == "local"));
    assert_eq!(records.len(), 2, "each node's heartbeats extended its one open record: {records:?}");
    assert!(records.iter().zip(&opened).all(|(r, o)| o.is_prefix_of(r)), "the records opened earlier, extended");
    let end = started + chrono::Duration::seconds(100);
    for rank in 0..2 {
        let node: Vec<_> = records.iter().filter(|r| r.node_rank == rank).collect();
        assert_eq!(node.first().unwrap().start, started);
        assert_eq!(node.last().unwrap().stop, end);
    }
    let expected = cumulo_ledger::cost_between(Money::from_dollars(10), started.timestamp(), end.timestamp());
    assert_eq!(usage_of(&world, job).await, (200, Money(expected.micros() * 2)));
    // later passes add nothing: the attempt is terminal and no longer observed
    world.advance(60);
    assert_eq!(controller.reconcile_once().await.unwrap().metered, 0);
    assert_eq!(world.store.usage_between(None, None).await.unwrap(), records);
}

#[tokio::test]
async fn metering_rates_new_seconds_at_the_pools_price_now_beside_the_list_price_and_counts_held_gpus() {
    let mut world = World::new().await;
    let mut spec = gpu_job("one-gpu", 1);
    spec.duration_s = Some(7200);
    let job = world.submit(spec).await;
    let contract_cluster = |price: &str| ClusterInfo {
        list_price_per_node_hour: Some(Money::parse_dollars("40").unwrap()),
        ..ClusterInfo::new("sim-a", "local", "sim", CapacityKind::Contract, Money::parse_dollars(price).unwrap())
    };
    let controller = world.controller_on(Arc::new(world.sim.clone()), contract_cluster("10"), Some("aws-2026"));
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    let started = world.clock.now();
    for _ in 0..5 {
        world.advance(600);
        controller.reconcile_once().await.unwrap();
    }
    // the contract's price doubles an hour in; the loop restarts with it (ledgers rebuilt from the store)
    world.restart().await;
    let controller = world.controller_on(Arc::new(world.sim.clone()), contract_cluster("20"), Some("aws-2026"));
    world.advance(600);
    controller.reconcile_once().await.unwrap();
    for _ in 0..7 {
        world.advance(600);
        controller.reconcile_once().await.unwrap();
    }
    assert_eq!(world.state(job).await, JobState::Succeeded);
    let records = world.store.usage_between(None, None).await.unwrap();
    let spans: Vec<(i64, i64)> =
        records.iter().map(|r| (r.start.timestamp() - started.timestamp(), r.seconds())).collect();
    assert_eq!(spans, vec![(0, 3600), (3600, 3600)], "13 passes, two hourly records split at the price change");
    let (before, after) = (&records[0], &records[1]);
    assert!(before.rate < Money::from_dollars(10), "a 1-GPU job pays its share of the node, not the node: {before:?}");
    assert_eq!(after.rate, Money(before.rate.micros() * 2), "the pool's price doubled");
    for r in &records {
        assert_eq!(r.list_rate, Money(before.rate.micros() * 4), "list $40 against paid $10 for the node: {r:?}");
        assert_eq!((r.gpus, r.gpu_seconds()), (1, 3600), "the attempt holds 1 of the node's 8 GPUs");
        assert_eq!(r.contract.as_deref(), Some("aws-2026"));
    }
    assert_eq!(usage_of(&world, job).await.0, 7200, "every second billed once across the restart");
}

#[tokio::test]
async fn contract_capacity_is_metered_under_its_contract() {
    let world = World::new().await;
    let job = world.submit(gpu_job("c", 8)).await;
    let controller = world.controller_held(Arc::new(world.sim.clone()), CapacityKind::Contract, Some("aws-2026"));
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    world.advance(100);
    controller.reconcile_once().await.unwrap();
    assert_eq!(world.state(job).await, JobState::Succeeded);
    let records = world.store.usage_between(None, None).await.unwrap();
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|r| r.capacity == CapacityKind::Contract && r.contract.as_deref() == Some("aws-2026")),
        "{records:?}"
    );
    assert_eq!(usage_of(&world, job).await.0, 100);
}

/// A cluster reserved for some tenants (`tenants:` in the fleet file) never gets another tenant's
/// job, even when it is the only one with room; that job waits and its reason says why.
#[tokio::test]
async fn a_cluster_reserved_for_a_tenant_never_runs_another_tenants_job() {
    let world = World::new().await;
    let info = ClusterInfo { tenants: Some(vec!["research".into()]), ..sim_a(CapacityKind::OnDemand) };
    let mut options = Options::new(world.store.clone(), vec![Cluster { info, driver: Arc::new(world.sim.clone()) }]);
    let clock = world.clock.clone();
    options.clock = Arc::new(move || clock.now());
    let controller = Controller::new(options);
    let mut outsider = gpu_job("outsider", 1);
    outsider.tenant = "finance".into();
    let outsider = world.submit(outsider).await;
    let insider = world.submit(gpu_job("insider", 1)).await;
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(5);
    }
    assert_eq!(world.state(insider).await, JobState::Running, "the reserved tenant's job runs there");
    let job = world.store.get_job(outsider).await.unwrap();
    assert_eq!(job.state, JobState::Pending, "another tenant's job must never be placed on the reserved cluster");
    assert!(job.attempts.is_empty());
    let reason = job.pending_reason.unwrap_or_default();
    assert!(reason.contains("cluster sim-a takes only other tenants' jobs"), "{reason}");
}

/// The one cluster of the world's tests, `sim-a`, its capacity held as `capacity`, at $10 a node-hour.
fn sim_a(capacity: CapacityKind) -> ClusterInfo {
    ClusterInfo::new("sim-a", "local", "sim", capacity, Money::from_dollars_f64(10.0).unwrap())
}

/// The simulated cluster as a driver that cannot unpack uploads (as Slurm and Ray today).
struct NoUploads(SimDriver);

#[async_trait]
impl Driver for NoUploads {
    fn capabilities(&self) -> Capabilities {
        Capabilities { uploads: false, ..self.0.capabilities() }
    }
    async fn discover(&self) -> Result<Capacity, cumulo_driver::Error> {
        self.0.discover().await
    }
    async fn launch(&self, request: &LaunchRequest) -> Result<LaunchOutcome, cumulo_driver::Error> {
        self.0.launch(request).await
    }
    async fn cancel(&self, attempt: AttemptId) -> Result<(), cumulo_driver::Error> {
        self.0.cancel(attempt).await
    }
    async fn observe(&self, attempts: &[AttemptId]) -> Result<Vec<Observation>, cumulo_driver::Error> {
        self.0.observe(attempts).await
    }
    async fn logs(&self, attempt: AttemptId, rank: u32, offset: u64) -> Result<LogChunk, cumulo_driver::Error> {
        self.0.logs(attempt, rank, offset).await
    }
}

#[tokio::test]
async fn a_job_with_an_upload_stays_off_a_driver_that_cannot_unpack_it_naming_the_fields() {
    let world = World::new().await;
    let controller = world.controller_with(Arc::new(NoUploads(world.sim.clone())));
    let mut uploaded = gpu_job("uploaded", 1);
    uploaded.workdir = Some("proj".into());
    uploaded.file_mounts.insert("data".into(), "./data".into());
    uploaded.upload = Some(format!("sha256:{}", "0".repeat(64)));
    let uploaded = world.submit(uploaded).await;
    let plain = world.submit(gpu_job("plain", 1)).await;
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(5);
    }
    assert_eq!(world.state(plain).await, JobState::Running, "a job without an upload runs there");
    let job = world.store.get_job(uploaded).await.unwrap();
    assert_eq!(job.state, JobState::Pending);
    assert!(job.attempts.is_empty());
    let reason = job.pending_reason.unwrap_or_default();
    assert!(
        reason.contains("needs its local workdir and file_mounts copied onto the nodes (an upload), which cluster(s) sim-a cannot do"),
        "{reason}"
    );
}

/// A job with a bucket in `file_mounts` (SkyPilot `/data: s3://...`, or a bucket SkyPilot would
/// create): no driver mounts one, so it is placed only where the fleet file says the nodes mount
/// buckets (`bucket_mounts: true`); elsewhere it waits and the reason names file_mounts.
#[tokio::test]
async fn a_job_with_a_bucket_mount_waits_unless_the_fleet_says_the_cluster_mounts_buckets() {
    let world = World::new().await;
    let controller = world.controller();
    let mut bucketed = gpu_job("bucketed", 1);
    bucketed.file_mounts.insert("/data".into(), "s3://corpus/train".into());
    bucketed.file_mounts.insert("/code".into(), "./code".into());
    let bucketed = world.submit(bucketed).await;
    let plain = world.submit(gpu_job("plain", 1)).await;
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(5);
    }
    assert_eq!(world.state(plain).await, JobState::Running, "a job without a bucket runs there");
    let job = world.store.get_job(bucketed).await.unwrap();
    assert_eq!(job.state, JobState::Pending, "the bucket cannot be honoured: the job must not be placed");
    assert!(job.attempts.is_empty());
    let reason = job.pending_reason.unwrap_or_default();
    assert!(
        reason.contains("file_mounts /data (s3://corpus/train) need a bucket mounted on the nodes")
            && reason.contains("sim-a do not say `bucket_mounts: true`"),
        "{reason}"
    );
    assert!(!reason.contains("/code"), "a local source is no bucket: {reason}");

    let mounting = ClusterInfo { bucket_mounts: true, ..sim_a(CapacityKind::OnDemand) };
    let controller = world.controller_on(Arc::new(world.sim.clone()), mounting, None);
    for _ in 0..3 {
        controller.reconcile_once().await.unwrap();
        world.advance(5);
    }
    assert_eq!(world.state(bucketed).await, JobState::Running, "the fleet says this cluster mounts buckets");
}
