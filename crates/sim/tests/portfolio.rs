//! A fleet taken from a portfolio file: contract pools from the ramps (delivered nodes now, later
//! steps as deliveries), the commitment burnt on the portfolio's own schedule, errors naming
//! `fleet.portfolio`, and the illustrative demo labelled as such.

use cumulo_sim::engine::RunInput;
use cumulo_sim::fleet::Fleet;
use cumulo_sim::report::PolicyReport;
use cumulo_sim::scenario::{PolicyName, Scenario, SimSettings};
use cumulo_sim::simulate::{run_jobs, simulate};
use cumulo_sim::speed::{ModelSet, SpeedRow};
use cumulo_sim::workload::TraceJob;
use cumulo_types::{CapacityKind, JobKind, MilliGpu, Money, Priority, TopologyNeed};

const DAY: u64 = 86_400;

/// One contract: $1,000,000 over 2026, 2 H100 nodes at $10/node-hour on 2026-01-01 and 2 more on
/// 2026-01-11 (day 10). `h100-box` is not in the built-in catalog: its list price is the rate.
const TINY: &str = "
name: tiny
node_types:
  - {name: h100-box, gpu: H100, gpus: 8, vcpus: 96, memory_gb: 1024}
contracts:
  - id: c1
    provider: aws
    committed_usd: 1000000
    term: {start: 2026-01-01, end: 2026-12-31}
    ramp:
      - {date: 2026-01-01, region: us-east-1, node_type: h100-box, nodes: 2}
      - {date: 2026-01-11, region: us-east-1, node_type: h100-box, nodes: 2}
    rates:
      - {node_type: h100-box, per_node_hour: 10}
";

fn scenario_text(portfolio: &str, extra_pools: &str) -> String {
    format!(
        "name: from-portfolio
start_date: 2026-01-01
horizon_days: 30
fleet:
  portfolio: {portfolio}
{extra_pools}
workload:
  sources:
    - generator: {{jobs: 5, horizon_days: 0.01}}
"
    )
}

/// Writes the portfolio and a scenario naming it by a relative path; returns the scenario path.
fn write_scenario(dir: &std::path::Path, portfolio_yaml: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("portfolio.yaml"), portfolio_yaml).unwrap();
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, scenario_text("portfolio.yaml", "")).unwrap();
    path
}

fn gang_of_four(arrival_s: u64, work_s: u64) -> TraceJob {
    TraceJob {
        needs: cumulo_sim::workload::NO_NEEDS,
        arrival_s,
        kind: JobKind::Training,
        tenant: 0,
        priority: Priority::NORMAL,
        preemptible: false,
        num_nodes: 4,
        topology: TopologyNeed::Any,
        gpus_per_node: MilliGpu::whole(8),
        cpus_milli: 1000,
        memory_mib: 1024,
        models: ModelSet::ANY,
        job_type: 0,
        work_s,
    }
}

/// Runs `jobs` on `fleet` under `policy` for 30 simulated days: one tenant, uniform speeds, a
/// one-minute tick and daily samples.
fn run_30_days(fleet: &Fleet, policy: PolicyName, jobs: &[TraceJob]) -> PolicyReport {
    let tenants = vec!["t".to_string()];
    let speeds = vec![SpeedRow::uniform("x")];
    let settings = SimSettings { tick_s: 60, sample_s: Some(DAY), ..SimSettings::default() };
    let input = RunInput {
        fleet,
        speeds: &speeds,
        tenants: &tenants,
        events: &[],
        settings: &settings,
        policy,
        horizon_s: Some(30 * DAY),
        sample_s: DAY,
        span_s: 30 * DAY,
        seed: 0,
        target: None,
        needs: &[],
    };
    run_jobs(&input, jobs).unwrap()
}

