//! Criterion benches for the scheduler's hot paths on simulated fleets: building the indexes,
//! a pass of sandbox placements, a pass of gang placements, and a mixed pass with a pending tail.
//! `cumulo bench sched` gives the full-scale figures; these track regressions on smaller inputs.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use cumulo_sched::{Config, Scheduler};
use cumulo_synth::{FleetConfig, Mix, QueueConfig, fleet, queue};

fn small_fleet() -> cumulo_sched::Snapshot {
    let mut snapshot = fleet(&FleetConfig { gpus: 50_000, vcpus: 1_000_000, ..FleetConfig::default() }, 1);
    snapshot.tenants = cumulo_synth::tenant_policies();
    snapshot
}

fn benches(c: &mut Criterion) {
    let snapshot = small_fleet();
    let mut group = c.benchmark_group("sched");
    group.sample_size(10);

    group.bench_function("index_build_50k_gpus_1m_vcpus", |b| {
        b.iter(|| Scheduler::new(&snapshot, Config::default()).expect("consistent"))
    });

    for (mix, jobs) in [(Mix::Sandbox, 100_000), (Mix::Gang, 300), (Mix::Mixed, 100_000)] {
        let q = queue(&QueueConfig { jobs, mix, ..QueueConfig::default() }, 1);
        group.bench_function(format!("schedule_{jobs}_{mix}_jobs"), |b| {
            b.iter_batched(
                || Scheduler::new(&snapshot, Config::default()).expect("consistent"),
                |s| s.schedule_once(&q, 0),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(sched, benches);
criterion_main!(sched);
