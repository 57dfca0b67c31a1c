//! `cumulo simulate` end to end: the real binary on a tiny generated scenario.

use std::process::Command;

const SCENARIO: &str = "
name: tiny
seed: 4
horizon_days: 1
sim: {tick_s: 300}
fleet:
  pools:
    - {provider: aws, region: us-east-1, capacity: contract, contract: aws-c, gpu: H100, gpus_per_node: 8, vcpus: 192, memory_gb: 2048, nodes: 4, price_per_node_hour: 98.32, contract_rate_per_node_hour: 60}
    - {provider: lambda, region: us-west-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 208, memory_gb: 1800, nodes: 4, price_per_node_hour: 23.92}
workload:
  sources:
    - generator:
        jobs: 200
        horizon_days: 1
        classes:
          - {name: batch, kind: batch, weight: 1, gpus_min: 1, gpus_max: 8, median_hours: 1}
";

fn cumulo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo")).args(args).output().expect("the cumulo binary runs")
}

#[test]
fn simulate_writes_report_summary_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let report = dir.path().join("report.json");
    let plots = dir.path().join("plots");
    let out = cumulo(&[
        "simulate",
        scenario.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
        "--plot",
        plots.to_str().unwrap(),
        "-q",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tiny (simulated)"), "{stdout}");
    for policy in ["cumulo", "fifo-first-fit", "cheapest-first"] {
        assert!(stdout.contains(policy), "{stdout}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let jobs = json["jobs"].as_u64().unwrap();
    assert!(jobs > 150 && jobs <= 200, "{jobs}");
    assert_eq!(json["policies"].as_array().unwrap().len(), 3);
    let mut charts: Vec<String> =
        std::fs::read_dir(&plots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    charts.sort();
    assert_eq!(
        charts,
        ["allocation-vs-demand.svg", "allocation.svg", "burn-down.svg", "fragmentation.svg", "pending.svg"]
    );
    // -o json prints the same report
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-o", "json", "-q"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json);
}

#[test]
fn simulate_bad_scenario_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(&scenario, SCENARIO.replace("tick_s: 300", "tick_s: 0")).unwrap();
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-q"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid sim.tick_s `0`: expected a positive number of seconds"), "{stderr}");
}

#[test]
fn fill_up_runs_show_no_completion_time() {
    // In fill-up mode work never leaves, so no job finishes: the table says `-`, not 0.00 h.
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("fill.yaml");
    std::fs::write(&scenario, SCENARIO.replace("name: tiny", "name: fill").to_string() + "  transforms: [fill-up]\n")
        .unwrap();
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.contains("cumulo ")).unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().filter(|c| *c != "│").collect();
    assert_eq!(&cells[..4], ["cumulo", "0", "-", "-"], "{stdout}");
}

/// A one-contract portfolio over the first quarter of 2026, a month's minimum and an option.
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
      - {date: 2026-01-01, region: us-east-1, node_type: h100-box, nodes: 2}
    rates:
      - {node_type: h100-box, per_node_hour: 10}
    minimum_spend: {period: month, usd: 5000}
    expansion: {until: 2026-02-28, region: us-east-1, node_type: h100-box, nodes: 1, per_node_hour: 2}
";

#[test]
fn a_portfolio_term_prints_each_contract() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quarter.yaml"), QUARTER).unwrap();
    let scenario = dir.path().join("term.yaml");
    std::fs::write(
        &scenario,
        "name: quarter-term
start_date: 2026-01-01
horizon_days: 95
sim: {tick_s: 3600}
fleet:
  portfolio: quarter.yaml
  pools:
    - {provider: aws, region: us-east-1, capacity: on-demand, gpu: H100, gpus_per_node: 8, vcpus: 96, memory_gb: 1024, nodes: 1, price_per_node_hour: 40}
workload:
  sources:
    - generator:
        horizon_days: 95
        follow_commitments: {share_from: 0.5, share_to: 1.5}
        classes:
          - {name: batch, kind: batch, weight: 1, gpus_min: 8, gpus_max: 8, median_hours: 4}
policies: [cumulo]
",
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let out = cumulo(&["simulate", scenario.to_str().unwrap(), "-o", report.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cumulo: contract terms, 2026-01-01 to 2026-04-06 (simulated)"), "{stdout}");
    assert!(stdout.contains("q1") && stdout.contains("(month)"), "the contract's row with its minimum: {stdout}");
    assert!(stdout.contains("approximation: the expansion option is valued without re-simulating"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let q1 = &json["policies"][0]["term"]["contracts"][0];
    assert_eq!(q1["contract"], "q1");
    assert_eq!(q1["committed_usd"], 15000.0);
    assert_eq!(q1["minimum_spend"]["periods"].as_array().unwrap().len(), 3, "January, February, March");
    assert_eq!(q1["expansion"]["candidates"].as_array().unwrap().len(), 2, "1 January and 1 February");
}