#[test]
fn ramps_become_one_contract_pool_with_later_steps_as_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::load(&write_scenario(dir.path(), TINY)).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    assert_eq!(fleet.pools.len(), 1);
    let p = &fleet.pools[0];
    assert_eq!(p.pool.capacity, CapacityKind::Contract);
    assert_eq!((p.pool.provider.as_str(), p.pool.region.as_str()), ("aws", "us-east-1"));
    assert_eq!(p.pool.node_type.name, "h100-box");
    assert_eq!((p.pool.node_type.gpus, p.pool.node_type.vcpus, p.pool.node_type.memory_gb), (8, 96, 1024));
    assert_eq!(p.pool.nodes.len(), 4);
    assert_eq!(p.pool.nodes.iter().filter(|n| n.schedulable).count(), 2);
    assert_eq!(p.initial_nodes, 2);
    assert_eq!(p.deliveries, vec![(10 * DAY, 2)]);
    assert_eq!(p.contract_rate, Money::from_dollars(10));
    assert_eq!(p.list_price, Money::from_dollars(10), "not in the catalog: the contract rate");
    assert_eq!(fleet.contracts.len(), 1);
    assert_eq!(fleet.contracts[0].name, "c1");
    assert_eq!(fleet.contracts[0].provider, "aws");
    assert_eq!(fleet.contracts[0].committed, Some(Money::from_dollars(1_000_000)));
    assert!(!fleet.illustrative);

    // A job needing all 4 nodes arrives at 0 and can start only when the second step lands.
    for policy in [PolicyName::Cumulo, PolicyName::FifoFirstFit, PolicyName::CheapestFirst] {
        let r = run_30_days(&fleet, policy, &[gang_of_four(0, 100)]);
        assert_eq!(r.finished, 1, "{policy:?}");
        assert_eq!(r.queueing_delay_s["all"].mean_s, (10 * DAY) as f64, "{policy:?}");
        assert_eq!(r.jct_s["all"].mean_s, (10 * DAY + 100) as f64, "{policy:?}");
        // Owed over the 30 simulated days: the portfolio's schedule follows delivered value,
        // $20/h (2 nodes) for 30 days + $20/h for 20 days = $24,000 of $345,600 for the term
        // ($20/h for 365 days + $20/h for 355 days).
        let usd = |m: Money| (m.micros() as f64 / 1e4).round() / 100.0;
        let day_10 = r.burn_down["c1"].iter().find(|b| b.t_s == 10 * DAY).expect("a sample at day 10");
        assert_eq!(day_10.scheduled_usd, usd(Money::from_dollars(1_000_000).mul_div(4_800, 345_600)), "{policy:?}");
        let owed = Money::from_dollars(1_000_000).mul_div(24_000, 345_600);
        assert_eq!(r.cost.by_contract["c1"].committed_usd, usd(owed));
    }
}

#[test]
fn the_burn_schedule_follows_the_portfolio_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::load(&write_scenario(dir.path(), TINY)).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    let schedule = fleet.contracts[0].schedule.as_ref().expect("a portfolio contract has its schedule");
    let committed = Money::from_dollars(1_000_000);
    assert_eq!(schedule.scheduled(0), Money::ZERO);
    // day 10: $20/h for 240 h = $4,800 of $345,600
    assert_eq!(schedule.scheduled(10 * DAY), committed.mul_div(4_800, 345_600));
    // day 20: $20/h for 480 h + $20/h for 240 h = $14,400
    assert_eq!(schedule.scheduled(20 * DAY), committed.mul_div(14_400, 345_600));
    // the whole term: all of it
    assert_eq!(schedule.scheduled(365 * DAY), committed);

    // started later, the schedule counts from the simulation's start
    let later = std::fs::read_to_string(dir.path().join("scenario.yaml"))
        .unwrap()
        .replace("start_date: 2026-01-01", "start_date: 2026-01-06");
    std::fs::write(dir.path().join("later.yaml"), later).unwrap();
    let fleet = Fleet::for_scenario(&Scenario::load(&dir.path().join("later.yaml")).unwrap()).unwrap();
    assert_eq!(fleet.pools[0].deliveries, vec![(5 * DAY, 2)]);
    let schedule = fleet.contracts[0].schedule.as_ref().unwrap();
    // days 5..10: $20/h for 120 h = $2,400
    let by_day_10 = committed.mul_div(4_800, 345_600) - committed.mul_div(2_400, 345_600);
    assert_eq!(schedule.scheduled(5 * DAY), by_day_10);
}

