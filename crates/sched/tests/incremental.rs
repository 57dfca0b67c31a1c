//! The scheduler kept between passes decides exactly what a scheduler built afresh from the
//! equivalent snapshot decides: random sequences of passes (whose plans are committed), releases
//! of running work, nodes cordoned and opened, and price changes, each followed by a pass on both
//! paths. Plans must be equal and pass the verifier, and the kept state must equal a fresh build.

use cumulo_sched::{Config, Plan, QueuedJob, RunningAlloc, Scheduler, Snapshot, schedule_with, verify_plan};
use cumulo_synth::{FleetBuilder, job};
use cumulo_types::{CapacityKind, GpuModel, JobId, Money, Priority, SpreadPolicy, TopologyNeed};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct JobSpec {
    kind: u8,
    nodes: u32,
    topology: u8,
    priority: u8,
    preemptible: bool,
    tenant: u8,
    spread: u8,
    /// Expected run time in minutes; 0: none (so gangs reserve, and jobs backfill or are held).
    minutes: u8,
}

#[derive(Clone, Debug)]
enum Step {
    /// New jobs arrive, then a pass.
    Pass(Vec<JobSpec>),
    /// The running allocation at this index (modulo their count) ends.
    Release(usize),
    /// Node (pool, node, modulo their counts) cordoned or opened.
    Cordon(usize, usize, bool),
    /// A whole pool cordoned or opened, as an outage and its end.
    Outage(usize, bool),
    Price(usize, i64),
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        0u8..7,
        1u32..8,
        0u8..4,
        0u8..3,
        any::<bool>(),
        0u8..3,
        prop_oneof![6 => Just(0u8), 1 => Just(1u8)],
        prop_oneof![1 => Just(0u8), 3 => 1u8..8],
    )
        .prop_map(|(kind, nodes, topology, priority, preemptible, tenant, spread, minutes)| JobSpec {
            kind,
            nodes,
            topology,
            priority,
            preemptible,
            tenant,
            spread,
            minutes,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(job_spec(), 0..12).prop_map(Step::Pass),
        4 => any::<usize>().prop_map(Step::Release),
        2 => (any::<usize>(), any::<usize>(), any::<bool>()).prop_map(|(p, n, open)| Step::Cordon(p, n, open)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(p, open)| Step::Outage(p, open)),
        1 => (any::<usize>(), 1i64..60).prop_map(|(p, price)| Step::Price(p, price)),
    ]
}

fn fleet() -> Snapshot {
    FleetBuilder::new()
        .nvl72_racks("aws", 2)
        .nodes_per_block(36)
        .price(30)
        .hgx("gcp", GpuModel::H100, 6)
        .nodes_per_block(3)
        .price(20)
        .hgx("oci", GpuModel::H100, 4)
        .nodes_per_block(2)
        .price(25)
        .capacity(CapacityKind::Spot)
        .hgx("aws", GpuModel::H200, 4)
        .nodes_per_block(2)
        .price(22)
        .region("aws-region-2", "zone-b")
        .cpu_nodes("gcp", 6, 16)
        .nodes_per_block(3)
        .price(2)
        .tenant("a", 2, Default::default())
        .tenant("c", 1, cumulo_sched::Quota { gpus_milli: Some(40_000), cpus_milli: None })
        .build()
}

fn build_job(id: u64, s: &JobSpec, replica: u32, now: u64) -> QueuedJob {
    let topology =
        [TopologyNeed::Any, TopologyNeed::NvlinkDomain, TopologyNeed::Block, TopologyNeed::Zone][s.topology as usize];
    let priority = [Priority::LOW, Priority::NORMAL, Priority::HIGH][s.priority as usize];
    let mut j = match s.kind {
        0 => job(id).gpus("GB200", "4").nodes(s.nodes * 2),
        1 => job(id).gpus("GB200", "2").nodes(s.nodes),
        2 => job(id).gpus("H100|H200", "8").nodes(s.nodes.div_ceil(2)),
        3 => job(id).gpus("H100", "0.25").cpus(2),
        4 => job(id).gpus_min_memory(100, "0.5"),
        5 => job(id).cpus(1 + s.nodes % 4).memory_gib(2).nodes(1 + s.nodes / 4),
        _ => job(id).gpus("H100", "3").cpus(20).nodes(s.nodes.div_ceil(3)),
    }
    .topology(topology)
    .priority(priority)
    .tenant(["a", "b", "c"][s.tenant as usize]);
    if s.preemptible {
        j = j.preemptible();
    }
    if s.minutes > 0 {
        j = j.duration(u64::from(s.minutes) * 60);
    }
    let mut q = j.replica(replica).spread([SpreadPolicy::None, SpreadPolicy::Providers][s.spread as usize]).build();
    q.submitted_at = now;
    q
}

