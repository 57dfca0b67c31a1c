//! Inference replicas through the reconcile loop: simulated clusters of several providers, a real
//! SQLite store and a manual clock. Each replica is its own attempt; an outage of one provider
//! loses only its replicas, which are re-placed elsewhere while the others keep running; cancel
//! stops every replica; lost attempts are stopped on their engine once it answers again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cumulo_control::{Cluster, ClusterInfo, Controller, Options, open_store};
use cumulo_driver::{AttemptState as DriverState, Driver};
use cumulo_driver_sim::{DispatchRecord, SimClock, SimConfig, SimDriver, read_dispatch_log};
use cumulo_store::{AttemptRecord, AttemptState, NewJob, Store};
use cumulo_types::{
    AcceleratorDemand, AttemptId, CapacityKind, GpuModel, GpuSelector, JobId, JobKind, JobSpec, JobState, MilliGpu,
    Money, SpreadPolicy,
};

/// Simulated clusters, one per provider, each of `nodes` nodes with 8 H100.
struct World {
    dir: PathBuf,
    clock: SimClock,
    store: Arc<dyn Store>,
    /// (provider, simulated cluster)
    sims: Vec<(String, SimDriver)>,
}

impl World {
    async fn new(providers: &[&str], nodes: u32) -> World {
        let dir = tempfile::tempdir().unwrap().keep();
        let clock = SimClock::manual(chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap());
        let store = open_store(dir.join("cumulo.db").to_str().unwrap()).await.unwrap();
        let sims = providers
            .iter()
            .map(|provider| {
                let mut config =
                    SimConfig::uniform(&format!("sim-{provider}"), nodes, Some(GpuModel::H100), 8, 64, 512 * 1024);
                config.dispatch_log = Some(dir.join(format!("dispatch-{provider}.jsonl")));
                (provider.to_string(), SimDriver::open(config, clock.clone()).unwrap())
            })
            .collect();
        World { dir, clock, store, sims }
    }

    /// A controller over every cluster (a fresh one has no memory: as after a restart).
    fn controller(&self) -> Controller {
        let clusters = self
            .sims
            .iter()
            .map(|(provider, sim)| Cluster {
                info: ClusterInfo::new(
                    sim.cluster().to_string(),
                    provider.clone(),
                    "sim",
                    CapacityKind::OnDemand,
                    Money::from_dollars_f64(10.0).unwrap(),
                ),
                driver: Arc::new(sim.clone()) as Arc<dyn Driver>,
            })
            .collect();
        let mut options = Options::new(self.store.clone(), clusters);
        let clock = self.clock.clone();
        options.clock = Arc::new(move || clock.now());
        options.lost_after = Duration::from_secs(30);
        Controller::new(options)
    }

    fn sim(&self, provider: &str) -> &SimDriver {
        &self.sims.iter().find(|(p, _)| p == provider).expect("a simulated provider").1
    }

    async fn submit(&self, spec: JobSpec) -> JobId {
        self.store.submit(vec![NewJob { spec, idempotency_key: None }]).await.unwrap()[0].id
    }

    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    async fn attempts(&self, job: JobId) -> Vec<AttemptRecord> {
        self.store.get_job(job).await.unwrap().attempts
    }

    /// How often each attempt was dispatched, over every simulated cluster.
    fn dispatches(&self) -> Vec<DispatchRecord> {
        let mut records = Vec::new();
        for (provider, _) in &self.sims {
            let path = self.dir.join(format!("dispatch-{provider}.jsonl"));
            if path.exists() {
                records.extend(read_dispatch_log(&path).unwrap());
            }
        }
        records
    }

    fn dispatch_counts(&self) -> BTreeMap<AttemptId, usize> {
        let mut counts = BTreeMap::new();
        for record in self.dispatches() {
            *counts.entry(record.attempt).or_insert(0) += 1;
        }
        counts
    }

    /// The engine's view of an attempt on `provider`'s cluster.
    async fn engine_state(&self, provider: &str, attempt: AttemptId) -> DriverState {
        self.sim(provider).observe(&[attempt]).await.unwrap().remove(0).state
    }