#[test]
fn later_steps_beyond_the_horizon_are_left_out_and_pools_add_on_demand_capacity() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portfolio.yaml"), TINY).unwrap();
    let pools = "  pools:\n    - {provider: lambda, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 208, memory_gb: 1800, nodes: 3, price_per_node_hour: 31.92}";
    let text = scenario_text("portfolio.yaml", pools).replace("horizon_days: 30", "horizon_days: 5");
    std::fs::write(dir.path().join("s.yaml"), text).unwrap();
    let fleet = Fleet::for_scenario(&Scenario::load(&dir.path().join("s.yaml")).unwrap()).unwrap();
    assert_eq!(fleet.pools.len(), 2);
    assert_eq!(fleet.pools[0].pool.nodes.len(), 2, "the day-10 step is past a 5-day horizon");
    assert!(fleet.pools[0].deliveries.is_empty());
    assert_eq!(fleet.pools[1].pool.capacity, CapacityKind::OnDemand);
    assert_eq!(fleet.pools[1].pool.nodes.len(), 3);
    assert_eq!(fleet.pools[1].contract, None);
}

#[test]
fn a_missing_portfolio_file_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, scenario_text("nowhere.yaml", "")).unwrap();
    let scenario = Scenario::load(&path).unwrap();
    let err = Fleet::for_scenario(&scenario).unwrap_err().to_string();
    let missing = dir.path().join("nowhere.yaml").display().to_string();
    assert!(err.starts_with(&format!("scenario: fleet.portfolio `{missing}`: cannot read `{missing}`: ")), "{err}");
}

#[test]
fn a_node_type_the_portfolio_does_not_define_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_scenario(
        dir.path(),
        &TINY.replace("node_type: h100-box, nodes: 2}\n", "node_type: b200-box, nodes: 2}\n"),
    );
    let scenario = Scenario::load(&path).unwrap();
    let err = Fleet::for_scenario(&scenario).unwrap_err().to_string();
    let file = dir.path().join("portfolio.yaml").display().to_string();
    assert_eq!(
        err,
        format!(
            "scenario: fleet.portfolio `{file}`: contract `c1` field `ramp[0].node_type`: unknown node type `b200-box` (declared: h100-box)"
        )
    );
}

#[test]
fn a_scenario_with_only_a_portfolio_is_a_fleet_but_not_without_its_dates() {
    let scenario = Scenario::parse(&scenario_text("demo", "")).unwrap();
    assert_eq!(scenario.fleet.portfolio.as_deref(), Some("demo"));
    let err = Fleet::build(&scenario.fleet, &[], &[]).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid fleet.portfolio `demo`: expected the portfolio read and dated by the scenario (Fleet::for_scenario)"
    );
}

#[test]
fn the_demo_portfolio_builds_and_its_report_says_illustrative() {
    let text = scenario_text("demo", "").replace("horizon_days: 30", "horizon_days: 0.02");
    let scenario = Scenario::parse(&text).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    assert!(fleet.illustrative);
    // aws-2025 on 2026-01-01: 4,500 GB200 nodes at $2.85 x 4 per node-hour, list price from the
    // built-in catalog's p6e-gb200.36xlarge ($64)
    let aws = fleet.pools.iter().find(|p| p.pool.node_type.name == "p6e-gb200.36xlarge").unwrap();
    assert_eq!(aws.initial_nodes, 4_500);
    assert_eq!(aws.pool.node_type.nvlink_domain_nodes, 18);
    assert_eq!(aws.contract_rate, Money::parse_dollars("11.40").unwrap());
    assert_eq!(aws.list_price, Money::from_dollars(64));
    assert_eq!(
        fleet.contracts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["aws-2025", "azure-2025", "oci-2026", "gcp-2025", "coreweave-2025"]
    );
    let scenario = Scenario { policies: vec![PolicyName::Cumulo], ..scenario };
    let report = simulate(&scenario, &mut |_, _| {}).unwrap();
    assert!(report.illustrative);
    assert!(report.simulated);
    assert!(report.description.starts_with("illustrative portfolio"), "{}", report.description);
}

