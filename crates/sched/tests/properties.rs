//! Property tests over random small fleets and queues: every plan passes the independent
//! verifier (capacity never exceeded, gangs whole, topology held, eligibility), plans are
//! deterministic, and no job waits while lower-priority preemptible work it could displace runs.
//! Some jobs come as several replicas spread over providers or regions, and the second pass adds
//! a replica to jobs whose first replicas now run, so running replicas are counted too.

use cumulo_sched::{
    GpuAlloc, NodeAlloc, PendingReason, Plan, Pool, QueuedJob, Quota, RunningAlloc, Snapshot, schedule, verify_plan,
};
use cumulo_synth::{FleetBuilder, job};
use cumulo_types::{CapacityKind, GpuModel, JobId, Priority, SpreadPolicy, TopologyNeed};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct PoolSpec {
    kind: u8,
    size: u32,
    price: i64,
    spot: bool,
}

#[derive(Clone, Debug)]
struct JobSpec {
    kind: u8,
    nodes: u32,
    topology: u8,
    priority: u8,
    preemptible: bool,
    tenant: u8,
    spot: bool,
    /// 0 none, 1 providers, 2 regions; with `replicas` replicas.
    spread: u8,
    replicas: u32,
    /// Expected run time in minutes; 0: none.
    minutes: u8,
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (0u8..4, 1u32..5, 1i64..50, prop::bool::weighted(0.2)).prop_map(|(kind, size, price, spot)| PoolSpec {
        kind,
        size,
        price,
        spot,
    })
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        0u8..7,
        1u32..10,
        0u8..4,
        0u8..3,
        any::<bool>(),
        0u8..3,
        prop::bool::weighted(0.1),
        prop_oneof![5 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)],
        1u32..5,
        prop_oneof![1 => Just(0u8), 2 => 1u8..8],
    )
        .prop_map(|(kind, nodes, topology, priority, preemptible, tenant, spot, spread, replicas, minutes)| {
            JobSpec {
                kind,
                nodes,
                topology,
                priority,
                preemptible,
                tenant,
                spot,
                spread,
                replicas: if spread == 0 { 1 } else { replicas },
                minutes,
            }
        })
}

fn build_fleet(pools: &[PoolSpec]) -> Snapshot {
    let mut b = FleetBuilder::new();
    for (i, p) in pools.iter().enumerate() {
        let provider = ["aws", "gcp", "oci"][i % 3];
        b = match p.kind {
            0 => b.nvl72_racks(provider, p.size).nodes_per_block(36),
            1 => b.hgx(provider, GpuModel::H100, p.size * 3).nodes_per_block(4),
            2 => b.hgx(provider, GpuModel::H200, p.size * 2).nodes_per_block(2),
            _ => b.cpu_nodes(provider, p.size * 2, 16).nodes_per_block(3),
        };
        b = b.price(p.price);
        if i >= 3 {
            b = b.region(&format!("{provider}-region-2"), "zone-b");
        }
        if p.spot {
            b = b.capacity(CapacityKind::Spot);
        }
    }
    // Tenant `c` has quotas, so quota checks run on every plan too.
    b.tenant("a", 2, Quota::default())
        .tenant("c", 1, Quota { gpus_milli: Some(16_000), cpus_milli: Some(24_000) })
        .build()
}

/// The queue entries of a job spec: one per replica.
fn build_jobs(id: u64, s: &JobSpec) -> Vec<QueuedJob> {
    (0..s.replicas).map(|r| build_job(id, s, r)).collect()
}

fn build_job(id: u64, s: &JobSpec, replica: u32) -> QueuedJob {
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
    if s.spot {
        j = j.spot();
    }
    if s.minutes > 0 {
        j = j.duration(u64::from(s.minutes) * 60);
    }
    j.replica(replica)
        .spread([SpreadPolicy::None, SpreadPolicy::Providers, SpreadPolicy::Regions][s.spread as usize])
        .build()
}

/// Turns the placements of a first plan into running work, so the second pass has victims.
fn as_running(plan: &Plan, queue: &[QueuedJob]) -> Vec<RunningAlloc> {
    plan.placements
        .iter()
        .map(|p| {
            let j = queue.iter().find(|j| j.id == p.job).unwrap();
            RunningAlloc {
                job: p.job,
                replica: p.replica,
                tenant: j.tenant.clone(),
                priority: j.priority,
                preemptible: j.preemptible,
                pool: p.pool,
                nodes: p.nodes.clone(),
                started_at: j.submitted_at,
                expected_end: j.duration_s.map(|d| j.submitted_at + d),
            }
        })
        .collect()
}

