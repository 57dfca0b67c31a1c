//! The simulation engine on tiny scenarios whose outcome is computed by hand, plus determinism
//! and outages.

use cumulo_sim::engine::RunInput;
use cumulo_sim::fleet::Fleet;
use cumulo_sim::report::PolicyReport;
use cumulo_sim::scenario::{EventSpec, FleetSpec, PolicyName, Scenario, SimSettings};
use cumulo_sim::simulate::{run_jobs, simulate};
use cumulo_sim::speed::{ModelSet, SpeedRow};
use cumulo_sim::workload::TraceJob;
use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};

fn job(arrival_s: u64, gpus: u32, work_s: u64) -> TraceJob {
    TraceJob {
        needs: cumulo_sim::workload::NO_NEEDS,
        arrival_s,
        kind: JobKind::Training,
        tenant: 0,
        priority: Priority::NORMAL,
        preemptible: false,
        num_nodes: 1,
        topology: TopologyNeed::Any,
        gpus_per_node: MilliGpu::whole(gpus),
        cpus_milli: 1000,
        memory_mib: 1024,
        models: ModelSet::ANY,
        job_type: 0,
        work_s,
    }
}

fn fleet(yaml: &str) -> Fleet {
    let spec: FleetSpec = serde_yaml::from_str(yaml).unwrap();
    Fleet::build(&spec, &[], &[]).unwrap()
}

fn settings() -> SimSettings {
    SimSettings { tick_s: 1, sample_s: Some(10), ..SimSettings::default() }
}

struct Case<'a> {
    fleet: &'a Fleet,
    speeds: Vec<SpeedRow>,
    events: Vec<EventSpec>,
    settings: SimSettings,
    policy: PolicyName,
}

impl Case<'_> {
    fn run(&self, jobs: &[TraceJob]) -> PolicyReport {
        let tenants = vec!["t".to_string()];
        let input = RunInput {
            fleet: self.fleet,
            speeds: &self.speeds,
            tenants: &tenants,
            events: &self.events,
            settings: &self.settings,
            policy: self.policy,
            horizon_s: None,
            sample_s: self.settings.sample_s.unwrap_or(10),
            span_s: 1000,
            seed: 0,
            target: None,
            needs: &[],
        };
        run_jobs(&input, jobs).unwrap()
    }
}

const ONE_NODE: &str = "
pools:
  - {provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 1, price_per_node_hour: 98.32}
";

/// `check(jobs, (count, mean, p50, p99) of JCT, (mean) queueing delay)` for every policy.
fn check(fleet: &Fleet, jobs: &[TraceJob], jct: (u64, f64, u64, u64), mean_delay: f64) {
    for policy in [PolicyName::Cumulo, PolicyName::FifoFirstFit, PolicyName::CheapestFirst] {
        let settings = settings();
        let case = Case { fleet, speeds: vec![SpeedRow::uniform("x")], events: vec![], settings, policy };
        let r = case.run(jobs);
        let d = &r.jct_s["all"];
        assert_eq!((d.count, d.mean_s, d.p50_s, d.p99_s), jct, "{policy:?}");
        assert_eq!(r.queueing_delay_s["all"].mean_s, mean_delay, "{policy:?}");
        assert_eq!(r.jobs, jobs.len() as u64);
        assert_eq!(r.finished, jobs.len() as u64);
    }
}

#[test]
fn two_jobs_that_cannot_share_a_node_run_one_after_the_other() {
    // A: 0..100. B arrives at 10, waits for A, runs 100..150: JCT 140, delay 90.
    check(&fleet(ONE_NODE), &[job(0, 8, 100), job(10, 8, 50)], (2, 120.0, 100, 140), 45.0);
}

#[test]
fn jobs_that_fit_together_run_at_once() {
    // 4 + 4 GPUs share the node: both start on arrival.
    check(&fleet(ONE_NODE), &[job(0, 4, 100), job(10, 4, 50)], (2, 75.0, 50, 100), 0.0);
}

#[test]
fn a_queue_drains_in_order_on_one_node() {
    // 8-GPU jobs of 30 s arriving together at 5: they finish at 35, 65, 95.
    let jobs = [job(5, 8, 30), job(5, 8, 30), job(5, 8, 30)];
    check(&fleet(ONE_NODE), &jobs, (3, 60.0, 60, 90), 30.0);
}

