//! Spread of inference replicas: a job asking for `spread: providers` (or `regions`) keeps its
//! replicas on at least two providers (regions), counting replicas already running, and a
//! replica that could only join the one provider used so far waits with a clear reason.

use cumulo_sched::{Error, PendingReason, Plan, QueuedJob, RunningAlloc, Snapshot, schedule, verify_plan};
use cumulo_synth::{FleetBuilder, job};
use cumulo_types::{GpuModel, JobId, JobSpec, Priority, SpreadPolicy};

const NOW: u64 = 1_000_000;

/// Schedules, checks the plan with the independent verifier, and returns it.
fn check(snapshot: &Snapshot, queue: &[QueuedJob]) -> Plan {
    let plan = schedule(snapshot, queue, NOW).expect("snapshot is consistent");
    verify_plan(snapshot, queue, &plan).expect("plan keeps every invariant");
    assert_eq!(plan, schedule(snapshot, queue, NOW).unwrap(), "same input, same plan");
    plan
}

/// `n` replicas of job `id`, one whole 8-GPU H100 node each, with the given spread.
fn replicas(id: u64, n: u32, spread: SpreadPolicy) -> Vec<QueuedJob> {
    (0..n).map(|r| job(id).gpus("H100", "8").replica(r).spread(spread).build()).collect()
}

/// Provider (or `provider/region`) of each placed replica of `id`, by replica number.
fn places(fleet: &Snapshot, plan: &Plan, id: u64, by_region: bool) -> Vec<String> {
    let mut placed: Vec<_> = plan.placements.iter().filter(|p| p.job == JobId(id)).collect();
    placed.sort_by_key(|p| p.replica);
    placed
        .iter()
        .map(|p| {
            let pool = fleet.pools.iter().find(|pool| pool.id == p.pool).unwrap();
            if by_region { format!("{}/{}", pool.provider, pool.region) } else { pool.provider.clone() }
        })
        .collect()
}

fn running_replica(fleet: &Snapshot, id: u64, replica: u32, pool: usize, node: u32) -> RunningAlloc {
    RunningAlloc {
        job: JobId(id),
        replica,
        tenant: "t".to_string(),
        priority: Priority::NORMAL,
        preemptible: false,
        pool: fleet.pools[pool].id,
        nodes: vec![cumulo_sched::NodeAlloc {
            node,
            gpus: cumulo_sched::GpuAlloc::Whole { mask: 0xff },
            cpus_milli: 0,
            memory_mib: 0,
        }],
        started_at: 1,
        expected_end: None,
    }
}

/// aws is cheapest, then gcp, then oci; each has four 8-GPU H100 nodes.
fn three_providers() -> Snapshot {
    FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 4)
        .price(10)
        .hgx("gcp", GpuModel::H100, 4)
        .price(20)
        .hgx("oci", GpuModel::H100, 4)
        .price(30)
        .build()
}

#[test]
fn two_replicas_with_spread_providers_use_two_providers() {
    let fleet = three_providers();
    // Without spread, both replicas take the cheapest provider: the spread below is the policy's doing.
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::None));
    assert_eq!(places(&fleet, &plan, 1, false), ["aws", "aws"]);
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::Providers));
    assert_eq!(places(&fleet, &plan, 1, false), ["aws", "gcp"], "second replica leaves aws for the next cheapest");
    assert!(plan.pending.is_empty());
}

#[test]
fn replicas_spread_evenly_and_cheapest_first() {
    let fleet = three_providers();
    let plan = check(&fleet, &replicas(1, 5, SpreadPolicy::Providers));
    // aws, then away from aws (gcp), then away from both (oci); then all hold one, so aws again
    // (cheapest), then away from aws: gcp.
    assert_eq!(places(&fleet, &plan, 1, false), ["aws", "gcp", "oci", "aws", "gcp"]);
}

