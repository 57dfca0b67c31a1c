//! The budget gate as data: a fleet, a queue, tenants' caps, and which jobs it holds and why.

use std::collections::HashMap;

use cumulo_sched::budget::{HeldJob, SpendCap, gate, hourly_estimate};
use cumulo_synth::{FleetBuilder, OnlyOn, job};
use cumulo_types::{GpuModel, JobId, Money, Priority};

fn cap(tenant: &str, budget: i64, spent: i64) -> SpendCap {
    SpendCap { tenant: tenant.to_string(), budget: Money::from_dollars(budget), spent: Money::from_dollars(spent) }
}

fn ids(queue: &[cumulo_sched::QueuedJob]) -> Vec<u64> {
    queue.iter().map(|q| q.id.0).collect()
}

#[test]
fn a_job_is_estimated_at_its_cheapest_feasible_pool_for_an_hour_per_node() {
    let fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 4).price(100).hgx("gcp", GpuModel::H100, 4).price(80).build();
    let whole = job(1).gpus("H100", "8").nodes(2).build();
    assert_eq!(hourly_estimate(&fleet.pools, &whole), Some(Money::from_dollars(160)), "two nodes at gcp's $80");
    let half = job(2).gpus("H100", "4").build();
    assert_eq!(hourly_estimate(&fleet.pools, &half), Some(Money::from_dollars(40)), "half of gcp's node");
    let nowhere = job(3).gpus("B200", "8").build();
    assert_eq!(hourly_estimate(&fleet.pools, &nowhere), None, "no pool holds a B200 node");
}

#[test]
fn a_hard_budget_admits_by_priority_then_age_and_holds_the_rest_with_the_budget_named() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 8).price(100).build();
    let queue = vec![
        job(1).tenant("research").gpus("H100", "8").submitted_at(10).build(),
        job(2).tenant("research").gpus("H100", "8").submitted_at(20).priority(Priority::HIGH).build(),
        job(3).tenant("research").gpus("H100", "8").submitted_at(30).build(),
        job(4).tenant("serving").gpus("H100", "8").submitted_at(40).build(),
    ];
    // $1,000 budget, $750 spent: room for two one-hour $100 jobs.
    let durations = HashMap::new();
    let out = gate(&fleet.pools, queue, &durations, &[cap("research", 1000, 750), cap("serving", 50, 0)]);
    assert_eq!(ids(&out.queue), vec![1, 2], "the high-priority job, then the oldest; serving's $100 job is over $50");
    assert_eq!(
        out.held,
        vec![
            HeldJob {
                job: JobId(3),
                reason: "budget: tenant research would exceed its hard monthly budget of $1,000.00 (spent $750.00, \
                         $200.00 more admitted in this pass, this job ~$100.00)"
                    .into()
            },
            HeldJob {
                job: JobId(4),
                reason: "budget: tenant serving would exceed its hard monthly budget of $50.00 (spent $0.00, this job \
                         ~$100.00)"
                    .into()
            },
        ],
        "each held job names its tenant's budget"
    );
}

#[test]
fn a_duration_sets_the_estimate_and_uncapped_tenants_pass() {
    let fleet = FleetBuilder::new().hgx("aws", GpuModel::H100, 8).price(100).build();
    let queue = vec![
        job(1).tenant("research").gpus("H100", "8").build(),
        job(2).tenant("other").gpus("H100", "8").nodes(8).build(),
    ];
    let durations = HashMap::from([(JobId(1), 1800)]);
    let out = gate(&fleet.pools, queue.clone(), &durations, &[cap("research", 50, 0)]);
    assert_eq!(ids(&out.queue), vec![1, 2], "half an hour at $100/h is exactly the $50 budget; `other` has none");
    let out = gate(&fleet.pools, queue, &HashMap::new(), &[cap("research", 50, 0)]);
    assert_eq!(ids(&out.queue), vec![2], "without a duration the estimate is one hour: $100");
}

#[test]
fn a_job_a_clause_keeps_from_the_cheaper_provider_is_estimated_where_it_may_go() {
    use cumulo_sched::budget::{NarrowingAt, gate_narrowed};
    let fleet =
        FleetBuilder::new().hgx("aws", GpuModel::H100, 4).price(40).hgx("azure", GpuModel::H100, 4).price(100).build();
    let queue = vec![job(1).tenant("research").gpus("H100", "8").build()];
    let caps = [cap("research", 50, 0)];
    let plain = gate(&fleet.pools, queue.clone(), &HashMap::new(), &caps);
    assert_eq!(ids(&plain.queue), vec![1], "an hour at aws's $40 fits the $50 budget");
    let at = NarrowingAt { narrowing: &OnlyOn("azure"), now: 0 };
    let bound = gate_narrowed(&fleet.pools, queue, &HashMap::new(), &caps, &at);
    assert!(bound.queue.is_empty(), "the clause leaves only azure's $100 hour: over the budget");
    assert!(bound.held[0].reason.contains("this job ~$100.00"), "{}", bound.held[0].reason);
}