    /// Waits (briefly) until the loop's background cancels of lost attempts are confirmed.
    async fn lost_attempts_stopped(&self) -> bool {
        for _ in 0..100 {
            if self.store.attempts_to_stop_on_engine().await.unwrap().is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

fn provider_of(attempt: &AttemptRecord) -> String {
    attempt.placement["offer"]["provider"].as_str().expect("placements name their provider").to_string()
}

/// Running attempts by replica, with their providers.
fn running(attempts: &[AttemptRecord]) -> BTreeMap<u32, String> {
    attempts.iter().filter(|a| a.state == AttemptState::Running).map(|a| (a.replica, provider_of(a))).collect()
}

fn providers(running: &BTreeMap<u32, String>) -> BTreeSet<String> {
    running.values().cloned().collect()
}

/// An inference server: `replicas` replicas of one node with 8 H100 each, spread over providers.
fn server(replicas: u32) -> JobSpec {
    let mut spec = JobSpec::new("serve", "product");
    spec.kind = JobKind::Inference;
    spec.replicas = replicas;
    spec.spread = SpreadPolicy::Providers;
    spec.resources[0].accelerators = Some(AcceleratorDemand {
        selector: GpuSelector::Models(vec![GpuModel::H100]),
        per_node: MilliGpu::whole(8),
        names: Vec::new(),
    });
    spec.duration_s = Some(1_000_000);
    spec
}

#[tokio::test]
async fn replicas_keep_their_count_over_two_providers_through_an_outage_and_cancel_stops_them_all() {
    let world = World::new(&["aws", "gcp", "azure"], 2).await;
    let controller = world.controller();
    let job = world.submit(server(4)).await;

    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.planned.len(), 4, "one attempt per replica: {report:?}");
    assert_eq!(report.launched, report.planned, "{:#?}", world.attempts(job).await);
    let ids: BTreeSet<AttemptId> = report.planned.iter().copied().collect();
    assert_eq!(ids.len(), 4, "each replica has its own attempt id");
    let replicas: BTreeSet<u32> = world.attempts(job).await.iter().map(|a| a.replica).collect();
    assert_eq!(replicas, (0..4).collect());
    // Each launch tells its engine which replica it runs (CUMULO_REPLICA).
    let launched: BTreeMap<AttemptId, u32> = world.dispatches().iter().map(|d| (d.attempt, d.replica)).collect();
    for attempt in world.attempts(job).await {
        assert_eq!(launched.get(&attempt.id), Some(&attempt.replica), "{launched:?}");
    }
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let before = running(&world.attempts(job).await);
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(providers(&before).len() >= 2, "spread over providers: {before:?}");
    assert_eq!(world.store.get_job(job).await.unwrap().state, JobState::Running);

    // The provider holding the most replicas goes out.
    let mut per_provider: BTreeMap<&String, usize> = BTreeMap::new();
    for provider in before.values() {
        *per_provider.entry(provider).or_default() += 1;
    }
    let (out, lost_count) = per_provider.iter().max_by_key(|(_, n)| **n).map(|(p, n)| ((*p).clone(), *n)).unwrap();
    world.sim(&out).set_unreachable(true);
    let report = controller.reconcile_once().await.unwrap();
    assert!(report.lost.is_empty(), "nothing is lost before lost_after: {report:?}");
    world.advance(31);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost.len(), lost_count, "only the replicas on {out} are lost: {report:?}");
    assert_eq!(report.planned.len(), lost_count, "and re-placed in the same pass: {report:?}");
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "the other replicas kept the job running");
    let lost: Vec<&AttemptRecord> = record.attempts.iter().filter(|a| a.state == AttemptState::Lost).collect();
    assert!(lost.iter().all(|a| provider_of(a) == out));
    let replaced: BTreeSet<u32> = lost.iter().map(|a| a.replica).collect();
    let new: BTreeSet<u32> =
        record.attempts.iter().filter(|a| report.planned.contains(&a.id)).map(|a| a.replica).collect();
    assert_eq!(new, replaced, "the lost replicas, and only they, get new attempts");
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let after = running(&world.attempts(job).await);
    assert_eq!(after.len(), 4, "four replicas run again: {after:?}");
    assert!(!providers(&after).contains(&out), "{after:?}");
    assert!(providers(&after).len() >= 2, "still over two providers: {after:?}");

    // The lost replicas still run on the unreachable engine: they are stopped once it answers.
    assert_eq!(world.store.attempts_to_stop_on_engine().await.unwrap().len(), lost_count);
    world.sim(&out).set_unreachable(false);
    controller.reconcile_once().await.unwrap();
    assert!(world.lost_attempts_stopped().await, "lost attempts are cancelled once their cluster answers");
    for attempt in &lost {
        assert_eq!(world.engine_state(&out, attempt.id).await, DriverState::Cancelled, "{}", attempt.id);
    }

