//! When a pass keeps the last plan instead of planning again (`replan` in the crate): a backlog
//! waiting on a full fleet is planned once and then kept, and every change a decision reads makes
//! the next pass plan again. Wherever a pass kept the plan, a fresh controller (which has nothing to
//! keep, so it always plans) must decide nothing new on the same stored state: that check fails
//! for any input the rule misses, not only for the ones listed here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cumulo_control::{Cluster, ClusterInfo, Controller, Options, Report, open_store};
use cumulo_driver_sim::{SimClock, SimConfig, SimDriver};
use cumulo_store::budget::{Budget, BudgetKind, BudgetRecord};
use cumulo_store::{JobFilter, NewJob, Store, TenantRecord};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, GpuModel, GpuSelector, JobId, JobSpec, JobState, MilliGpu, Money, Priority,
};

/// Two nodes of 8 GPUs; jobs without a duration run 600 s of the manual clock.
struct World {
    _dir: PathBuf,
    clock: SimClock,
    store: Arc<dyn Store>,
    sim: SimDriver,
}

const QUEUE_LIMIT: u32 = 3;
const LOST_AFTER_S: u64 = 30;

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap().keep();
        let clock = SimClock::manual(chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap());
        let store = open_store(dir.join("cumulo.db").to_str().unwrap()).await.unwrap();
        let mut config = SimConfig::uniform("sim-a", 2, Some(GpuModel::H100), 8, 64, 512 * 1024);
        config.default_duration = Duration::from_secs(600);
        let sim = SimDriver::open(config, clock.clone()).unwrap();
        World { _dir: dir, clock, store, sim }
    }

    /// A controller over the world, with a pending window of [`QUEUE_LIMIT`] jobs.
    fn controller(&self) -> Controller {
        let info =
            ClusterInfo::new("sim-a", "local", "sim", CapacityKind::OnDemand, Money::from_dollars_f64(10.0).unwrap());
        let mut options = Options::new(self.store.clone(), vec![Cluster { info, driver: Arc::new(self.sim.clone()) }]);
        let clock = self.clock.clone();
        options.clock = Arc::new(move || clock.now());
        options.lost_after = Duration::from_secs(LOST_AFTER_S);
        options.queue_limit = QUEUE_LIMIT;
        Controller::new(options)
    }

    async fn submit(&self, spec: JobSpec) -> JobId {
        self.store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id
    }

    /// Every job's state and pending reason.
    async fn decisions(&self) -> BTreeMap<JobId, (JobState, Option<String>)> {
        let page = self.store.list_jobs(JobFilter { limit: 1000, ..JobFilter::default() }).await.unwrap();
        page.jobs.into_iter().map(|j| (j.id, (j.state, j.pending_reason))).collect()
    }

    /// One pass of `controller`; where it kept the last plan, a fresh controller plans on the same
    /// stored state and must place, preempt and change nothing.
    async fn pass(&self, controller: &Controller) -> Report {
        let report = controller.reconcile_once().await.unwrap();
        if report.plan_skipped {
            let before = self.decisions().await;
            let mut fresh = Report::default();
            self.controller().plan(&mut fresh).await.unwrap();
            assert!(fresh.planned.is_empty() && fresh.preempted.is_empty(), "a kept plan missed a change: {fresh:?}");
            assert_eq!(self.decisions().await, before, "a kept plan missed a change in pending reasons");
            assert_eq!(fresh.pending, report.pending, "the kept plan's pending count");
        }
        report
    }

    /// Passes until one keeps the last plan (at most four).
    async fn settle(&self, controller: &Controller) {
        for _ in 0..4 {
            if self.pass(controller).await.plan_skipped {
                return;
            }
        }
        panic!("the loop never settled on an unchanged backlog");
    }
}

fn gpu_job(name: &str, gpus: u32) -> JobSpec {
    let mut spec = JobSpec::new(name, "research");
    spec.resources[0].accelerators =
        Some(AcceleratorDemand::new(GpuSelector::Models(vec![GpuModel::H100]), MilliGpu::whole(gpus)));
    spec
}

/// A full fleet (two jobs of 8 GPUs running) and a backlog of five more, two beyond the window.
async fn backlog(world: &World, controller: &Controller) -> Vec<JobId> {
    let mut jobs = Vec::new();
    for i in 0..7 {
        jobs.push(world.submit(gpu_job(&format!("job-{i}"), 8)).await);
    }
    let first = world.pass(controller).await;
    assert_eq!(first.planned.len(), 2, "{first:?}");
    world.settle(controller).await;
    jobs
}