#[test]
fn contracts_written_in_the_scenario_still_burn_evenly_over_the_run() {
    let spec: cumulo_sim::scenario::FleetSpec = serde_yaml::from_str(
        "
pools:
  - {provider: aws, region: us-east-1, capacity: contract, contract: k, gpu: H100, gpus_per_node: 8, vcpus: 96, memory_gb: 1024, nodes: 1, price_per_node_hour: 98.32, contract_rate_per_node_hour: 10}
contracts:
  - {name: k, committed_usd: 3000}
",
    )
    .unwrap();
    let fleet = Fleet::build(&spec, &[], &[]).unwrap();
    assert_eq!(fleet.contracts[0].schedule, None);
    let mut job = gang_of_four(0, 20 * DAY);
    job.num_nodes = 1;
    let r = run_30_days(&fleet, PolicyName::Cumulo, &[job]);
    // $3,000 over 30 days: $1,000 by day 10
    let day_10 = r.burn_down["k"].iter().find(|b| b.t_s == 10 * DAY).expect("a sample at day 10");
    assert_eq!(day_10.scheduled_usd, 1000.0);
    assert_eq!(r.cost.by_contract["k"].committed_usd, 3000.0);
}

#[test]
fn the_demo_year_example_loads_and_its_workload_is_sized_to_the_fleet() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/portfolio-demo-year.yaml"));
    let scenario = Scenario::load(path).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    assert!(fleet.illustrative);
    assert!(scenario.description.contains("illustrative"));
    // mean contract GPUs over the horizon, from each pool's delivery dates
    let days = scenario.horizon_days.unwrap();
    let horizon = days * DAY as f64;
    let mean_gpus: f64 = fleet
        .pools
        .iter()
        .filter(|p| p.contract.is_some())
        .map(|p| {
            let gpus = p.gpus_per_node() as f64;
            let later: f64 =
                p.deliveries.iter().map(|(t, n)| *n as f64 * (horizon - *t as f64).max(0.0) / horizon).sum();
            gpus * (p.initial_nodes as f64 + later)
        })
        .sum();
    let cumulo_sim::scenario::SourceSpec::Generator(g) = &scenario.workload.sources[0] else { panic!("a generator") };
    assert_eq!(g.horizon_days, days);
    // H100-GPUs of work offered on average: about the contracts' GPUs (faster GB200s run it in less)
    let offered = g.offered_gpu_hours() / (days * 24.0);
    println!("contract GPUs on average {mean_gpus:.0}, offered {offered:.0}");
    assert!((0.8..1.5).contains(&(offered / mean_gpus)), "offered {offered:.0} of {mean_gpus:.0}");
}

/// Two contracts of H100 boxes: AWS's cheap one, and Azure's dearer one from 2026-01-11 (day 10)
/// with an exclusive clause on H100 work.
const EXCLUSIVE: &str = "
name: exclusive
node_types:
  - {name: h100-box, gpu: H100, gpus: 8, vcpus: 96, memory_gb: 1024}
contracts:
  - id: cheap
    provider: aws
    committed_usd: 1000
    term: {start: 2026-01-01, end: 2026-12-31}
    ramp:
      - {date: 2026-01-01, region: us-east-1, node_type: h100-box, nodes: 2}
    rates:
      - {node_type: h100-box, per_node_hour: 10}
  - id: sole
    provider: azure
    committed_usd: 1000
    term: {start: 2026-01-11, end: 2026-12-31}
    ramp:
      - {date: 2026-01-11, region: eastus, node_type: h100-box, nodes: 2}
    rates:
      - {node_type: h100-box, per_node_hour: 90}
    clauses:
      exclusive: {gpus: [H100]}
";

#[test]
fn the_simulator_binds_a_portfolios_clauses_from_the_day_its_contract_starts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Scenario::load(&write_scenario(dir.path(), EXCLUSIVE)).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    let one_node = |arrival_s: u64| TraceJob { num_nodes: 1, ..gang_of_four(arrival_s, 3600) };
    for policy in [PolicyName::Cumulo, PolicyName::CheapestFirst, PolicyName::FifoFirstFit] {
        let r = run_30_days(&fleet, policy, &[one_node(DAY), one_node(20 * DAY), one_node(20 * DAY)]);
        assert_eq!(r.finished, 3, "{policy:?}");
        let consumed = |c: &str| r.cost.by_contract[c].consumed_usd;
        assert_eq!(consumed("cheap"), 10.0, "{policy:?}: on day 1 only AWS has nodes: one $10 hour");
        assert_eq!(
            consumed("sole"),
            180.0,
            "{policy:?}: on day 20 Azure's exclusive clause binds: both jobs take its $90 hours, none AWS's free nodes"
        );
    }
}
