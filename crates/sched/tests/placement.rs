//! Placement rules written as data: a small fleet with one partly used GPU, a job, and where each
//! rule puts it.

use cumulo_sched::{
    Config, GpuAlloc, NodeAlloc, NodeState, PendingReason, PlacementRule, Plan, Pool, PoolId, QueuedJob, RunningAlloc,
    Scheduler, Snapshot, TargetClass,
};
use cumulo_types::{
    AcceleratorDemand, CapacityKind, GpuModel, GpuSelector, JobId, MilliGpu, Money, NodeType, Priority, ResourceOption,
    TopologyNeed,
};

const NOW: u64 = 1_000;

fn pool(id: u32, gpus: u32, price: i64) -> Pool {
    Pool {
        id: PoolId(id),
        name: format!("p{id}"),
        provider: "sim".into(),
        region: "r".into(),
        zone: "z".into(),
        capacity: CapacityKind::OnDemand,
        node_type: NodeType {
            name: if gpus > 0 { format!("t4x{gpus}") } else { "cpu".into() },
            gpu: (gpus > 0).then_some(GpuModel::T4),
            gpus,
            vcpus: 16,
            memory_gb: 64,
            nvlink_domain_nodes: 1,
        },
        price_per_node_hour: Money::from_dollars(price),
        nodes: vec![NodeState::new(format!("p{id}-n0"), 0, 0)],
    }
}

/// Pool 0 (cheap): one 2-GPU node whose GPU 0 is 600/1000 used. Pool 1 (dearer): one free 2-GPU
/// node. Pool 2: one CPU node.
fn fleet() -> Snapshot {
    Snapshot {
        pools: vec![pool(0, 2, 1), pool(1, 2, 5), pool(2, 0, 1)],
        running: vec![RunningAlloc {
            job: JobId(100),
            replica: 0,
            tenant: "t".into(),
            priority: Priority::NORMAL,
            preemptible: false,
            pool: PoolId(0),
            nodes: vec![NodeAlloc {
                node: 0,
                gpus: GpuAlloc::Fraction { gpu: 0, milli: 600 },
                cpus_milli: 1000,
                memory_mib: 1024,
            }],
            started_at: 0,
            expected_end: None,
        }],
        tenants: Vec::new(),
    }
}

fn gpu_job(id: u64, milli: u32) -> QueuedJob {
    job(
        id,
        Some(AcceleratorDemand {
            selector: GpuSelector::Models(vec![GpuModel::T4]),
            per_node: MilliGpu(milli),
            names: Vec::new(),
        }),
    )
}

fn job(id: u64, accelerators: Option<AcceleratorDemand>) -> QueuedJob {
    QueuedJob {
        id: JobId(id),
        replica: 0,
        tenant: "t".into(),
        priority: Priority::NORMAL,
        preemptible: false,
        resources: vec![ResourceOption {
            accelerators,
            cpus_milli: 1000,
            memory_mib: 1024,
            ..ResourceOption::default()
        }]
        .into(),
        ordered: false,
        num_nodes: 1,
        topology: TopologyNeed::Any,
        constraints: Default::default(),
        submitted_at: 0,
        spread: Default::default(),
        duration_s: None,
    }
}

fn halves_and_wholes() -> Vec<TargetClass> {
    [500, 1000]
        .into_iter()
        .map(|gpu_milli| TargetClass { gpu_milli, cpus_milli: 1000, memory_mib: 1024, models: Vec::new(), weight: 1 })
        .collect()
}

fn plan(placement: PlacementRule, target: &[TargetClass], queue: &[QueuedJob]) -> Plan {
    let config = Config { placement, cpu_work_on_gpu_nodes: true, ..Config::default() };
    let mut s = Scheduler::new(&fleet(), config).expect("consistent fleet");
    s.set_target(target);
    s.schedule_once(queue, NOW)
}

/// (pool, GPU allocation) of job `id`.
fn where_(plan: &Plan, id: u64) -> (u32, GpuAlloc) {
    let p = plan.placements.iter().find(|p| p.job == JobId(id)).unwrap_or_else(|| panic!("{id} not placed: {plan:?}"));
    (p.pool.0, p.nodes[0].gpus)
}

#[test]
fn fragmentation_rules_fill_the_shared_gpu_and_keep_whole_gpus_whole() {
    let q = [gpu_job(1, 400)];
    let shared = (0, GpuAlloc::Fraction { gpu: 0, milli: 400 });
    assert_eq!(
        where_(&plan(PlacementRule::Fragmentation { seed: 1 }, &halves_and_wholes(), &q), 1),
        shared,
        "FGD: 400 on the GPU with 400 free leaves nothing stranded"
    );
    assert_eq!(
        where_(&plan(PlacementRule::CostThenFragmentation, &halves_and_wholes(), &q), 1),
        shared,
        "Cumulo's rule, same tier of price (the cheapest pool has room)"
    );
    assert_eq!(where_(&plan(PlacementRule::BestFit, &[], &q), 1), shared, "best fit: the fullest GPU");
}

#[test]
fn cumulo_breaks_fragmentation_ties_by_price_and_fgd_is_price_blind() {
    // a whole GPU: pool 0's last whole GPU or one of pool 1's pair both leave the expected
    // fragmentation as it was (a tie); FGD draws among ties over both pools, Cumulo's rule takes
    // the cheaper pool
    let q = [gpu_job(1, 1000)];
    let target = halves_and_wholes();
    for seed in 0..8 {
        let cumulo = Config { placement: PlacementRule::CostThenFragmentation, ..Config::default() };
        let mut s = Scheduler::new(&fleet(), cumulo).unwrap();
        s.set_target(&target);
        assert_eq!(where_(&s.schedule_once(&q, NOW + seed), 1).0, 0, "the cheaper pool has room");
    }
    let fgd: std::collections::BTreeSet<u32> =
        (0..32).map(|seed| where_(&plan(PlacementRule::Fragmentation { seed }, &target, &q), 1).0).collect();
    assert_eq!(fgd.into_iter().collect::<Vec<_>>(), vec![0, 1], "FGD ignores price: ties drawn over both pools");
}