/// What the caller of a kept scheduler does with a plan: placements run, preempted work stops
/// and waits again, placed jobs leave the queue.
fn apply(snapshot: &mut Snapshot, queue: &mut Vec<QueuedJob>, plan: &Plan) {
    for pre in &plan.preemptions {
        let i = snapshot
            .running
            .iter()
            .position(|r| r.job == pre.victim && r.replica == pre.victim_replica)
            .expect("victims run");
        let r = snapshot.running.swap_remove(i);
        let mut again = job(r.job.0).tenant(&r.tenant).priority(r.priority).build();
        again.replica = r.replica;
        again.preemptible = r.preemptible;
        // the victim's own request is not kept in the snapshot: it waits again as a CPU task
        again.options_mut()[0].cpus_milli = 1000;
        again.submitted_at = plan.at;
        queue.push(again);
    }
    for p in &plan.placements {
        let i = queue.iter().position(|q| q.id == p.job && q.replica == p.replica).expect("placed jobs are queued");
        let q = queue.remove(i);
        snapshot.running.push(RunningAlloc {
            job: q.id,
            replica: q.replica,
            tenant: q.tenant,
            priority: q.priority,
            preemptible: q.preemptible,
            pool: p.pool,
            nodes: p.nodes.clone(),
            started_at: plan.at,
            expected_end: q.duration_s.map(|d| plan.at + d),
        });
    }
}

fn check_same_state(kept: &Scheduler, snapshot: &Snapshot, config: &Config, after: &str) -> Result<(), TestCaseError> {
    let fresh = Scheduler::new(snapshot, *config).expect("the snapshot is consistent");
    if let Some(diff) = kept.differences(&fresh) {
        return Err(TestCaseError::fail(format!("after {after}: {diff}")));
    }
    Ok(())
}

fn run(steps: Vec<Step>, config: Config) -> Result<(), TestCaseError> {
    let mut snapshot = fleet();
    let mut kept = Scheduler::new(&snapshot, config).expect("consistent");
    let mut queue: Vec<QueuedJob> = Vec::new();
    let mut next_id = 1u64;
    let mut now = 1_000u64;
    for (k, step) in steps.iter().enumerate() {
        match step {
            Step::Pass(jobs) => {
                for s in jobs {
                    let replicas = if s.spread > 0 { 3 } else { 1 };
                    queue.extend((0..replicas).map(|r| build_job(next_id, s, r, now)));
                    next_id += 1;
                }
            }
            Step::Release(i) => {
                if !snapshot.running.is_empty() {
                    let r = snapshot.running.swap_remove(i % snapshot.running.len());
                    prop_assert!(kept.release(r.job, r.replica), "release of a running job");
                }
                prop_assert!(!kept.release(JobId(u64::MAX), 0), "release of a job that does not run");
            }
            Step::Cordon(p, n, open) => {
                let p = p % snapshot.pools.len();
                let n = n % snapshot.pools[p].nodes.len();
                let changed = snapshot.pools[p].nodes[n].schedulable != *open;
                snapshot.pools[p].nodes[n].schedulable = *open;
                let id = snapshot.pools[p].id;
                prop_assert_eq!(kept.set_schedulable(id, n as u32, *open).expect("known node"), changed);
            }
            Step::Outage(p, open) => {
                let p = p % snapshot.pools.len();
                let id = snapshot.pools[p].id;
                for n in 0..snapshot.pools[p].nodes.len() {
                    snapshot.pools[p].nodes[n].schedulable = *open;
                    kept.set_schedulable(id, n as u32, *open).expect("known node");
                }
            }
            Step::Price(p, price) => {
                let p = p % snapshot.pools.len();
                snapshot.pools[p].price_per_node_hour = Money::from_dollars(*price);
                kept.set_price(snapshot.pools[p].id, Money::from_dollars(*price)).expect("known pool");
            }
        }
        check_same_state(&kept, &snapshot, &config, &format!("step {k} {step:?}"))?;
        // a pass after every step, on both paths
        now += 60;
        let fresh_plan = schedule_with(&snapshot, &queue, now, &config).expect("consistent");
        verify_plan(&snapshot, &queue, &fresh_plan).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let kept_plan = kept.schedule(&queue, now);
        prop_assert_eq!(&kept_plan, &fresh_plan, "plans differ after step {}", k);
        apply(&mut snapshot, &mut queue, &fresh_plan);
        check_same_state(&kept, &snapshot, &config, &format!("the pass after step {k}"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_kept_scheduler_plans_like_a_fresh_build(steps in prop::collection::vec(step(), 1..40)) {
        run(steps, Config::default())?;
    }

    #[test]
    fn a_kept_scheduler_plans_like_a_fresh_build_without_preemption(steps in prop::collection::vec(step(), 1..25)) {
        run(steps, Config { preemption: false, ..Config::default() })?;
    }
}

#[test]
fn changes_name_unknown_pools_and_nodes() {
    let snapshot = fleet();
    let mut s = Scheduler::new(&snapshot, Config::default()).unwrap();
    let err = s.set_price(cumulo_sched::PoolId(999), Money::from_dollars(1)).unwrap_err();
    assert_eq!(err.to_string(), "pool 999 is not in the scheduler's fleet");
    let id = snapshot.pools[0].id;
    let err = s.set_schedulable(id, 10_000, false).unwrap_err();
    assert_eq!(err.to_string(), format!("node 10000 is out of range for pool {id} (36 nodes)"));
    assert!(!s.set_price(id, snapshot.pools[0].price_per_node_hour).unwrap(), "same price: no change");
}