#[test]
fn passes_happen_on_tick_boundaries() {
    let f = fleet(ONE_NODE);
    let case = Case {
        fleet: &f,
        speeds: vec![SpeedRow::uniform("x")],
        events: vec![],
        settings: SimSettings { tick_s: 60, sample_s: Some(60), ..SimSettings::default() },
        policy: PolicyName::Cumulo,
    };
    // arrives at 10, placed at the pass at 60, runs 100 s: JCT 150
    let r = case.run(&[job(10, 8, 100)]);
    assert_eq!(r.jct_s["all"].mean_s, 150.0);
    assert_eq!(r.queueing_delay_s["all"].mean_s, 50.0);
}

const V100_AND_H100: &str = "
pools:
  - {provider: aws, region: us-east-1, capacity: on-demand, gpu: V100, gpus_per_node: 8, vcpus: 64, memory_gb: 488, nodes: 1, price_per_node_hour: 24.48}
  - {provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 1, price_per_node_hour: 98.32}
";

#[test]
fn heterogeneity_sets_run_time_and_cumulo_buys_speed_where_it_is_cheaper_per_unit_of_work() {
    let f = fleet(V100_AND_H100);
    // fully compute-bound job type, reference V100: H100 is 989/125 = 7.912x faster for 4x price
    let speeds = vec![SpeedRow::by_flops("compute-bound", GpuModel::V100, 1.0)];
    let jobs = [job(0, 8, 7912)];
    let run =
        |policy| Case { fleet: &f, speeds: speeds.clone(), events: vec![], settings: settings(), policy }.run(&jobs);
    // Cumulo: H100, 7912 / 7.912 = 1000 s
    assert_eq!(run(PolicyName::Cumulo).jct_s["all"].mean_s, 1000.0);
    assert_eq!(run(PolicyName::Cumulo).gpu_hours_by_model["H100"], (8.0 * 1000.0 / 3600.0 * 100.0_f64).round() / 100.0);
    // cheapest-first at list price: the V100 node, 7912 s
    assert_eq!(run(PolicyName::CheapestFirst).jct_s["all"].mean_s, 7912.0);
}

#[test]
fn outage_replaces_every_affected_job_and_counts_lost_gpu_hours() {
    let f = fleet(
        "
pools:
  - {provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 2, price_per_node_hour: 50}
  - {provider: gcp, region: us-central1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 2, price_per_node_hour: 90}
",
    );
    let outage: EventSpec = serde_yaml::with::singleton_map::deserialize(serde_yaml::Deserializer::from_str(
        "outage: {provider: aws, at_days: 0.01, for_hours: 1}",
    ))
    .unwrap();
    // outage at 864 s. Training with checkpoints every 300 s keeps 600 s, loses 264 s.
    let mut batch = job(0, 8, 2000);
    batch.kind = JobKind::Batch;
    let jobs = [job(0, 8, 2000), batch];
    {
        let case = Case {
            fleet: &f,
            speeds: vec![SpeedRow::uniform("x")],
            events: vec![outage.clone()],
            settings: SimSettings { tick_s: 1, sample_s: Some(100), checkpoint_s: 300, ..SimSettings::default() },
            policy: PolicyName::Cumulo,
        };
        let r = case.run(&jobs);
        assert_eq!(r.failures.outages, 1);
        assert_eq!(r.failures.attempts_failed, 2, "both jobs ran on aws, the cheaper provider");
        assert_eq!(r.finished, 2, "both re-placed on gcp and finished");
        // lost: training 264 s × 8 GPUs, batch (no checkpoint) 864 s × 8 GPUs
        let lost = (264.0 * 8.0 + 864.0 * 8.0) / 3600.0;
        assert_eq!(r.failures.gpu_hours_lost, (lost * 100.0_f64).round() / 100.0);
        // training resumes at 864 with 1400 s left: ends 2264. Batch restarts: ends 2864.
        let d = &r.jct_s["all"];
        assert_eq!((d.p50_s, d.p99_s), (2264, 2864));
        assert!(r.cost.by_provider["gcp"] > 0.0);
    }
}

