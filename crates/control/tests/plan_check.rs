//! The leader's plan check (`cumulo_control::check::check_plan`, run on every plan before it is
//! committed) against deliberately corrupted plans: a correct plan passes unchanged, a placement
//! that over-commits a node or lands on a cordoned node is refused with the rule it broke, and the
//! good placements of the same plan are kept.

use cumulo_control::check::check_plan;
use cumulo_sched::{NodeState, Plan, Pool, PoolId, QueuedJob, Snapshot, schedule};
use cumulo_types::{CapacityKind, JobId, JobSpec, Money, NodeType, ResourceOption};

/// One pool of `nodes` CPU nodes with 4 vCPUs each; node `cordoned` (if any) takes nothing new.
fn snapshot(nodes: u32, cordoned: Option<u32>) -> Snapshot {
    let pool = Pool {
        id: PoolId(0),
        name: "local/lab/a/cpu4/on-demand".into(),
        provider: "local".into(),
        region: "lab".into(),
        zone: "a".into(),
        capacity: CapacityKind::OnDemand,
        node_type: NodeType {
            name: "cpu4".into(),
            gpu: None,
            gpus: 0,
            vcpus: 4,
            memory_gb: 16,
            nvlink_domain_nodes: 1,
        },
        price_per_node_hour: Money::from_dollars_f64(1.0).unwrap(),
        nodes: (0..nodes)
            .map(|i| NodeState { name: format!("n{i}"), block: 0, nvlink_domain: i, schedulable: Some(i) != cordoned })
            .collect(),
    };
    Snapshot { pools: vec![pool], running: Vec::new(), tenants: Vec::new() }
}

/// `count` jobs that each need one whole 4-vCPU node.
fn queue(count: u64) -> Vec<QueuedJob> {
    (1..=count)
        .flat_map(|id| {
            let mut spec = JobSpec::new(&format!("job-{id}"), "default");
            spec.resources = vec![ResourceOption { cpus_milli: 4000, memory_mib: 1024, ..ResourceOption::default() }];
            QueuedJob::from_spec(JobId(id), &spec, 0)
        })
        .collect()
}

fn placed_nodes(plan: &Plan) -> Vec<(u64, u32)> {
    plan.placements.iter().map(|p| (p.job.0, p.nodes[0].node)).collect()
}

#[test]
fn a_correct_plan_passes_unchanged() {
    let snapshot = snapshot(2, None);
    let queue = queue(2);
    let plan = schedule(&snapshot, &queue, 0).unwrap();
    assert_eq!(plan.placements.len(), 2, "both jobs fit, one per node");
    let checked = check_plan(&snapshot, &queue, plan.clone());
    assert!(checked.refused.is_empty(), "a plan the engine made correctly is never refused: {:?}", checked.refused);
    assert_eq!(checked.plan, plan, "and it is applied exactly as made");
}

#[test]
fn a_placement_that_over_commits_a_node_is_refused_and_the_rest_kept() {
    let snapshot = snapshot(2, None);
    let queue = queue(2);
    let mut plan = schedule(&snapshot, &queue, 0).unwrap();
    // Corrupt: put the second job on the first job's node (4 + 4 vCPUs on a 4-vCPU node).
    let first_node = plan.placements[0].nodes[0].node;
    plan.placements[1].nodes[0].node = first_node;
    let second = plan.placements[1].job;
    let checked = check_plan(&snapshot, &queue, plan);
    assert_eq!(placed_nodes(&checked.plan), vec![(1, first_node)], "the first, valid placement is kept");
    assert_eq!(checked.refused.len(), 1, "exactly the corrupted placement is refused: {:?}", checked.refused);
    assert_eq!(checked.refused[0].job, second);
    assert!(
        checked.refused[0].reason.contains("capacity"),
        "the reason names the broken rule: {}",
        checked.refused[0].reason
    );
    assert!(
        checked.plan.pending.iter().any(|p| p.job == second),
        "the refused job stays pending in the applied plan: {:?}",
        checked.plan.pending
    );
    cumulo_sched::verify_plan(&snapshot, &queue, &checked.plan).expect("what is applied verifies");
}

#[test]
fn a_placement_on_a_cordoned_node_or_a_missing_node_is_refused() {
    let snapshot = snapshot(3, Some(2));
    let queue = queue(3);
    let mut plan = schedule(&snapshot, &queue, 0).unwrap();
    assert_eq!(plan.placements.len(), 2, "the cordoned node takes nothing");
    // Corrupt: the first job onto the cordoned node, the second onto a node that does not exist.
    plan.placements[0].nodes[0].node = 2;
    plan.placements[1].nodes[0].node = 9;
    let checked = check_plan(&snapshot, &queue, plan);
    assert!(checked.plan.placements.is_empty(), "nothing corrupted is applied: {:?}", placed_nodes(&checked.plan));
    let reasons: Vec<&str> = checked.refused.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("not schedulable"), "{}", reasons[0]);
    assert!(reasons[1].contains("has no node 9"), "{}", reasons[1]);
}

#[test]
fn a_job_placed_twice_keeps_one_placement() {
    let snapshot = snapshot(2, None);
    let queue = queue(1);
    let mut plan = schedule(&snapshot, &queue, 0).unwrap();
    let mut copy = plan.placements[0].clone();
    copy.nodes[0].node = 1 - copy.nodes[0].node;
    plan.placements.push(copy);
    let checked = check_plan(&snapshot, &queue, plan);
    assert_eq!(checked.plan.placements.len(), 1, "one placement per job survives");
    assert_eq!(checked.refused.len(), 1);
    assert!(checked.refused[0].reason.contains("placed twice"), "{}", checked.refused[0].reason);
}
