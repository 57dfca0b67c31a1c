//! Scheduling scenarios written as data: a fleet, a queue, and what the plan must say.

use cumulo_sched::{
    Error, GpuAlloc, PendingReason, Placement, Plan, PoolId, QueuedJob, Quota, Snapshot, schedule, verify_plan,
};
use cumulo_synth::{FleetBuilder, OnlyOn, job};
use cumulo_types::{CapacityKind, GpuModel, JobId, Money, Priority, TopologyNeed};

const NOW: u64 = 1_000_000;

/// Schedules, checks the plan with the independent verifier, and returns it.
fn check(snapshot: &Snapshot, queue: &[QueuedJob]) -> Plan {
    let plan = schedule(snapshot, queue, NOW).expect("snapshot is consistent");
    verify_plan(snapshot, queue, &plan).expect("plan keeps every invariant");
    let again = schedule(snapshot, queue, NOW).unwrap();
    assert_eq!(plan, again, "same input, same plan");
    plan
}

fn placed(plan: &Plan, id: u64) -> &Placement {
    plan.placements
        .iter()
        .find(|p| p.job == JobId(id))
        .unwrap_or_else(|| panic!("job {id} not placed: {:?}", plan.pending.iter().find(|p| p.job == JobId(id))))
}

fn reason(plan: &Plan, id: u64) -> &PendingReason {
    &plan.pending.iter().find(|p| p.job == JobId(id)).unwrap_or_else(|| panic!("job {id} not pending")).reason
}

fn domains(snapshot: &Snapshot, p: &Placement) -> Vec<u32> {
    let pool = &snapshot.pools[p.pool.0 as usize];
    let mut d: Vec<u32> = p.nodes.iter().map(|a| pool.nodes[a.node as usize].nvlink_domain).collect();
    d.dedup();
    d
}

fn blocks(snapshot: &Snapshot, p: &Placement) -> Vec<u32> {
    let pool = &snapshot.pools[p.pool.0 as usize];
    let mut b: Vec<u32> = p.nodes.iter().map(|a| pool.nodes[a.node as usize].block).collect();
    b.sort();
    b.dedup();
    b
}

#[test]
fn an_18_node_gb200_gang_lands_in_one_untouched_nvl72_rack() {
    let fleet = FleetBuilder::new().nvl72_racks("aws", 2).running(100, &[0], 4, Priority::NORMAL, false).build();
    let queue = [job(1).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(domains(&fleet, placed(&plan, 1)), vec![1], "rack 0 has a busy node, rack 1 is whole");
}

#[test]
fn small_jobs_fill_a_touched_rack_and_keep_a_whole_rack_free() {
    let fleet = FleetBuilder::new().nvl72_racks("aws", 2).build();
    let mut queue: Vec<QueuedJob> = (1..=10).map(|i| job(i).gpus("GB200", "2").build()).collect();
    queue.push(job(11).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).submitted_at(99).build());
    let plan = check(&fleet, &queue);
    let small: Vec<u32> = (1..=10).flat_map(|i| domains(&fleet, placed(&plan, i))).collect();
    assert!(small.windows(2).all(|w| w[0] == w[1]), "all small jobs in one rack: {small:?}");
    let used_nodes: std::collections::BTreeSet<u32> =
        (1..=10).flat_map(|i| placed(&plan, i).nodes.iter().map(|a| a.node)).collect();
    assert_eq!(used_nodes.len(), 5, "two 2-GPU jobs share each 4-GPU node");
    assert_ne!(domains(&fleet, placed(&plan, 11)), vec![small[0]]);
}

