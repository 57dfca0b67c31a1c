//! A portfolio's whole term: demand generated to follow the commitment schedule (hand-checked on
//! a one-contract portfolio), the per-contract term report on a small portfolio worked out by
//! hand (consumed against committed, payable and periods under the minimum, on-demand overflow,
//! the expansion decision, capacity withdrawn at term end), and the scenario errors naming the
//! field.

use chrono::NaiveDate;
use cumulo_portfolio::Portfolio;
use cumulo_sim::engine::RunInput;
use cumulo_sim::fleet::Fleet;
use cumulo_sim::generator::{FollowCommitments, Generator, JobClass};
use cumulo_sim::scenario::{PolicyName, Scenario, SimSettings};
use cumulo_sim::simulate::{load_jobs, run_jobs};
use cumulo_sim::speed::{ModelSet, SpeedRow};
use cumulo_sim::term::{arrival_rate, commitment_gpus};
use cumulo_sim::workload::TraceJob;
use cumulo_types::{GpuModel, JobKind, MilliGpu, Priority, TopologyNeed};

const DAY: u64 = 86_400;

/// One contract over 2026 whose ramp delivers 2 H100 nodes (16 GPUs) on day 0 and 2 more on day
/// 10, at $10/node-hour. Delivered value over the term: $20/h × 365 d + $20/h × 355 d =
/// $345,600; the commitment is half of it, so the schedule burns with half the GPUs in use.
const HALF: &str = "
name: half
node_types:
  - {name: h100-box, gpu: H100, gpus: 8, vcpus: 96, memory_gb: 1024}
  - {name: gb200-box, gpu: GB200, gpus: 4, vcpus: 144, memory_gb: 960}
contracts:
  - id: c1
    provider: aws
    committed_usd: 172800
    term: {start: 2026-01-01, end: 2026-12-31}
    ramp:
      - {date: 2026-01-01, region: us-east-1, node_type: h100-box, nodes: 2}
      - {date: 2026-01-11, region: us-east-1, node_type: h100-box, nodes: 2}
    rates:
      - {node_type: h100-box, per_node_hour: 10}
";

/// One class: 8 GPUs for exactly one hour (σ = 0), the same speed on every GPU (α = 0).
fn one_hour_of_eight(alpha: f64) -> JobClass {
    JobClass {
        name: "unit".to_string(),
        kind: JobKind::Batch,
        weight: 1.0,
        gpus_min: 8,
        gpus_max: 8,
        gpus_per_node: 8,
        vcpus: 8,
        median_hours: 1.0,
        sigma: 0.0,
        priority: Priority::NORMAL,
        preemptible: false,
        models: Vec::new(),
        topology: TopologyNeed::Any,
        alpha,
        tenants: 1,
    }
}