#[test]
fn with_only_one_provider_the_first_replica_runs_and_the_second_waits_with_the_reason() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 4).build();
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::Providers));
    assert_eq!(places(&fleet, &plan, 1, false), ["aws"]);
    assert_eq!(plan.pending.len(), 1);
    let pending = &plan.pending[0];
    assert_eq!(pending.replica, 1);
    assert_eq!(
        pending.reason,
        PendingReason::SpreadUnsatisfiable { policy: SpreadPolicy::Providers, used: vec!["aws".to_string()] }
    );
    assert_eq!(pending.reason.code(), "spread_unsatisfiable");
    assert_eq!(
        pending.reason.to_string(),
        "spread over providers needs replicas on at least two providers, but the job's replicas are only on aws, \
         and no eligible pool in another provider has room now"
    );
    let explained = plan.explain(&fleet, &replicas(1, 2, SpreadPolicy::Providers)).join("\n");
    assert!(explained.contains("pending: spread over providers"), "{explained}");
}

#[test]
fn a_full_second_provider_leaves_the_replica_pending_rather_than_doubling_up() {
    // gcp exists but its only node is taken: aws has room, yet the replica must not join aws.
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 4)
        .price(10)
        .hgx("gcp", GpuModel::H100, 1)
        .price(20)
        .running(50, &[0], 8, Priority::NORMAL, false)
        .build();
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::Providers));
    assert_eq!(places(&fleet, &plan, 1, false), ["aws"]);
    assert_eq!(plan.pending[0].reason.code(), "spread_unsatisfiable");
}

#[test]
fn replicas_already_running_are_counted() {
    let mut fleet = three_providers();
    // Replica 0 runs on aws: the new replica 1 goes elsewhere though aws is cheapest and has room.
    fleet.running.push(running_replica(&fleet, 1, 0, 0, 0));
    let queue = vec![job(1).gpus("H100", "8").replica(1).spread(SpreadPolicy::Providers).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(places(&fleet, &plan, 1, false), ["gcp"]);
    // Replicas on aws and gcp: the next one avoids both (oci), the one after takes the cheapest.
    fleet.running.push(running_replica(&fleet, 1, 1, 1, 0));
    let queue: Vec<QueuedJob> =
        (2..4).map(|r| job(1).gpus("H100", "8").replica(r).spread(SpreadPolicy::Providers).build()).collect();
    let plan = check(&fleet, &queue);
    assert_eq!(places(&fleet, &plan, 1, false), ["oci", "aws"]);
    // A running replica on a single-provider fleet: the new one waits, naming that provider.
    let mut single = FleetBuilder::new().hgx("aws", GpuModel::H100, 4).build();
    single.running.push(running_replica(&single, 1, 0, 0, 0));
    let queue = vec![job(1).gpus("H100", "8").replica(1).spread(SpreadPolicy::Providers).build()];
    let plan = check(&single, &queue);
    assert_eq!(
        plan.pending[0].reason,
        PendingReason::SpreadUnsatisfiable { policy: SpreadPolicy::Providers, used: vec!["aws".to_string()] }
    );
}

#[test]
fn spread_regions_uses_two_regions_of_one_provider() {
    let fleet = FleetBuilder::new()
        .hgx("aws", GpuModel::H100, 4)
        .price(10)
        .region("us-east-1", "use1-az1")
        .hgx("aws", GpuModel::H100, 4)
        .price(11)
        .region("us-east-1", "use1-az2")
        .hgx("aws", GpuModel::H100, 4)
        .price(20)
        .region("us-west-2", "usw2-az1")
        .hgx("gcp", GpuModel::H100, 4)
        .price(30)
        .build();
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::Regions));
    // The second zone of us-east-1 is cheaper, but it is the same region.
    assert_eq!(places(&fleet, &plan, 1, true), ["aws/us-east-1", "aws/us-west-2"]);
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::Providers));
    assert_eq!(places(&fleet, &plan, 1, false), ["aws", "gcp"]);

    let one_region = FleetBuilder::new().hgx("aws", GpuModel::H100, 4).region("us-east-1", "use1-az1").build();
    let plan = check(&one_region, &replicas(1, 2, SpreadPolicy::Regions));
    assert_eq!(
        plan.pending[0].reason,
        PendingReason::SpreadUnsatisfiable { policy: SpreadPolicy::Regions, used: vec!["aws/us-east-1".to_string()] }
    );
    assert!(plan.pending[0].reason.to_string().contains("only on aws/us-east-1"));
}