#[test]
fn a_block_gang_stays_in_one_block_and_avoids_a_touched_one() {
    let fleet = FleetBuilder::new()
        .nvl72_racks("aws", 4)
        .nodes_per_block(36)
        .running(100, &[0], 4, Priority::NORMAL, false)
        .build();
    let queue = [job(1).gpus("GB200", "4").nodes(30).topology(TopologyNeed::Block).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(blocks(&fleet, placed(&plan, 1)), vec![0], "block 0 has 35 free nodes: best fit for 30");
    let queue = [job(1).gpus("GB200", "4").nodes(36).topology(TopologyNeed::Block).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(blocks(&fleet, placed(&plan, 1)), vec![1]);
}

#[test]
fn the_cheapest_eligible_pool_wins_and_the_price_is_per_node_share() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 2)
        .price(30)
        .hgx("gcp", GpuModel::H100, 2)
        .price(20)
        .hgx("oci", GpuModel::H200, 2)
        .price(10)
        .build();
    let queue = [job(1).gpus("H100", "4").build(), job(2).gpus("H100|H200", "8").nodes(2).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(placed(&plan, 1).pool, PoolId(1));
    assert_eq!(placed(&plan, 1).price_per_hour, Money::from_dollars(10), "half a $20 node");
    assert_eq!(placed(&plan, 2).pool, PoolId(2));
    assert_eq!(placed(&plan, 2).price_per_hour, Money::from_dollars(20));
}

#[test]
fn ordered_options_are_tried_in_order_before_price() {
    let fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 1).price(30).hgx("gcp", GpuModel::H200, 1).price(10).build();
    let queue = [job(1).gpus("H100", "8").or().gpus("H200", "8").ordered().build()];
    let plan = check(&fleet, &queue);
    assert_eq!((placed(&plan, 1).pool, placed(&plan, 1).option), (PoolId(0), 0));
}

#[test]
fn fractions_share_one_physical_gpu_before_opening_another() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let mut queue: Vec<QueuedJob> = (1..=5).map(|i| job(i).gpus("H100", "0.25").build()).collect();
    queue.push(job(6).gpus("H100", "7").build());
    queue.push(job(7).gpus("H100", "6").build());
    let plan = check(&fleet, &queue);
    for i in 1..=4 {
        assert_eq!(placed(&plan, i).nodes[0].gpus, GpuAlloc::Fraction { gpu: 0, milli: 250 });
    }
    assert!(matches!(placed(&plan, 5).nodes[0].gpus, GpuAlloc::Fraction { gpu, milli: 250 } if gpu != 0));
    assert!(matches!(reason(&plan, 6), PendingReason::InsufficientCapacity { .. }), "only 6 whole GPUs left");
    assert_eq!(placed(&plan, 7).nodes[0].gpus.milli(), 6000);
}

#[test]
fn higher_priority_goes_first() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let queue = [job(1).gpus("H100", "8").build(), job(2).gpus("H100", "8").priority(Priority::HIGH).build()];
    let plan = check(&fleet, &queue);
    placed(&plan, 2);
    reason(&plan, 1);
}

#[test]
fn preemption_takes_the_least_disruptive_victim() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 4)
        .running(10, &[0], 8, Priority::NORMAL, true)
        .running(11, &[1], 8, Priority::LOW, true)
        .running(12, &[2], 8, Priority::LOW, true)
        .running(13, &[3], 8, Priority::LOW, false)
        .build();
    let queue = [job(1).gpus("H100", "8").priority(Priority::HIGH).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(placed(&plan, 1).nodes[0].node, 2, "lowest priority, newest start: job 12");
    assert_eq!(plan.preemptions.len(), 1);
    assert_eq!(plan.preemptions[0].victim, JobId(12));
    assert_eq!(plan.preemptions[0].for_job, JobId(1));
}

#[test]
fn preemption_frees_only_what_the_gang_needs() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 4)
        .running(10, &[0], 8, Priority::LOW, true)
        .running(11, &[1], 8, Priority::LOW, true)
        .running(12, &[2], 8, Priority::LOW, true)
        .build();
    let queue = [job(1).gpus("H100", "8").nodes(2).priority(Priority::HIGH).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(placed(&plan, 1).nodes.len(), 2);
    assert_eq!(plan.preemptions.len(), 1, "node 3 is free; one victim suffices");
}

#[test]
fn no_preemption_of_equal_priority_or_non_preemptible_work() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 2)
        .running(10, &[0], 8, Priority::HIGH, true)
        .running(11, &[1], 8, Priority::LOW, false)
        .build();
    let queue = [job(1).gpus("H100", "8").priority(Priority::HIGH).build()];
    let plan = check(&fleet, &queue);
    assert!(plan.preemptions.is_empty());
    assert!(matches!(reason(&plan, 1), PendingReason::InsufficientCapacity { .. }));
}