fn following(share_from: f64, share_to: f64, alpha: f64) -> (Generator, FollowCommitments) {
    let follow = FollowCommitments { share_from, share_to, step_days: 1.0 };
    let g = Generator {
        jobs: 0,
        horizon_days: 20.0,
        follow_commitments: Some(follow.clone()),
        seed: Some(5),
        classes: vec![one_hour_of_eight(alpha)],
    };
    (g, follow)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

#[test]
fn generated_demand_tracks_the_commitment_schedule() {
    let portfolio = Portfolio::from_yaml(HALF, "half").unwrap();
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let at = |day: i64| cumulo_portfolio::clock::start_of(start) + chrono::Duration::days(day);
    // half of the delivered GPUs burn the commitment: 8 of 16, then 16 of 32
    assert_eq!(commitment_gpus(&portfolio, at(5)).get(&GpuModel::H100).copied(), Some(8.0));
    assert_eq!(commitment_gpus(&portfolio, at(15)).get(&GpuModel::H100).copied(), Some(16.0));

    // at share 1 a job holds 8 GPU-hours: 8 GPUs held need 1 job an hour, 16 need 2
    let (g, follow) = following(1.0, 1.0, 0.0);
    g.check().unwrap();
    let rate = arrival_rate(&g, &follow, &portfolio, start);
    assert_eq!(rate.segments.len(), 20, "one segment a day over 20 days");
    for s in &rate.segments {
        let want = if s.from_s < 10 * DAY { 1.0 / 3600.0 } else { 2.0 / 3600.0 };
        assert!(close(s.jobs_per_s, want), "day {}: {} jobs/s, want {want}", s.from_s / DAY, s.jobs_per_s);
    }
    assert!(close(rate.expected(0, 10 * DAY), 240.0), "days 0-10 expect 24 jobs a day");
    assert!(close(rate.expected(10 * DAY, 20 * DAY), 480.0), "days 10-20 expect 48 jobs a day");

    // the seeded stream follows it (Poisson: within 4 standard deviations) and repeats itself
    let jobs: Vec<TraceJob> = g.stream_at(0, rate.clone()).collect();
    assert_eq!(jobs, g.stream_at(0, rate.clone()).collect::<Vec<_>>(), "the same seed gives the same jobs");
    assert!(jobs.windows(2).all(|w| w[0].arrival_s <= w[1].arrival_s), "in arrival order");
    let early = jobs.iter().filter(|j| j.arrival_s < 10 * DAY).count() as f64;
    let late = jobs.iter().filter(|j| j.arrival_s >= 10 * DAY).count() as f64;
    assert!((early - 240.0).abs() <= 4.0 * 240f64.sqrt(), "{early} jobs in days 0-10, expected 240");
    assert!((late - 480.0).abs() <= 4.0 * 480f64.sqrt(), "{late} jobs in days 10-20, expected 480");
    assert!(jobs.last().unwrap().arrival_s < 20 * DAY, "nothing after the horizon");

    // the share grows linearly: day i's segment is sized at its middle, share 0.5 + (i + 0.5) / 20
    let (g, follow) = following(0.5, 1.5, 0.0);
    let rate = arrival_rate(&g, &follow, &portfolio, start);
    for (i, s) in rate.segments.iter().enumerate() {
        let share = 0.5 + (i as f64 + 0.5) / 20.0;
        let gpus = if i < 10 { 8.0 } else { 16.0 };
        assert!(close(s.jobs_per_s, share * gpus / 8.0 / 3600.0), "day {i}: {}", s.jobs_per_s);
    }

    // on faster GPUs work holds them for less time, so more of it arrives: a GB200 runs an
    // α = 1 job 2,500 / 989 times as fast as the H100 it is sized on
    let gb200 = HALF
        .replace("node_type: h100-box, nodes: 2}", "node_type: gb200-box, nodes: 4}")
        .replace("committed_usd: 172800", "committed_usd: 345600")
        .replace(
            "rates:\n      - {node_type: h100-box, per_node_hour: 10}",
            "rates:\n      - {node_type: gb200-box, per_node_hour: 10}",
        );
    let portfolio = Portfolio::from_yaml(&gb200, "gb200").unwrap();
    let (g, follow) = following(1.0, 1.0, 1.0);
    let rate = arrival_rate(&g, &follow, &portfolio, start);
    // 16 GB200s (4 nodes of 4; $40/h, value and commitment doubled) half used: 8 GPUs held,
    // each job 8 GPU-hours × 989 / 2,500 (speeds are f32)
    let want = 8.0 / (8.0 * 989.0 / 2500.0) / 3600.0;
    let got = rate.segments[0].jobs_per_s;
    assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
}

/// One contract over the first quarter of 2026 (90 days): one 8-GPU node at $10/node-hour,
/// $15,000 committed, at least $5,000 a month, and the option to add one node at $2/node-hour
/// until the end of February. Beside it one on-demand node at $40/node-hour.
const QUARTER: &str = "
name: quarter
node_types:
  - {name: h100-box, gpu: H100, gpus: 8, vcpus: 96, memory_gb: 1024}
contracts:
  - id: q1
    provider: aws
    committed_usd: 15000
    term: {start: 2026-01-01, end: 2026-03-31}
    ramp:
      - {date: 2026-01-01, region: us-east-1, node_type: h100-box, nodes: 1}
    rates:
      - {node_type: h100-box, per_node_hour: 10}
    minimum_spend: {period: month, usd: 5000}
    expansion: {until: 2026-02-28, region: us-east-1, node_type: h100-box, nodes: 1, per_node_hour: 2}
";

fn whole_node(arrival_day: u64, days: u64) -> TraceJob {
    TraceJob {
        needs: cumulo_sim::workload::NO_NEEDS,
        arrival_s: arrival_day * DAY,
        kind: JobKind::Batch,
        tenant: 0,
        priority: Priority::NORMAL,
        preemptible: false,
        num_nodes: 1,
        topology: TopologyNeed::Any,
        gpus_per_node: MilliGpu::whole(8),
        cpus_milli: 1000,
        memory_mib: 1024,
        models: ModelSet::ANY,
        job_type: 0,
        work_s: days * DAY,
    }
}

#[test]
fn the_term_report_adds_up_per_contract() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quarter.yaml"), QUARTER).unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(
        &path,
        "name: quarter-term
start_date: 2026-01-01
horizon_days: 100
fleet:
  portfolio: quarter.yaml
  pools:
    - {provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 96, memory_gb: 1024, nodes: 1, price_per_node_hour: 40}
workload:
  sources:
    - generator: {jobs: 1, horizon_days: 1}
",
    )
    .unwrap();
    let scenario = Scenario::load(&path).unwrap();
    let fleet = Fleet::for_scenario(&scenario).unwrap();
    let speeds = vec![SpeedRow::uniform("x")];
    let tenants = vec!["t".to_string()];
    let settings = SimSettings { tick_s: 60, ..SimSettings::default() };
    let input = RunInput {
        fleet: &fleet,
        speeds: &speeds,
        tenants: &tenants,
        events: &[],
        settings: &settings,
        policy: PolicyName::Cumulo,
        horizon_s: Some(100 * DAY),
        sample_s: DAY,
        span_s: 100 * DAY,
        seed: 0,
        target: None,
        needs: &[],
    };
    // January: one job on the contract node for 30 days ($7,200), a second one overflows to
    // on-demand for 10 days ($9,600). February: nothing. March: a 40-day job from 1 March runs
    // on the contract until the term ends on 1 April ($7,440), is stopped there and moves.
    let jobs = [whole_node(0, 30), whole_node(0, 10), whole_node(59, 40)];
    let r = run_jobs(&input, &jobs).unwrap();
    let term = r.term.expect("a fleet from a portfolio has a term report");
    assert_eq!((term.from.as_str(), term.to.as_str()), ("2026-01-01", "2026-04-11"));
    assert_eq!(term.on_demand_gpu_usd, 9_600.0 + 40.0 * 24.0 * 10.0, "the overflow, then the moved job's last 10 days");
    let q1 = &term.contracts[0];
    assert_eq!(q1.contract, "q1");
    assert!(q1.whole_term_simulated);
    assert_eq!(q1.committed_usd, 15_000.0);
    assert_eq!(q1.consumed_usd, 7_200.0 + 7_440.0, "30 days in January, 31 in March, at $10/h");
    assert_eq!(q1.consumed_share, 0.976);
    // payable: the larger of the commitment and the months at their minimum at least
    assert_eq!(q1.payable_usd, 7_200.0 + 5_000.0 + 7_440.0);
    assert_eq!(q1.shortfall_usd, 5_000.0, "February's minimum, paid for nothing");
    assert_eq!(q1.overrun_usd, 0.0);
    assert_eq!(q1.overflow_on_demand_usd, 9_600.0, "on-demand at aws within the term only");
    assert_eq!(q1.jobs_moved_at_term_end, 1, "the March job lost its capacity");
    let min = q1.minimum_spend.as_ref().expect("q1 has a minimum spend");
    assert_eq!(min.periods_under, 1);
    let months: Vec<(&str, f64, bool)> =
        min.periods.iter().map(|p| (p.from.as_str(), p.spend_usd, p.under_minimum)).collect();
    assert_eq!(months, vec![("2026-01-01", 7_200.0, false), ("2026-02-01", 0.0, true), ("2026-03-01", 7_440.0, false)]);
    // The option's node from 1 January would have held January's overflow ($9,600 displaced)
    // for $2/h over the 90 days ($4,320): it pays, by $5,280. From 1 February nothing is
    // displaced and it costs $2/h × 59 days.
    let e = q1.expansion.as_ref().expect("q1 has an expansion option");
    assert_eq!(e.gpus, 8);
    assert_eq!(e.option_usd_per_gpu_hour, 0.25);
    let candidates: Vec<(&str, f64, f64, f64)> = e
        .candidates
        .iter()
        .map(|c| (c.date.as_str(), c.displaced_on_demand_usd, c.option_cost_usd, c.net_usd))
        .collect();
    assert_eq!(
        candidates,
        vec![("2026-01-01", 9_600.0, 4_320.0, 5_280.0), ("2026-02-01", 0.0, 2_832.0, -2_832.0)],
        "exercise dates are month starts until the option's deadline"
    );
    assert!(e.pays);
    assert_eq!(e.best_exercise.as_deref(), Some("2026-01-01"));
    assert_eq!(e.best_net_usd, 5_280.0);
}

