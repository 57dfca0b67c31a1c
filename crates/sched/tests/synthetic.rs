//! The scheduler on generated fleets and queues (cumulo-synth), checked by the independent
//! verifier: larger and more varied than the hand-written scenarios.

use cumulo_sched::{PendingReason, RunningAlloc, schedule, verify_plan};
use cumulo_synth::{FleetConfig, Mix, QueueConfig, fleet, queue, tenant_policies};

fn small() -> FleetConfig {
    FleetConfig { gpus: 20_000, vcpus: 200_000, ..FleetConfig::default() }
}

#[test]
fn every_mix_gives_a_verified_deterministic_plan() {
    for mix in [Mix::Sandbox, Mix::Gang, Mix::Mixed] {
        let mut snapshot = fleet(&small(), 3);
        snapshot.tenants = tenant_policies();
        let jobs = queue(&QueueConfig { jobs: 5_000, mix, start_at: 0 }, 3);
        let plan = schedule(&snapshot, &jobs, 0).unwrap();
        verify_plan(&snapshot, &jobs, &plan).unwrap_or_else(|e| panic!("{mix}: {e}"));
        assert_eq!(plan.placements.len() + plan.pending.len(), jobs.len());
        assert!(!plan.placements.is_empty(), "{mix}: nothing placed");
        assert_eq!(plan, schedule(&snapshot, &jobs, 0).unwrap(), "{mix}: deterministic");
    }
}

#[test]
fn a_second_pass_preempts_low_priority_work_for_high_priority_gangs() {
    let mut snapshot = fleet(&small(), 5);
    snapshot.tenants = tenant_policies();
    // Fill the fleet with low-priority preemptible batch work first.
    let mut first = queue(&QueueConfig { jobs: 20_000, mix: Mix::Mixed, start_at: 0 }, 5);
    for j in &mut first {
        j.priority = cumulo_types::Priority::LOW;
        j.preemptible = true;
    }
    let plan1 = schedule(&snapshot, &first, 0).unwrap();
    snapshot.running = plan1
        .placements
        .iter()
        .map(|p| {
            let j = first.iter().find(|j| j.id == p.job && j.replica == p.replica).unwrap();
            RunningAlloc {
                job: p.job,
                replica: p.replica,
                tenant: j.tenant.clone(),
                priority: j.priority,
                preemptible: true,
                pool: p.pool,
                nodes: p.nodes.clone(),
                started_at: 0,
                expected_end: None,
            }
        })
        .collect();
    let mut second = queue(&QueueConfig { jobs: 200, mix: Mix::Gang, start_at: 100 }, 6);
    for (i, j) in second.iter_mut().enumerate() {
        j.id = cumulo_types::JobId(1_000_000 + i as u64);
        j.priority = cumulo_types::Priority::HIGH;
    }
    let plan2 = schedule(&snapshot, &second, 100).unwrap();
    verify_plan(&snapshot, &second, &plan2).unwrap();
    assert!(!plan2.preemptions.is_empty(), "high-priority gangs displace low-priority work");
    assert!(!plan2.placements.is_empty());
    for p in &plan2.pending {
        assert!(
            !matches!(p.reason, PendingReason::InvalidRequest { .. } | PendingReason::NoSuchGpuModel { .. }),
            "{}",
            p.reason
        );
    }
}