#[test]
fn tenants_share_by_weighted_dominant_resource() {
    let even = FleetBuilder::new().cpu_nodes("aws", 1, 8).build();
    let weighted = FleetBuilder::new()
        .cpu_nodes("aws", 1, 8)
        .tenant("a", 3, Quota::default())
        .tenant("b", 1, Quota::default())
        .build();
    let mut queue: Vec<QueuedJob> = (1..=8).map(|i| job(i).cpus(1).tenant("a").build()).collect();
    queue.extend((11..=18).map(|i| job(i).cpus(1).tenant("b").submitted_at(100 + i).build()));
    let count =
        |plan: &Plan, t: std::ops::RangeInclusive<u64>| plan.placements.iter().filter(|p| t.contains(&p.job.0)).count();
    let plan = check(&even, &queue);
    assert_eq!((count(&plan, 1..=8), count(&plan, 11..=18)), (4, 4));
    let plan = check(&weighted, &queue);
    assert_eq!((count(&plan, 1..=8), count(&plan, 11..=18)), (6, 2));
}

#[test]
fn cordoned_nodes_get_nothing() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 2).cordon(0).build();
    let queue = [job(1).gpus("H100", "8").build(), job(2).gpus("H100", "8").build()];
    let plan = check(&fleet, &queue);
    assert_eq!(placed(&plan, 1).nodes[0].node, 1);
    reason(&plan, 2);
}

#[test]
fn spot_only_when_asked_and_deny_and_infra_respected() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 1)
        .spot()
        .price(5)
        .hgx("gcp", GpuModel::H100, 1)
        .price(30)
        .hgx("azure", GpuModel::H100, 1)
        .price(20)
        .build();
    let queue = [
        job(1).gpus("H100", "8").spot().build(),
        job(2).gpus("H100", "8").deny("azure").build(),
        job(3).gpus("H100", "8").infra("azure").build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(fleet.pools[placed(&plan, 1).pool.0 as usize].capacity, CapacityKind::Spot);
    assert_eq!(placed(&plan, 2).pool, PoolId(1));
    assert_eq!(placed(&plan, 3).pool, PoolId(2));
}

// One test per pending reason, asserting the message a user reads.

#[test]
fn reason_no_such_gpu_model() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let plan = check(&fleet, &[job(1).gpus("MI300X", "8").build()]);
    assert_eq!(reason(&plan, 1).to_string(), "no pool in the fleet has GPU MI300X:8");
}

#[test]
fn reason_no_node_large_enough() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let plan = check(&fleet, &[job(1).gpus("H100", "16").build()]);
    assert_eq!(
        reason(&plan, 1).to_string(),
        "no node type is large enough for one node of H100:16, 0 vCPUs, 0 MiB per node"
    );
}

#[test]
fn reason_constraint_excludes_all_pools() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).price(30).build();
    let plan = check(
        &fleet,
        &[
            job(1).gpus("H100", "8").infra("gcp").build(),
            job(2).gpus("H100", "8").max_price(10).build(),
            job(3).gpus("H100", "8").spot().build(),
        ],
    );
    assert_eq!(reason(&plan, 1).to_string(), "constraints exclude every pool with fitting nodes: infra gcp");
    assert_eq!(
        reason(&plan, 2).to_string(),
        "constraints exclude every pool with fitting nodes: max_price_per_hour $10.00"
    );
    assert_eq!(reason(&plan, 3).to_string(), "constraints exclude every pool with fitting nodes: use_spot true");
}

#[test]
fn reason_topology_unsatisfiable() {
    let fleet = FleetBuilder::new().nvl72_racks("aws", 2).build();
    let plan = check(&fleet, &[job(1).gpus("GB200", "4").nodes(19).topology(TopologyNeed::NvlinkDomain).build()]);
    assert_eq!(
        reason(&plan, 1).to_string(),
        "needs 19 nodes in one NVLink domain, but the largest eligible one has 18"
    );
}

#[test]
fn reason_quota() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 2)
        .tenant("t", 1, Quota { gpus_milli: Some(8000), cpus_milli: None })
        .build();
    let plan = check(&fleet, &[job(1).gpus("H100", "8").build(), job(2).gpus("H100", "8").build()]);
    placed(&plan, 1);
    assert_eq!(reason(&plan, 2).to_string(), "tenant t quota of 8 GPUs reached (8 used, job wants 8)");
}