fn scenario_error(generator: &str, portfolio: bool) -> String {
    let fleet = if portfolio {
        "fleet:\n  portfolio: demo\n"
    } else {
        "fleet:\n  pools:\n    - {provider: aws, region: r, capacity: on-demand, vcpus: 8, memory_gb: 8, nodes: 1, price_per_node_hour: 1}\n"
    };
    let text = format!("name: bad\nhorizon_days: 10\n{fleet}workload:\n  sources:\n    - generator: {generator}\n");
    let scenario = Scenario::parse(&text).unwrap();
    match load_jobs(&scenario, 0) {
        Ok(_) => panic!("{generator} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn follow_commitments_errors_name_the_field() {
    assert_eq!(
        scenario_error("{jobs: 5, horizon_days: 10, follow_commitments: {}}", true),
        "invalid generator.jobs `5`: expected no `jobs` with `follow_commitments`, which sizes the arrivals"
    );
    assert_eq!(
        scenario_error("{horizon_days: 10, follow_commitments: {share_to: -1}}", true),
        "invalid generator.follow_commitments.share_to `-1`: expected a share of the commitment schedule from 0 to 100 (1 = on schedule)"
    );
    assert_eq!(
        scenario_error("{horizon_days: 10, follow_commitments: {step_days: 0}}", true),
        "invalid generator.follow_commitments.step_days `0`: expected at least 1/24 of a day"
    );
    assert_eq!(
        scenario_error("{horizon_days: 10, follow_commitments: {}}", false),
        "invalid generator.follow_commitments `without fleet.portfolio`: expected a fleet from a portfolio (`fleet.portfolio`), whose commitments the demand follows"
    );
    assert_eq!(
        scenario_error("{horizon_days: 10}", true),
        "invalid generator.jobs `0`: expected a positive number of jobs",
        "without follow_commitments a generator still needs its count"
    );
    let err = Scenario::parse(
        "name: bad\nfleet:\n  portfolio: demo\nworkload:\n  sources:\n    - generator: {horizon_days: 1, follow_commitments: {share: 1}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("follow_commitments") && err.contains("unknown field `share`"), "{err}");
}