#[tokio::test]
async fn an_unchanged_backlog_is_planned_once_and_kept() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    for _ in 0..3 {
        let report = world.pass(&controller).await;
        assert!(report.plan_skipped, "{report:?}");
        assert_eq!(report.pending, 3, "the window's jobs wait: {report:?}");
    }
    // A job of the backlog's priority lands behind the window: nothing the plan reads changed.
    world.submit(gpu_job("behind", 8)).await;
    assert!(world.pass(&controller).await.plan_skipped);
}

#[tokio::test]
async fn a_new_job_in_the_window_is_planned() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    let mut urgent = gpu_job("urgent", 1);
    urgent.priority = Priority::HIGH;
    world.submit(urgent).await;
    let report = world.pass(&controller).await;
    assert!(!report.plan_skipped, "{report:?}");
}

#[tokio::test]
async fn a_cancelled_job_in_the_window_is_planned_again() {
    let world = World::new().await;
    let controller = world.controller();
    let jobs = backlog(&world, &controller).await;
    let pending: Vec<JobId> = world.store.pending_jobs(1).await.unwrap().iter().map(|j| j.id).collect();
    assert!(jobs.contains(&pending[0]));
    world.store.cancel_job(pending[0]).await.unwrap();
    let report = world.pass(&controller).await;
    assert!(!report.plan_skipped, "{report:?}");
    world.settle(&controller).await;
}

#[tokio::test]
async fn an_ended_attempt_is_planned_again_and_frees_room() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    world.clock.advance(Duration::from_secs(601));
    let report = world.pass(&controller).await;
    assert!(!report.plan_skipped, "{report:?}");
    assert_eq!(report.planned.len(), 2, "the two ended jobs' room goes to the next two: {report:?}");
}

#[tokio::test]
async fn a_lost_and_restored_node_is_planned_again() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    world.sim.lose_node("sim-a-0001");
    assert!(!world.pass(&controller).await.plan_skipped);
    world.settle(&controller).await;
    world.sim.restore_node("sim-a-0001");
    let report = world.pass(&controller).await;
    assert!(!report.plan_skipped, "{report:?}");
    assert_eq!(report.planned.len(), 1, "the restored node takes a job: {report:?}");
}

#[tokio::test]
async fn a_cluster_down_for_lost_after_is_planned_again() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    world.sim.set_unreachable(true);
    // Within `lost_after` the plan offers the last picture: the same input, the same decision.
    // (Not checked against a fresh controller: it has no last picture to offer.)
    assert!(controller.reconcile_once().await.unwrap().plan_skipped);
    world.clock.advance(Duration::from_secs(LOST_AFTER_S + 1));
    let report = controller.reconcile_once().await.unwrap();
    assert!(!report.plan_skipped, "the cluster now offers nothing: {report:?}");
}

#[tokio::test]
async fn a_new_tenant_or_budget_is_planned_again() {
    let world = World::new().await;
    let controller = world.controller();
    backlog(&world, &controller).await;
    let tenant = TenantRecord {
        name: "vision".into(),
        weight: 3,
        gpus_milli: None,
        cpus_milli: None,
        created_at: world.clock.now(),
    };
    world.store.create_tenant(tenant).await.unwrap();
    assert!(!world.pass(&controller).await.plan_skipped);
    world.settle(&controller).await;
    let budget = Budget { monthly: Money(0), kind: BudgetKind::Hard };
    world
        .store
        .set_budget(BudgetRecord { tenant: "research".into(), budget, updated_at: world.clock.now() })
        .await
        .unwrap();
    let report = world.pass(&controller).await;
    assert!(!report.plan_skipped, "{report:?}");
    world.settle(&controller).await;
}

#[tokio::test]
async fn running_work_with_a_known_end_keeps_the_loop_planning() {
    let world = World::new().await;
    let controller = world.controller();
    for i in 0..4 {
        let mut spec = gpu_job(&format!("timed-{i}"), 8);
        spec.duration_s = Some(3600);
        world.submit(spec).await;
    }
    for _ in 0..4 {
        let report = world.pass(&controller).await;
        assert!(!report.plan_skipped, "reservations move with the clock: {report:?}");
        world.clock.advance(Duration::from_secs(1));
    }
}

#[tokio::test]
async fn a_job_waiting_for_another_keeps_the_loop_planning() {
    let world = World::new().await;
    let controller = world.controller();
    let jobs = backlog(&world, &controller).await;
    // The dependency waits beyond the window; cancelling it there must still end the dependant.
    let dependency = *jobs.last().unwrap();
    let mut dependant = gpu_job("dependant", 8);
    dependant.priority = Priority::HIGH;
    dependant.after = vec![dependency];
    let dependant = world.submit(dependant).await;
    for _ in 0..3 {
        assert!(!world.pass(&controller).await.plan_skipped);
    }
    world.store.cancel_job(dependency).await.unwrap();
    world.pass(&controller).await;
    assert_eq!(world.store.get_job(dependant).await.unwrap().state, JobState::Cancelled);
}