#[test]
fn verify_plan_rejects_replicas_doubled_up_on_one_provider() {
    let fleet = three_providers();
    let plan = check(&fleet, &replicas(1, 2, SpreadPolicy::None));
    // The same plan is wrong for a job that asked for spread.
    let err = verify_plan(&fleet, &replicas(1, 2, SpreadPolicy::Providers), &plan).unwrap_err();
    assert_eq!(
        err,
        Error::PlanViolation {
            rule: "spread",
            detail: "job 1 has 2 replicas, all on aws, but asks for spread over providers".to_string()
        }
    );
    // A running replica counts too: one new replica beside it on the same provider is refused.
    let mut fleet = three_providers();
    fleet.running.push(running_replica(&fleet, 1, 0, 0, 0));
    let queue = vec![job(1).gpus("H100", "8").replica(1).build()];
    let plan = check(&fleet, &queue);
    assert_eq!(places(&fleet, &plan, 1, false), ["aws"]);
    let spread_queue = vec![job(1).gpus("H100", "8").replica(1).spread(SpreadPolicy::Regions).build()];
    let err = verify_plan(&fleet, &spread_queue, &plan).unwrap_err();
    assert!(err.to_string().contains("all on aws/aws-region-1, but asks for spread over regions"), "{err}");
}

#[test]
fn from_spec_carries_spread_and_old_json_still_loads() {
    let mut spec = JobSpec::new("serve", "t");
    spec.replicas = 3;
    spec.spread = SpreadPolicy::Providers;
    let queued = QueuedJob::from_spec(JobId(7), &spec, 5);
    assert_eq!(queued.len(), 3);
    assert!(queued.iter().all(|q| q.spread == SpreadPolicy::Providers));
    let json = serde_json::to_value(&queued[0]).unwrap();
    assert_eq!(json["spread"], "providers");
    let back: QueuedJob = serde_json::from_value(json).unwrap();
    assert_eq!(back, queued[0]);

    // A job serialised before spread existed has no `spread` key and loads as `none`; a job
    // without spread still serialises without the key.
    let old = job(8).gpus("H100", "8").build();
    let mut json = serde_json::to_value(&old).unwrap();
    assert!(json.get("spread").is_none(), "{json}");
    json.as_object_mut().unwrap().remove("spread");
    let back: QueuedJob = serde_json::from_value(json).unwrap();
    assert_eq!(back.spread, SpreadPolicy::None);

    let reason = PendingReason::SpreadUnsatisfiable { policy: SpreadPolicy::Regions, used: vec!["aws/x".into()] };
    let json = serde_json::to_value(&reason).unwrap();
    assert_eq!(json["kind"], "spread_unsatisfiable");
    assert_eq!(json["policy"], "regions");
    assert_eq!(serde_json::from_value::<PendingReason>(json).unwrap(), reason);
}

#[test]
fn running_replicas_counted_for_spread_are_not_preempted_in_the_same_pass() {
    // Replica 0 of job 1 runs preemptibly at low priority on gcp's only node; replica 1 is placed on
    // aws against it. A later job of higher priority than the running replica (but lower than the
    // new one) must not then preempt replica 0 and leave job 1 on aws alone.
    let mut fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 1).price(10).hgx("gcp", GpuModel::H100, 1).price(20).build();
    let mut r0 = running_replica(&fleet, 1, 0, 1, 0);
    r0.priority = Priority::LOW;
    r0.preemptible = true;
    fleet.running.push(r0);
    let queue = vec![
        job(1).gpus("H100", "8").replica(1).spread(SpreadPolicy::Providers).priority(Priority::HIGH).build(),
        job(2).gpus("H100", "8").priority(Priority::NORMAL).build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(places(&fleet, &plan, 1, false), ["aws"]);
    assert!(plan.preemptions.is_empty(), "{:?}", plan.preemptions);
    assert_eq!(plan.pending[0].job, JobId(2));
    // Without the spread, job 2 does preempt the running replica.
    let queue = vec![
        job(1).gpus("H100", "8").replica(1).priority(Priority::HIGH).build(),
        job(2).gpus("H100", "8").priority(Priority::NORMAL).build(),
    ];
    let plan = check(&fleet, &queue);
    assert_eq!(plan.preemptions.len(), 1);
}