#[test]
fn same_seed_same_report_byte_for_byte() {
    let yaml = "
name: replay
seed: 11
horizon_days: 2
sim: {tick_s: 300}
fleet:
  pools:
    - {provider: aws, region: us-east-1, capacity: contract, contract: aws-c, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 40, price_per_node_hour: 98.32, contract_rate_per_node_hour: 60}
    - {provider: lambda, region: us-west-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 208, memory_gb: 1800, nodes: 40, price_per_node_hour: 23.92}
    - {provider: oci, region: us-chicago-1, capacity: spot, gpu: A100, gpus_per_node: 8, vcpus: 128, memory_gb: 2048, nodes: 20, price_per_node_hour: 16}
    - {provider: aws, region: us-east-1, capacity: on-demand, vcpus: 96, memory_gb: 384, nodes: 20, price_per_node_hour: 4}
workload:
  sources:
    - generator:
        jobs: 1000
        horizon_days: 2
        classes:
          - {name: batch, kind: batch, weight: 0.6, gpus_min: 1, gpus_max: 8, median_hours: 1, preemptible: true}
          - {name: train, kind: training, weight: 0.1, gpus_min: 16, gpus_max: 64, median_hours: 4}
          - {name: serve, kind: inference, weight: 0.1, gpus_min: 8, gpus_max: 8, median_hours: 3, priority: high}
          - {name: sbx, kind: sandbox, weight: 0.2, median_hours: 0.1, vcpus: 4}
events:
  - outage: {provider: lambda, at_days: 1, for_hours: 4}
";
    let scenario = Scenario::parse(yaml).unwrap();
    let a = serde_json::to_string(&simulate(&scenario, &mut |_, _| {}).unwrap()).unwrap();
    let b = serde_json::to_string(&simulate(&scenario, &mut |_, _| {}).unwrap()).unwrap();
    assert_eq!(a, b);
    let report: serde_json::Value = serde_json::from_str(&a).unwrap();
    let Some(cumulo_sim::scenario::SourceSpec::Generator(g)) = scenario.workload.sources.first() else { panic!() };
    let arrived = g.stream(11).filter(|j| j.arrival_s <= 2 * 86_400).count();
    assert_eq!(report["jobs"], arrived as u64, "jobs that arrived within the horizon");
    assert_eq!(report["policies"].as_array().unwrap().len(), 3);
    assert_eq!(report["simulated"], true);
    let mut other = scenario.clone();
    other.seed = 12;
    let c = serde_json::to_string(&simulate(&other, &mut |_, _| {}).unwrap()).unwrap();
    assert_ne!(a, c, "another seed gives another workload");
}

#[test]
fn scenario_errors_name_the_field() {
    let check = |yaml: &str, want: &str| {
        let err = Scenario::parse(yaml).unwrap_err().to_string();
        assert!(err.contains(want), "{err}\n wanted: {want}");
    };
    let base = "name: x\nfleet:\n  pools:\n    - {provider: aws, region: r, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 8, memory_gb: 8, nodes: 1, price_per_node_hour: 1}\nworkload:\n  sources:\n    - generator: {jobs: 1, horizon_days: 1}\n";
    Scenario::parse(base).unwrap();
    check(&base.replace("gpu: H100", "gpu: H900"), "fleet.pools[0].gpu: unknown GPU model `H900`");
    check(
        &base.replace("price_per_node_hour: 1", "price_per_node_hour: -1"),
        "invalid fleet.pools[0].price_per_node_hour `-1`",
    );
    check(&format!("{base}sim: {{tick_s: 0}}\n"), "invalid sim.tick_s `0`: expected a positive number of seconds");
    check(
        &format!("{base}sim: {{spot_risk_premium: -0.5}}\n"),
        "invalid sim.spot_risk_premium `-0.5`: expected a share of the spot price from 0 to 10",
    );
    check(&format!("{base}policies: [round-robin]\n"), "policies[0]: unknown variant `round-robin`");
    check(
        &base.replace("capacity: on-demand", "capacity: contract"),
        "invalid fleet.pools[0].contract `none`: expected a contract name exactly when capacity is `contract`",
    );
    check(
        &format!("{base}events:\n  - outage: {{provider: aws, at_days: -1, for_hours: 1}}\n"),
        "invalid events[0].outage.at_days `-1`",
    );
}

#[test]
fn inference_demand_that_waits_past_its_window_is_unserved() {
    let f = fleet(ONE_NODE);
    let mut a = job(0, 8, 100);
    a.kind = JobKind::Inference;
    let mut b = a.clone();
    b.arrival_s = 10;
    let case = Case {
        fleet: &f,
        speeds: vec![SpeedRow::uniform("x")],
        events: vec![],
        settings: settings(),
        policy: PolicyName::Cumulo,
    };
    let r = case.run(&[a, b]);
    // A serves 0..100; B's window (10..110) is mostly lost: it starts at 100 and serves 10 s
    assert_eq!(r.inference.jobs, 2);
    assert_eq!(r.inference.served_share, 0.55);
    assert_eq!(r.inference.slo_attainment, 1.0, "both started within 300 s");
    assert_eq!(r.jct_s["inference"].p99_s, 100);
}

const ONE_NVL72_RACK: &str = "
pools:
  - {provider: aws, region: us-east-1, capacity: on-demand, gpu: GB200, gpus_per_node: 4, vcpus: 144, memory_gb: 960, nodes: 18, price_per_node_hour: 40}