#[test]
fn cumulo_pays_more_rather_than_strand_a_node_that_expected_work_needs_whole() {
    // pool 0: a free 2-GPU node at $4/h; pool 1: a free 1-GPU node at $3/h; half the expected
    // work needs 2 GPUs. A 1-GPU job costs $2 on pool 0 but strands its other GPU for that half
    // (1 GPU x 1/2 x $2 per GPU x 4 = $4 more): it takes pool 1 at $3; cheapest best fit takes
    // pool 0
    let snapshot = Snapshot { pools: vec![pool(0, 2, 4), pool(1, 1, 3)], running: Vec::new(), tenants: Vec::new() };
    let target: Vec<TargetClass> = [2000, 1000]
        .into_iter()
        .map(|gpu_milli| TargetClass { gpu_milli, cpus_milli: 1000, memory_mib: 1024, models: Vec::new(), weight: 1 })
        .collect();
    let q = [gpu_job(1, 1000)];
    let run = |placement| {
        let mut s = Scheduler::new(&snapshot, Config { placement, ..Config::default() }).unwrap();
        s.set_target(&target);
        s.schedule_once(&q, NOW)
    };
    assert_eq!(where_(&run(PlacementRule::CostThenFragmentation), 1).0, 1, "stranding costs more than $1/h");
    assert_eq!(where_(&run(PlacementRule::CheapestBestFit), 1).0, 0, "the cheaper node share");
}

#[test]
fn without_a_target_cumulos_rule_is_the_cheapest_best_fit() {
    let q = [gpu_job(1, 400)];
    assert_eq!(
        plan(PlacementRule::CostThenFragmentation, &[], &q),
        plan(PlacementRule::CheapestBestFit, &[], &q),
        "no target workload: nothing to weigh fragmentation against"
    );
}

#[test]
fn random_placement_is_seeded_and_reaches_every_fitting_pool() {
    let q = [gpu_job(1, 1000)];
    let pools: std::collections::BTreeSet<u32> =
        (0..32).map(|seed| where_(&plan(PlacementRule::Random { seed }, &[], &q), 1).0).collect();
    assert_eq!(pools.into_iter().collect::<Vec<_>>(), vec![0, 1], "both pools with a free GPU are drawn");
    assert_eq!(
        plan(PlacementRule::Random { seed: 9 }, &[], &q),
        plan(PlacementRule::Random { seed: 9 }, &[], &q),
        "the same seed, the same draw"
    );
}

#[test]
fn cpu_work_goes_to_gpu_nodes_only_when_allowed_and_cumulo_prefers_cpu_nodes() {
    let cpu_job = job(1, None);
    let p = plan(PlacementRule::CostThenFragmentation, &halves_and_wholes(), std::slice::from_ref(&cpu_job));
    assert_eq!(where_(&p, 1), (2, GpuAlloc::None), "a CPU node keeps GPU nodes' vCPUs for GPU work");
    // a fleet of GPU nodes only
    let mut gpu_only = fleet();
    gpu_only.pools.truncate(2);
    let allowed = Config { cpu_work_on_gpu_nodes: true, ..Config::default() };
    let plan = Scheduler::new(&gpu_only, allowed).unwrap().schedule_once(std::slice::from_ref(&cpu_job), NOW);
    assert_eq!(where_(&plan, 1), (0, GpuAlloc::None), "allowed: the vCPUs of the cheapest GPU node");
    let plan = Scheduler::new(&gpu_only, Config::default()).unwrap().schedule_once(&[cpu_job], NOW);
    assert!(
        matches!(&plan.pending[0].reason, PendingReason::NoSuchGpuModel { wanted } if wanted == "CPU-only nodes"),
        "by default CPU-only work never uses GPU nodes: {:?}",
        plan.pending
    );
}

#[test]
fn cumulo_weighs_what_a_share_strands_at_half_its_price() {
    // Pool 0 ($1): a free 2-GPU node. Pool 1 ($5): a 2-GPU node whose GPU 0 has 300 free. A 300
    // share on pool 1's GPU 0 leaves nothing stranded (stranded growth -600 of 2 class weights,
    // at $2.5 per GPU: -$0.375 at half the price, node share $0.75); on pool 0 it breaks a whole
    // GPU (growth +700 at $0.5 per GPU: +$0.0875, node share $0.15). At half the price the cheap
    // GPU wins; at four times (the weight of whole-GPU work) the dear GPU's rest would (-$2.25).
    let mut fleet = fleet();
    fleet.pools = vec![pool(0, 2, 1), pool(1, 2, 5)];
    fleet.running[0].pool = PoolId(1);
    fleet.running[0].nodes[0].gpus = GpuAlloc::Fraction { gpu: 0, milli: 700 };
    let config = Config { placement: PlacementRule::CostThenFragmentation, ..Config::default() };
    let mut s = Scheduler::new(&fleet, config).expect("consistent fleet");
    s.set_target(&halves_and_wholes());
    let plan = s.schedule_once(&[gpu_job(1, 300)], NOW);
    assert_eq!(
        where_(&plan, 1),
        (0, GpuAlloc::Fraction { gpu: 0, milli: 300 }),
        "the share goes to the cheap pool's free GPU: {plan:?}"
    );
}