/// Whether `job` would fit in `pool` if `freed` (running allocations) were gone and the plan's
/// placements and other running work stayed: a brute-force count of fitting nodes per group.
fn fits_after_freeing(snapshot: &Snapshot, plan: &Plan, job: &QueuedJob, pool: &Pool, freed: &[&RunningAlloc]) -> bool {
    let nt = &pool.node_type;
    let n = pool.nodes.len();
    let mut cpu = vec![u64::from(nt.vcpus) * 1000; n];
    let mut mem = vec![u64::from(nt.memory_gb) * 1024; n];
    let mut gpu = vec![vec![0u32; nt.gpus as usize]; n];
    let preempted: Vec<(JobId, u32)> = plan.preemptions.iter().map(|p| (p.victim, p.victim_replica)).collect();
    let mut take = |a: &NodeAlloc| {
        let i = a.node as usize;
        cpu[i] -= u64::from(a.cpus_milli);
        mem[i] -= a.memory_mib;
        match a.gpus {
            GpuAlloc::None => {}
            GpuAlloc::Whole { mask } => {
                (0..nt.gpus as usize).filter(|g| mask & (1 << g) != 0).for_each(|g| gpu[i][g] += 1000)
            }
            GpuAlloc::Fraction { gpu: g, milli } => gpu[i][g as usize] += u32::from(milli),
        }
    };
    for r in snapshot.running.iter().filter(|r| r.pool == pool.id) {
        let gone =
            preempted.contains(&(r.job, r.replica)) || freed.iter().any(|f| f.job == r.job && f.replica == r.replica);
        if !gone {
            r.nodes.iter().for_each(&mut take);
        }
    }
    for p in plan.placements.iter().filter(|p| p.pool == pool.id) {
        p.nodes.iter().for_each(&mut take);
    }
    job.resources.iter().any(|opt| {
        let eligible = match (&opt.accelerators, nt.gpu) {
            (Some(d), Some(m)) => d.selector.accepts(m),
            (None, _) => nt.gpus == 0,
            _ => false,
        } && opt.use_spot == (pool.capacity == CapacityKind::Spot);
        if !eligible {
            return false;
        }
        let per = opt.accelerators.as_ref().map_or(0, |d| d.per_node.0);
        let node_fits = |i: usize| {
            pool.nodes[i].schedulable
                && cpu[i] >= u64::from(opt.cpus_milli)
                && mem[i] >= opt.memory_mib
                && if per > 0 && per < 1000 {
                    gpu[i].iter().any(|&u| u + per <= 1000)
                } else {
                    gpu[i].iter().filter(|&&u| u == 0).count() as u32 >= per / 1000
                }
        };
        let group = |i: usize| match job.topology {
            TopologyNeed::NvlinkDomain if job.num_nodes > 1 => pool.nodes[i].nvlink_domain,
            TopologyNeed::Block if job.num_nodes > 1 => pool.nodes[i].block,
            _ => 0,
        };
        let mut counts = std::collections::BTreeMap::new();
        for i in (0..n).filter(|&i| node_fits(i)) {
            *counts.entry(group(i)).or_insert(0u32) += 1;
        }
        counts.values().any(|&c| c >= job.num_nodes)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_every_invariant(
        pools in prop::collection::vec(pool_spec(), 1..5),
        first in prop::collection::vec(job_spec(), 0..25),
        second in prop::collection::vec(job_spec(), 0..25),
    ) {
        let mut fleet = build_fleet(&pools);
        let q1: Vec<QueuedJob> = first.iter().enumerate().flat_map(|(i, s)| build_jobs(i as u64 + 1, s)).collect();
        let plan1 = schedule(&fleet, &q1, 0).unwrap();
        prop_assert!(verify_plan(&fleet, &q1, &plan1).is_ok(), "{:?}", verify_plan(&fleet, &q1, &plan1));

        // Second pass: the first pass's placements now run; new jobs may preempt them.
        fleet.running = as_running(&plan1, &q1);
        let mut q2: Vec<QueuedJob> = second.iter().enumerate().flat_map(|(i, s)| build_jobs(i as u64 + 1000, s)).collect();
        // One more replica of each spread job of the first pass: its running replicas count.
        for (i, s) in first.iter().enumerate().filter(|(_, s)| s.spread != 0) {
            q2.push(build_job(i as u64 + 1, s, s.replicas));
        }
        let plan2 = schedule(&fleet, &q2, 1).unwrap();
        prop_assert!(verify_plan(&fleet, &q2, &plan2).is_ok(), "{:?}", verify_plan(&fleet, &q2, &plan2));
        prop_assert_eq!(&plan2, &schedule(&fleet, &q2, 1).unwrap(), "deterministic");

        // No job left waiting for capacity while lower-priority preemptible work it could displace
        // still runs in a pool where, with all that work gone, it would fit.
        for pending in &plan2.pending {
            if !matches!(pending.reason, PendingReason::InsufficientCapacity { .. }) {
                continue;
            }
            let job = q2.iter().find(|j| j.id == pending.job).unwrap();
            // A gang left waiting for capacity earlier in the pass (plan.pending is in pass order)
            // may hold a reservation on the very nodes that preempting would free (EASY
            // backfill): a job that would not end by its start must not take them, so there is
            // nothing to demand of this job.
            let gang_waits_first = plan2.pending.iter().take_while(|p| p.job != pending.job).any(|p| {
                matches!(p.reason, PendingReason::InsufficientCapacity { .. })
                    && q2.iter().any(|g| g.id == p.job && g.num_nodes > 1 && g.spread == SpreadPolicy::None && g.priority >= job.priority)
            });
            if gang_waits_first {
                continue;
            }
            for pool in &fleet.pools {
                let victims: Vec<&RunningAlloc> = fleet
                    .running
                    .iter()
                    .filter(|r| r.pool == pool.id && r.preemptible && r.priority < job.priority)
                    .filter(|r| !plan2.preemptions.iter().any(|p| p.victim == r.job))
                    // Replicas of a spread job that got placements are kept in the same pass.
                    .filter(|r| {
                        let spread = q2.iter().any(|j| j.id == r.job && j.spread != SpreadPolicy::None);
                        !(spread && plan2.placements.iter().any(|p| p.job == r.job))
                    })
                    .collect();
                if victims.is_empty() {
                    continue;
                }
                prop_assert!(
                    !fits_after_freeing(&fleet, &plan2, job, pool, &victims),
                    "job {} pending but would fit in pool {} by preempting {:?}",
                    job.id, pool.id, victims.iter().map(|v| v.job).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn a_pending_job_really_does_not_fit_now(
        pools in prop::collection::vec(pool_spec(), 1..4),
        jobs in prop::collection::vec(job_spec(), 1..30),
    ) {
        let fleet = build_fleet(&pools);
        let queue: Vec<QueuedJob> = jobs.iter().enumerate().flat_map(|(i, s)| build_jobs(i as u64 + 1, s)).collect();
        let plan = schedule(&fleet, &queue, 0).unwrap();
        // Capacity left over after the plan: a job reported as lacking capacity fits in no pool;
        // one held for a reservation fits (on the reserved nodes), and is not expected to end
        // by the reservation's start.
        for pending in &plan.pending {
            let job = queue.iter().find(|j| j.id == pending.job && j.replica == pending.replica).unwrap();
            match pending.reason {
                PendingReason::InsufficientCapacity { .. } => {
                    for pool in &fleet.pools {
                        prop_assert!(!fits_after_freeing(&fleet, &plan, job, pool, &[]), "job {} fits in pool {}", job.id, pool.id);
                    }
                }
                PendingReason::HeldForReservation { gang, start } => {
                    // Jobs that end by the reservation's start may take its nodes after this one
                    // was held (the pass starts at 0): it fits with their placements undone.
                    let ends_by_start = |id: JobId| {
                        queue.iter().any(|j| j.id == id && j.duration_s.is_some_and(|d| d <= start))
                    };
                    let mut held_at_its_turn = plan.clone();
                    held_at_its_turn.placements.retain(|p| !ends_by_start(p.job));
                    prop_assert!(
                        fleet.pools.iter().any(|pool| fits_after_freeing(&fleet, &held_at_its_turn, job, pool, &[])),
                        "held job {} fits nowhere", job.id
                    );
                    prop_assert!(job.duration_s.is_none_or(|d| d > start), "held job {} ends by {start}", job.id);
                    prop_assert!(plan.pending.iter().any(|p| p.job == gang), "the reserved gang {gang} waits");
                }
                _ => {}
            }
        }
    }
}