";

/// One NVL72 rack filled at 0 by 18 one-node jobs ending at 100, 110, ..., 270; an 18-node gang
/// arrives at 5; from 10 on a one-node job of 300 s arrives every 10 s until 2000. Returns the
/// gang's start.
fn gang_start_under_a_stream(backfill: cumulo_sched::Backfill) -> u64 {
    let f = fleet(ONE_NVL72_RACK);
    let mut jobs: Vec<TraceJob> = (0..18).map(|i| job(0, 4, 100 + 10 * i)).collect();
    let mut gang = job(5, 4, 100);
    gang.num_nodes = 18;
    gang.topology = TopologyNeed::NvlinkDomain;
    jobs.push(gang);
    jobs.extend((1..=199).map(|k| job(10 * k, 4, 300)));
    let settings = SimSettings { backfill, job_rows: true, ..settings() };
    let case =
        Case { fleet: &f, speeds: vec![SpeedRow::uniform("x")], events: vec![], settings, policy: PolicyName::Cumulo };
    let r = case.run(&jobs);
    assert_eq!(r.finished, jobs.len() as u64, "every job finishes in the end");
    let row = r.job_rows.iter().find(|row| row.arrival_s == 5).expect("the gang has a row");
    row.start_s.expect("the gang started")
}

#[test]
fn a_reservation_starts_a_waiting_nvl72_gang_that_greedy_backfill_starves() {
    let greedy = gang_start_under_a_stream(cumulo_sched::Backfill::Greedy);
    assert!(
        greedy > 2000,
        "greedy: every node freed goes to the next one-node job, so the gang waits for the stream to end ({greedy})"
    );
    let reserved = gang_start_under_a_stream(cumulo_sched::Backfill::Reservations);
    assert_eq!(
        reserved, 270,
        "with a reservation the rack is held from the first wait on: the gang starts when the last of the first 18 jobs ends"
    );
}

const ONE_V100_ONE_K80: &str = "
pools:
  - {provider: onprem, region: dc1, capacity: on-demand, gpu: V100, gpus_per_node: 1, vcpus: 8, memory_gb: 64, nodes: 1, price_per_node_hour: 3.06}
  - {provider: onprem, region: dc1, capacity: on-demand, gpu: K80, gpus_per_node: 1, vcpus: 8, memory_gb: 64, nodes: 1, price_per_node_hour: 3.06}
";

/// A speed row with `v100` on a V100 and `k80` on a K80 (no other model).
fn v100_k80(name: &str, v100: f32, k80: f32) -> SpeedRow {
    let mut row = SpeedRow { name: name.to_string(), speed: [0.0; cumulo_sim::speed::MODELS] };
    for (i, m) in GpuModel::ALL.iter().enumerate() {
        row.speed[i] = match m {
            GpuModel::V100 => v100,
            GpuModel::K80 => k80,
            _ => 0.0,
        };
    }
    row
}

#[test]
fn a_round_due_at_an_arrival_plans_before_the_pass_places_it() {
    // Both arrive at 0, a round boundary; both models cost the same, so without the round A
    // (first in line) would take the V100. A is nearly as fast on the K80, B 10x faster on the
    // V100: the round gives the V100 to B from the start (it plans before the first pass, and
    // the pass keeps the round's model first), so nobody moves.
    let f = fleet(ONE_V100_ONE_K80);
    let mut a = job(0, 1, 1000);
    a.job_type = 0;
    let mut b = job(0, 1, 1000);
    b.job_type = 1;
    let settings = SimSettings {
        tick_s: 60,
        job_rows: true,
        rounds: Some(cumulo_sim::scenario::RoundSettings { every_s: 360, migration_s: 120, min_gain: 1.3 }),
        ..SimSettings::default()
    };
    let speeds = vec![v100_k80("near", 1.0, 0.9), v100_k80("gains", 1.0, 0.1)];
    let r = Case { fleet: &f, speeds, events: vec![], settings, policy: PolicyName::Cumulo }.run(&[a, b]);
    assert_eq!(r.finished, 2);
    let rows: Vec<(Option<&str>, u32, Option<u64>)> =
        r.job_rows.iter().map(|row| (row.gpu.as_deref(), row.migrations, row.end_s)).collect();
    assert_eq!(
        rows,
        vec![(Some("K80"), 0, Some(1112)), (Some("V100"), 0, Some(1000))],
        "A runs on the K80 (1000 / 0.9 s), B on the V100, each from 0 without a move"
    );
}