#[test]
fn reason_insufficient_capacity() {
    let fleet = FleetBuilder::new().nvl72_racks("aws", 1).running(100, &[0], 4, Priority::NORMAL, false).build();
    let plan = check(&fleet, &[job(1).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).build()]);
    assert_eq!(
        reason(&plan, 1).to_string(),
        "not enough free capacity now: needs 18 fitting node(s) in one NVLink domain across 1 eligible pool(s)"
    );
}

#[test]
fn reason_invalid_request() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let plan = check(&fleet, &[job(1).gpus("H100", "8").nodes(0).build()]);
    assert_eq!(reason(&plan, 1).to_string(), "invalid request: num_nodes 0: expected at least 1");
    assert_eq!(reason(&plan, 1).code(), "invalid_request");
}

#[test]
fn inconsistent_snapshots_are_refused_with_the_field_named() {
    let mut fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).hgx("gcp", GpuModel::H100, 1).build();
    fleet.pools[1].id = PoolId(0);
    assert_eq!(schedule(&fleet, &[], NOW).unwrap_err(), Error::DuplicatePool(PoolId(0)));
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 1)
        .running(1, &[0], 8, Priority::LOW, true)
        .running(2, &[0], 8, Priority::LOW, true)
        .build();
    assert_eq!(
        schedule(&fleet, &[], NOW).unwrap_err().to_string(),
        "running job 2: pool 0 node 0 is over-committed on gpus, cpus or memory"
    );
    let mut fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).running(4, &[0], 0, Priority::LOW, true).build();
    fleet.running[0].nodes[0].gpus = GpuAlloc::Fraction { gpu: 0, milli: 65_000 };
    assert_eq!(
        schedule(&fleet, &[], NOW).unwrap_err().to_string(),
        "running job 4: pool 0 node 0 is over-committed on gpus, cpus or memory"
    );
    fleet.running[0].nodes[0].gpus = GpuAlloc::Fraction { gpu: 9, milli: 500 };
    assert!(schedule(&fleet, &[], NOW).is_err(), "GPU 9 of an 8-GPU node");
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).running(3, &[5], 8, Priority::LOW, true).build();
    assert_eq!(
        schedule(&fleet, &[], NOW).unwrap_err().to_string(),
        "running job 3: node 5 is out of range for pool 0 (1 nodes)"
    );
}

#[test]
fn the_verifier_catches_an_over_committed_plan() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 1).build();
    let queue = [job(1).gpus("H100", "8").build(), job(2).gpus("H100", "8").build()];
    let mut plan = check(&fleet, &queue);
    let mut copy = plan.placements[0].clone();
    copy.job = JobId(2);
    plan.pending.clear();
    plan.placements.push(copy);
    assert_eq!(
        verify_plan(&fleet, &queue, &plan).unwrap_err().to_string(),
        "plan violates capacity: pool 0 node 0 is over-committed"
    );
}

#[test]
fn the_verifier_catches_a_plan_over_quota() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 2)
        .tenant("t", 1, Quota { gpus_milli: Some(8000), cpus_milli: None })
        .build();
    let queue = [job(1).gpus("H100", "8").build(), job(2).gpus("H100", "8").build()];
    let mut plan = check(&fleet, &queue);
    let mut second = plan.placements[0].clone();
    second.job = JobId(2);
    second.nodes[0].node = 1 - second.nodes[0].node;
    plan.pending.clear();
    plan.placements.push(second);
    assert_eq!(
        verify_plan(&fleet, &queue, &plan).unwrap_err().to_string(),
        "plan violates quota: tenant t ends over its quota"
    );
}

#[test]
fn plans_round_trip_through_json_and_explain_themselves() {
    let fleet = FleetBuilder::new()
        .nvl72_racks("aws", 1)
        .hgx("gcp", GpuModel::H100, 1)
        .running(50, &[0], 8, Priority::LOW, true)
        .build();
    let queue = [
        job(7).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).build(),
        job(8).gpus("H100", "8").priority(Priority::HIGH).build(),
        job(9).gpus("GB300", "4").build(),
    ];
    let plan = check(&fleet, &queue);
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&text).unwrap(), plan);
    let lines = plan.explain(&fleet, &queue);
    assert!(lines.iter().any(|l| l.starts_with("job 7 → aws/aws-region-1/aws-zone-a/gb200x4/contract on 18 node(s) in one nvlink-domain [p0n0 … p0n17], 72 × GB200, $504.00/h")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "job 50 preempted on gcp/gcp-region-1/gcp-zone-a/h100x8/contract to make room for job 8"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "job 9 pending: no pool in the fleet has GPU GB300:4 (wants 1 × GB300:4 + 0 vCPU)"),
        "{lines:?}"
    );
}