    world.store.cancel_job(job).await.unwrap();
    controller.reconcile_once().await.unwrap();
    world.advance(1);
    controller.reconcile_once().await.unwrap();
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    let stopped: Vec<&AttemptRecord> = record.attempts.iter().filter(|a| a.state == AttemptState::Cancelled).collect();
    assert_eq!(stopped.len(), 4, "every running replica was cancelled: {:?}", record.attempts);
    for attempt in stopped {
        assert_eq!(world.engine_state(&provider_of(attempt), attempt.id).await, DriverState::Cancelled);
    }
    assert!(world.store.active_attempts().await.unwrap().is_empty());
    let counts = world.dispatch_counts();
    assert_eq!(counts.len(), 4 + lost_count);
    assert!(counts.values().all(|n| *n == 1), "nothing launched twice: {counts:?}");
}

#[tokio::test]
async fn a_replica_that_fails_is_placed_again_while_the_others_run() {
    let world = World::new(&["aws", "gcp"], 4).await;
    let controller = world.controller();
    let job = world.submit(server(3)).await;
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let first = world.attempts(job).await;
    let victim = first.iter().find(|a| a.replica == 1).unwrap();
    let node = victim.placement["nodes"][0]["node"].as_str().unwrap().to_string();
    world.sim(&provider_of(victim)).lose_node(&node);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost, vec![victim.id]);
    assert_eq!(report.planned.len(), 1);
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running);
    let replacement = record.attempts.iter().find(|a| a.id == report.planned[0]).unwrap();
    assert_eq!(replacement.replica, 1);
    assert_ne!(replacement.placement["nodes"][0]["node"].as_str().unwrap(), node, "not on the lost node");
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let now = running(&world.attempts(job).await);
    assert_eq!(now.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(providers(&now).len(), 2);
}

#[tokio::test]
async fn a_lost_attempt_is_stopped_on_its_engine_even_after_a_restart() {
    let world = World::new(&["aws"], 2).await;
    let mut spec = server(1);
    spec.kind = JobKind::Training;
    spec.spread = SpreadPolicy::None;
    let job = world.submit(spec).await;
    let controller = world.controller();
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let attempt = world.attempts(job).await[0].id;
    world.sim("aws").set_unreachable(true);
    controller.reconcile_once().await.unwrap();
    world.advance(31);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost, vec![attempt]);
    // Passes during the outage keep trying; none succeeds.
    controller.reconcile_once().await.unwrap();
    assert!(!world.lost_attempts_stopped().await, "the engine cannot confirm while it is out");
    drop(controller);
    // A restarted server still knows the lost attempt must be stopped.
    let restarted = world.controller();
    world.sim("aws").set_unreachable(false);
    let state = world.engine_state("aws", attempt).await;
    assert!(matches!(state, DriverState::Running { .. }), "still running on its engine: {state:?}");
    restarted.reconcile_once().await.unwrap();
    assert!(world.lost_attempts_stopped().await);
    assert_eq!(world.engine_state("aws", attempt).await, DriverState::Cancelled);
    // The job itself went on: requeued and placed again.
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.attempts.len(), 2);
    assert_ne!(record.state, JobState::Pending);
}

#[tokio::test]
async fn with_one_provider_left_lost_replicas_wait_for_a_second_one() {
    let world = World::new(&["aws", "gcp"], 4).await;
    let controller = world.controller();
    let job = world.submit(server(4)).await;
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let before = running(&world.attempts(job).await);
    assert_eq!(providers(&before).len(), 2, "{before:?}");
    let on_aws = before.values().filter(|p| *p == "aws").count();
    world.sim("aws").set_unreachable(true);
    controller.reconcile_once().await.unwrap();
    world.advance(31);
    let report = controller.reconcile_once().await.unwrap();
    assert_eq!(report.lost.len(), on_aws);
    // gcp has free nodes, but all four replicas on one provider would break the spread.
    assert!(report.planned.is_empty(), "{report:?}");
    let record = world.store.get_job(job).await.unwrap();
    assert_eq!(record.state, JobState::Running, "the gcp replicas keep serving");
    assert_eq!(running(&record.attempts).len(), 4 - on_aws);
    let reason = record.pending_reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("replica ") && reason.contains("waits: "), "says which replica waits: {reason}");
    world.sim("aws").set_unreachable(false);
    controller.reconcile_once().await.unwrap();
    world.advance(5);
    controller.reconcile_once().await.unwrap();
    let after = running(&world.attempts(job).await);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(providers(&after).len(), 2);
    assert!(world.lost_attempts_stopped().await);
}