#[test]
fn a_zone_gang_stays_in_one_pool_and_any_of_takes_the_cheapest_option() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 3)
        .region("us-east-1", "use1-az1")
        .price(20)
        .hgx("aws", GpuModel::H100, 3)
        .region("us-east-1", "use1-az2")
        .price(20)
        .hgx("gcp", GpuModel::H200, 4)
        .price(25)
        .build();
    let queue = [
        job(1).gpus("H100|H200", "8").nodes(4).topology(TopologyNeed::Zone).build(),
        job(2).gpus("H200", "8").nodes(2).or().gpus("H100", "8").nodes(2).build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(placed(&plan, 1).pool, PoolId(2), "no single H100 zone has 4 nodes");
    assert_eq!(placed(&plan, 2).option, 1, "the H200 pool is full: the H100 option");
    assert_eq!(placed(&plan, 2).pool, PoolId(0));
    let cheaper = [job(3).gpus("H200", "8").or().gpus("H100", "8").build()];
    let plan = check(&fleet, &cheaper);
    assert_eq!((placed(&plan, 3).pool, placed(&plan, 3).option), (PoolId(0), 1), "H100 at $20 beats H200 at $25");
}

#[test]
fn gangs_of_partial_nodes_keep_their_topology_need() {
    let fleet = FleetBuilder::new().nvl72_racks("aws", 2).running(100, &[0, 1, 2], 2, Priority::NORMAL, false).build();
    let queue = [
        job(1).gpus("GB200", "2").nodes(18).topology(TopologyNeed::NvlinkDomain).build(),
        job(2).gpus("GB200", "3").nodes(18).topology(TopologyNeed::NvlinkDomain).build(),
        job(3).gpus("GB200", "0.5").nodes(3).topology(TopologyNeed::Block).build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(domains(&fleet, placed(&plan, 1)), vec![0], "rack 0 still has 2 free GPUs on every node");
    assert_eq!(domains(&fleet, placed(&plan, 2)), vec![1]);
    assert_eq!(placed(&plan, 3).nodes.len(), 3);
}

#[test]
fn cpu_quota_and_memory_are_accounted() {
    let fleet = FleetBuilder::new()
        .cpu_nodes("aws", 2, 16)
        .tenant("t", 1, Quota { gpus_milli: None, cpus_milli: Some(20_000) })
        .build();
    let queue = [
        job(1).cpus(12).build(),
        job(2).cpus(8).build(),
        job(3).cpus(4).memory_gib(60).build(),
        job(4).cpus(1).memory_gib(65).build(),
    ];
    let plan = check(&fleet, &queue);
    placed(&plan, 1);
    placed(&plan, 2);
    assert_eq!(reason(&plan, 3).to_string(), "tenant t quota of 20 vCPUs reached (20 used, job wants 4)");
    assert_eq!(reason(&plan, 4).code(), "no_node_large_enough", "64 GiB nodes");
}

/// Three NVL72 racks: rack 0 runs an 18-node gang until `NOW + 7200`; rack 2 runs work with no
/// known end on nodes 36 to 52 (node 53 is left to the caller); rack 1 is free.
fn racks_0_and_2_busy() -> FleetBuilder {
    FleetBuilder::new()
        .nvl72_racks("aws", 3)
        .running(100, &(0..18).collect::<Vec<u32>>(), 4, Priority::NORMAL, false)
        .ending_at(NOW + 7200)
        .running(300, &(36..53).collect::<Vec<u32>>(), 4, Priority::NORMAL, false)
}

/// Rack 1 runs a 2-GPU job on each node until `NOW + 1800`.
fn rack_1_half_busy_until_now_plus_1800(mut fleet: FleetBuilder) -> FleetBuilder {
    for n in 18..36 {
        fleet = fleet.running(200 + u64::from(n), &[n], 2, Priority::NORMAL, false).ending_at(NOW + 1800);
    }
    fleet
}

fn nvl72_gang(id: u64) -> QueuedJob {
    job(id).gpus("GB200", "4").nodes(18).topology(TopologyNeed::NvlinkDomain).submitted_at(1).build()
}

fn two_gpus(id: u64) -> cumulo_synth::JobBuilder {
    job(id).gpus("GB200", "2").submitted_at(10 + id)
}

#[test]
fn a_waiting_nvl72_gang_reserves_the_rack_that_frees_first_and_small_jobs_backfill_around_it() {
    let fleet = rack_1_half_busy_until_now_plus_1800(racks_0_and_2_busy())
        .running(353, &[53], 2, Priority::NORMAL, false)
        .build();
    let queue = [
        nvl72_gang(1),
        two_gpus(2).duration(3600).build(),
        two_gpus(3).duration(600).build(),
        two_gpus(4).build(),
        two_gpus(5).duration(1800).build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(
        reason(&plan, 1).code(),
        "insufficient_capacity",
        "no rack has 18 free nodes now: the gang waits (with rack 1 reserved from NOW + 1800)"
    );
    assert_eq!(
        placed(&plan, 2).nodes[0].node,
        53,
        "job 2 ends after the reservation starts, so it gets only an unreserved node: rack 2's free GPUs"
    );
    let rack_1 = |id: u64| (18..36).contains(&placed(&plan, id).nodes[0].node);
    assert!(rack_1(3), "job 3 ends at NOW + 600, before the reservation: it backfills on rack 1");
    assert!(rack_1(5), "job 5 ends at NOW + 1800, exactly when the reservation starts: it backfills too");
    let held = reason(&plan, 4);
    assert_eq!(
        held,
        &PendingReason::HeldForReservation { gang: JobId(1), start: NOW + 1800 },
        "job 4 states no duration (forever) and only reserved nodes have room"
    );
    assert_eq!(held.code(), "held_for_reservation");
    assert_eq!(held.to_string(), format!("held: would delay reserved gang job 1 starting at {}", NOW + 1800));

    // without reservations, the same pass gives rack 1's room to job 4 as well
    let config = cumulo_sched::Config { backfill: cumulo_sched::Backfill::Greedy, ..cumulo_sched::Config::default() };
    let greedy = cumulo_sched::schedule_with(&fleet, &queue, NOW, &config).unwrap();
    verify_plan(&fleet, &queue, &greedy).unwrap();
    assert!(greedy.placements.iter().any(|p| p.job == JobId(4)), "greedy backfill places job 4 on rack 1");
}

#[test]
fn the_reserved_gang_gets_its_rack_when_the_running_jobs_end_ahead_of_newer_small_jobs() {
    // NOW + 1800: rack 1's jobs and the backfilled jobs 3 and 5 have ended; job 2 still runs on
    // rack 2 (which is full); job 4 still waits and more small jobs without a duration came in
    let now = NOW + 1800;
    let fleet = racks_0_and_2_busy().running(2, &[53], 4, Priority::NORMAL, false).build();
    let mut queue = vec![nvl72_gang(1), two_gpus(4).build()];
    queue.extend((6..12).map(|id| two_gpus(id).submitted_at(2000 + id).build()));
    let plan = schedule(&fleet, &queue, now).unwrap();
    verify_plan(&fleet, &queue, &plan).unwrap();
    assert_eq!(domains(&fleet, placed(&plan, 1)), vec![1], "the gang starts on rack 1, the rack it reserved");
    for id in [4, 6, 7, 8, 9, 10, 11] {
        assert_eq!(
            reason(&plan, id).code(),
            "insufficient_capacity",
            "job {id} is decided after the older gang, which took rack 1: nothing is left"
        );
    }
}

#[test]
fn without_known_ends_no_reservation_is_made_and_small_jobs_are_not_held() {
    // rack 1's jobs have no expected end, so no time can be reserved: nothing is held back
    let mut fleet = FleetBuilder::new().nvl72_racks("aws", 2).running(
        100,
        &(0..18).collect::<Vec<u32>>(),
        4,
        Priority::NORMAL,
        false,
    );
    for n in 18..36 {
        fleet = fleet.running(200 + u64::from(n), &[n], 2, Priority::NORMAL, false);
    }
    let fleet = fleet.build();
    let queue = [nvl72_gang(1), two_gpus(2).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(reason(&plan, 1).code(), "insufficient_capacity", "the gang waits");
    assert!((18..36).contains(&placed(&plan, 2).nodes[0].node), "job 2 takes rack 1's room: nothing is reserved");
}

/// A narrowing as a portfolio's clauses make one: while a job has waited under an hour, H100
/// work may go only to azure and H200 work nowhere.
struct AzureFirstForAnHour;

impl cumulo_sched::Narrowing for AzureFirstForAnHour {
    fn regime(&self, waited_s: u64) -> u64 {
        u64::from(waited_s < 3600)
    }

    fn narrow(&self, options: &[cumulo_types::ResourceOption], waited_s: u64) -> cumulo_sched::Narrowed {
        if waited_s >= 3600 {
            return cumulo_sched::Narrowed::Untouched;
        }
        let is = |o: &cumulo_types::ResourceOption, model| {
            o.accelerators.as_ref().is_some_and(|a| a.selector.accepts(model))
        };
        let mut left = Vec::new();
        let mut origins = Vec::new();
        for (i, option) in options.iter().enumerate().filter(|(_, o)| is(o, GpuModel::H100)) {
            let mut on_azure = option.clone();
            on_azure.infra = Some(cumulo_types::InfraSelector::parse("azure").unwrap());
            left.push(on_azure);
            origins.push(i as u32);
        }
        if left.is_empty() {
            return cumulo_sched::Narrowed::Nowhere;
        }
        cumulo_sched::Narrowed::To { options: left.into(), origins: origins.into() }
    }

    fn key(&self) -> u64 {
        1
    }
}

#[test]
fn a_narrowing_binds_per_wait_and_placements_name_the_jobs_own_option() {
    let fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 2).price(10).hgx("azure", GpuModel::H100, 2).price(20).build();
    let h200_or_h100 = |id: u64| job(id).gpus("H200", "8").or().gpus("H100", "8");
    let queue = [
        h200_or_h100(1).submitted_at(NOW).build(),
        h200_or_h100(2).submitted_at(NOW - 7200).build(),
        job(3).gpus("H200", "8").submitted_at(NOW).build(),
    ];
    let plan =
        cumulo_sched::schedule_narrowed(&fleet, &queue, NOW, &cumulo_sched::Config::default(), &AzureFirstForAnHour)
            .unwrap();
    verify_plan(&fleet, &queue, &plan).expect("the plan keeps every invariant on the jobs' own options");
    let provider = |p: &Placement| fleet.pools[p.pool.0 as usize].provider.clone();
    assert_eq!(provider(placed(&plan, 1)), "azure", "a fresh job goes only to azure, though aws is cheaper");
    assert_eq!(placed(&plan, 1).option, 1, "its H100 option is the job's second, though the only one left");
    assert_eq!(provider(placed(&plan, 2)), "aws", "the same options after two hours: nothing binds, the cheapest wins");
    assert_eq!(reason(&plan, 3), &PendingReason::ContractClause, "H200 only: no provider may take it yet");
    assert_eq!(reason(&plan, 3).code(), "contract_clause");
}

#[test]
fn a_kept_scheduler_forgets_shapes_narrowed_by_another_narrowing() {
    let fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 2).price(10).hgx("azure", GpuModel::H100, 2).price(20).build();
    let mut kept = cumulo_sched::Scheduler::new(&fleet, cumulo_sched::Config::default()).unwrap();
    let first = kept.schedule_narrowed(&[job(1).gpus("H100", "8").build()], NOW, &OnlyOn("aws"));
    let second = kept.schedule_narrowed(&[job(2).gpus("H100", "8").build()], NOW, &OnlyOn("azure"));
    let provider = |plan: &Plan, id| fleet.pools[placed(plan, id).pool.0 as usize].provider.clone();
    assert_eq!(provider(&first, 1), "aws");
    assert_eq!(provider(&second, 2), "azure", "the same shape under a narrowing of another key is narrowed afresh");
}
